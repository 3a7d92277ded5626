package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/nhisync/nhisync"
)

// queue is one list of work: its statuses and how to read it.
type queue[T any] struct {
	noun     string
	statuses []string
	def      string
	list     func(ctx context.Context, s nhisync.Store, f nhisync.ItemFilter) ([]T, error)
	id       func(T) int64
	// about names the item's kind and field (sensitive ones are masked).
	about func(T) (kind, field string)
}

var (
	conflictQueue = queue[*nhisync.Conflict]{
		noun: "conflicts", statuses: []string{nhisync.StatusOpen, nhisync.StatusResolved}, def: nhisync.StatusOpen,
		list: func(ctx context.Context, s nhisync.Store, f nhisync.ItemFilter) ([]*nhisync.Conflict, error) {
			return s.Conflicts(ctx, f)
		},
		id:    func(c *nhisync.Conflict) int64 { return c.ID },
		about: func(c *nhisync.Conflict) (string, string) { return c.Kind, c.Field },
	}
	quarantineQueue = queue[*nhisync.QuarantineItem]{
		noun: "quarantine", statuses: []string{nhisync.StatusOpen, nhisync.StatusCleared, nhisync.StatusDismissed}, def: nhisync.StatusOpen,
		list: func(ctx context.Context, s nhisync.Store, f nhisync.ItemFilter) ([]*nhisync.QuarantineItem, error) {
			return s.QuarantineItems(ctx, f)
		},
		id:    func(q *nhisync.QuarantineItem) int64 { return q.ID },
		about: func(q *nhisync.QuarantineItem) (string, string) { return q.Kind, q.Field },
	}
	approvalQueue = queue[*nhisync.Approval]{
		noun: "approvals", statuses: []string{nhisync.StatusPending, nhisync.StatusApproved, nhisync.StatusRejected, nhisync.StatusSuperseded}, def: nhisync.StatusPending,
		list: func(ctx context.Context, s nhisync.Store, f nhisync.ItemFilter) ([]*nhisync.Approval, error) {
			return s.Approvals(ctx, f)
		},
		id:    func(a *nhisync.Approval) int64 { return a.ID },
		about: func(a *nhisync.Approval) (string, string) { return a.Kind, a.Field },
	}
)

// filter reads ?status= (default the open status, "all" for every one).
func (q queue[T]) filter(r *http.Request) (nhisync.ItemFilter, error) {
	st := r.URL.Query().Get("status")
	switch {
	case st == "":
		st = q.def
	case st == "all":
		st = ""
	case !slices.Contains(q.statuses, st):
		return nhisync.ItemFilter{}, nhisync.Errorf(nhisync.EINVALID, "status of %s must be one of %s or all, got %q", q.noun, strings.Join(q.statuses, ", "), st)
	}
	return nhisync.ItemFilter{Status: st}, nil
}

// page lists one keyset page of the queue: items with ID above after, in
// ID order, read as such from the store (IDs only grow, so a page never
// repeats or skips an item when new ones arrive).
func (q queue[T]) page(s *Server, c *call) error {
	f, err := q.filter(c.r)
	if err != nil {
		return err
	}
	limit, after, err := pageArgs(c.r)
	if err != nil {
		return err
	}
	// One more than the page, to know whether another follows.
	f.After, f.Limit = after, limit+1
	items, err := q.list(c.r.Context(), s.opt.Store, f)
	if err != nil {
		return err
	}
	out := pageJSON[T]{Items: items}
	if len(items) > limit {
		out.Items = items[:limit]
		out.Next = strconv.FormatInt(q.id(items[limit-1]), 10)
	}
	if out.Items == nil {
		out.Items = []T{}
	}
	masked, err := maskItems(s, out.Items, q.about)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, pageJSON[any]{Items: masked, Next: out.Next})
	return nil
}

func (s *Server) listConflicts(c *call) error  { return conflictQueue.page(s, c) }
func (s *Server) listQuarantine(c *call) error { return quarantineQueue.page(s, c) }
func (s *Server) listApprovals(c *call) error  { return approvalQueue.page(s, c) }

// itemID reads the {id} path parameter.
func itemID(c *call) (int64, error) {
	v := c.param("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, nhisync.Errorf(nhisync.EINVALID, "the id must be a positive number, got %q", v)
	}
	return id, nil
}

// act runs a person's decision as the CLI does: the engine call under the
// caller's name, then the writes it queued are sent (the store signs the
// audit log's checkpoint in each commit). It holds Options.Exclusive so it waits for a running pass
// of the service instead of failing on its lease.
func (s *Server) act(ctx context.Context, who string, drain bool, do func(ctx context.Context) error) error {
	if s.opt.Exclusive != nil {
		s.opt.Exclusive.Lock()
		defer s.opt.Exclusive.Unlock()
	}
	if err := do(ctx); err != nil {
		return err
	}
	// The decision is committed: what follows must not be cut short by
	// the caller going away.
	ctx = context.WithoutCancel(ctx)
	if drain {
		sum, err := s.opt.Engine.Drain(ctx)
		if nhisync.ErrorCode(err) == nhisync.ECONFLICT {
			s.log.Info("the writes of a decision wait for the pass running elsewhere", "actor", who)
		} else if err != nil {
			s.log.Error("sending the writes of a decision failed; they stay queued", "actor", who, "err", err)
		} else {
			s.opt.Metrics.ObserveWrites(sum)
			s.opt.Metrics.FlushPropagation()
		}
	}
	s.opt.Metrics.Refresh(ctx)
	return nil
}

// resolveBody is the body of POST /conflicts/{id}/resolve.
type resolveBody struct {
	Pick  *string `json:"pick"`
	Value *string `json:"value"`
}

func (s *Server) resolveConflict(c *call) error {
	id, err := itemID(c)
	if err != nil {
		return err
	}
	var b resolveBody
	if err := decodeBody(c.w, c.r, &b); err != nil {
		return err
	}
	if (b.Pick == nil) == (b.Value == nil) || b.Pick != nil && *b.Pick == "" {
		return nhisync.Errorf(nhisync.EINVALID, `give exactly one of {"pick": SYSTEM} or {"value": V}`)
	}
	pick, value := "", ""
	if b.Pick != nil {
		pick = *b.Pick
	} else {
		value = *b.Value
	}
	var out *nhisync.Conflict
	err = s.act(c.r.Context(), c.who.name, true, func(ctx context.Context) error {
		out, err = s.opt.Engine.ResolveConflict(ctx, id, pick, value, c.who.name)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (s *Server) dismissQuarantine(c *call) error {
	id, err := itemID(c)
	if err != nil {
		return err
	}
	if err := drainBody(c.w, c.r); err != nil {
		return err
	}
	var out *nhisync.QuarantineItem
	err = s.act(c.r.Context(), c.who.name, true, func(ctx context.Context) error {
		out, err = s.opt.Engine.DismissQuarantine(ctx, id, c.who.name)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

func (s *Server) approveWrite(c *call) error { return s.decideApproval(c, true) }
func (s *Server) rejectWrite(c *call) error  { return s.decideApproval(c, false) }

func (s *Server) decideApproval(c *call, grant bool) error {
	id, err := itemID(c)
	if err != nil {
		return err
	}
	if err := drainBody(c.w, c.r); err != nil {
		return err
	}
	var out *nhisync.Approval
	err = s.act(c.r.Context(), c.who.name, grant, func(ctx context.Context) error {
		if grant {
			out, err = s.opt.Engine.Approve(ctx, id, c.who.name)
		} else {
			out, err = s.opt.Engine.Reject(ctx, id, c.who.name)
		}
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}
