# nhisync — build, test and benchmark.
#
#   make test    vet, staticcheck, every test (race detector on the engine
#                and the store), including the tests against real systems
#   make bench   the benchmarks, and the end-to-end benchmark command
#
# Everything the tests need is installed on first use (see scripts/deps).

GO          ?= go
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
RACE_PKGS   := ./engine/... ./sqlite/... ./storetest/...
PKGS        := $(shell $(GO) list ./... 2>/dev/null)
OTHER_PKGS  := $(filter-out $(shell $(GO) list $(RACE_PKGS) 2>/dev/null),$(PKGS))

.PHONY: test vet staticcheck unit race deps bench build fmt

test: deps vet staticcheck race unit

build:
	$(GO) build ./...

deps:
	@scripts/deps

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: fmt
	$(GO) vet ./...

staticcheck: deps
	$(STATICCHECK) ./...

race:
	$(GO) test -race -count=1 $(RACE_PKGS)

unit:
	$(GO) test -count=1 $(OTHER_PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
