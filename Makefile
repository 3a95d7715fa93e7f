# peerfs build.  `make` builds the programs into build/, `make check` runs
# every test, `make SANITIZE=1 check` runs them under ASan and UBSan,
# `make bench` runs the benchmarks, `make soak-cluster` the long multi-node
# kill soak, `make install` installs (PREFIX, DESTDIR).

PREFIX  ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man

ifeq ($(SANITIZE),1)
BUILD   ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   ?= build
SANFLAGS =
endif

CC      ?= cc
PKGS    := fuse3 libsodium blkid
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Wmissing-prototypes -Wstrict-prototypes -D_GNU_SOURCE \
           -D_FILE_OFFSET_BITS=64 -Iinclude $(PKG_CFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS)
LDLIBS  += $(PKG_LIBS) -lpthread

# Every .c of these directories goes into the library, except mains.
LIB_DIRS := lib fs journal cluster recovery
LIB_SRCS := $(filter-out %/main.c,$(wildcard $(addsuffix /*.c,$(LIB_DIRS))))
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
LIB      := $(BUILD)/libpeerfs.a

PROGS := $(BUILD)/peerfs $(BUILD)/mkfs.peerfs $(BUILD)/fsck.peerfs $(BUILD)/peerfsctl
# Sources of each program besides the library.
objs_of = $(patsubst %.c,$(BUILD)/obj/%.o,$1)
PEERFS_OBJS := $(call objs_of,fs/main.c)
MKFS_OBJS   := $(call objs_of,$(wildcard mkfs/*.c))
FSCK_OBJS   := $(call objs_of,$(wildcard fsck/*.c))
CTL_OBJS    := $(call objs_of,$(wildcard ctl/*.c))

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TOOL_SRCS  := $(wildcard tests/tools/*.c)
TOOL_BINS  := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(TOOL_SRCS))

BENCH_BINS := $(BUILD)/bench/bobench

.PHONY: all check unit mount-tests bench install clean demo soak-cluster
all: $(PROGS) $(UNIT_BINS) $(TOOL_BINS) $(BENCH_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/peerfs: $(PEERFS_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)
$(BUILD)/mkfs.peerfs: $(MKFS_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)
$(BUILD)/fsck.peerfs: $(FSCK_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)
$(BUILD)/peerfsctl: $(CTL_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcmocka

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do \
	  echo "== $$t"; timeout 300 $$t || fail=1; done; exit $$fail

mount-tests: all
	BUILD=$(BUILD) bash tests/run.sh

check: all
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory mount-tests

bench: all
	BUILD=$(BUILD) bash bench/run.sh
	BUILD=$(BUILD) bash bench/cluster.sh
	BUILD=$(BUILD) bash bench/backout.sh
	BUILD=$(BUILD) bash bench/recovery.sh

# The long multi-node kill soak: PFS_SOAK_KILLS kills (default 300).
soak-cluster: all
	PFS_SOAK_KILLS=$${PFS_SOAK_KILLS:-300} PFS_TIMEOUT_SCALE=$$(( ($${PFS_SOAK_KILLS:-300} * 12 + 179) / 180 )) \
	  BUILD=$(BUILD) bash tests/run.sh cluster-soak
	@grep -E '^cluster-soak summary' $${PFS_TEST_TMP:-/tmp/peerfs-tests}/cluster-soak/log

demo: all
	BUILD=$(BUILD) bash tests/demo.sh

install: $(BUILD)/peerfs $(BUILD)/mkfs.peerfs $(BUILD)/fsck.peerfs $(BUILD)/peerfsctl
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 $(BUILD)/peerfs $(BUILD)/mkfs.peerfs $(BUILD)/fsck.peerfs $(BUILD)/peerfsctl $(DESTDIR)$(SBINDIR)/
	ln -sf peerfs $(DESTDIR)$(SBINDIR)/mount.fuse.peerfs
	install -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/*.5 $(DESTDIR)$(MANDIR)/man5/

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
