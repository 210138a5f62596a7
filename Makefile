# mlog — see README.md. `make test` is what CI runs.
GO      ?= go
BIN     := bin
PKGS    := ./...

.PHONY: build build-mlog build-server build-producer build-consumer build-topic producer-connect consumer-connect test test-short test-coverage vet fuzz bench bench-storage run \
	local-cluster-start local-cluster-stop create-topic delete-topic list-topics \
	cluster-up cluster-down cluster-restart cluster-logs

# Parameters of the seed's targets: make create-topic topic=orders replicas=3 addrs=127.0.0.1:9097
topic    ?= orders
replicas ?= 3
addrs    ?= 127.0.0.1:9094

# bin/mlog has every command; bin/server and bin/topic are `mlog server` and
# `mlog topic` under the seed's names.
build: build-mlog build-server build-producer build-consumer build-topic
	$(GO) build $(PKGS)

build-producer:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/producer ./cmd/producer

build-consumer:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/consumer ./cmd/consumer

build-topic:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/topic ./cmd/topic

build-mlog:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/mlog ./cmd/mlog

build-server:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/server ./cmd/server

# A working single-node broker with the defaults: Kafka protocol on
# 127.0.0.1:9094, data in /tmp/mlog. Try: kcat -b 127.0.0.1:9094 -L
run: build-mlog
	$(BIN)/mlog server

local-cluster-start: build-server build-topic
	./scripts/start-local-cluster.sh

# The seed's Docker Compose cluster (infra/): an image FROM scratch around
# bin/mlog, so nothing is pulled.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_FILE := infra/docker-compose.yml

cluster-up: build-mlog
	$(COMPOSE) -f $(COMPOSE_FILE) up -d --build

cluster-down:
	$(COMPOSE) -f $(COMPOSE_FILE) down

cluster-restart: build-mlog
	$(COMPOSE) -f $(COMPOSE_FILE) down -v
	$(COMPOSE) -f $(COMPOSE_FILE) up -d --build

cluster-logs:
	$(COMPOSE) -f $(COMPOSE_FILE) logs -f

local-cluster-stop:
	./scripts/stop-local-cluster.sh

create-topic: build-topic
	$(BIN)/topic create --addrs $(addrs) --topic $(topic) --replicas $(replicas)

delete-topic: build-topic
	$(BIN)/topic delete --addrs $(addrs) --topic $(topic)

list-topics: build-topic
	$(BIN)/topic list --addrs $(addrs)

producer-connect: build-producer
	$(BIN)/producer connect --addrs $(addrs) --topic $(topic)

consumer-connect: build-consumer
	$(BIN)/consumer connect --addrs $(addrs) --topic $(topic) --id my-consumer --from-beginning

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
	$(GO) test -run '^$$' -fuzz FuzzRequests -fuzztime $(FUZZTIME) ./broker

# Storage benchmarks; see BENCHMARKS.md for how the figures there were taken.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./storage/

bench-storage:
	./scripts/bench-storage.sh

# Fault injection with real processes in network namespaces (e2e/chaos; root,
# ip and iptables): every schedule CHAOS_RUNS times with seeds CHAOS_SEED..,
# results table to stdout and e2e/chaos/results/latest.md. `make test` runs
# only its short smoke. Narrow it with CHAOS_SCHEDULES=kill-leader,flap.
CHAOS_RUNS ?= 3
CHAOS_SEED ?= 1
.PHONY: chaos
chaos: build-mlog
	MLOG_CHAOS=1 CHAOS_RUNS=$(CHAOS_RUNS) CHAOS_SEED=$(CHAOS_SEED) MLOG_CHAOS_BIN=$(CURDIR)/$(BIN)/mlog \
		$(GO) test -count=1 -timeout 0 -v -run 'TestChaos$$' ./e2e/chaos/

# mlog against NATS JetStream on this machine (bench/README.md): three-node
# clusters of real processes on loopback, started and stopped by the
# harness, the same workloads interleaved, medians and mlog/NATS ratios to
# stdout and bench/results/latest.md. QUICK=1 for a run of seconds.
.PHONY: bench-compare
bench-compare: build-mlog
	@command -v nats-server >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nats-server; }
	cd bench && $(GO) run . -mlog $(CURDIR)/$(BIN)/mlog $(if $(filter 1 true yes,$(QUICK)),-quick) \
		-command "make bench-compare$(if $(QUICK), QUICK=$(QUICK))"
