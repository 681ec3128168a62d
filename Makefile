# Nexus Broker. `make run` runs the whole broker in one process; `make test` runs every test.
GO       ?= go
MODULES  := messages messages/schema client shared services/vault services/handshake services/admin services/refresher system testing/oidcprovider deploy
PKGS     := $(foreach m,$(MODULES),./$(m)/...)
SERVICES := vault handshake admin refresher
export GO

.PHONY: run test services tools vet build bench soak fmt tidy schemas

## run: every service in one process with an embedded NATS server (JetStream); configured by the
## environment (README.md, "make run"), e.g. ADMIN_HTTP_ADDR=127.0.0.1:18081 NEXUS_NATS_PORT=4323 make run
run:
	@./scripts/ensure-services.sh run
	@./scripts/modules-note.sh run
	$(GO) run ./system/cmd/nexus

## test: the whole suite, with the race detector, against real PostgreSQL, Redis and NATS
## (TEST_DATABASE_URL, TEST_REDIS_URL), and the README's commands against a real `make run`
test:
	@./scripts/ensure-services.sh test
	@./scripts/ensure-tools.sh
	@./scripts/modules-note.sh test $(PKGS)
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 12m $(PKGS)

## services: make sure the PostgreSQL and Redis of make test answer (start the local ones if stopped)
services:
	@./scripts/ensure-services.sh test

## tools: what the tests need besides Go: the nats CLI (installed with go install when missing) and curl
tools:
	@./scripts/ensure-tools.sh

## build: each service as its own binary, plus the launcher, the admin CLI and the benchmark
build:
	@mkdir -p bin
	$(foreach s,$(SERVICES),$(GO) build -o bin/$(s) ./services/$(s)/cmd/$(s) &&) true
	$(GO) build -o bin/nexus ./system/cmd/nexus
	$(GO) build -o bin/nexus-admin ./services/admin/cmd/nexus-admin
	$(GO) build -o bin/nexus-bench ./system/cmd/nexus-bench
	$(GO) build -o bin/nexus-soak ./system/cmd/nexus-soak

## bench: tokens.get against its floor, a do-nothing NATS responder (docs/ARCHITECTURE.md, section 5)
bench:
	@./scripts/ensure-services.sh run
	$(GO) run ./system/cmd/nexus-bench

## schemas: the contract's JSON Schemas in messages/schema, from the messages types
schemas:
	cd messages/schema && $(GO) generate .

## soak: 100,000 connections renewed by two refreshers against the loopback provider, under a checked
## tokens.get load, for 5 minutes (system/soak); more flags in SOAK_FLAGS, e.g. SOAK_FLAGS='-duration 30m'
soak:
	@./scripts/ensure-services.sh run
	$(GO) run ./system/cmd/nexus-soak $(SOAK_FLAGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $(MODULES)

tidy:
	$(foreach m,$(MODULES),(cd $(m) && $(GO) mod tidy) &&) true
