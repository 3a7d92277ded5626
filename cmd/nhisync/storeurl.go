package main

import (
	"context"
	"strings"

	"github.com/nhisync/nhisync"
	"github.com/nhisync/nhisync/postgres"
	"github.com/nhisync/nhisync/sqlite"
)

// openStoreURL opens the store a store URL names: sqlite:PATH or
// postgres://USER@HOST:PORT/DB. The URL is never echoed (it may hold a
// password).
func openStoreURL(ctx context.Context, storeURL string) (nhisync.Store, error) {
	switch {
	case strings.HasPrefix(storeURL, "sqlite:"):
		return sqlite.OpenURL(ctx, storeURL)
	case postgres.IsURL(storeURL):
		return postgres.OpenURL(ctx, storeURL)
	}
	return nil, nhisync.Errorf(nhisync.EINVALID, "the store URL is not one nhisync knows: use sqlite:PATH or postgres://USER@HOST:5432/DATABASE")
}
