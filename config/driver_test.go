package config

import (
	"context"
	"errors"
	"strings"

	"github.com/nhisync/nhisync"
)

// The config tests register drivers named like the real sql and file
// connectors, with the same settings, so configs read as in production.
// They only validate settings: no test here opens a connector.
func init() {
	nhisync.RegisterDriver("sql", nhisync.Driver{
		Settings: []string{"dsn", "table", "updated_column", "notify"},
		Validate: func(sys *nhisync.System, _ *nhisync.Kind) error {
			switch {
			case sys.Settings.String("dsn") == "":
				return nhisync.Errorf(nhisync.EINVALID, "missing dsn; give the database URL, e.g. dsn: ${CMDB_DSN}")
			case sys.Settings.String("table") == "":
				return nhisync.Errorf(nhisync.EINVALID, "missing table; name the table holding the records")
			case !strings.Contains(sys.Settings.String("dsn"), ":"):
				return nhisync.Errorf(nhisync.EINVALID, "dsn: not a URL; use sqlite:PATH, postgres://… or mysql://…")
			}
			return nil
		},
		Open: openNothing,
	})
	nhisync.RegisterDriver("file", nhisync.Driver{
		Settings: []string{"path", "format"},
		Validate: func(sys *nhisync.System, _ *nhisync.Kind) error {
			if sys.Settings.String("path") == "" {
				return nhisync.Errorf(nhisync.EINVALID, "missing path; name the file, e.g. path: ./accounts.csv")
			}
			return nil
		},
		Open: openNothing,
	})
}

func openNothing(context.Context, *nhisync.System, *nhisync.Kind) (nhisync.Connector, error) {
	return nil, errors.New("config tests open no connectors")
}
