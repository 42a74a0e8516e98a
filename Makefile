# ops: build, test and benchmark. `make deps` installs what ops needs on
# Debian (QEMU and a Linux kernel for the Linux guest).

SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/opsdev/ops/cmd.Version=$(VERSION)
INIT    := guestinit/bin/init-amd64 guestinit/bin/init-arm64
INIT_SRC := $(wildcard guestinit/init/*.go guestinit/init/*.s guestinit/*.go netlink/*.go)

.PHONY: all build deps test-deps arm64-kernel arm64-root install-pkgs test test-unit bench demo fuzz vet clean

all: build

# The Linux guest's init, one for each architecture: static, no cgo,
# embedded into ops. (The single guestinit/bin/init of before arm64 would
# be embedded too: it goes.)
guestinit/bin/init-%: $(INIT_SRC) go.mod
	@rm -f guestinit/bin/init
	CGO_ENABLED=0 GOARCH=$* $(GO) build -trimpath -ldflags '-s -w' -o $@ ./guestinit/init

build: $(INIT)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o ops .

# Debian packages ops needs to run: QEMU, the cloud kernel the Linux guest
# boots, OVMF to boot UEFI images, the CA bundle images get, and mkfs.ext4
# for the Linux guest's volumes.
RUN_PKGS := qemu-system-x86 passt linux-image-cloud-amd64 ca-certificates ovmf e2fsprogs
# And what the tests use: a C compiler, ip (network namespaces), qemu-img,
# dosfstools and mtools to read the disk formats and the EFI System
# Partition back, and real programs from Debian to run in guests (servers,
# a database CLI, an interpreter), and the container engines ops serves as
# an OCI runtime (Podman; Docker; containerd with runc, which takes the pod
# sandbox, and the CNI plugins its CRI plugin uses). The servers and engines
# are installed for their programs only: policy-rc.d keeps their packages
# from starting them (the tests start each daemon in a namespace of their own).
TEST_PKGS := $(RUN_PKGS) $(ARM64_PKGS) gcc libc6-dev iproute2 qemu-utils dosfstools mtools \
	redis-server lighttpd memcached sqlite3 python3 busybox podman \
	docker.io containerd runc containernetworking-plugins
# arm64 images on any host: QEMU's arm64 emulator and UEFI firmware,
# Debian's cross compiler, and its cross libc, the root folder dynamic
# arm64 programs find their libraries in by default.
ARM64_PKGS := qemu-system-arm qemu-efi-aarch64 gcc-aarch64-linux-gnu libc6-arm64-cross
deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(RUN_PKGS)"
test-deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(TEST_PKGS)"
	@$(MAKE) --no-print-directory arm64-kernel arm64-root

# The Linux guest on arm64 boots Debian's arm64 cloud kernel: its package,
# unpacked (boot/vmlinuz-*, lib/modules/) where ops looks for a kernel of
# another architecture, <ops home>/kernels/arm64, and its modules' order
# made (depmod; the package leaves that to its install script). Debian's
# package index for arm64 is added once (dpkg --add-architecture);
# nothing is installed.
OPS_DIR        := $(if $(OPS_HOME),$(OPS_HOME),$(HOME))/.ops
ARM64_KERNEL   := $(OPS_DIR)/kernels/arm64
arm64-kernel:
	@if ! ls $(ARM64_KERNEL)/boot/vmlinuz-* >/dev/null 2>&1; then \
		set -e; SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		if ! dpkg --print-foreign-architectures | grep -qx arm64; then $$SUDO dpkg --add-architecture arm64; fi; \
		$$SUDO apt-get update -qq; \
		pkg=$$(apt-cache depends linux-image-cloud-arm64:arm64 | sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' | head -1); \
		echo "unpacking $$pkg:arm64 into $(ARM64_KERNEL)"; \
		tmp=$$(mktemp -d); chmod 777 $$tmp; (cd $$tmp && apt-get download -qq $$pkg:arm64); \
		mkdir -p $(ARM64_KERNEL); dpkg-deb -x $$tmp/*.deb $(ARM64_KERNEL); rm -rf $$tmp; \
		v=$$(ls $(ARM64_KERNEL)/lib/modules); /sbin/depmod -b $(ARM64_KERNEL) $$v; \
	fi

# An arm64 root folder for the tests' dynamic arm64 programs from Debian
# (redis-server and the libraries it needs), unpacked, not installed.
ARM64_ROOT      := .work/arm64-root
ARM64_ROOT_PKGS := redis-server redis-tools gcc-12-base libatomic1 libc6 libcap2 libgcc-s1 libgcrypt20 libgpg-error0 \
	libjemalloc2 liblz4-1 liblzf1 liblzma5 libssl3 libstdc++6 libsystemd0 libzstd1
arm64-root:
	@if [ ! -e $(ARM64_ROOT)/usr/bin/redis-server ]; then \
		set -e; tmp=$$(mktemp -d); chmod 777 $$tmp; \
		(cd $$tmp && apt-get download -qq $(addsuffix :arm64,$(ARM64_ROOT_PKGS))); \
		mkdir -p $(ARM64_ROOT); for d in $$tmp/*.deb; do dpkg-deb -x $$d $(ARM64_ROOT); done; rm -rf $$tmp; \
		echo "unpacked $(words $(ARM64_ROOT_PKGS)) arm64 packages into $(ARM64_ROOT)"; \
	fi
install-pkgs:
	@missing=""; for p in $(PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		made=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null && $$SUDO chmod +x /usr/sbin/policy-rc.d && made=1; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
		status=$$?; [ -n "$$made" ] && $$SUDO rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi

# With the e2e tag, so the end-to-end tests are checked as well as the rest.
vet: $(INIT)
	$(GO) vet -tags e2e ./...

# Every test: unit, round-trip, fuzz seeds, and end-to-end boots (the e2e
# package, built with the e2e tag: Linux guest always; Nanos when a release
# is installed, skipped visibly otherwise).
# The whole log goes to .work/test.log; the screen shows each test's result
# and every skip or failure with its reason (a message's further lines too,
# up to 60 of them, so a CI failure shows what the guest printed).
TEST_FILTER := /^(ok|FAIL|panic:|--- |    --- )|^SKIP|^[[:space:]]+Error/ { print; more = 0; next } \
	/_test\.go:[0-9]+:/ { print; more = 60; next } \
	more > 0 && /^        / { print; more--; next } \
	{ more = 0 }
# The patched copies in third_party/ are modules of their own, which ./...
# leaves out: their tests are named by import path.
PATCHED := github.com/xeipuuv/gojsonschema github.com/distribution/reference github.com/opencontainers/go-digest
test: test-deps build vet
	@mkdir -p .work
	@set -o pipefail; $(GO) test -tags e2e -count=1 -timeout 40m -v ./... $(PATCHED) 2>&1 | tee .work/test.log | \
		awk '$(TEST_FILTER)'; \
		status=$$?; echo "full log: .work/test.log"; exit $$status
	@echo "the end-to-end tests again, every guest booted cold (OPS_NO_SNAPSHOT=1):"
	@set -o pipefail; OPS_NO_SNAPSHOT=1 $(GO) test -tags e2e -count=1 -timeout 40m -v ./e2e/ 2>&1 | tee .work/test-cold.log | \
		awk '$(TEST_FILTER)'; \
		status=$$?; echo "full log: .work/test-cold.log"; exit $$status

# The unit suite alone (what `go test ./...` runs: no VM boots), in seconds.
test-unit:
	$(GO) test -count=1 ./... $(PATCHED)

# Build times and image sizes (in process, then whole `ops build` processes
# beside cp and, with OPS_BENCH_ANCHOR=path, nanovms/ops: medians of 21
# rounds), then boot times side by side (medians of 30 runs each), the
# Linux guest restored from its snapshot beside its cold boot, its saving
# run and Nanos (medians of SNAPRUNS), twenty idle instances' memory
# restored and cold, the latency of a request through a port forward on passt and on QEMU's own
# network (medians of 100), then the taxi compose example: up -d to all
# healthy (median of COMPOSERUNS) and trip -> passenger by name beside the
# direct request (medians of 100), and a replica's QEMU killed under a
# stream of requests to its service's published port: requests sent and
# failed, time to recover (medians of KILLRUNS), and the hello as a
# container: docker run --runtime ops beside docker run (runc) and ops run
# (medians of OCIRUNS).
BOOTRUNS ?= 30
SNAPRUNS ?= 15
BUILDRUNS ?= 21
LATENCYRUNS ?= 100
COMPOSERUNS ?= 3
KILLRUNS ?= 3
OCIRUNS ?= 15
bench: test-deps build
	$(GO) test -run '^$$' -bench . -benchtime 5x -timeout 30m ./lepton/
	$(GO) test -run '^$$' -bench BuildProcess -benchtime $(BUILDRUNS)x -timeout 30m -tags e2e ./e2e/
	$(GO) test -run '^$$' -bench Boot -benchtime $(BOOTRUNS)x -timeout 60m -tags e2e ./e2e/
	$(GO) test -run '^$$' -bench 'Snapshot$$' -benchtime $(SNAPRUNS)x -timeout 60m -tags e2e ./e2e/
	$(GO) test -run '^$$' -bench SnapshotInstances -benchtime 1x -timeout 30m -tags e2e ./e2e/
	$(GO) test -run '^$$' -bench ForwardLatency -benchtime $(LATENCYRUNS)x -timeout 30m -tags e2e ./e2e/
	$(GO) test -run '^$$' -bench ComposeTaxi -benchtime $(COMPOSERUNS)x -timeout 30m -tags e2e ./e2e/
	$(GO) test -run '^$$' -bench ComposeReplicaKilled -benchtime $(KILLRUNS)x -timeout 30m -tags e2e ./e2e/
	$(GO) test -run '^$$' -bench OCIRuntimeDocker -benchtime $(OCIRUNS)x -timeout 30m -tags e2e ./e2e/

FUZZTIME ?= 20s
fuzz: $(INIT)
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./fs/
	$(GO) test -run '^$$' -fuzz FuzzOpenTFS -fuzztime $(FUZZTIME) ./fs/
	$(GO) test -run '^$$' -fuzz FuzzShortName -fuzztime $(FUZZTIME) ./fs/
	$(GO) test -run '^$$' -fuzz FuzzLoadDigestCache -fuzztime $(FUZZTIME) ./fs/
	$(GO) test -run '^$$' -fuzz FuzzDecodeConfig -fuzztime $(FUZZTIME) ./lepton/
	$(GO) test -run '^$$' -fuzz FuzzReadELF -fuzztime $(FUZZTIME) ./elfdeps/
	$(GO) test -run '^$$' -fuzz FuzzExtractTar -fuzztime $(FUZZTIME) ./packages/
	$(GO) test -run '^$$' -fuzz FuzzParseReply -fuzztime $(FUZZTIME) ./netlink/
	$(GO) test -run '^$$' -fuzz FuzzDump -fuzztime $(FUZZTIME) ./netlink/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./compose/
	$(GO) test -run '^$$' -fuzz FuzzSpawnRequest -fuzztime $(FUZZTIME) ./netns/
	$(GO) test -run '^$$' -fuzz FuzzParseExitLine -fuzztime $(FUZZTIME) ./guestinit/
	$(GO) test -run '^$$' -fuzz FuzzImageArch -fuzztime $(FUZZTIME) ./linuxkernel/
	$(GO) test -run '^$$' -fuzz FuzzReadOverlay -fuzztime $(FUZZTIME) ./qemu/
	$(GO) test -run '^$$' -fuzz FuzzParseSpec -fuzztime $(FUZZTIME) ./ociruntime/
	$(GO) test -run '^$$' -fuzz FuzzRelayResolvConf -fuzztime $(FUZZTIME) ./ociruntime/
	$(GO) test -run '^$$' -fuzz FuzzFrames -fuzztime $(FUZZTIME) ./dnsrelay/

# The main job: build ops and boot an example program.
demo: deps build
	$(GO) build -o examples/hello/hello ./examples/hello
	./ops run examples/hello/hello -a world

clean:
	rm -f ops $(INIT) examples/hello/hello
