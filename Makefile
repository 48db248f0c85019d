# minirun — `make` lists the targets. Every target installs what it needs and is quick when it
# already has it: apt packages (checked with dpkg, installed only when missing), a .venv with the
# package (rebuilt when pyproject.toml, setup.py or c_ext/ change), and the busybox image tarball.

SHELL := /bin/bash
# The venv's interpreter: Debian's python3.11 where it is installed, else python3 on PATH. Debian
# builds it with PGO and LTO and links libpython statically; pyenv's python3 here is a shared-
# library build. Every start of ours is ~0.7 ms sooner with Debian's, and `minirun-oci run`
# ~1.6 ms faster in all (benchmarks/README.md, "What start-up costs"). An existing .venv keeps
# the interpreter it has.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.11) python3)
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := gcc make libc6-dev libcap-dev libseccomp-dev busybox-static pkg-config procps util-linux nftables
# the venv is made from Debian's python3.11 (above): its venv module and headers (cffi compiles)
APT_PACKAGES += python3.11-venv python3.11-dev
# image interop tests (skopeo copy, umoci) use these; they are skipped, with the reason, without them
APT_PACKAGES += skopeo umoci
# the labs (docs/labs/) also use these
APT_PACKAGES += jq strace libcap2-bin curl sqlite3
# the dashboard's browser tests (Playwright drives this chromium; they skip without it)
APT_PACKAGES += chromium
# real OCI clients driving minirun-oci (tests/oci/test_podman.py). Without recommends they are
# ~15 MB to fetch and seconds to install, so `make test` gets them (docs/oci.md)
ECOSYSTEM_PACKAGES := podman conmon runc
# podman builds its pods' pause image around catatonit (a Recommends, so not pulled in above)
ECOSYSTEM_PACKAGES += catatonit
# containerd + ctr + its runc shim (tests/oci/test_containerd.py starts a private containerd; the
# package's service is not used: on a systemd machine, `systemctl disable --now containerd`)
ECOSYSTEM_PACKAGES += containerd
# Docker's engine 20.10 (tests/oci/test_docker.py starts a private dockerd). Its service must not
# start (it would add docker0 and firewall rules): the install runs under a policy-rc.d that
# refuses service starts when the machine has none (on systemd: `systemctl disable docker`)
ECOSYSTEM_PACKAGES += docker.io
# the VM tier (`make test-vm`, tests/vm/): qemu and Debian's stock kernel to boot in it (its
# 9p, virtio and overlay modules included), without recommends (firmware, initramfs tools' extras)
VM_PACKAGES := qemu-system-x86 linux-image-amd64
# virtme-ng boots that kernel on this machine's root; a tool venv of its own, pinned, so the
# project's .venv (every minirun start) carries none of it
VM_VENV := .venv-vm
VNG := $(VM_VENV)/bin/vng
VIRTME_NG := virtme-ng==1.42
NATIVE_SOURCES := $(wildcard c_ext/*.c c_ext/*.h c_ext/build.py bin/*) setup.py pyproject.toml
IMAGE := rootfs/build/busybox.tar

.DEFAULT_GOAL := help
.PHONY: help prereqs install image demo demo-scheduler demo-failure test test-unit bench lint clean

help:  ## this list
	@echo "minirun — a small, readable container runtime"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

prereqs:  ## apt packages (only the missing ones; needs root)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; \
	fi

.PHONY: prereqs-ecosystem test-ecosystem
prereqs-ecosystem:  ## podman, conmon, runc, containerd, docker.io without their recommends (only the missing ones)
	@missing=$$(for p in $(ECOSYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=/usr/sbin/policy-rc.d; \
			printf '#!/bin/sh\nexit 101\n' > $$policy; chmod +x $$policy; fi; \
		apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
		status=$$?; [ -z "$$policy" ] || rm -f $$policy; exit $$status; \
	fi

.PHONY: prereqs-vm test-vm
prereqs-vm:  ## qemu and Debian's kernel for the VM tier (only the missing ones)
	@missing=$$(for p in $(VM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	fi

$(VNG):
	@test -x $(VM_VENV)/bin/python || $(PYTHON) -m venv $(VM_VENV)
	$(VM_VENV)/bin/pip install -q --disable-pip-version-check '$(VIRTME_NG)'

test-vm: install image prereqs-vm $(VNG)  ## the cgroup v2 tests in a VM on Debian 12's kernel (6.1, v1 off; ~8-10 min; docs/compatibility.md)
	tests/vm/run

# what tests/oci/capture_clients.py needs beyond the clients: Go and runtime-tools' generator
CAPTURE_PACKAGES := golang-go golang-github-opencontainers-runtime-tools-dev
.PHONY: capture-clients
capture-clients: install image prereqs-ecosystem  ## re-capture the config.json real clients write (tests/oci/fixtures/clients)
	@missing=$$(for p in $(CAPTURE_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null; fi
	$(PY) -m tests.oci.capture_clients

test-ecosystem: install image prereqs-ecosystem  ## only the tests where podman, containerd and dockerd drive minirun-oci
	$(PY) -m pytest -q tests/oci/test_podman.py tests/oci/test_containerd.py tests/oci/test_docker.py

$(VENV)/.installed: $(NATIVE_SOURCES)
	@$(MAKE) --no-print-directory prereqs
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	@$(MAKE) --no-print-directory no-setuptools
	@touch $@

# pip builds minirun in an isolated environment, so the venv needs no setuptools; and its
# distutils-precedence.pth runs at every interpreter start, ~0.5 ms of each minirun-oci call
.PHONY: no-setuptools
no-setuptools:
	@if [ -e $(VENV)/lib/python3*/site-packages/distutils-precedence.pth ]; then \
		$(PY) -m pip uninstall -y -q --disable-pip-version-check setuptools; fi

install: $(VENV)/.installed  ## the .venv with minirun and its C extension

$(IMAGE): rootfs/build.py $(VENV)/.installed
	$(PY) rootfs/build.py --out $(IMAGE)

image: $(IMAGE)  ## build the busybox image tarball from rootfs/ (reproducible)

demo: install image  ## the main demo: an isolated, limited container from the tarball image
	@bash docs/demos/main.sh

.PHONY: demo-namespaces demo-cgroups demo-trace demo-images demo-network
demo-namespaces: install image  ## what a container sees vs the host; nsenter (docs/labs/01)
	@bash docs/demos/namespaces.sh

demo-cgroups: install image  ## an OOM kill, a fork bomb held, a CPU quota changed live (docs/labs/04)
	@bash docs/demos/cgroups.sh

demo-trace: install image  ## the start-up waterfall, what each step costs, an exec's setns (docs/labs/06)
	@bash docs/demos/trace.sh

demo-images: install image  ## a 3-layer build, shared layers, a whiteout, save -> load (docs/labs/07)
	@bash docs/demos/images.sh

demo-network: install image  ## two networks: names, a published port, isolation (docs/labs/10)
	@bash docs/demos/network.sh

demo-scheduler: install image  ## the scheduler: placement, services, a rolling deployment (~20 s)
	@bash docs/demos/scheduler.sh

demo-failure: install image  ## the scheduler under failure: crashes, health checks, kill -9 (~40 s)
	@bash docs/demos/failure.sh

test: install image prereqs-ecosystem  ## lint, then the tests (unit and integration; the latter need root)
	$(VENV)/bin/ruff check minirun tests benchmarks rootfs
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q tests

test-unit: install  ## only the tests that need no root
	$(PY) -m pytest -q tests/unit

bench: install image  ## benchmarks side by side with podman, runc and crun; tables, plots, README.md's table
	$(PY) -c 'import matplotlib' 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check -e '.[test,bench]' --config-settings editable_mode=compat
	@$(MAKE) --no-print-directory no-setuptools
	$(PY) benchmarks/run_all.py

.PHONY: soak
soak: install image  ## load and leak: 1,000 + 200 (8-way) run/rm cycles, every leak beside its target of 0 (results/soak.md)
	$(PY) benchmarks/soak.py --write

lint: install  ## ruff and the import-layer contracts
	$(VENV)/bin/ruff check minirun tests benchmarks
	$(VENV)/bin/lint-imports

clean:  ## remove build outputs and the venv (not /var/lib/minirun)
	rm -rf $(VENV) $(VM_VENV) build rootfs/build minirun/_native*.so minirun/libexec *.egg-info .pytest_cache
