# Fathom — build, test and benchmark entry points. Every tool a target needs is
# installed by `make deps` (Debian packages) or pinned in go.mod (Go tools).
SHELL := /bin/bash
GO ?= go
BIN := bin/fathom
AGENT_BIN := bin/fathom-agent
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Keep the default test run well under CI's budget; long evaluations are opt-in.
TEST_TIMEOUT ?= 14m

.PHONY: all build test test-short bench lint generate demo deps deps-test notebooks notebooks-deps screenshots clean

all: build

## build: bin/fathom, and bin/fathom-agent, the agent alone (what runs on
## every machine; `fathom agent` execs it when it sits beside bin/fathom).
## A progress line while it compiles (the first build takes minutes).
build:
	GO="$(GO)" LDFLAGS="$(LDFLAGS)" ./scripts/build.sh

## deps: every Debian package any target uses (protoc, prometheus, jupyter).
deps:
	./scripts/deps.sh all

## deps-test: what the test suite needs (a real Prometheus for the integration test).
deps-test:
	./scripts/deps.sh test

## test: the README's test command. Lint, then every test, with the real parts.
test: deps-test lint build
	FATHOM_BIN=$(CURDIR)/$(BIN) $(GO) test -timeout $(TEST_TIMEOUT) ./...

test-short:
	$(GO) test -short -timeout 5m ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.' ) 2>/dev/null); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## bench: prints the figures the issues ask for (see docs/benchmarks.md).
bench: build
	./scripts/bench.sh

## generate: protobuf/gRPC/gateway/OpenAPI code and Grafana dashboards (committed).
generate:
	./scripts/generate.sh

## demo: the README's first command: fathom dev plus a demo job.
demo: build
	./scripts/demo.sh

## screenshots: docs/img/console-*.png, the web console in headless Chromium
## against a real fathom dev running the examples (a few minutes: it lets
## usage accumulate so the charts show right-sizing at work).
screenshots: build
	./scripts/deps.sh browser
	@command -v chromium >/dev/null || { echo "screenshots: no chromium (apt-get install chromium)"; exit 1; }
	FATHOM_BIN=$(CURDIR)/$(BIN) FATHOM_SCREENSHOTS=$(CURDIR)/docs/img $(GO) test -count=1 -v -timeout 15m -run '^TestConsole$$' ./e2e/console/

notebooks-deps:
	./scripts/deps.sh notebooks

notebooks: build notebooks-deps
	./scripts/notebooks.sh

clean:
	rm -rf bin
