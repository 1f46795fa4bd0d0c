# teepy: `make demo` and `make check` do all set-up on a fresh Debian 12 machine.
SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
PY := /usr/bin/python3
# Debian's interpreter headers, never a pyenv python3.pc that may come first
export PKG_CONFIG_PATH := /usr/lib/x86_64-linux-gnu/pkgconfig

# Debian packages, with the reason for each in the README's dependency table.
DEB_PACKAGES := gcc libc6-dev make meson ninja-build pkg-config python3 python3-dev \
	libseccomp-dev libssl-dev libjansson-dev libcurl4-openssl-dev python3-pytest python3-numpy util-linux \
	clang libclang-rt-14-dev clang-format gzip python3-hypothesis libpython3.11-testsuite \
	python3-venv python3-pip python3-setuptools python3-wheel libmicrohttpd-dev libsqlite3-dev \
	openssl python3-cryptography libedit-dev tmux pypy3 pypy3-dev

.PHONY: all deps build demo check check-format check-landlock check-pypy check-reproducible test-unit test-e2e test-compat check-asan check-kernel fuzz fuzz-campaign compat bench bench-cas bench-worker bench-engines format clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "teepy: installing Debian packages:" $$missing; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
		else echo "teepy: run as root or install:" $$missing >&2; exit 1; fi; \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dwerror=true

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	@echo '$$ teepy run examples/hello/service.py --input world --data examples/hello/greeting.txt'
	@$(BUILD)/teepy run examples/hello/service.py --input world --data examples/hello/greeting.txt; \
		code=$$?; echo; echo "(exit code $$code)"; exit $$code

test-unit: build
	$(BUILD)/test_units
	$(BUILD)/test_runner

test-e2e: build
	TEEPY_BIN=$(abspath $(BUILD))/teepy $(PY) -m pytest -c tests/pytest.ini tests

# A few modules of NumPy's and CPython's suites, native vs sealed in teepy: fails if a
# test that passes natively fails in teepy for a reason other than the policy.
# without the cache of verified roots: make check leaves root's /run/teepy as it was
test-compat: build
	TEEPY_NO_CACHE=1 $(PY) compat/run --smoke --teepy $(BUILD)/teepy

# Both suites whole, native vs teepy, into compat/REPORT.md (takes a while).
compat: build
	$(PY) compat/run --teepy $(BUILD)/teepy

# The unit tests and the launcher under ASan+UBSan (the extension runs inside the
# system interpreter, which is not instrumented, so the sandbox runs the plain one).
check-asan: deps
	@[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 $(ASAN_BUILD)/test_units
	cp $(BUILD)/_teepy*.so $(ASAN_BUILD)/
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 $(ASAN_BUILD)/test_runner
	TEEPY_BIN=$(abspath $(ASAN_BUILD))/teepy ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1 \
		$(PY) -m pytest -c tests/pytest.ini tests/e2e -k "root and not numpy" -q -p no:cacheprovider
	TEEPY_BIN=$(abspath $(ASAN_BUILD))/teepy ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1 \
		$(PY) -m pytest -c tests/pytest.ini tests/sealed -k "not numpy" -q -p no:cacheprovider

check: build
	$(MAKE) --no-print-directory check-format
	$(PY) tools/check_layers.py
	$(BUILD)/test_units
	$(BUILD)/test_runner
	TEEPY_BIN=$(abspath $(BUILD))/teepy $(PY) -m pytest -c tests/pytest.ini tests
	$(MAKE) --no-print-directory test-compat
	$(MAKE) --no-print-directory check-landlock
	$(MAKE) --no-print-directory check-pypy
	$(MAKE) --no-print-directory check-asan
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=5
	$(MAKE) --no-print-directory check-reproducible
	$(MAKE) --no-print-directory check-kernel

# Each fuzz target for FUZZ_SECONDS (make check runs a short pass of 5 s each, a
# smoke test of every parser; make fuzz-campaign and longer passes by hand).
FUZZ_SECONDS ?= 20
FUZZ_BUILD ?= build-fuzz
fuzz: deps
	@[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dwerror=true
	ninja -C $(FUZZ_BUILD) fuzz/fuzz_channel fuzz/fuzz_boot fuzz/fuzz_bundle fuzz/fuzz_elf \
		fuzz/fuzz_pubkey fuzz/fuzz_term fuzz/fuzz_alternatives fuzz/fuzz_pfs fuzz/fuzz_volume \
		fuzz/fuzz_tdx fuzz/fuzz_snp fuzz/fuzz_snp_certs fuzz/fuzz_sim fuzz/fuzz_policy \
		fuzz/fuzz_cas_request fuzz/fuzz_worker_request
	mkdir -p $(FUZZ_BUILD)/corpus-channel $(FUZZ_BUILD)/corpus-boot $(FUZZ_BUILD)/corpus-bundle \
		$(FUZZ_BUILD)/corpus-elf $(FUZZ_BUILD)/corpus-pubkey $(FUZZ_BUILD)/corpus-term \
		$(FUZZ_BUILD)/corpus-alternatives $(FUZZ_BUILD)/corpus-pfs $(FUZZ_BUILD)/corpus-volume \
		$(FUZZ_BUILD)/corpus-tdx $(FUZZ_BUILD)/corpus-snp $(FUZZ_BUILD)/corpus-snp_certs \
		$(FUZZ_BUILD)/corpus-sim \
		$(FUZZ_BUILD)/corpus-policy $(FUZZ_BUILD)/corpus-cas_request \
		$(FUZZ_BUILD)/corpus-worker_request
	$(FUZZ_BUILD)/fuzz/fuzz_channel -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-channel fuzz/corpus/channel
	$(FUZZ_BUILD)/fuzz/fuzz_boot -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-boot fuzz/corpus/boot
	$(FUZZ_BUILD)/fuzz/fuzz_bundle -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-bundle fuzz/corpus/bundle
	$(FUZZ_BUILD)/fuzz/fuzz_elf -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-elf fuzz/corpus/elf
	$(FUZZ_BUILD)/fuzz/fuzz_pubkey -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-pubkey fuzz/corpus/pubkey
	$(FUZZ_BUILD)/fuzz/fuzz_term -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-term fuzz/corpus/term
	$(FUZZ_BUILD)/fuzz/fuzz_alternatives -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-alternatives fuzz/corpus/alternatives
	$(FUZZ_BUILD)/fuzz/fuzz_pfs -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-pfs fuzz/corpus/pfs
	$(FUZZ_BUILD)/fuzz/fuzz_volume -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-volume fuzz/corpus/volume
	$(FUZZ_BUILD)/fuzz/fuzz_tdx -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-tdx fuzz/corpus/tdx
	$(FUZZ_BUILD)/fuzz/fuzz_snp -max_total_time=$(FUZZ_SECONDS) -max_len=2048 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-snp fuzz/corpus/snp
	$(FUZZ_BUILD)/fuzz/fuzz_snp_certs -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-snp_certs fuzz/corpus/snp_certs
	$(FUZZ_BUILD)/fuzz/fuzz_sim -max_total_time=$(FUZZ_SECONDS) -max_len=1024 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-sim fuzz/corpus/sim
	$(FUZZ_BUILD)/fuzz/fuzz_policy -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-policy fuzz/corpus/policy
	$(FUZZ_BUILD)/fuzz/fuzz_cas_request -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-cas_request fuzz/corpus/cas_request
	$(FUZZ_BUILD)/fuzz/fuzz_worker_request -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		-print_final_stats=1 $(FUZZ_BUILD)/corpus-worker_request fuzz/corpus/worker_request

# A long campaign: each target alone for FUZZ_CAMPAIGN_SECONDS (default 30 min), its
# executions, coverage and crashes appended to fuzz/REPORT.md (tools/fuzz-campaign).
FUZZ_CAMPAIGN_SECONDS ?= 1800
fuzz-campaign:
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=1
	$(PY) tools/fuzz-campaign --seconds $(FUZZ_CAMPAIGN_SECONDS) --build $(FUZZ_BUILD)

# Every benchmark group, native vs teepy in one run, (re)writing bench/REPORT.md and its
# PNG plots (about 10 minutes; `bench/all --quick` is a rough pass). gnuplot draws the
# plots, GNU time measures native peak RSS, openssl gives the AES-GCM library ceiling.
BENCH_PACKAGES := gnuplot-nox time openssl
bench: build
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(BENCH_PACKAGES)"
	$(PY) bench/all --teepy $(BUILD)/teepy

# The CAS's speed (issue 14): the attestation round trip on one kept-alive TLS
# connection and releases a second, teepy cas and build/bench/teepy-cas-load (C)
# sharing this machine's cores, printed against the targets (about a minute).
bench-cas: build
	$(PY) bench/cas --teepy $(BUILD)/teepy

# The worker's speed (issue 15): invocation latency of teepy serve on one kept-alive
# connection and on 8, hello and a numpy service with --preload, against the targets,
# with TEEPY_ZYGOTES=0 beside it and a cold teepy run for comparison (about 1.5 minutes).
bench-worker: build
	$(PY) bench/worker --teepy $(BUILD)/teepy

# The engines (issue 17): bench/compute.py's CPU-bound kinds (numpy aside) on CPython
# and on PyPy, natively and inside teepy (--engine), interleaved in one run (about
# 1.5 minutes; `bench/engines --quick` about 20 s).
bench-engines: build
	$(PY) bench/engines --teepy $(BUILD)/teepy

# The suites on Debian 12's own kernel (6.1: Landlock ABI 2, pure cgroup v2 with memory
# and pids, a delegated subtree for uid 65534), booted under qemu: software emulation
# (TCG), or KVM where /dev/kvm opens. The kernel package (linux-image-amd64's) is
# fetched with apt-get download and unpacked into $(KERNEL_CACHE), never installed;
# busybox-static is the initramfs's init; the host's / is shared read-only over 9p.
# Runs the subset in tests/kernel/SUBSET (it must fit CI's 15 minutes on 2 cores);
# KERNEL_ARGS="--full" for every suite, or pytest arguments after "--". Prints the
# suite's count line; exits with its status. The last step of `make check` (about 5 min).
KERNEL_PACKAGES := qemu-system-x86 busybox-static
KERNEL_CACHE ?= build-kernel
KERNEL_ARGS ?=
# The end-to-end and hostile suites, and the runner's test, with teepy built to use at
# most Landlock ABI 2, Debian 12's own kernel's: what rests on a newer Landlock (signal
# scoping, TCP, ioctl on devices) must hold by its other layer, and what ABI 1 already
# holds (the read rights: test_runner hands in a host directory) must hold there too.
# Part of make check. The worker's zygote tests run here (teepy-worker built too):
# a warm child's own Landlock layer at ABI 2, without the signal scope of ABI 6.
LANDLOCK_BUILD ?= build-landlock2
check-landlock: deps
	@[ -f $(LANDLOCK_BUILD)/build.ninja ] || meson setup $(LANDLOCK_BUILD) -Dwerror=true \
		-Dlandlock_abi_max=2
	ninja -C $(LANDLOCK_BUILD) teepy teepy-reaper teepy-worker test_runner _teepy$(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
	$(LANDLOCK_BUILD)/test_runner
	TEEPY_BIN=$(abspath $(LANDLOCK_BUILD))/teepy $(PY) -m pytest -c tests/pytest.ini tests/e2e \
		tests/hostile -q -p no:cacheprovider $(LANDLOCK_IGNORE) \
		-k "not test_everyday or zone_database or pth_import_line"

# The hostile suite with every service on PyPy (teepy run --engine pypy3): the
# fixtures hand teepy TEEPY_ENGINE=pypy3 (tests/engine.py), so scripts run on PyPy,
# in the same sandbox (about 2.5 minutes here); bundles, and builds' sample runs,
# run on the engine the build chose (teepy build reads no TEEPY_* setting). A teepy
# built without PyPy (meson's pypy option disabled, or auto without pypy3 and
# pypy3-dev when the build was set up) has nothing to test: skipped in one line,
# as its --version names no second engine.
check-pypy: build
	@v=$$($(BUILD)/teepy --version) || { echo "check-pypy: $(BUILD)/teepy --version failed"; exit 1; }; \
	if ! printf '%s\n' "$$v" | grep -q -- '--engine pypy3'; then \
		echo "check-pypy: skipped: $(BUILD)/teepy was built without PyPy (install pypy3 and pypy3-dev, then meson setup --reconfigure $(BUILD) -Dpypy=enabled)"; \
	else \
		TEEPY_TEST_ENGINE=pypy3 TEEPY_BIN=$(abspath $(BUILD))/teepy $(PY) -m pytest -c tests/pytest.ini \
			tests/hostile tests/e2e/test_engine.py -q -p no:cacheprovider; \
	fi

# What runs no sandbox (evidence, the CAS, the docs against --help, data items,
# exit codes and make's own targets), what runs it through the runner library as
# teepy run does (the worker, its sealed invocations and reused processes), a
# server's serving over HTTP (its kernel rules are hostile/test_listen_hostile.py,
# which runs), what is teepy's own code over the same sandbox (teex's calls, sealed
# data items, the interpreter's alternatives, the shell's prompt) or is no other
# under ABI 2 (of the everyday-Python tests, all but the read-only time zones and a
# venv's .pth line held by the sandbox) stays in the main run alone. What Landlock's ABI changes runs here:
# the hostile suite, the allowed paths, /out, the zygote's children, the environment.
LANDLOCK_IGNORE := --ignore=tests/e2e/test_attest_verify.py \
	--ignore=tests/e2e/test_attest_evidence.py --ignore=tests/e2e/test_docs.py \
	--ignore=tests/e2e/test_cas.py --ignore=tests/e2e/test_cas_client.py \
	--ignore=tests/e2e/test_worker.py --ignore=tests/e2e/test_worker_client.py \
	--ignore=tests/e2e/test_sealed_invoke.py --ignore=tests/e2e/test_invocation_reuse.py \
	--ignore=tests/e2e/test_listen.py --ignore=tests/e2e/test_exit_codes.py \
	--ignore=tests/e2e/test_data.py --ignore=tests/e2e/test_teex.py \
	--ignore=tests/e2e/test_run_sealed_data.py --ignore=tests/e2e/test_alternatives.py \
	--ignore=tests/e2e/test_shell.py --ignore=tests/e2e/test_engine.py \
	--ignore=tests/e2e/test_make.py

# The runtime measurement a CAS policy pins: the same commit built at two paths gives
# the same teepy, _teepy and teepy-reaper (tools/check-reproducible; two builds).
check-reproducible: deps
	$(PY) tools/check-reproducible

check-kernel: build
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(KERNEL_PACKAGES)"
	$(PY) tools/check-kernel --cache $(KERNEL_CACHE) --teepy $(abspath $(BUILD))/teepy $(KERNEL_ARGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# Fails on any C file clang-format would change (Debian 12's clang-format 14: the
# output differs between versions). `make format` fixes them.
check-format: deps
	@files=$$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run 2>&1 | \
		sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: .*-Wclang-format-violations.*/\1/p' | sort -u); \
	if [ -n "$$files" ]; then echo "teepy: clang-format would change:" $$files "(run make format)" >&2; \
		exit 1; fi; echo "clang-format: every C file as formatted"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(LANDLOCK_BUILD) $(KERNEL_CACHE)
