package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nhisync/nhisync"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	// Pos is "FILE:LINE".
	Pos  string
	Line int
	// Msg says what is wrong and what to change, prefixed by the key path
	// it concerns (e.g. `kinds.service_account.fields.owner: unknown key …`).
	Msg string
}

// String formats the problem as "FILE:LINE: MSG".
func (p Problem) String() string { return p.Pos + ": " + p.Msg }

// Problems is every problem found in a config file, in line order, as
// ParseProblems returns them.
type Problems []Problem

// Error returns the problems one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Err returns the problems as one *nhisync.Error with code EINVALID whose
// Message lists them one per line; nil if there are none.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return &nhisync.Error{Code: nhisync.EINVALID, Message: ps.Error()}
}

// sorted returns the problems in line order (stable: same-line problems
// keep the order they were found in).
func (ps Problems) sorted() Problems {
	slices.SortStableFunc(ps, func(a, b Problem) int { return a.Line - b.Line })
	return ps
}

// problems collects problems of one file.
type problems struct {
	file string
	list Problems
}

// add records a problem at line about the key path (which may be "").
func (p *problems) add(line int, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	p.list = append(p.list, Problem{Pos: fmt.Sprintf("%s:%d", p.file, line), Line: line, Msg: msg})
}

// suggest returns `; did you mean "X"?` for the candidate nearest to s, or
// a list of the candidates when none is near.
func suggest(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	if len(candidates) == 0 {
		return ""
	}
	return "; use one of " + strings.Join(candidates, ", ")
}

// closest returns the candidate nearest to s by edit distance, if it is
// near enough to be a likely typo.
func closest(s string, candidates []string) string {
	for _, c := range candidates {
		if len(s) >= 3 && strings.HasPrefix(c, s) {
			return c
		}
	}
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
