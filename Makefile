# nhisync — build, test and benchmark.
#
#   make test    vet, staticcheck, every test (race detector on the engine
#                and the store), including the tests against real systems;
#                the race run and the plain run side by side, each one
#                package at a time and naming it as it starts, so a slow
#                run is visibly alive
#   make bench   the Go benchmarks (-benchmem), then the end-to-end
#                benchmark command at BENCH_N NHIs (100000; several,
#                comma-separated, e.g. 100000,300000) printing BENCH_FORMAT
#                (-json; -md for the README's table)
#   make console-screenshots
#                PNGs of the web console's pages, taken by its headless
#                Chromium test, in a temporary directory (path printed)
#   make fuzz    every Go fuzz target (func Fuzz…) for FUZZTIME each (10s);
#                a crasher found is written under the package's
#                testdata/fuzz and from then on runs in `make test` as a seed
#   make evidence-screenshot
#                a PNG of the evidence pack of a fresh demo workspace, in a
#                temporary directory outside the repository (path printed)
#
# Everything the tests need is installed on first use (see scripts/deps).

GO          ?= go
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
RACE_PKGS   := ./engine/... ./sqlite/... ./storetest/...
PKGS        := $(shell $(GO) list ./... 2>/dev/null)
OTHER_PKGS  := $(filter-out $(shell $(GO) list $(RACE_PKGS) 2>/dev/null),$(PKGS))
# The property tests (pgregory.net/rapid) run rapid's full number of cases
# in the normal run; under the race detector, which makes them many times
# slower, they run RACE_RAPID_CHECKS cases: the race run looks for data
# races, not for rare inputs.
RACE_RAPID_CHECKS ?= 20
RAPID_PKGS  := $(shell $(GO) list -f '{{range .TestImports}}{{if eq . "pgregory.net/rapid"}}{{$$.ImportPath}} {{end}}{{end}}{{range .XTestImports}}{{if eq . "pgregory.net/rapid"}}{{$$.ImportPath}} {{end}}{{end}}' ./... 2>/dev/null)

.PHONY: test vet staticcheck unit race deps bench build fmt evidence-screenshot console-screenshots fuzz

# The plain run and each package's race run go side by side, each
# package named as it starts. Most test binaries keep one core busy, and
# the race run of the engine and of the store took as long as all the
# other packages together: run one after the other, the store's went on
# alone for minutes once the plain run was done, one of the two cores
# idle.
test: deps vet staticcheck
	@$(MAKE) --no-print-directory -j3 race unit

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

# One target per package of RACE_PKGS (race@IMPORT/PATH), so that make
# runs them side by side.
RACE_TARGETS := $(addprefix race@,$(shell $(GO) list $(RACE_PKGS) 2>/dev/null))

.PHONY: $(RACE_TARGETS)

race: $(RACE_TARGETS)

$(RACE_TARGETS): race@%:
	@flags=""; \
	case " $(RAPID_PKGS) " in *" $* "*) flags="-rapid.checks=$(RACE_RAPID_CHECKS)";; esac; \
	echo "race: $* $$flags"; \
	$(GO) test -race -count=1 $* $$flags

unit:
	@for p in $(OTHER_PKGS); do \
		echo "test: $$p"; \
		$(GO) test -count=1 $$p || exit 1; \
	done

BENCH_N      ?= 100000
BENCH_FORMAT ?= -json

bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...
	$(GO) run ./cmd/nhisync-bench -n $(BENCH_N) $(BENCH_FORMAT)

FUZZTIME ?= 10s

# go test -fuzz takes one target of one package at a time: list them all.
fuzz:
	@for p in $(PKGS); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$p); \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
			echo "fuzz: $$p $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
		done; \
	done

CHROMIUM_FLAGS := --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync

evidence-screenshot: deps
	@d=$$(mktemp -d) && \
	$(GO) build -o $$d/nhisync ./cmd/nhisync && \
	$$d/nhisync quickstart --dir $$d/demo >/dev/null && \
	$$d/nhisync -c $$d/demo/nhisync.yaml report evidence --out $$d/evidence.html && \
	chromium $(CHROMIUM_FLAGS) --user-data-dir=$$d/profile --window-size=1200,4200 \
		--screenshot=$$d/evidence.png file://$$d/evidence.html 2>/dev/null && \
	echo "screenshot: $$d/evidence.png  (pack: $$d/evidence.html)"

console-screenshots: deps
	@d=$$(mktemp -d) && \
	$(GO) test -count=1 -run TestConsoleInChromium ./httpapi/ -console.screenshots $$d && \
	echo "screenshots: $$d"
