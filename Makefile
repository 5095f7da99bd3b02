# kommo-operator. `make help` lists the targets.

# `make test` includes the short fault-injection run (test/chaos); TEST_CHAOS=0 leaves it out.
TEST_CHAOS ?= 1

# Pinned tools; each is built once into bin/ and reused.
CONTROLLER_GEN_VERSION ?= v0.23.0
LOCALBIN := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
# The control plane (kube-apiserver, etcd, kubectl) built from source by hack/envtest.
ENVTEST_ASSETS = $$(hack/envtest/build.sh)

GO ?= go
GOTEST ?= $(GO) test
# How long `make test` runs each fuzz target: a count, not a duration. Go 1.26's fuzz
# coordinator can report its own -fuzztime deadline as a failure with no crasher
# (golang/go#75804, fixed in Go 1.27); a count never arms that deadline.
FUZZTIME ?= 50000x
IMG ?= ghcr.io/kommo-operator/kommo-operator:dev
# Controller replicas of `make dev` (leader-elected).
REPLICAS ?= 1

.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash -o pipefail

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code from the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and the RBAC roles from markers.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=kommo-operator-controller paths=./controllers/... output:rbac:artifacts:config=config/rbac/controller
	$(CONTROLLER_GEN) rbac:roleName=kommo-operator-webhook paths=./webhook/... output:rbac:artifacts:config=config/rbac/webhook
	$(MAKE) chart-files

# The chart ships these files of config/ unchanged (its templates read them with .Files), so the
# Helm and the kustomize install cannot drift; test/ecosystem checks the result.
CHART := charts/kommo-operator
.PHONY: chart-files
chart-files: ## Copy the CRDs, generated roles, alert rules and write policy from config/ into the Helm chart.
	rm -f $(CHART)/files/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/files/crds/
	cp config/rbac/controller/role.yaml $(CHART)/files/rbac/controller-role.yaml
	cp config/rbac/webhook/role.yaml $(CHART)/files/rbac/webhook-role.yaml
	cp config/prometheus/rules.yaml $(CHART)/files/prometheus-rules.yaml
	cp config/webhook/write_policy.yaml $(CHART)/files/webhook-write-policy.yaml

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...
	cd test/ecosystem && $(GO) vet ./...

.PHONY: verify
verify: generate manifests ## Fail when generated files or formatting are stale.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- api config charts || { echo "Generated files are stale: run 'make generate manifests' and commit the result."; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- api config charts)" || { echo "Generated files are not committed:"; git status --short -- api config charts; exit 1; }

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd, kubectl and kube-controller-manager into bin/k8s/<version>/ (once) and print where.
	@hack/envtest/build.sh

.PHONY: test
test: vet ## Vet, then unit, API-server and e2e tests and a short fault-injection run (TEST_CHAOS=0: without it), the chart, alert and Argo CD tests, then each fuzz target briefly.
	CHAOS=$(TEST_CHAOS) KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(GOTEST) -count=1 ./...
	$(MAKE) test-ecosystem
	$(MAKE) fuzz

# A module of its own (test/ecosystem/go.mod) so that Helm, Prometheus and Lua stay out of the
# operator's dependencies; promtool comes from hack/tools.
.PHONY: test-ecosystem
test-ecosystem: ## Test the Helm chart (Helm SDK), alert rules (promtool), Argo CD health checks (gopher-lua) and write policy.
	assets="$(ENVTEST_ASSETS)" && promtool="$$(hack/tools/build.sh promtool)" && cd test/ecosystem && \
	  KUBEBUILDER_ASSETS="$$assets" PROMTOOL="$$promtool" $(GOTEST) -count=1 ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME.
	@{ grep -rE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . || true; } | sed -E 's#^\./(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*).*#\1 \2#' | sort -u | \
	while read -r dir target; do \
	  echo "fuzz ./$$dir $$target ($(FUZZTIME))"; \
	  $(GOTEST) -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) ./$$dir || exit 1; \
	done

# The fault-injection suite (test/chaos). `make test` runs it briefly with the suite's own
# defaults; `make chaos` runs it for minutes, with API server outages. CHAOS_SEED=N
# replays a schedule; test/chaos/chaos_test.go lists every CHAOS_* knob.
CHAOS_DURATION ?= 4m
CHAOS_OUTAGES ?= 3
CHAOS_OUTAGE ?= 30s
CHAOS_INSTALL_EVERY ?= 5s
CHAOS_TOKEN_LIFETIME ?= 90s
CHAOS_SETTLE ?= 5m
CHAOS_SEED ?= 0

.PHONY: chaos
chaos: ## Run the fault-injection suite for CHAOS_DURATION (default 4m; CHAOS_SEED, CHAOS_OUTAGES, CHAOS_OUTAGE, …); prints the seed and the counts.
	CHAOS=1 CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_OUTAGES=$(CHAOS_OUTAGES) CHAOS_OUTAGE=$(CHAOS_OUTAGE) \
	CHAOS_INSTALL_EVERY=$(CHAOS_INSTALL_EVERY) CHAOS_TOKEN_LIFETIME=$(CHAOS_TOKEN_LIFETIME) \
	CHAOS_SETTLE=$(CHAOS_SETTLE) CHAOS_SEED=$(CHAOS_SEED) CHAOS_UPGRADE_FROM=$(CHAOS_UPGRADE_FROM) KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" \
	$(GOTEST) -count=1 -v -timeout 2h -run '^TestChaos$$' ./test/chaos

# The fault suite across a rolling upgrade: the controllers start as RELEASE (the previous
# release) and are rolled to this tree's a third into the run.
RELEASE ?= 2209252
.PHONY: chaos-upgrade
chaos-upgrade: ## Run the fault suite across a rolling upgrade of the controllers from RELEASE (default the previous release).
	$(MAKE) chaos CHAOS_UPGRADE_FROM="$$(hack/release-binary.sh $(RELEASE))"

.PHONY: upgrade-fixtures
upgrade-fixtures: ## Re-capture test/upgrade/testdata from a release: make upgrade-fixtures RELEASE=<commit>.
	@test -n "$(RELEASE)" || { echo "usage: make upgrade-fixtures RELEASE=<commit of the release>"; exit 2; }
	hack/upgrade-fixtures.sh $(RELEASE)

.PHONY: bench
bench: ## Run the benchmarks (webhook latency and throughput against a real API server), then bench-scale and bench-budget.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(GOTEST) -run '^$$' -bench . -benchmem ./...
	$(MAKE) bench-scale
	$(MAKE) bench-budget

# Installs of distinct accounts the scale benchmark sends; SCALE_INSTALLS=10000 for the full run.
SCALE_INSTALLS ?= 1000
# Extra flags of the scale benchmark, e.g. SCALE_FLAGS=--controller-flag=--max-concurrent-reconciles=16
SCALE_FLAGS ?=

.PHONY: bench-scale
bench-scale: ## Scale benchmark: the real binaries as processes, a burst of SCALE_INSTALLS installs, steady state, resync, restart.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" SCALE_INSTALLS=$(SCALE_INSTALLS) $(GO) run ./test/scale $(SCALE_FLAGS)

# Installs the budget run sends: at Kommo's 7 req/s, 3 calls each, 200 take about 90 s.
BUDGET_INSTALLS ?= 200

.PHONY: bench-budget
bench-budget: ## The scale benchmark with Kommo's real budget (7 req/s in the simulator and the controller): budget used, requests over it.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" SCALE_INSTALLS=$(BUDGET_INSTALLS) $(GO) run ./test/scale -kommo-qps 7 $(SCALE_FLAGS)

##@ Build and run

.PHONY: build
build: build-plugin ## Build bin/kommo-operator, the one binary of both subcommands, and bin/kubectl-kommo.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(LOCALBIN)/kommo-operator .

.PHONY: build-plugin
build-plugin: ## Build bin/kubectl-kommo, the kubectl plugin (`kubectl kommo` once on the PATH).
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(LOCALBIN)/kubectl-kommo ./cmd/kubectl-kommo

.PHONY: build-sim
build-sim: ## Build bin/kommosim, the Kommo simulator as a process (demo, dev).
	$(GO) build -o $(LOCALBIN)/kommosim ./hack/kommosim

# demo and dev build hack/demo and run it directly rather than with `go run`, which exits 1
# when interrupted: Ctrl-C ends `make dev` cleanly.
.PHONY: demo
demo: build build-sim ## Run the operator locally against the simulator: install, refresh, reinstall, revoke; exit 0 when all work.
	$(GO) build -o $(LOCALBIN)/kommo-demo ./hack/demo
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(LOCALBIN)/kommo-demo

.PHONY: dev
dev: build build-sim ## Like demo, then keep everything running (kubeconfig, curl lines to install by hand) until Ctrl-C; REPLICAS=2 runs two controllers.
	$(GO) build -o $(LOCALBIN)/kommo-demo ./hack/demo
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" $(LOCALBIN)/kommo-demo --keep-running --controllers=$(REPLICAS)

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN)/.controller-gen $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(LOCALBIN)/.controller-gen/controller-gen $@ && rmdir $(LOCALBIN)/.controller-gen
