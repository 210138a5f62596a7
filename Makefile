# mlog — see README.md. `make test` is what CI runs.
GO      ?= go
BIN     := bin
PKGS    := ./...

.PHONY: build test test-short test-coverage vet fuzz bench run

build:
	$(GO) build $(PKGS)

vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The whole suite, with the race detector on every package.
test: vet
	$(GO) test -race -count=1 $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

test-coverage:
	$(GO) test -count=1 -coverprofile=coverage.out $(PKGS)
	$(GO) tool cover -func=coverage.out | tail -1

# Fuzz each decoder for FUZZTIME (default 30s) each.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./storage/batch
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime $(FUZZTIME) ./storage

# Storage benchmarks; see BENCHMARKS.md for how the figures there were taken.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./storage/

run:
	@echo "make run arrives with the broker (issue: single-node broker). Nothing to run yet."; exit 1
