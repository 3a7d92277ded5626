// An in-memory SCIM 2.0 server for the scim connector's tests: SCIMMY
// (protocol, filters, PATCH) and scimmy-routers (HTTP) over a Map.
//
// Beyond PEERS' recipe it
//   - adds the conformance suite's attributes (sysid, botname, …) to the
//     core User schema and makes userName optional, so the suite's records
//     are Users;
//   - stamps meta.lastModified strictly increasing (a change is always
//     later than every earlier one, even in the same millisecond) and
//     meta.version from a counter, returned as the ETag header;
//   - enforces If-Match on PUT/PATCH/DELETE of one resource (412 when it
//     does not match), which SCIMMY leaves to the store;
//   - answers POST /_fault (test only) to inject failures: {status, times,
//     retryAfter, delayMs} for the next requests, or {raw: {...}} to store
//     a resource as given, bypassing validation.
//
// Env: SCIM_PORT (0 = any free port; the chosen one is printed as
// "listening PORT"), SCIM_TOKEN (bearer), SCIM_BASIC ("user:pass", also
// accepted).
import express from "express";
import crypto from "node:crypto";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const PORT = Number(process.env.SCIM_PORT || 0);
const TOKEN = process.env.SCIM_TOKEN || "test-token";
const BASIC = process.env.SCIM_BASIC || "";
const store = new Map();
const raw = new Map(); // id -> resource stored bypassing validation
let clock = 0;
let version = 0;

function stamp() {
  clock = Math.max(Date.now(), clock + 1);
  return new Date(clock);
}

const S = (name, cfg = {}) => new SCIMMY.Types.Attribute("string", name, cfg);
const core = SCIMMY.Schemas.User.definition;
core.truncate("userName");
core.extend([
  S("userName", {uniqueness: "server"}),
  S("sysid"), S("botname"), S("platform"), S("ownedby"),
  S("tags", {multiValued: true}), S("status"), S("rotatedat"), S("notes"), S("costcenter"),
]);
SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false);

SCIMMY.Resources.declare(SCIMMY.Resources.User)
  .ingress((resource, instance) => {
    const now = stamp();
    const id = resource.id ?? crypto.randomUUID();
    const prev = store.get(id);
    if (resource.id && !prev) throw new SCIMMY.Types.Error(404, null, `Resource ${id} not found`);
    if (!resource.id && instance.userName && [...store.values()].some(u => u.userName === instance.userName))
      throw new SCIMMY.Types.Error(409, "uniqueness", "userName already exists");
    version++;
    const rec = {...JSON.parse(JSON.stringify(instance)), id,
      meta: {created: prev?.meta.created ?? now, lastModified: now, version: `W/"${version}"`}};
    store.set(id, rec);
    return rec;
  })
  .egress((resource) => {
    if (resource.id) {
      const r = store.get(resource.id);
      if (!r) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
      return r;
    }
    const all = [...store.values()];
    if (resource.filter) return resource.filter.match(all);
    // Without a filter or sort, hand SCIMMY only the page asked for (it
    // would otherwise build every resource of the store for each page).
    // SCIMMY slices again only when startIndex falls inside what it got,
    // so pre-slice only the first page and pages past the first count.
    const {startIndex = 1, count = 20, sortBy} = resource.constraints ?? {};
    if (sortBy === undefined && (startIndex === 1 || startIndex > count)) {
      resource.constraints.totalResults = all.length;
      return all.slice(startIndex - 1, startIndex - 1 + count);
    }
    return all;
  })
  .degress((resource) => {
    if (!store.delete(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
  });

const app = express();
let faults = [];
let noLastModified = false;
app.post("/_fault", express.json(), (req, res) => {
  if (req.body.noLastModified !== undefined) {
    noLastModified = req.body.noLastModified;
  } else if (req.body.raw) {
    raw.set(req.body.raw.id, req.body.raw);
  } else if (req.body.clear) {
    faults = [];
    raw.clear();
    noLastModified = false;
  } else {
    for (let i = 0; i < (req.body.times ?? 1); i++) faults.push(req.body);
  }
  res.status(204).end();
});
// Load resources straight into the store (test setup), each validated by
// SCIMMY as a POST would be, without an HTTP round trip per resource.
app.post("/_load", express.json({limit: "64mb"}), async (req, res) => {
  try {
    for (const r of req.body) await new SCIMMY.Resources.User().write(r);
    res.status(204).end();
  } catch (e) {
    res.status(400).send(String(e.message ?? e));
  }
});
app.post("/_reset", (req, res) => { store.clear(); raw.clear(); faults = []; noLastModified = false; changeBeforeWrite = null; res.status(204).end(); });
app.use("/scim/v2", async (req, res, next) => {
  if (noLastModified && String(req.query.filter ?? "").includes("meta.lastModified")) {
    return res.status(400).type("application/scim+json").send(JSON.stringify({
      schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "400", scimType: "invalidFilter",
      detail: "filtering on meta.lastModified is not supported"}));
  }
  const f = faults.shift();
  if (!f) return next();
  if (f.deleteFirstAfter) {
    // The list moves while a client pages through it: the first stored
    // resource is deleted right after this answer.
    res.on("finish", () => { const k = store.keys().next().value; if (k !== undefined) store.delete(k); });
    return next();
  }
  if (f.changeAfterRead) {
    // A concurrent change right after this read: the next write carries
    // a version that is no longer current.
    res.on("finish", () => {
      const r = store.get(req.path.split("/").pop());
      if (!r) return;
      version++;
      Object.assign(r, f.changeAfterRead);
      r.meta = {...r.meta, lastModified: stamp(), version: `W/"${version}"`};
    });
    return next();
  }
  if (f.delayMs) await new Promise(r => setTimeout(r, f.delayMs));
  if (!f.status) return next();
  if (f.retryAfter !== undefined) res.set("Retry-After", String(f.retryAfter));
  res.status(f.status).type("application/scim+json").send(JSON.stringify({
    schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: String(f.status), detail: "injected fault"}));
});
// Auth before anything else of SCIM, so every route answers 401 alike.
app.use("/scim/v2", (req, res, next) => {
  const h = req.header("Authorization") || "";
  const ok = h === `Bearer ${TOKEN}` || (BASIC && h === "Basic " + Buffer.from(BASIC).toString("base64"));
  if (ok) return next();
  res.status(401).type("application/scim+json").send(JSON.stringify({
    schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "401", detail: "Authorization failed"}));
});
// A concurrent change (test only): the next PATCH of resource `id` finds
// it changed by someone else just before (attrs set, version bumped).
let changeBeforeWrite = null;
app.post("/_change_before_write", express.json(), (req, res) => { changeBeforeWrite = req.body; res.status(204).end(); });
app.patch("/scim/v2/Users/:id", (req, res, next) => {
  const c = changeBeforeWrite;
  const r = store.get(req.params.id);
  if (c && r && c.id === req.params.id) {
    changeBeforeWrite = null;
    version++;
    Object.assign(r, c.attrs);
    r.meta = {...r.meta, lastModified: stamp(), version: `W/"${version}"`};
  }
  next();
});
// If-Match on one resource: compare with its meta.version.
app.use("/scim/v2/Users/:id", (req, res, next) => {
  const want = req.header("If-Match");
  if (!want || req.method === "GET") return next();
  const r = store.get(req.params.id);
  if (r && want !== "*" && !want.split(",").map(s => s.trim()).includes(r.meta.version)) {
    return res.status(412).type("application/scim+json").send(JSON.stringify({
      schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "412", detail: "version mismatch"}));
  }
  next();
});
// Raw resources (test only) appear in list responses as stored.
app.get("/scim/v2/Users", (req, res, next) => {
  if (raw.size === 0) return next();
  const send = res.send.bind(res);
  res.send = (body) => {
    try {
      const j = JSON.parse(body);
      if (Array.isArray(j.Resources)) {
        j.Resources.push(...raw.values());
        j.totalResults += raw.size;
        j.itemsPerPage = j.Resources.length;
        body = JSON.stringify(j);
      }
    } catch {}
    return send(body);
  };
  next();
});
// The ETag header is the resource's meta.version (Express would send a
// body hash).
app.set("etag", false);
app.use("/scim/v2/Users/:id", (req, res, next) => {
  const send = res.send.bind(res);
  res.send = (body) => {
    const r = store.get(req.params.id);
    if (r && res.statusCode < 300) res.set("ETag", r.meta.version);
    return send(body);
  };
  next();
});
app.use("/scim/v2", new SCIMMYRouters({type: "bearer", handler: () => "test-client"}));
const srv = app.listen(PORT, "127.0.0.1", () => console.log(`listening ${srv.address().port}`));
process.on("SIGTERM", () => srv.close(() => process.exit(0)));
