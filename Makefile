# meshlab: `make up` brings the lab stack up, `make test` runs every test tier (as CI does).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := venv
BIN := $(VENV)/bin
STACK ?= lab
# The local file backend is the default; set PULUMI_BACKEND_URL to use another one.
MESHLAB_STATE ?= $(HOME)/.meshlab/state
export PULUMI_BACKEND_URL ?= file://$(MESHLAB_STATE)
# Every update and preview goes through the CrossGuard pack, with the stack's own policy config.
POLICY_CONFIG := $(wildcard policy-pack/config/$(STACK).json)
POLICY := --policy-pack policy-pack $(if $(POLICY_CONFIG),--policy-pack-config $(POLICY_CONFIG))

.PHONY: venv test test-offline lint plan up preview destroy bench project-file cloud-init-validator reference clean engine \
	test-engine test-plugins kube test-kube vm test-vm test-apply mutation images helm checkpoint restore checkpoints offline-tools

# One ./venv, two stamps. What deploying needs (`make up`, preview, destroy, plan): the program's requirements.txt
# and the policy pack's, whose CrossGuard SDK runs in this venv too (policy-pack/PulumiPolicy.yaml). The test and
# lint tools (requirements-dev.txt: pytest, ruff, mypy, matplotlib, Cosmic Ray, ...) on top, for `make venv` and
# every test target. Sizes of each kind, fresh: README, "How long it takes".
RUNTIME_VENV := $(VENV)/.installed-runtime
DEV_VENV := $(VENV)/.installed-dev
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check

venv: $(DEV_VENV)

$(RUNTIME_VENV): requirements.txt policy-pack/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements.txt -r policy-pack/requirements.txt
	touch $@

$(DEV_VENV): $(RUNTIME_VENV) requirements-dev.txt
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

cloud-init-validator:
	tools/fetch_cloud_init.sh .cache/cloud-init

# Host tools the offline tests run for real: ssh-keygen (the host-key fingerprints meshlab's messages show).
# Installed when missing and root (Debian/Ubuntu), as the VM tier's bootstrap does; otherwise named.
offline-tools:
	@command -v ssh-keygen >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		echo "offline tests: installing openssh-client (apt)" >&2 && \
		DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends openssh-client >/dev/null; } || \
		{ echo "the offline tests need ssh-keygen: install openssh-client" >&2; exit 1; }

# The upstream files the tests check against, for a clone without ../shared/reference beside it:
# downloaded into .cache/reference and verified against tools/reference.manifest (SHA-256); and the
# whole Helm charts the real-apply tier serves, into .cache/chart-sources (tools/chart-sources.manifest).
# MESHLAB_REFERENCE_MIRROR=URL takes them from a mirror laid out as URL/HOST/PATH (checked the same way).
# `make test-offline` runs it by itself (--if-missing) when neither ../shared nor a complete copy is there.
reference:
	$(PYTHON) tools/fetch_reference.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/shellcheck -s bash components/shell/*.sh components/*/scripts/*.sh components/hosts/*/scripts/*.sh tools/*.sh \
		tests/engine/bootstrap.sh tests/kube/bootstrap.sh tests/vm/*.sh .ci/run

# Every tier: offline, the real Pulumi engine, the real Kubernetes API, real VMs. The real tiers build
# what they need into caches outside the repository when missing (the Go toolchains about 20 minutes
# cold on 2 cores, the guest image a few minutes; seconds when cached); `make test-offline` is the quick
# loop (lint, types, shellcheck, pytest).
test: test-offline test-engine test-kube test-apply test-vm

test-offline: venv cloud-init-validator offline-tools lint
	@$(PYTHON) tools/fetch_reference.py --if-missing
	$(BIN)/python -m pytest -n auto

# The real Pulumi toolchain, built from Go modules into a cache outside the repository (see
# docs/air-gapped.md); `make test-engine` runs `pulumi preview --policy-pack` with it on every stack.
engine:
	bash tests/engine/bootstrap.sh

# Our own plugins of that toolchain (the Python language host, the stand-in providers): gofmt, vet, tests.
PLUGIN_MODULES := $(patsubst %/go.mod,%,$(wildcard tests/engine/plugins/*/go.mod))
test-plugins:
	@for module in $(PLUGIN_MODULES); do \
	  echo "go vet + go test: $$module"; \
	  unformatted=$$(cd "$$module" && gofmt -l .); \
	  if [ -n "$$unformatted" ]; then echo "gofmt: $$module: $$unformatted" >&2; exit 1; fi; \
	  (cd "$$module" && GOTOOLCHAIN=local go vet ./... && GOTOOLCHAIN=local go test -count=1 ./...); \
	done

test-engine: venv engine test-plugins
	$(BIN)/python -m pytest tests/engine

# A real Kubernetes control plane at the lab's version (etcd, kube-apiserver, kube-controller-manager,
# kubectl), built from Go modules into a cache outside the repository (see docs/kube-tier.md);
# `make test-kube` applies every stack's objects to it and compares Pod Security with the policy pack.
kube:
	bash tests/kube/bootstrap.sh

test-kube: venv kube
	$(BIN)/python -m pytest tests/kube

# Real apply: `pulumi up` of meshlab's own program (the engine's toolchain) onto the kube tier's control plane
# with kube-scheduler and KWOK fake nodes, the charts from a repository on loopback; up, up again, the
# rollout back and forth, refused changes, destroy, an interrupted up. In a network namespace of its own
# that holds only loopback (root). The webhook admission plugins are off: no webhook serves on fake nodes.
# Helm, for tools.images: one on PATH, or Helm config/versions.py HELM built from Go modules (tools/helm.sh; a
# minute with the module cache warm). Built here, before the apply tier's namespace cuts the network off.
helm: venv
	@bash tools/helm.sh "$$($(BIN)/python -c 'from config.versions import HELM; print(HELM)')" >/dev/null

test-apply: venv engine kube helm
	unshare --net -- bash -c 'ip link set lo up && exec $(BIN)/python -m pytest -s tests/apply'

# Real VMs: QEMU and the image tools from Debian packages, then the stand-in guest image built from
# Debian packages (cached outside the repository, keyed by its package list); `make test-vm` boots
# three guests with the QEMU backend's own steps inside a network namespace of its own (root).
vm:
	bash tests/vm/bootstrap.sh

# -s: the tier prints its progress (minutes of booting) as it goes.
test-vm: venv vm
	$(BIN)/python -m pytest -s tests/vm

# Mutation testing of the core modules, each against the tests that cover it (tools/mutation.py, Cosmic
# Ray; scores in docs/testing.md). Minutes, not seconds: not part of `make test` or CI.
# MUTATION_ARGS="--module mesh" runs one module.
mutation: venv
	nice -n 10 $(BIN)/python -m tools.mutation $(MUTATION_ARGS)

plan: $(RUNTIME_VENV)
	$(BIN)/python -m tools.plan $(STACK)

# Every container image the stack's lab pulls (RKE2's, the charts' through `helm template`, meshlab's own), one a
# line, for a mirror script (the recipe is not echoed: redirect it); IMAGES_ARGS="--mirror HOST/PREFIX --origin" adds
# columns (tools/images.py).
images: venv
	@$(BIN)/python -m tools.images $(STACK) $(IMAGES_ARGS)

project-file: venv
	$(BIN)/python -m tools.project_file --write

bench: venv
	$(BIN)/python -m tools.bench

define require_pulumi
	@command -v pulumi >/dev/null || { echo "The Pulumi CLI is not on PATH: install it first (see README, Prerequisites)." >&2; exit 1; }
	@mkdir -p "$(MESHLAB_STATE)"
	@pulumi stack select --create "$(STACK)" >/dev/null
endef

# Python, the Pulumi CLI and (up, destroy) the hypervisor's tool, checked before the venv is built (the deploying
# kind: requirements.txt and the policy pack's, not the test tools).
prerequisites-%:
	@PYTHON="$(PYTHON)" bash tools/prerequisites.sh "$*" "Pulumi.$(STACK).yaml"

up: prerequisites-up $(RUNTIME_VENV)
	$(require_pulumi)
	pulumi up --stack "$(STACK)" $(POLICY)

preview: prerequisites-preview $(RUNTIME_VENV)
	$(require_pulumi)
	pulumi preview --stack "$(STACK)" $(POLICY)

# On existing hosts or an existing cluster, destroy touches machines meshlab did not create: it names them and
# asks for the stack's name first (CONFIRM_DESTROY=STACK answers for scripts; tools/destroy_guard.py).
destroy: prerequisites-destroy $(RUNTIME_VENV)
	$(BIN)/python -m tools.destroy_guard "$(STACK)"
	$(require_pulumi)
	@$(BIN)/python -m tools.checkpoint "$(STACK)" discard --dry-run
	pulumi destroy --stack "$(STACK)"
	@$(BIN)/python -m tools.checkpoint "$(STACK)" discard

# Lab checkpoints (tools/checkpoint.py): every VM of the stack saved at one moment, and brought back to it.
checkpoint: $(RUNTIME_VENV)
	@test -n "$(NAME)" || { echo "usage: make checkpoint NAME=before-strict [STACK=lab]" >&2; exit 2; }
	$(BIN)/python -m tools.checkpoint "$(STACK)" save "$(NAME)"

restore: $(RUNTIME_VENV)
	@test -n "$(NAME)" || { echo "usage: make restore NAME=before-strict [STACK=lab]" >&2; exit 2; }
	$(BIN)/python -m tools.checkpoint "$(STACK)" restore "$(NAME)"

checkpoints: $(RUNTIME_VENV)
	@$(BIN)/python -m tools.checkpoint "$(STACK)" list

clean:
	rm -rf .cache .pytest_cache .mypy_cache .ruff_cache
