package config

import (
	_ "embed"
	"slices"
)

//go:embed starter.yaml
var starter []byte

// Starter returns the commented starter nhisync.yaml that `nhisync init`
// writes: a service_account kind, a sql system `cmdb` reading its DSN from
// ${CMDB_DSN} and a file system `catalog`. Every key appears, commented out
// where it is optional, with its default.
func Starter() []byte { return slices.Clone(starter) }
