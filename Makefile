# Nexus Broker. `make run` runs the whole broker in one process; `make test` runs every test.
GO       ?= go
MODULES  := messages shared services/vault services/handshake services/admin services/refresher system testing/oidcprovider
PKGS     := $(foreach m,$(MODULES),./$(m)/...)
SERVICES := vault handshake admin refresher

.PHONY: run test services vet build bench fmt tidy

## run: every service in one process with an embedded NATS server (JetStream)
run: services
	$(GO) run ./system/cmd/nexus

## test: the whole suite, with the race detector, against real PostgreSQL, Redis and NATS
test: services
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 12m $(PKGS)

## services: make sure PostgreSQL and Redis answer (start the local ones if stopped)
services:
	@./scripts/ensure-services.sh

## build: each service as its own binary, plus the launcher, the admin CLI and the benchmark
build:
	@mkdir -p bin
	$(foreach s,$(SERVICES),$(GO) build -o bin/$(s) ./services/$(s)/cmd/$(s) &&) true
	$(GO) build -o bin/nexus ./system/cmd/nexus
	$(GO) build -o bin/nexus-admin ./services/admin/cmd/nexus-admin
	$(GO) build -o bin/nexus-bench ./system/cmd/nexus-bench

## bench: tokens.get against its floor, a do-nothing NATS responder (docs/ARCHITECTURE.md, section 5)
bench: services
	$(GO) run ./system/cmd/nexus-bench

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $(MODULES)

tidy:
	$(foreach m,$(MODULES),(cd $(m) && $(GO) mod tidy) &&) true
