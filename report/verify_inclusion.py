#!/usr/bin/env python3
"""Check an nhisync inclusion proof without nhisync.

Usage: python3 verify_inclusion.py PROOF.json VERIFIER_KEY

PROOF.json is the output of `nhisync audit proof SEQ -o json`; VERIFIER_KEY
is the published key of `nhisync audit key` (NAME+HASH+BASE64). The script
uses the Python standard library for RFC 6962 / RFC 9162 hashing and the
openssl command for the ed25519 signature of the checkpoint, so nothing of
nhisync's own code is trusted. It exits 0 only when every check holds.
"""
import base64, hashlib, json, os, subprocess, sys, tempfile


def fail(msg):
    print("FAILED: " + msg)
    sys.exit(1)


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_proof(index, size, leaf, path):
    # RFC 9162 section 2.1.3.2
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            fail("the proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        fail("the proof is shorter than the tree needs")
    return r


def check_signature(note, vkey):
    name, keyhash, key = vkey.split("+", 2)
    raw = base64.b64decode(key)
    if raw[0] != 1 or len(raw) != 33:
        fail("the verifier key is not an ed25519 key")
    pub = raw[1:]
    want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if want.hex() != keyhash:
        fail("the verifier key's hash does not match the key")
    text, _, sigs = note.partition("\n\n")
    text += "\n"
    for line in sigs.splitlines():
        if not line.startswith("\u2014 " + name + " "):
            continue
        sig = base64.b64decode(line.split(" ")[2])
        if sig[:4] != want:
            continue
        with tempfile.TemporaryDirectory() as d:
            spki = bytes.fromhex("302a300506032b6570032100") + pub
            pem = "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(spki).decode() + "\n-----END PUBLIC KEY-----\n"
            for fname, data in (("key.pem", pem.encode()), ("msg", text.encode()), ("sig", sig[4:])):
                with open(os.path.join(d, fname), "wb") as f:
                    f.write(data)
            res = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", os.path.join(d, "key.pem"),
                                  "-rawin", "-in", os.path.join(d, "msg"), "-sigfile", os.path.join(d, "sig")],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                fail("openssl rejects the checkpoint signature: " + (res.stdout + res.stderr).strip())
            return text
    fail("the checkpoint carries no signature by " + name)


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip())
        sys.exit(2)
    with open(sys.argv[1]) as f:
        p = json.load(f)
    entry = base64.b64decode(p["entry"])
    leaf = hashlib.sha256(b"\x00" + entry).digest()
    if leaf != base64.b64decode(p["leaf_hash"]):
        fail("leaf_hash is not SHA-256(0x00 || entry)")
    path = [base64.b64decode(h) for h in p["proof"]]
    root = root_from_proof(p["leaf_index"], p["tree_size"], leaf, path)
    if root != base64.b64decode(p["root_hash"]):
        fail("the proof does not lead to root_hash")
    text = check_signature(p["checkpoint"], sys.argv[2])
    lines = text.split("\n")
    if int(lines[1]) != p["tree_size"] or base64.b64decode(lines[2]) != root:
        fail("the signed checkpoint is for another tree (size %s, root %s)" % (lines[1], lines[2]))
    e = json.loads(entry)
    print("OK: entry %d (%s %s %s) is leaf %d of the %d-entry log signed by %s; root %s" % (
        e.get("seq", 0), e.get("action", ""), e.get("record", ""), e.get("field", ""),
        p["leaf_index"], p["tree_size"], sys.argv[2].split("+")[0], lines[2]))


main()
