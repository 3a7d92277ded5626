package storecodec

import (
	"math/rand/v2"
	"strconv"

	"github.com/nhisync/nhisync"
)

// LinksVersionKey is the meta key under which both stores keep the links'
// version (nhisync.LinksVersioner). Not a setting: MetaAll leaves it out,
// as a copy's links are written by its own commits, which draw its own.
const LinksVersionKey = "links_version"

// NewLinksVersion draws the value a commit changing a link head stores.
func NewLinksVersion() string { return strconv.FormatUint(rand.Uint64(), 10) }

// LinksVersion reads the links' version from v, the meta value Meta
// returned for LinksVersionKey ("" when there is none) with err.
func LinksVersion(op, v string, err error) (uint64, error) {
	if err != nil {
		return 0, err
	}
	if v == "" {
		return 0, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "the store has no links version (a migration is missing)"}
	}
	n, perr := strconv.ParseUint(v, 10, 64)
	if perr != nil {
		return 0, &nhisync.Error{Code: nhisync.EINTERNAL, Op: op, Message: "the store's links version " + strconv.Quote(v) + " is not a number"}
	}
	return n, nil
}
