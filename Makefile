# mcp-bridge — build, test, run, install.
#
# Every folder is a library boundary (DESIGN §6): common/ conf/ shm/ master/
# worker/ each become one static archive under $(BUILD)/lib, and programs link
# the archives they may depend on. Sources are picked up by wildcard, so a new
# file needs no Makefile change. Tests mirror the tree:
#   tests/unit/<folder>/test_*.c   one Criterion binary each
#   tests/integration/test_*.c     one Criterion binary each (start the daemon)
#   tests/support/*.c              helpers shared by the test binaries
#   tests/testserver/*.c           build/mcp-bridge-testserver
#   tests/load/*.c                 build/mcp-bridge-load
#
# `make SAN=1` (or `make asan`) builds with ASan+UBSan into build/asan.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
VERSION := 0.1.0

ifeq ($(SAN),1)
BUILD   ?= build/asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      = -O1
else
BUILD   ?= build
SANFLAGS =
OPT      = -O2
endif

PKGS     := libwebsockets libcjson yaml-0.1 libmemcached openssl
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS += -I. -D_GNU_SOURCE -DMB_VERSION='"$(VERSION)"'
CFLAGS   += -std=gnu11 $(OPT) -g $(WARN) $(SANFLAGS) -MMD -MP
LDFLAGS  += $(SANFLAGS)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS   += $(PKG_LIBS) -lev -lpthread -lm

# ---------------------------------------------------------------- sources
COMMON_SRC := $(wildcard common/*.c)
CONF_SRC   := $(wildcard conf/*.c)
SHM_TOOL   := shm/dump.c
SHM_SRC    := $(filter-out $(SHM_TOOL),$(wildcard shm/*.c))
MASTER_MAIN:= master/main.c
MASTER_SRC := $(filter-out $(MASTER_MAIN),$(wildcard master/*.c))
WORKER_SRC := $(wildcard worker/*.c)
SUPPORT_SRC:= $(wildcard tests/support/*.c)
TESTSRV_SRC:= $(wildcard tests/testserver/*.c)
LOAD_SRC   := $(wildcard tests/load/*.c)
UNIT_SRC   := $(wildcard tests/unit/*/test_*.c)
INTEG_SRC  := $(wildcard tests/integration/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_COMMON := $(BUILD)/lib/libmbcommon.a
LIB_CONF   := $(BUILD)/lib/libmbconf.a
LIB_SHM    := $(BUILD)/lib/libmbshm.a
LIB_MASTER := $(BUILD)/lib/libmbmaster.a
LIB_WORKER := $(BUILD)/lib/libmbworker.a
LIB_SUPPORT:= $(BUILD)/lib/libmbtestsupport.a
# Link order: dependents before dependencies.
ALL_LIBS   := $(LIB_MASTER) $(LIB_WORKER) $(LIB_SHM) $(LIB_CONF) $(LIB_COMMON)

DAEMON   := $(BUILD)/mcp-bridge
SHMTOOL  := $(BUILD)/mcp-bridge-shm
TESTSRV  := $(BUILD)/mcp-bridge-testserver
LOADGEN  := $(BUILD)/mcp-bridge-load
UNIT_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
INTEG_BIN:= $(patsubst tests/%.c,$(BUILD)/tests/%,$(INTEG_SRC))

PROGRAMS := $(DAEMON) $(SHMTOOL) $(if $(TESTSRV_SRC),$(TESTSRV)) $(if $(LOAD_SRC),$(LOADGEN))

DEPS_OK  := build/.deps-ok

.PHONY: all deps test unit integration asan run format check-format install clean bench interop
.DEFAULT_GOAL := all
# Keep test objects: they are intermediate in the pattern rules, and make
# would otherwise delete and rebuild them on every run.
.SECONDARY:

all: $(DEPS_OK) $(PROGRAMS)

# ---------------------------------------------------------------- deps
# scripts/deps.sh installs with apt-get whatever Debian package is missing;
# the stamp is refreshed when the script (its package list) changes.
deps:
	@scripts/deps.sh
$(DEPS_OK): scripts/deps.sh
	@scripts/deps.sh
	@mkdir -p $(dir $@) && touch $@

# ---------------------------------------------------------------- compile
$(BUILD)/obj/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(CFLAGS) -c $< -o $@

$(LIB_COMMON): $(call obj,$(COMMON_SRC))
$(LIB_CONF):   $(call obj,$(CONF_SRC))
$(LIB_SHM):    $(call obj,$(SHM_SRC))
$(LIB_MASTER): $(call obj,$(MASTER_SRC))
$(LIB_WORKER): $(call obj,$(WORKER_SRC))
$(LIB_SUPPORT):$(call obj,$(SUPPORT_SRC))
$(BUILD)/lib/%.a:
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^ $(if $^,,$(error empty library $@))

# main() is linked into the program only: the archives must never carry a
# main() that would win over Criterion's in a test binary.
$(DAEMON): $(call obj,$(MASTER_MAIN)) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(MASTER_MAIN)) -Wl,--start-group $(ALL_LIBS) -Wl,--end-group $(LDLIBS)

$(SHMTOOL): $(call obj,$(SHM_TOOL)) $(LIB_SHM) $(LIB_CONF) $(LIB_COMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(TESTSRV): $(call obj,$(TESTSRV_SRC)) $(LIB_COMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LOADGEN): $(call obj,$(LOAD_SRC)) $(LIB_SUPPORT) $(LIB_COMMON)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# A unit test links the test's own object and every library; the linker takes
# only what the test uses. tests/load and tests/testserver objects that are not
# a main() are available to their unit tests through LOAD_LIB/TESTSRV_LIB.
LOAD_LIB_OBJ    := $(call obj,$(filter-out tests/load/main.c,$(LOAD_SRC)))
TESTSRV_LIB_OBJ := $(call obj,$(filter-out tests/testserver/main.c,$(TESTSRV_SRC)))

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(ALL_LIBS) $(LIB_SUPPORT) $(LOAD_LIB_OBJ) $(TESTSRV_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LOAD_LIB_OBJ) $(TESTSRV_LIB_OBJ) -Wl,--start-group $(LIB_SUPPORT) $(ALL_LIBS) -Wl,--end-group $(LDLIBS) -lcriterion

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(LIB_SUPPORT) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< -Wl,--start-group $(LIB_SUPPORT) $(ALL_LIBS) -Wl,--end-group $(LDLIBS) -lcriterion

# ---------------------------------------------------------------- test
# tests/interop: the official MCP TypeScript SDK client and reference server
# (npm packages pinned by tests/interop/package-lock.json) against the gateway,
# under node's test runner, which closes with "# pass N" / "# fail N" and
# exits non-zero on a failure. `npm ci` installs into tests/interop/node_modules
# (git-ignored) only when the lock file is newer than the install stamp.
INTEROP_DIR   := tests/interop
INTEROP_STAMP := $(INTEROP_DIR)/node_modules/.mb-installed
INTEROP_RUN    = MB_BUILD_DIR=$(BUILD) timeout --kill-after=10 120 \
                 node --test --test-reporter=tap $(wildcard $(INTEROP_DIR)/*.test.js)

# Unit binaries first (fast), then integration binaries, which start the real
# daemon and so need every program built. scripts/run-tests.sh prints one
# closing "N passed, N failed" line over all binaries and, for `test`, the
# tests/interop run.
unit: all $(UNIT_BIN)
	@$(TEST_ENV) scripts/run-tests.sh $(UNIT_BIN)

integration: all $(INTEG_BIN)
	@$(TEST_ENV) scripts/run-tests.sh $(INTEG_BIN)

# LSAN_OPTIONS: tests/lsan.supp names the third-party leaks a sanitizer build
# ignores (it has no effect on a normal build).
TEST_ENV := MB_BUILD_DIR=$(BUILD) LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

test: all $(UNIT_BIN) $(INTEG_BIN) $(INTEROP_STAMP)
	@$(TEST_ENV) scripts/run-tests.sh --tap '$(INTEROP_RUN)' $(UNIT_BIN) $(INTEG_BIN)

$(INTEROP_STAMP): $(INTEROP_DIR)/package-lock.json | $(DEPS_OK)
	cd $(INTEROP_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

interop: all $(INTEROP_STAMP)
	@$(INTEROP_RUN)

asan:
	@$(MAKE) --no-print-directory SAN=1 test

# ---------------------------------------------------------------- run
run: all
	$(DAEMON) -g -c conf/gateway.yaml

# ---------------------------------------------------------------- bench
# scripts/bench/bench.py: every scenario of issue 4 on loopback, table on
# stdout, build/bench/results.json. BENCH_SECONDS=N per scenario (default 6),
# BENCH_ROUNDS=N alternating rounds of the comparison group (default 3),
# PROFILE=1 adds perf (or callgrind) profiles of the gateway scenarios.
bench: all
	@BUILD=$(BUILD) BENCH_SECONDS=$(BENCH_SECONDS) BENCH_ROUNDS=$(BENCH_ROUNDS) PROFILE=$(PROFILE) python3 scripts/bench/bench.py

# ---------------------------------------------------------------- style
FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_FILES)
check-format:
	clang-format --dry-run --Werror $(FORMAT_FILES)

# ---------------------------------------------------------------- install
# Binaries, man pages, the example configurations and the Grafana dashboard
# (share/doc), a configuration for an installed gateway
# (scripts/mcp-bridge.yaml, laid down only when none exists, so an operator's
# file is never overwritten), the init script, the systemd unit and the
# logrotate rule. The scripts name $(PREFIX)/sbin/mcp-bridge and the configuration
# directory (/etc/mcp-bridge for PREFIX=/usr, $(PREFIX)/etc/mcp-bridge
# otherwise), rewritten from their /usr/local and /etc defaults.
INSTALL_ETC = $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
INSTALL_SED = sed -e 's|/usr/local/sbin/mcp-bridge|$(PREFIX)/sbin/mcp-bridge|g' \
                  -e 's|/etc/mcp-bridge/|$(INSTALL_ETC)/mcp-bridge/|g'
install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(DAEMON) $(DESTDIR)$(PREFIX)/sbin/mcp-bridge
	install -m 0755 $(SHMTOOL) $(DESTDIR)$(PREFIX)/bin/mcp-bridge-shm
	install -d $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man1
	for p in $(wildcard man/*.8); do install -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man8/; done
	for p in $(wildcard man/*.5); do install -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man5/; done
	for p in $(wildcard man/*.1); do install -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man1/; done
	install -d $(DESTDIR)$(PREFIX)/share/doc/mcp-bridge/examples
	install -m 0644 conf/*.yaml scripts/grafana-dashboard.json $(DESTDIR)$(PREFIX)/share/doc/mcp-bridge/examples/
	install -m 0644 scripts/logrotate $(DESTDIR)$(PREFIX)/share/doc/mcp-bridge/examples/logrotate
	install -d $(DESTDIR)$(INSTALL_ETC)/mcp-bridge $(DESTDIR)$(INSTALL_ETC)/init.d $(DESTDIR)$(PREFIX)/lib/systemd/system
	[ -e $(DESTDIR)$(INSTALL_ETC)/mcp-bridge/gateway.yaml ] || install -m 0644 scripts/mcp-bridge.yaml $(DESTDIR)$(INSTALL_ETC)/mcp-bridge/gateway.yaml
	install -d $(DESTDIR)$(INSTALL_ETC)/logrotate.d $(DESTDIR)/var/log/mcp-bridge
	install -m 0644 scripts/logrotate $(DESTDIR)$(INSTALL_ETC)/logrotate.d/mcp-bridge
	$(INSTALL_SED) scripts/mcp-bridge.init > $(DESTDIR)$(INSTALL_ETC)/init.d/mcp-bridge
	chmod 0755 $(DESTDIR)$(INSTALL_ETC)/init.d/mcp-bridge
	$(INSTALL_SED) scripts/mcp-bridge.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/mcp-bridge.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/mcp-bridge.service

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
