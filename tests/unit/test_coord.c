/*
 * test_coord.c -- conformance tests of the coordination layer
 * (include/pfs_coord.h), run against the local backend: backend
 * selection, membership, the lock state machine, blocking callbacks,
 * retained locks of dead nodes, the registration table of peer recovery,
 * the failure detector (fake clock), and several processes sharing one
 * segment: a lock handed over through callbacks, processes killed while
 * holding the segment mutex at each step point, a killed holder whose
 * locks are retained, and a restart after every node died; the advisory
 * lock table (flock and fcntl ranges): conflicts, range splitting and
 * merging, owners, releases, waiting, interrupts, deadlocks, limits and
 * dead nodes.
 *
 * Each test uses a segment named after a random UUID and unlinks it at
 * teardown.  Nodes of one test usually live in one process (one handle
 * per slot); they share the pid, so only the fake clock makes them
 * silent.  Set PFS_TEST_VERBOSE=1 to see the log lines of the code under
 * test.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pfs_coord.h"
#include "pfs_util.h"
#include "../../cluster/coord_local.h"

#define DEAD_MS   300
#define HB_MS     50
#define LONG_MS   10000        /* "forever" for a waiter that must be woken */
#define SETTLE_MS 100          /* how long a waiter must stay blocked */

#define R(i) coord_res(COORD_RES_INODE, (i))

struct tenv {
	uint8_t uuid[16];
	char name[64];
	uint64_t *clock;        /* shared with forked children */
};

static uint64_t fake_clock(void *arg)
{
	return __atomic_load_n((uint64_t *)arg, __ATOMIC_SEQ_CST);
}

static void advance_ms(struct tenv *t, uint64_t ms)
{
	__atomic_fetch_add(t->clock, ms * 1000000ull, __ATOMIC_SEQ_CST);
}

static uint64_t now_ms(void)
{
	return pfs_now_mono_ns() / 1000000ull;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int setup(void **state)
{
	struct tenv *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	if (getrandom(t->uuid, sizeof(t->uuid), 0) != (ssize_t)sizeof(t->uuid))
		goto out_free;
	if (coord_local_segment_name(t->uuid, t->name, sizeof(t->name)))
		goto out_free;
	t->clock = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t->clock == MAP_FAILED)
		goto out_free;
	*t->clock = 1000000000000ull;
	*state = t;
	return 0;

out_free:
	free(t);
	return -1;
}

static int teardown(void **state)
{
	struct tenv *t = *state;
	coord_local_set_step_hook(NULL);
	shm_unlink(t->name);
	munmap(t->clock, 4096);
	free(t);
	return 0;
}

static struct coord_config cfg_of(struct tenv *t, uint32_t slot)
{
	struct coord_config cfg = {
		.spec = "local",
		.slot = slot,
		.generation = 10 + slot,
		.host_id = 0x1234,
		.hostname = "testhost",
		.heartbeat_ms = HB_MS,
		.dead_ms = DEAD_MS,
		.clock_ns = fake_clock,
		.clock_arg = t->clock,
	};
	memcpy(cfg.uuid, t->uuid, sizeof(cfg.uuid));
	return cfg;
}

static int try_open(struct tenv *t, uint32_t slot, struct coord **out)
{
	struct coord_config cfg = cfg_of(t, slot);
	return coord_open(&cfg, out);
}

static struct coord *open_node(struct tenv *t, uint32_t slot)
{
	struct coord *c = NULL;
	assert_int_equal(try_open(t, slot, &c), 0);
	assert_non_null(c);
	return c;
}

/* Mode in which `slot` holds res (COORD_NL if not), from a snapshot. */
static enum coord_mode held_mode(struct coord *c, uint64_t res, uint32_t slot, bool *retained)
{
	static struct coord_lock_info info[1024];
	int n = coord_locks(c, info, PFS_ARRAY_SIZE(info));
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (info[i].res == res && info[i].holder == slot) {
			if (retained)
				*retained = info[i].retained;
			return info[i].mode;
		}
	}
	return COORD_NL;
}

static int count_locks(struct coord *c)
{
	static struct coord_lock_info info[1024];
	int n = coord_locks(c, info, PFS_ARRAY_SIZE(info));
	assert_true(n >= 0 && n < (int)PFS_ARRAY_SIZE(info));
	return n;
}

static bool segment_exists(struct tenv *t)
{
	int fd = shm_open(t->name, O_RDONLY, 0);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* ---- a lock request on its own thread ---- */

struct locker {
	pthread_t th;
	struct coord *c;
	uint64_t res;
	enum coord_mode mode;
	int timeout_ms;
	int result;
	bool done;
	uint64_t elapsed_ms;
};

static void *locker_main(void *arg)
{
	struct locker *l = arg;
	uint64_t t0 = now_ms();
	int r = coord_lock(l->c, l->res, l->mode, l->timeout_ms);
	l->elapsed_ms = now_ms() - t0;
	__atomic_store_n(&l->result, r, __ATOMIC_SEQ_CST);
	__atomic_store_n(&l->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

static void locker_start(struct locker *l, struct coord *c, uint64_t res, enum coord_mode mode,
			 int timeout_ms)
{
	memset(l, 0, sizeof(*l));
	l->c = c;
	l->res = res;
	l->mode = mode;
	l->timeout_ms = timeout_ms;
	assert_int_equal(pthread_create(&l->th, NULL, locker_main, l), 0);
}

static bool locker_done(struct locker *l)
{
	return __atomic_load_n(&l->done, __ATOMIC_SEQ_CST);
}

static int locker_join(struct locker *l)
{
	pthread_join(l->th, NULL);
	return l->result;
}

/* Poll until l finished or ms passed. */
static bool locker_wait(struct locker *l, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	while (!locker_done(l) && now_ms() < end)
		sleep_ms(1);
	return locker_done(l);
}

/* Wait (up to 5 s) until `nodes` nodes wait for res, as a snapshot shows. */
static void wait_for_waiters(struct coord *c, uint64_t res, uint32_t nodes)
{
	static struct coord_lock_info info[1024];
	uint64_t end = now_ms() + 5000;
	for (;;) {
		int n = coord_locks(c, info, PFS_ARRAY_SIZE(info));
		for (int i = 0; i < n; i++)
			if (info[i].res == res && info[i].waiters == nodes)
				return;
		if (now_ms() > end)
			fail_msg("resource %#llx: %u waiting nodes never seen",
				 (unsigned long long)res, nodes);
		sleep_ms(1);
	}
}

/* ---- a blocking-callback recorder ---- */

struct cbrec {
	pthread_mutex_t m;
	pthread_cond_t cv;
	struct coord *c;        /* the holder the callback acts for */
	int calls;
	uint64_t last_res;
	enum coord_mode last_wanted;
	bool release;           /* unlock the resource */
	bool downgrade;         /* downgrade it to SH */
	bool block;             /* block the first call until unblocked */
	bool blocked;
	uint64_t seen[256];
	int nseen;
};

static void cbrec_init(struct cbrec *r, struct coord *c)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->m, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->c = c;
}

static void cbrec_fini(struct cbrec *r)
{
	pthread_mutex_destroy(&r->m);
	pthread_cond_destroy(&r->cv);
}

static void cb_record(void *arg, uint64_t res, enum coord_mode wanted)
{
	struct cbrec *r = arg;

	pthread_mutex_lock(&r->m);
	r->calls++;
	r->last_res = res;
	r->last_wanted = wanted;
	bool seen = false;
	for (int i = 0; i < r->nseen; i++)
		seen |= r->seen[i] == res;
	if (!seen && r->nseen < (int)PFS_ARRAY_SIZE(r->seen))
		r->seen[r->nseen++] = res;
	if (r->block) {
		r->blocked = true;
		pthread_cond_broadcast(&r->cv);
		while (r->block)
			pthread_cond_wait(&r->cv, &r->m);
	}
	pthread_cond_broadcast(&r->cv);
	bool rel = r->release, down = r->downgrade;
	pthread_mutex_unlock(&r->m);
	if (rel)
		coord_unlock(r->c, res);
	else if (down)
		coord_downgrade(r->c, res, COORD_SH);
}

static int cbrec_calls(struct cbrec *r)
{
	pthread_mutex_lock(&r->m);
	int n = r->calls;
	pthread_mutex_unlock(&r->m);
	return n;
}

/* ---- backend selection and membership ---- */

static void test_spec_selects_backend(void **state)
{
	struct tenv *t = *state;
	struct coord_config cfg = cfg_of(t, 0);
	struct coord *c = NULL;

	cfg.spec = "zk://localhost:2181/peerfs";
	assert_int_equal(coord_open(&cfg, &c), -EPROTONOSUPPORT);
	cfg.spec = "etcd://x";
	assert_int_equal(coord_open(&cfg, &c), -EINVAL);
	cfg.spec = "local";
	cfg.slot = 256;
	assert_int_equal(coord_open(&cfg, &c), -EINVAL);
	cfg.slot = 0;
	cfg.dead_ms = HB_MS;
	assert_int_equal(coord_open(&cfg, &c), -EINVAL);
	cfg.dead_ms = DEAD_MS;
	cfg.spec = NULL;
	assert_int_equal(coord_open(&cfg, &c), 0);
	coord_close(c);
	cfg.spec = "";
	assert_int_equal(coord_open(&cfg, &c), 0);
	coord_close(c);
	assert_false(segment_exists(t));        /* the last clean close removes it */
}

static void test_join_busy_leave(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *a2 = NULL;
	struct coord_node_info ni;

	struct stat st;
	int fd = shm_open(t->name, O_RDONLY, 0);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	close(fd);
	assert_int_equal(try_open(t, 0, &a2), -EBUSY);
	struct coord *b = open_node(t, 3);
	assert_int_equal(coord_node_info(b, 0, &ni), 0);
	assert_int_equal(ni.state, COORD_LIVE);
	assert_int_equal(ni.pid, getpid());
	assert_int_equal(ni.generation, 10);
	assert_int_equal(ni.host_id, 0x1234);
	assert_string_equal(ni.hostname, "testhost");
	assert_int_equal(ni.last_beat_ns, *t->clock);
	advance_ms(t, 5);
	assert_int_equal(coord_heartbeat(a), 0);
	assert_int_equal(coord_node_info(b, 0, &ni), 0);
	assert_int_equal(ni.last_beat_ns, *t->clock);
	coord_close(a);
	assert_int_equal(coord_node_info(b, 0, &ni), 0);
	assert_int_equal(ni.state, COORD_ABSENT);
	assert_true(segment_exists(t));         /* b is still there */
	a = open_node(t, 0);                    /* the slot is free again */
	assert_int_equal(coord_local_check(b), 0);
	coord_close(a);
	coord_close(b);
	assert_false(segment_exists(t));
}

/* ---- the lock state machine ---- */

static void test_sh_sh_compatible(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);

	assert_int_equal(coord_lock(a, R(1), COORD_SH, 0), 0);
	assert_int_equal(coord_lock(b, R(1), COORD_SH, 0), 0);
	assert_int_equal(held_mode(a, R(1), 0, NULL), COORD_SH);
	assert_int_equal(held_mode(a, R(1), 1, NULL), COORD_SH);
	assert_int_equal(coord_lock(a, 0, COORD_SH, 0), -EINVAL);
	assert_int_equal(coord_lock(a, R(2), COORD_NL, 0), -EINVAL);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
}

static void test_sh_ex_conflict(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);

	assert_int_equal(coord_lock(a, R(1), COORD_SH, 0), 0);
	assert_int_equal(coord_lock(b, R(1), COORD_EX, 0), -ETIMEDOUT);
	assert_int_equal(coord_lock(a, R(2), COORD_EX, 0), 0);
	assert_int_equal(coord_lock(b, R(2), COORD_SH, 0), -ETIMEDOUT);
	assert_int_equal(coord_lock(b, R(2), COORD_EX, 0), -ETIMEDOUT);
	assert_int_equal(coord_unlock(a, R(2)), 0);
	assert_int_equal(coord_lock(b, R(2), COORD_SH, 0), 0);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
}

static void test_ex_ex_conflict_timeout(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);

	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(coord_lock(b, R(1), COORD_EX, 120), -ETIMEDOUT);
	uint64_t dt = now_ms() - t0;
	assert_true(dt >= 115 && dt < 2000);
	/* the timed-out request left nothing behind: only a's record */
	struct coord_lock_info info[4];
	assert_int_equal(coord_locks(a, info, 4), 1);
	assert_int_equal(info[0].holder, 0);
	assert_int_equal(info[0].waiters, 0);
	assert_int_equal(coord_local_check(a), 0);

	struct locker l;
	locker_start(&l, b, R(1), COORD_EX, LONG_MS);
	assert_false(locker_wait(&l, SETTLE_MS));
	assert_int_equal(coord_unlock(a, R(1)), 0);
	assert_int_equal(locker_join(&l), 0);
	assert_int_equal(held_mode(a, R(1), 1, NULL), COORD_EX);
	assert_int_equal(coord_unlock(a, R(1)), -ENOENT);
	coord_close(a);
	coord_close(b);
}

static void test_relock_noop(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0);
	struct coord_lock_info info[4];

	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	assert_int_equal(coord_lock(a, R(1), COORD_SH, 0), 0);
	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	assert_int_equal(coord_locks(a, info, 4), 1);
	assert_int_equal(info[0].mode, COORD_EX);
	assert_int_equal(coord_lock(a, R(2), COORD_SH, 0), 0);
	assert_int_equal(coord_lock(a, R(2), COORD_SH, 0), 0);
	assert_int_equal(held_mode(a, R(2), 0, NULL), COORD_SH);
	/* one unlock releases the node's lock, however often it was taken */
	assert_int_equal(coord_unlock(a, R(2)), 0);
	assert_int_equal(coord_unlock(a, R(2)), -ENOENT);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
}

static void test_upgrade(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct locker l;

	/* alone: at once */
	assert_int_equal(coord_lock(a, R(1), COORD_SH, 0), 0);
	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	assert_int_equal(held_mode(a, R(1), 0, NULL), COORD_EX);
	assert_int_equal(coord_downgrade(a, R(1), COORD_SH), 0);

	/* next to another reader: waits until it leaves */
	assert_int_equal(coord_lock(b, R(1), COORD_SH, 0), 0);
	locker_start(&l, a, R(1), COORD_EX, LONG_MS);
	assert_false(locker_wait(&l, SETTLE_MS));
	assert_int_equal(held_mode(a, R(1), 0, NULL), COORD_SH);   /* still a reader */
	assert_int_equal(coord_local_check(a), 0);
	assert_int_equal(coord_unlock(b, R(1)), 0);
	assert_int_equal(locker_join(&l), 0);
	assert_int_equal(held_mode(a, R(1), 0, NULL), COORD_EX);
	assert_int_equal(held_mode(a, R(1), 1, NULL), COORD_NL);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
}

static void test_downgrade(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct locker l;

	assert_int_equal(coord_downgrade(a, R(1), COORD_SH), -ENOENT);
	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	locker_start(&l, b, R(1), COORD_SH, LONG_MS);
	assert_false(locker_wait(&l, SETTLE_MS));
	assert_int_equal(coord_downgrade(a, R(1), COORD_EX), 0);   /* same mode: no-op */
	assert_false(locker_done(&l));
	assert_int_equal(coord_downgrade(a, R(1), COORD_SH), 0);
	assert_int_equal(locker_join(&l), 0);
	assert_int_equal(held_mode(a, R(1), 0, NULL), COORD_SH);
	assert_int_equal(held_mode(a, R(1), 1, NULL), COORD_SH);
	assert_int_equal(coord_downgrade(a, R(1), COORD_EX), -EINVAL);
	assert_int_equal(coord_downgrade(a, R(1), COORD_NL), 0);   /* NL unlocks */
	assert_int_equal(held_mode(a, R(1), 0, NULL), COORD_NL);
	assert_int_equal(coord_unlock(a, R(1)), -ENOENT);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
}

/* A node holding nothing is not granted SH while another waits for EX. */
static void test_ex_waiter_not_starved(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1), *c = open_node(t, 2);
	struct locker l;

	assert_int_equal(coord_lock(a, R(1), COORD_SH, 0), 0);
	locker_start(&l, b, R(1), COORD_EX, LONG_MS);
	assert_false(locker_wait(&l, SETTLE_MS));
	assert_int_equal(coord_lock(c, R(1), COORD_SH, 0), -ETIMEDOUT);
	assert_int_equal(coord_lock(a, R(1), COORD_SH, 0), 0);      /* a holds it already */
	assert_int_equal(coord_unlock(a, R(1)), 0);
	assert_int_equal(locker_join(&l), 0);
	assert_int_equal(coord_unlock(b, R(1)), 0);
	assert_int_equal(coord_lock(c, R(1), COORD_SH, 0), 0);
	coord_close(a);
	coord_close(b);
	coord_close(c);
}

/* Threads of one node share its locks and its wait records. */
static void test_threads_of_one_node(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct locker l1, l2, l3;

	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	locker_start(&l1, b, R(1), COORD_EX, LONG_MS);
	locker_start(&l2, b, R(1), COORD_EX, LONG_MS);
	locker_start(&l3, b, R(1), COORD_SH, LONG_MS);
	assert_false(locker_wait(&l1, SETTLE_MS));
	assert_int_equal(coord_local_check(a), 0);
	struct coord_lock_info info[4];
	assert_int_equal(coord_locks(a, info, 4), 1);
	assert_int_equal(info[0].waiters, 1);           /* one node waits */
	assert_int_equal(coord_unlock(a, R(1)), 0);
	assert_int_equal(locker_join(&l1), 0);
	assert_int_equal(locker_join(&l2), 0);
	assert_int_equal(locker_join(&l3), 0);
	assert_int_equal(held_mode(a, R(1), 1, NULL), COORD_EX);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
}

/* More waiting requests than a node has wait records: the extra ones
 * wait for a record, then for the lock. */
static void test_wait_records_exhausted(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	enum { N = 65 };
	static struct locker l[N];

	for (int i = 0; i < N; i++)
		assert_int_equal(coord_lock(a, R(200 + i), COORD_EX, 0), 0);
	for (int i = 0; i < N; i++)
		locker_start(&l[i], b, R(200 + i), COORD_EX, LONG_MS);
	/* 64 requests hold a record (their resource shows a waiter), one
	 * waits for a record */
	static struct coord_lock_info info[N];
	uint64_t end = now_ms() + 5000;
	int waiting = 0;
	while (waiting != N - 1 && now_ms() < end) {
		sleep_ms(1);
		int n = coord_locks(a, info, N);
		waiting = 0;
		for (int i = 0; i < n; i++)
			waiting += info[i].waiters == 1;
	}
	assert_int_equal(waiting, N - 1);
	sleep_ms(20);
	assert_int_equal(count_locks(a), N);
	assert_int_equal(coord_local_check(a), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(coord_unlock_all(a), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(locker_join(&l[i]), 0);
	assert_true(now_ms() - t0 < 900);       /* woken, not found by a slice */
	assert_int_equal(count_locks(a), N);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
}

static void test_close_releases_locks(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct locker l;

	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	assert_int_equal(coord_lock(a, R(2), COORD_SH, 0), 0);
	locker_start(&l, b, R(1), COORD_SH, LONG_MS);
	assert_false(locker_wait(&l, SETTLE_MS));
	coord_close(a);
	assert_int_equal(locker_join(&l), 0);
	assert_int_equal(coord_lock(b, R(2), COORD_EX, 0), 0);
	assert_int_equal(count_locks(b), 2);
	assert_int_equal(coord_unlock_all(b), 0);
	assert_int_equal(count_locks(b), 0);
	assert_int_equal(coord_local_check(b), 0);
	coord_close(b);
}

static void test_table_capacity(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0);
	const uint32_t cap = 1u << 16;

	for (uint32_t i = 1; i <= cap; i++)
		if (coord_lock(a, R(i), COORD_EX, 0) != 0)
			fail_msg("lock %u failed", i);
	assert_int_equal(coord_lock(a, R(cap + 1), COORD_SH, 0), -ENOSPC);
	assert_int_equal(coord_unlock(a, R(77)), 0);
	assert_int_equal(coord_lock(a, R(cap + 1), COORD_SH, 0), 0);
	assert_int_equal(coord_local_check(a), 0);
	assert_int_equal(coord_unlock_all(a), 0);
	assert_int_equal(count_locks(a), 0);
	assert_int_equal(coord_lock(a, R(cap + 2), COORD_SH, 0), 0);
	assert_int_equal(count_locks(a), 1);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
}

/* ---- blocking callbacks ---- */

static void test_callback_release(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct cbrec rec;

	cbrec_init(&rec, a);
	rec.release = true;
	coord_set_blocking_cb(a, cb_record, &rec);
	assert_int_equal(coord_lock(a, R(5), COORD_EX, 0), 0);
	/* a try (timeout 0) does not disturb the holder */
	assert_int_equal(coord_lock(b, R(5), COORD_SH, 0), -ETIMEDOUT);
	sleep_ms(20);
	assert_int_equal(cbrec_calls(&rec), 0);
	assert_int_equal(coord_lock(b, R(5), COORD_SH, 5000), 0);
	assert_true(cbrec_calls(&rec) >= 1);
	assert_int_equal(rec.last_res, R(5));
	assert_int_equal(rec.last_wanted, COORD_SH);
	assert_int_equal(held_mode(a, R(5), 0, NULL), COORD_NL);

	/* a holds SH, b wants EX: wanted is EX */
	assert_int_equal(coord_unlock(b, R(5)), 0);
	assert_int_equal(coord_lock(a, R(6), COORD_SH, 0), 0);
	assert_int_equal(coord_lock(b, R(6), COORD_EX, 5000), 0);
	assert_int_equal(rec.last_res, R(6));
	assert_int_equal(rec.last_wanted, COORD_EX);
	coord_close(a);
	coord_close(b);
	cbrec_fini(&rec);
}

static void test_callback_downgrade(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct cbrec rec;

	cbrec_init(&rec, a);
	rec.downgrade = true;
	coord_set_blocking_cb(a, cb_record, &rec);
	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	assert_int_equal(coord_lock(b, R(1), COORD_SH, 5000), 0);
	assert_int_equal(held_mode(a, R(1), 0, NULL), COORD_SH);
	assert_int_equal(rec.last_wanted, COORD_SH);
	coord_close(b);
	coord_close(a);
	cbrec_fini(&rec);
}

/* A holder that does not release: the requester times out, the holder
 * keeps working. */
static void test_callback_no_release(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct cbrec rec;

	cbrec_init(&rec, a);
	coord_set_blocking_cb(a, cb_record, &rec);
	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	uint64_t t0 = now_ms();
	assert_int_equal(coord_lock(b, R(1), COORD_EX, 200), -ETIMEDOUT);
	assert_true(now_ms() - t0 >= 195);
	assert_int_equal(rec.last_res, R(1));
	assert_int_equal(rec.last_wanted, COORD_EX);
	assert_int_equal(coord_lock(a, R(2), COORD_EX, 0), 0);
	assert_int_equal(coord_heartbeat(a), 0);
	assert_int_equal(held_mode(a, R(1), 0, NULL), COORD_EX);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
	cbrec_fini(&rec);
}

/* Posts made before the node sets its callback are kept for it. */
static void test_callback_set_late(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct cbrec rec;
	struct locker l;

	cbrec_init(&rec, a);
	rec.release = true;
	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	locker_start(&l, b, R(1), COORD_SH, LONG_MS);
	assert_false(locker_wait(&l, SETTLE_MS));
	coord_set_blocking_cb(a, cb_record, &rec);
	assert_int_equal(locker_join(&l), 0);
	assert_true(l.elapsed_ms < 5000);
	assert_int_equal(rec.last_wanted, COORD_SH);
	coord_close(a);
	coord_close(b);
	cbrec_fini(&rec);
}

/* More posts than the mailbox holds: the rest are found by a table scan. */
static void test_callback_overflow(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	enum { N = 48 };
	struct locker l[N];
	struct cbrec rec;

	cbrec_init(&rec, a);
	rec.release = true;
	rec.block = true;
	coord_set_blocking_cb(a, cb_record, &rec);
	for (int i = 0; i < N; i++)
		assert_int_equal(coord_lock(a, R(100 + i), COORD_EX, 0), 0);
	for (int i = 0; i < N; i++)
		locker_start(&l[i], b, R(100 + i), COORD_EX, LONG_MS);
	/* every request waits, the first callback is stuck */
	for (int i = 0; i < N; i++)
		wait_for_waiters(a, R(100 + i), 1);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&rec.m);
	while (!rec.blocked && pthread_cond_timedwait(&rec.cv, &rec.m, &ts) == 0)
		;
	bool blocked = rec.blocked;
	rec.block = false;
	pthread_cond_broadcast(&rec.cv);
	pthread_mutex_unlock(&rec.m);
	assert_true(blocked);
	for (int i = 0; i < N; i++)
		assert_int_equal(locker_join(&l[i]), 0);
	assert_int_equal(rec.nseen, N);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
	cbrec_fini(&rec);
}

/* ---- failure detector ---- */

static void test_failure_detector(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	uint32_t s[8];

	assert_int_equal(coord_silent_nodes(b, s, 8), 0);
	advance_ms(t, DEAD_MS - 1);
	assert_int_equal(coord_silent_nodes(b, s, 8), 0);
	assert_int_equal(coord_declare_dead(b, 0), -EAGAIN);
	assert_int_equal(coord_heartbeat(a), 0);               /* a beat resets */
	advance_ms(t, DEAD_MS - 1);
	assert_int_equal(coord_silent_nodes(b, s, 8), 0);
	advance_ms(t, 1);
	assert_int_equal(coord_silent_nodes(b, s, 8), 1);
	assert_int_equal(s[0], 0);
	/* b is silent as well, but never lists itself */
	assert_int_equal(coord_silent_nodes(a, s, 8), 1);
	assert_int_equal(s[0], 1);
	assert_int_equal(coord_silent_nodes(b, s, 0), 0);
	assert_int_equal(coord_heartbeat(b), 0);
	assert_int_equal(coord_declare_dead(b, 1), -EINVAL);
	assert_int_equal(coord_declare_dead(b, 7), -ENOENT);
	assert_int_equal(coord_declare_dead(b, 0), 0);
	assert_int_equal(coord_declare_dead(b, 0), 0);          /* already */
	assert_int_equal(coord_silent_nodes(b, s, 8), 0);       /* DEAD is not silent */
	/* the dead node is fenced */
	assert_int_equal(coord_heartbeat(a), -ESTALE);
	assert_int_equal(coord_lock(a, R(1), COORD_SH, 0), -ESTALE);
	assert_int_equal(coord_declare_dead(a, 1), -ESTALE);
	struct coord *a2 = NULL;
	assert_int_equal(try_open(t, 0, &a2), -EAGAIN);
	assert_int_equal(coord_local_check(b), 0);
	coord_close(a);
	coord_close(b);
}

/* ---- retained locks ---- */

static void test_retained_locks(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1), *c = open_node(t, 2);
	struct coord_node_info ni;
	struct locker l1, l2;
	uint64_t want[8];
	bool ret = false;

	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	assert_int_equal(coord_lock(a, R(2), COORD_EX, 0), 0);
	assert_int_equal(coord_lock(a, R(3), COORD_SH, 0), 0);
	locker_start(&l1, b, R(1), COORD_EX, LONG_MS);
	wait_for_waiters(c, R(1), 1);

	advance_ms(t, DEAD_MS);
	assert_int_equal(coord_heartbeat(b), 0);
	assert_int_equal(coord_heartbeat(c), 0);
	assert_int_equal(coord_declare_dead(b, 0), 0);
	assert_int_equal(coord_node_info(c, 0, &ni), 0);
	assert_int_equal(ni.state, COORD_DEAD);
	assert_int_equal(ni.retained_locks, 3);
	assert_int_equal(held_mode(c, R(1), 0, &ret), COORD_EX);
	assert_true(ret);

	/* a waiter waits; nothing else does */
	assert_false(locker_wait(&l1, SETTLE_MS));
	assert_int_equal(coord_lock(c, R(4), COORD_EX, 0), 0);
	assert_int_equal(coord_lock(c, R(3), COORD_SH, 0), 0);     /* next to a retained SH */
	assert_int_equal(coord_lock(c, R(3), COORD_EX, 0), -ETIMEDOUT);
	assert_int_equal(coord_lock(c, R(2), COORD_EX, 0), -ETIMEDOUT);
	locker_start(&l2, c, R(2), COORD_EX, LONG_MS);
	wait_for_waiters(c, R(2), 1);
	int n = coord_wanted_retained(b, 0, want, 8);
	assert_int_equal(n, 2);
	assert_true((want[0] == R(1) && want[1] == R(2)) || (want[0] == R(2) && want[1] == R(1)));

	/* only the registered counterpart releases */
	assert_int_equal(coord_release_retained(c, 0, 0), -EPERM);
	assert_int_equal(coord_register(c, 0, 60000), 0);
	assert_int_equal(coord_release_retained(b, 0, 0), -EPERM);
	assert_int_equal(coord_release_retained(b, 0, R(1)), -EPERM);
	assert_int_equal(coord_release_retained(a, 0, R(1)), -EPERM);  /* the dead node itself */
	assert_int_equal(coord_release_retained(c, 1, 0), -EINVAL);    /* b is not dead */
	assert_int_equal(coord_release_retained(c, 0, R(9)), -ENOENT);

	/* releasing one resource wakes only its waiters */
	assert_int_equal(coord_release_retained(c, 0, R(1)), 0);
	assert_int_equal(locker_join(&l1), 0);
	assert_int_equal(held_mode(c, R(1), 1, NULL), COORD_EX);
	assert_false(locker_wait(&l2, SETTLE_MS));
	assert_int_equal(coord_release_retained(c, 0, R(1)), -ENOENT);
	assert_int_equal(coord_node_info(c, 0, &ni), 0);
	assert_int_equal(ni.retained_locks, 2);
	assert_int_equal(coord_local_check(c), 0);

	/* the rest; the node stays DEAD until the registration goes */
	assert_int_equal(coord_release_retained(c, 0, 0), 0);
	assert_int_equal(locker_join(&l2), 0);
	assert_int_equal(coord_node_info(c, 0, &ni), 0);
	assert_int_equal(ni.state, COORD_DEAD);
	assert_int_equal(ni.retained_locks, 0);
	struct coord *a2 = NULL;
	assert_int_equal(try_open(t, 0, &a2), -EAGAIN);
	assert_int_equal(coord_unregister(c, 0), 0);
	assert_int_equal(coord_node_info(c, 0, &ni), 0);
	assert_int_equal(ni.state, COORD_ABSENT);
	coord_close(a);                 /* the fenced handle changes nothing */
	assert_int_equal(coord_node_info(c, 0, &ni), 0);
	assert_int_equal(ni.state, COORD_ABSENT);
	a = open_node(t, 0);
	assert_int_equal(coord_local_check(c), 0);
	coord_close(a);
	coord_close(b);
	coord_close(c);
}

/* ---- registration ---- */

static void test_registration(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *c = open_node(t, 1), *d = open_node(t, 2),
		     *e = open_node(t, 3);
	struct coord_reg_info ri;
	struct coord_node_info ni;

	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	assert_int_equal(coord_reg_info(c, 0, &ri), 0);
	assert_int_equal(ri.status, COORD_REG_INACTIVE);
	assert_int_equal(coord_register(c, 2, 1000), -EINVAL);  /* d is not dead */

	/* a and e go silent; c and d beat; c declares both dead */
	advance_ms(t, DEAD_MS);
	assert_int_equal(coord_heartbeat(c), 0);
	assert_int_equal(coord_heartbeat(d), 0);
	assert_int_equal(coord_declare_dead(c, 0), 0);
	assert_int_equal(coord_declare_dead(c, 3), 0);

	/* the dead node itself, a non-live caller, the caller itself */
	assert_int_equal(coord_register(a, 0, 1000), -EPERM);
	assert_int_equal(coord_register(e, 0, 1000), -EPERM);
	assert_int_equal(coord_register(c, 1, 1000), -EPERM);
	assert_int_equal(coord_register(c, 0, 0), -EINVAL);

	/* inactive -> active */
	assert_int_equal(coord_register(c, 0, 1000), 0);
	assert_int_equal(coord_reg_info(d, 0, &ri), 0);
	assert_int_equal(ri.status, COORD_REG_ACTIVE);
	assert_int_equal(ri.counterpart, 1);
	assert_int_equal(ri.lease_expiry_ns, *t->clock + 1000 * 1000000ull);

	/* active rejects a third node, the counterpart again, the dead node */
	assert_int_equal(coord_register(d, 0, 1000), -EBUSY);
	assert_int_equal(coord_register(c, 0, 1000), -EBUSY);
	assert_int_equal(coord_register(a, 0, 1000), -EPERM);
	assert_int_equal(coord_register(e, 0, 1000), -EPERM);
	assert_int_equal(coord_renew(d, 0, 1000), -EPERM);
	assert_int_equal(coord_unregister(d, 0), -EPERM);
	assert_int_equal(coord_unregister(e, 0), -EPERM);
	advance_ms(t, 10);
	assert_int_equal(coord_renew(c, 0, 2000), 0);
	assert_int_equal(coord_reg_info(d, 0, &ri), 0);
	assert_int_equal(ri.lease_expiry_ns, *t->clock + 2000 * 1000000ull);

	/* backout progress: set by the counterpart only, read by anyone */
	struct coord_progress pg, got;
	memset(&pg, 0, sizeof(pg));
	pg.ntx = 1;
	pg.workers = 2;
	pg.tx[0].txseq = 77;
	pg.tx[0].undo_done = 5;
	pg.tx[0].undo_total = 9;
	pg.tx[0].worker = 2;
	assert_int_equal(coord_progress(d, 0, &got), -ENOENT);      /* none yet */
	assert_int_equal(coord_set_progress(d, 0, &pg), -EPERM);
	assert_int_equal(coord_set_progress(c, 3, &pg), -ENOENT);   /* not registered */
	assert_int_equal(coord_set_progress(c, 0, &pg), 0);
	assert_int_equal(coord_progress(d, 0, &got), 0);
	assert_memory_equal(&got, &pg, sizeof(pg));
	assert_int_equal(coord_progress(d, 3, &got), -ENOENT);

	/* unregister -> inactive; the retained lock keeps a DEAD */
	assert_int_equal(coord_unregister(c, 0), 0);
	assert_int_equal(coord_unregister(c, 0), -ENOENT);
	assert_int_equal(coord_renew(c, 0, 1000), -ENOENT);
	assert_int_equal(coord_reg_info(d, 0, &ri), 0);
	assert_int_equal(ri.status, COORD_REG_INACTIVE);
	assert_int_equal(coord_node_info(d, 0, &ni), 0);
	assert_int_equal(ni.state, COORD_DEAD);
	assert_int_equal(coord_register(e, 0, 1000), -EPERM);      /* still not live */
	assert_int_equal(coord_progress(d, 0, &got), -ENOENT);      /* cleared */
	assert_int_equal(coord_set_progress(c, 0, &pg), -ENOENT);

	/* another node may register now; its lease expires unless renewed */
	assert_int_equal(coord_register(d, 0, 200), 0);
	assert_int_equal(coord_progress(c, 0, &got), -ENOENT);      /* a new registration */
	advance_ms(t, 150);
	assert_int_equal(coord_heartbeat(c), 0);
	assert_int_equal(coord_heartbeat(d), 0);
	assert_int_equal(coord_register(c, 0, 1000), -EBUSY);
	advance_ms(t, 50);
	assert_int_equal(coord_register(c, 0, 60000), 0);          /* takes over */
	assert_int_equal(coord_renew(d, 0, 1000), -EPERM);
	assert_int_equal(coord_release_retained(d, 0, 0), -EPERM);
	assert_int_equal(coord_reg_info(d, 0, &ri), 0);
	assert_int_equal(ri.counterpart, 1);

	/* a counterpart that leaves loses it at once, lease or not */
	coord_close(c);
	assert_int_equal(coord_register(d, 0, 1000), 0);
	assert_int_equal(coord_release_retained(d, 0, 0), 0);
	assert_int_equal(coord_unregister(d, 0), 0);
	assert_int_equal(coord_node_info(d, 0, &ni), 0);
	assert_int_equal(ni.state, COORD_ABSENT);
	assert_int_equal(coord_register(d, 0, 1000), -EINVAL);     /* nothing to recover */
	assert_int_equal(coord_local_check(d), 0);
	coord_close(a);
	coord_close(d);
	coord_close(e);
}

/* ---- read-only attach and layout ---- */

static void test_readonly_attach(void **state)
{
	struct tenv *t = *state;
	struct coord_config cfg = cfg_of(t, 0);
	struct coord *ro = NULL;
	struct coord_node_info ni;
	uint32_t s[4];

	assert_int_equal(coord_attach_readonly(&cfg, &ro), -ENOENT);
	assert_false(segment_exists(t));
	struct coord *a = open_node(t, 0);
	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	assert_int_equal(coord_attach_readonly(&cfg, &ro), 0);
	assert_int_equal(coord_node_info(ro, 0, &ni), 0);
	assert_int_equal(ni.state, COORD_LIVE);
	assert_int_equal(held_mode(ro, R(1), 0, NULL), COORD_EX);
	assert_int_equal(coord_silent_nodes(ro, s, 4), 0);
	assert_int_equal(coord_lock(ro, R(2), COORD_SH, 0), -EROFS);
	assert_int_equal(coord_heartbeat(ro), -EROFS);
	assert_int_equal(coord_register(ro, 1, 100), -EROFS);
	struct coord_progress pg;
	memset(&pg, 0, sizeof(pg));
	assert_int_equal(coord_set_progress(ro, 1, &pg), -EROFS);
	assert_int_equal(coord_progress(ro, 1, &pg), -ENOENT);
	assert_int_equal(coord_declare_dead(ro, 0), -EROFS);
	coord_close(a);
	assert_true(segment_exists(t));         /* the reader keeps it */
	assert_int_equal(coord_node_info(ro, 0, &ni), 0);
	assert_int_equal(ni.state, COORD_ABSENT);
	coord_close(ro);
	assert_false(segment_exists(t));
}

static void test_layout_mismatch(void **state)
{
	struct tenv *t = *state;
	char junk[8192];
	struct coord *a = NULL;

	memset(junk, 0x5a, sizeof(junk));
	int fd = shm_open(t->name, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));

	/* someone attached (it holds the attach lock): refused */
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1 };
	assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
	assert_int_equal(try_open(t, 0, &a), -EPROTO);
	struct coord_config cfg = cfg_of(t, 0);
	assert_int_equal(coord_attach_readonly(&cfg, &a), -EPROTO);

	/* nobody attached: rebuilt */
	fl.l_type = F_UNLCK;
	assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
	close(fd);
	a = open_node(t, 0);
	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
}

/* ---- several processes ---- */

static int write_all(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

static int read_all(int fd, void *buf, size_t len)
{
	return read(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

struct handover_cb {
	struct coord *c;
	int fd;                 /* reports (res, wanted) */
};

static void handover_cb(void *arg, uint64_t res, enum coord_mode wanted)
{
	struct handover_cb *h = arg;
	uint64_t msg[2] = { res, (uint64_t)wanted };
	coord_unlock(h->c, res);
	if (h->fd >= 0)
		write_all(h->fd, msg, sizeof(msg));
}

/* Two processes contend for an EX lock; each hands it over from its
 * blocking callback. */
static void test_mp_handover(void **state)
{
	struct tenv *t = *state;
	int to_parent[2], to_child[2];
	char ch;

	assert_int_equal(pipe(to_parent), 0);
	assert_int_equal(pipe(to_child), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct coord *c;
		struct handover_cb h = { .fd = to_parent[1] };
		if (try_open(t, 1, &c))
			_exit(10);
		h.c = c;
		coord_set_blocking_cb(c, handover_cb, &h);
		if (coord_lock(c, R(1), COORD_EX, 0))
			_exit(11);
		write_all(to_parent[1], "L", 1);
		if (read_all(to_child[0], &ch, 1))      /* parent got it */
			_exit(12);
		h.fd = -1;
		if (coord_lock(c, R(1), COORD_SH, 5000))        /* and back */
			_exit(13);
		coord_close(c);
		_exit(0);
	}
	assert_int_equal(read_all(to_parent[0], &ch, 1), 0);
	struct coord *p = open_node(t, 0);
	struct handover_cb ph = { .c = p, .fd = -1 };
	coord_set_blocking_cb(p, handover_cb, &ph);
	assert_int_equal(coord_lock(p, R(1), COORD_EX, 5000), 0);
	uint64_t msg[2];
	assert_int_equal(read_all(to_parent[0], msg, sizeof(msg)), 0);
	assert_int_equal(msg[0], R(1));
	assert_int_equal(msg[1], COORD_EX);
	assert_int_equal(write_all(to_child[1], "G", 1), 0);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(held_mode(p, R(1), 0, NULL), COORD_NL);   /* handed back */
	assert_int_equal(coord_local_check(p), 0);
	coord_close(p);
	close(to_parent[0]);
	close(to_parent[1]);
	close(to_child[0]);
	close(to_child[1]);
}

static enum coord_local_point kill_point;

static void kill_hook(enum coord_local_point pt)
{
	if (pt == kill_point)
		raise(SIGKILL);
}

/* Run fn in a child that installs the hook when fn says so; the child
 * must die by SIGKILL at the point. */
static void run_until_killed(struct tenv *t, enum coord_local_point pt,
			     void (*fn)(struct tenv *t, void *arg), void *arg)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		kill_point = pt;
		fn(t, arg);
		_exit(3);               /* the point was never reached */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("point %d: child did not die at the point (status %#x)", pt, status);
}

static void arm(void)
{
	coord_local_set_step_hook(kill_hook);
}

struct kctx {
	uint64_t res1, res2;
};

static void child_join(struct tenv *t, void *arg)
{
	struct coord *c;
	arm();
	try_open(t, 1, &c);
}

static void child_insert(struct tenv *t, void *arg)
{
	struct coord *c;
	if (try_open(t, 1, &c))
		_exit(4);
	arm();
	coord_lock(c, R(1), COORD_EX, 0);
}

static void child_wait(struct tenv *t, void *arg)
{
	struct coord *c;
	if (try_open(t, 1, &c))
		_exit(4);
	arm();
	coord_lock(c, R(1), COORD_EX, 5000);
}

static void child_upgrade(struct tenv *t, void *arg)
{
	struct coord *c;
	if (try_open(t, 1, &c) || coord_lock(c, R(1), COORD_SH, 0))
		_exit(4);
	arm();
	coord_lock(c, R(1), COORD_EX, 0);
}

static void child_downgrade(struct tenv *t, void *arg)
{
	struct coord *c;
	if (try_open(t, 1, &c) || coord_lock(c, R(1), COORD_EX, 0))
		_exit(4);
	arm();
	coord_downgrade(c, R(1), COORD_SH);
}

static void child_shift(struct tenv *t, void *arg)
{
	struct kctx *k = arg;
	struct coord *c;
	if (try_open(t, 1, &c) || coord_lock(c, k->res1, COORD_EX, 0) ||
	    coord_lock(c, k->res2, COORD_EX, 0))
		_exit(4);
	arm();
	coord_unlock(c, k->res1);
}

static void child_leave(struct tenv *t, void *arg)
{
	struct coord *c;
	if (try_open(t, 1, &c) || coord_lock(c, R(1), COORD_EX, 0) ||
	    coord_lock(c, R(2), COORD_SH, 0))
		_exit(4);
	arm();
	coord_close(c);
}

static void child_declare(struct tenv *t, void *arg)
{
	struct coord *c;
	if (try_open(t, 1, &c))
		_exit(4);
	arm();
	coord_declare_dead(c, 2);
}

static void child_register(struct tenv *t, void *arg)
{
	struct coord *c;
	if (try_open(t, 1, &c))
		_exit(4);
	arm();
	coord_register(c, 2, 60000);
}

static void child_plock_split(struct tenv *t, void *arg)
{
	struct coord *c;
	struct coord_plock p = {
		.ino = 5, .owner = 1, .kind = COORD_PLOCK_POSIX, .type = COORD_PLOCK_WR,
		.start = 0, .end = 99,
	};
	if (try_open(t, 1, &c) || coord_plock_set(c, &p, false, NULL, NULL))
		_exit(4);
	arm();
	p.type = COORD_PLOCK_UNLCK;
	p.start = 40;
	p.end = 59;
	coord_plock_set(c, &p, false, NULL, NULL);
}

/* The child (slot 1) is gone: declare it dead from p. */
static void bury_child(struct coord *p)
{
	uint32_t s[4];
	assert_int_equal(coord_silent_nodes(p, s, 4), 1);       /* at once: pid gone */
	assert_int_equal(s[0], 1);
	assert_int_equal(coord_declare_dead(p, 1), 0);
}

static void test_mp_killed_holding_mutex(void **state)
{
	struct tenv *t = *state;
	struct coord *p = open_node(t, 0);
	struct coord_node_info ni;
	struct coord *c1 = NULL;

	/* JOIN: the slot stays free */
	run_until_killed(t, COORD_LP_JOIN, child_join, NULL);
	assert_int_equal(coord_local_check(p), 0);
	assert_int_equal(coord_node_info(p, 1, &ni), 0);
	assert_int_equal(ni.state, COORD_ABSENT);
	c1 = open_node(t, 1);
	coord_close(c1);

	/* INSERT: no lock was granted */
	run_until_killed(t, COORD_LP_INSERT, child_insert, NULL);
	assert_int_equal(coord_local_check(p), 0);
	assert_int_equal(coord_lock(p, R(1), COORD_EX, 0), 0);
	bury_child(p);
	assert_int_equal(coord_node_info(p, 1, &ni), 0);
	assert_int_equal(ni.retained_locks, 0);
	assert_int_equal(coord_register(p, 1, 1000), 0);
	assert_int_equal(coord_unregister(p, 1), 0);

	/* WAIT (p holds R1): the record is completed, the wait ends with
	 * the node */
	run_until_killed(t, COORD_LP_WAIT, child_wait, NULL);
	assert_int_equal(coord_local_check(p), 0);
	bury_child(p);
	assert_int_equal(coord_local_check(p), 0);
	assert_int_equal(coord_register(p, 1, 1000), 0);
	assert_int_equal(coord_unregister(p, 1), 0);
	assert_int_equal(coord_unlock(p, R(1)), 0);
	assert_int_equal(count_locks(p), 0);

	/* UPGRADE and DOWNGRADE: the dead holder keeps EX */
	void (*conv[2])(struct tenv *, void *) = { child_upgrade, child_downgrade };
	enum coord_local_point conv_pt[2] = { COORD_LP_UPGRADE, COORD_LP_DOWNGRADE };
	for (int i = 0; i < 2; i++) {
		run_until_killed(t, conv_pt[i], conv[i], NULL);
		assert_int_equal(coord_local_check(p), 0);
		assert_int_equal(held_mode(p, R(1), 1, NULL), COORD_EX);
		assert_int_equal(coord_lock(p, R(1), COORD_SH, 0), -ETIMEDOUT);
		bury_child(p);
		assert_int_equal(coord_register(p, 1, 1000), 0);
		assert_int_equal(coord_release_retained(p, 1, R(1)), 0);
		assert_int_equal(coord_unregister(p, 1), 0);
		assert_int_equal(coord_lock(p, R(1), COORD_SH, 0), 0);
		assert_int_equal(coord_unlock(p, R(1)), 0);
	}

	/* SHIFT_HOLE and SHIFT_DUP: two resources with one home slot */
	struct kctx k = { .res1 = R(1000) };
	for (uint64_t i = 1001;; i++) {
		if (coord_local_home(R(i)) == coord_local_home(k.res1)) {
			k.res2 = R(i);
			break;
		}
	}
	enum coord_local_point shift_pt[2] = { COORD_LP_SHIFT_HOLE, COORD_LP_SHIFT_DUP };
	for (int i = 0; i < 2; i++) {
		run_until_killed(t, shift_pt[i], child_shift, &k);
		assert_int_equal(coord_local_check(p), 0);
		assert_int_equal(held_mode(p, k.res1, 1, NULL), COORD_NL);
		assert_int_equal(held_mode(p, k.res2, 1, NULL), COORD_EX);
		assert_int_equal(coord_lock(p, k.res2, COORD_SH, 0), -ETIMEDOUT);
		assert_int_equal(coord_lock(p, k.res1, COORD_EX, 0), 0);
		assert_int_equal(coord_unlock(p, k.res1), 0);
		bury_child(p);
		assert_int_equal(coord_register(p, 1, 1000), 0);
		assert_int_equal(coord_release_retained(p, 1, 0), 0);
		assert_int_equal(coord_unregister(p, 1), 0);
		assert_int_equal(count_locks(p), 0);
	}

	/* LEAVE: the locks are gone, the node is still LIVE (silent) */
	run_until_killed(t, COORD_LP_LEAVE, child_leave, NULL);
	assert_int_equal(coord_local_check(p), 0);
	assert_int_equal(count_locks(p), 0);
	bury_child(p);
	assert_int_equal(coord_register(p, 1, 1000), 0);
	assert_int_equal(coord_unregister(p, 1), 0);

	/* DECLARE: slot 2 (this process) has a waiter; the child declares
	 * it dead and dies before clearing its waits */
	struct coord *v = open_node(t, 2);
	struct locker l;
	assert_int_equal(coord_lock(v, R(7), COORD_EX, 0), 0);
	assert_int_equal(coord_lock(p, R(8), COORD_EX, 0), 0);
	locker_start(&l, v, R(8), COORD_EX, LONG_MS);
	wait_for_waiters(p, R(8), 1);
	advance_ms(t, DEAD_MS);
	assert_int_equal(coord_heartbeat(p), 0);
	run_until_killed(t, COORD_LP_DECLARE, child_declare, NULL);
	assert_int_equal(coord_local_check(p), 0);      /* repairs, wakes the waiter */
	assert_int_equal(locker_join(&l), -ESTALE);
	assert_int_equal(coord_local_check(p), 0);
	assert_int_equal(coord_node_info(p, 2, &ni), 0);
	assert_int_equal(ni.state, COORD_DEAD);
	assert_int_equal(ni.retained_locks, 1);
	bury_child(p);
	assert_int_equal(coord_register(p, 1, 1000), 0);
	assert_int_equal(coord_unregister(p, 1), 0);

	/* REGISTER: the registration of slot 2 stays INACTIVE */
	struct coord_reg_info ri;
	run_until_killed(t, COORD_LP_REGISTER, child_register, NULL);
	assert_int_equal(coord_local_check(p), 0);
	assert_int_equal(coord_reg_info(p, 2, &ri), 0);
	assert_int_equal(ri.status, COORD_REG_INACTIVE);
	assert_int_equal(coord_register(p, 2, 1000), 0);
	assert_int_equal(coord_release_retained(p, 2, 0), 0);
	assert_int_equal(coord_unregister(p, 2), 0);
	uint32_t s[4];
	assert_int_equal(coord_silent_nodes(p, s, 4), 1);
	assert_int_equal(coord_declare_dead(p, 1), 0);
	assert_int_equal(coord_register(p, 1, 1000), 0);
	assert_int_equal(coord_unregister(p, 1), 0);
	assert_int_equal(coord_unlock_all(p), 0);
	assert_int_equal(coord_local_check(p), 0);
	coord_close(v);
	coord_close(p);
	assert_false(segment_exists(t));
}

/* A process holding locks is killed: declared dead, its locks are
 * retained until its counterpart releases them. */
static void test_mp_killed_holder_retained(void **state)
{
	struct tenv *t = *state;
	int to_parent[2];
	char ch;

	assert_int_equal(pipe(to_parent), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct coord *c;
		if (try_open(t, 1, &c) || coord_lock(c, R(1), COORD_EX, 0) ||
		    coord_lock(c, R(2), COORD_SH, 0))
			_exit(4);
		write_all(to_parent[1], "L", 1);
		for (;;)
			pause();
	}
	assert_int_equal(read_all(to_parent[0], &ch, 1), 0);
	struct coord *p = open_node(t, 0), *q = open_node(t, 2);
	struct locker l;
	struct coord_node_info ni;
	uint32_t s[4];

	locker_start(&l, p, R(1), COORD_EX, LONG_MS);
	wait_for_waiters(p, R(1), 1);
	assert_int_equal(coord_silent_nodes(p, s, 4), 0);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(coord_silent_nodes(p, s, 4), 1);
	assert_int_equal(s[0], 1);
	assert_int_equal(coord_declare_dead(p, 1), 0);
	assert_int_equal(coord_node_info(q, 1, &ni), 0);
	assert_int_equal(ni.state, COORD_DEAD);
	assert_int_equal(ni.retained_locks, 2);
	assert_false(locker_wait(&l, SETTLE_MS));
	assert_int_equal(coord_lock(q, R(2), COORD_SH, 0), 0);
	assert_int_equal(coord_lock(q, R(3), COORD_EX, 0), 0);
	assert_int_equal(coord_register(q, 1, 5000), 0);
	assert_int_equal(coord_release_retained(p, 1, 0), -EPERM);
	assert_int_equal(coord_release_retained(q, 1, 0), 0);
	assert_int_equal(locker_join(&l), 0);
	assert_int_equal(coord_unregister(q, 1), 0);
	assert_int_equal(coord_node_info(q, 1, &ni), 0);
	assert_int_equal(ni.state, COORD_ABSENT);
	assert_int_equal(coord_local_check(p), 0);
	coord_close(p);
	coord_close(q);
	close(to_parent[0]);
	close(to_parent[1]);
}

/* Every node died (one while it recovered another); the next mount of
 * each slot comes up. */
static void test_mp_restart_after_all_died(void **state)
{
	struct tenv *t = *state;
	int to_parent[2];
	char ch;
	pid_t pid[2];

	assert_int_equal(pipe(to_parent), 0);
	for (int i = 0; i < 2; i++) {
		uint32_t slot = i == 0 ? 2 : 1;
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			struct coord *c;
			if (try_open(t, slot, &c) || coord_lock(c, R(slot), COORD_EX, 0))
				_exit(4);
			/* slot 1 finds slot 2 gone and starts recovering it */
			if (slot == 1 && (coord_declare_dead(c, 2) || coord_register(c, 2, 600000)))
				_exit(5);
			write_all(to_parent[1], "L", 1);
			for (;;)
				pause();
		}
		assert_int_equal(read_all(to_parent[0], &ch, 1), 0);
		kill(pid[i], SIGKILL);
		assert_int_equal(waitpid(pid[i], NULL, 0), pid[i]);
	}

	/* slot 1 mounts again: it takes its silent record over, with its lock */
	struct coord *c1 = open_node(t, 1);
	struct coord_node_info ni;
	struct coord_reg_info ri;
	assert_int_equal(coord_node_info(c1, 1, &ni), 0);
	assert_int_equal(ni.pid, getpid());
	assert_int_equal(held_mode(c1, R(1), 1, NULL), COORD_EX);
	/* the registration of slot 2 belonged to the previous incarnation */
	assert_int_equal(coord_reg_info(c1, 2, &ri), 0);
	assert_int_equal(ri.status, COORD_REG_ACTIVE);
	assert_int_equal(coord_renew(c1, 2, 1000), -EPERM);
	assert_int_equal(coord_register(c1, 2, 1000), 0);
	assert_int_equal(coord_release_retained(c1, 2, 0), 0);
	assert_int_equal(coord_unregister(c1, 2), 0);
	assert_int_equal(coord_unlock_all(c1), 0);       /* own backout done */
	struct coord *c2 = open_node(t, 2);
	assert_int_equal(coord_lock(c2, R(1), COORD_EX, 0), 0);
	assert_int_equal(coord_lock(c2, R(2), COORD_EX, 0), 0);
	assert_int_equal(coord_local_check(c2), 0);
	coord_close(c1);
	coord_close(c2);
	assert_false(segment_exists(t));
	close(to_parent[0]);
	close(to_parent[1]);
}

/* ---- advisory locks (flock and fcntl byte ranges) ---- */

#define PL_EOF COORD_PLOCK_EOF

static struct coord_plock pl(uint64_t ino, uint64_t owner, enum coord_plock_type type,
			     uint64_t start, uint64_t end)
{
	return (struct coord_plock){ .ino = ino, .owner = owner, .pid = (int32_t)(1000 + owner),
				     .kind = COORD_PLOCK_POSIX, .type = type, .start = start,
				     .end = end };
}

static struct coord_plock fl(uint64_t ino, uint64_t owner, enum coord_plock_type type)
{
	struct coord_plock p = pl(ino, owner, type, 0, PL_EOF);
	p.kind = COORD_PLOCK_FLOCK;
	return p;
}

static int pl_set(struct coord *c, struct coord_plock p)
{
	return coord_plock_set(c, &p, false, NULL, NULL);
}

/* The conflicting lock coord_plock_test reports (type UNLCK: none). */
static struct coord_plock pl_test(struct coord *c, struct coord_plock p)
{
	assert_int_equal(coord_plock_test(c, &p), 0);
	return p;
}

static int pl_cmp(const void *a, const void *b)
{
	const struct coord_plock *x = a, *y = b;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* The locks of ino, sorted, as "slot:owner:T:start-end " (end E = EOF). */
static const char *pl_dump(struct coord *c, uint64_t ino)
{
	static struct coord_plock v[COORD_PLOCK_MAX];
	static char buf[4096];
	int n = coord_plocks(c, v, COORD_PLOCK_MAX), k = 0;
	size_t len = 0;
	assert_true(n >= 0);
	for (int i = 0; i < n; i++)
		if (v[i].ino == ino)
			v[k++] = v[i];
	qsort(v, (size_t)k, sizeof(v[0]), pl_cmp);
	buf[0] = '\0';
	for (int i = 0; i < k && len < sizeof(buf) - 80; i++) {
		char end[32];
		if (v[i].end == PL_EOF)
			snprintf(end, sizeof(end), "E");
		else
			snprintf(end, sizeof(end), "%llu", (unsigned long long)v[i].end);
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%u:%llu:%s%s:%llu-%s ",
					v[i].slot, (unsigned long long)v[i].owner,
					v[i].kind == COORD_PLOCK_FLOCK ? "f" : "",
					v[i].type == COORD_PLOCK_WR ? "W" : "R",
					(unsigned long long)v[i].start, end);
	}
	return buf;
}

static void test_plock_args(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0);
	struct coord_plock p = pl(0, 1, COORD_PLOCK_WR, 0, 9);

	assert_int_equal(pl_set(a, p), -EINVAL);                   /* ino 0 */
	p = pl(5, 1, COORD_PLOCK_WR, 10, 9);
	assert_int_equal(pl_set(a, p), -EINVAL);                   /* start > end */
	p = pl(5, 1, (enum coord_plock_type)3, 0, 9);
	assert_int_equal(pl_set(a, p), -EINVAL);
	p = pl(5, 1, COORD_PLOCK_WR, 0, 9);
	p.kind = (enum coord_plock_kind)2;
	assert_int_equal(pl_set(a, p), -EINVAL);
	p = pl(5, 1, COORD_PLOCK_UNLCK, 0, 9);
	assert_int_equal(coord_plock_test(a, &p), -EINVAL);        /* nothing to test */
	assert_int_equal(coord_plock_set(a, NULL, false, NULL, NULL), -EINVAL);
	assert_int_equal(coord_plock_release_owner(a, 5, 1, (enum coord_plock_kind)7), -EINVAL);
	/* the slot is the caller's, whatever the request says */
	p = pl(5, 1, COORD_PLOCK_WR, 0, 9);
	p.slot = 3;
	assert_int_equal(pl_set(a, p), 0);
	assert_string_equal(pl_dump(a, 5), "0:1:W:0-9 ");
	/* unlocking what is not held is fine (POSIX) */
	assert_int_equal(pl_set(a, pl(5, 2, COORD_PLOCK_UNLCK, 0, PL_EOF)), 0);
	assert_int_equal(pl_set(a, fl(5, 2, COORD_PLOCK_UNLCK)), 0);

	struct coord_config cfg = cfg_of(t, 0);
	struct coord *ro = NULL;
	assert_int_equal(coord_attach_readonly(&cfg, &ro), 0);
	p = pl(5, 1, COORD_PLOCK_WR, 0, 9);
	assert_int_equal(coord_plock_set(ro, &p, false, NULL, NULL), -EROFS);
	assert_int_equal(coord_plock_test(ro, &p), -EROFS);
	assert_int_equal(coord_plock_release_owner(ro, 5, 1, COORD_PLOCK_POSIX), -EROFS);
	struct coord_plock v[4];
	assert_int_equal(coord_plocks(ro, v, 4), 1);               /* a snapshot reads */
	coord_close(ro);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
}

static void test_plock_conflicts(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct coord_plock r;

	assert_int_equal(pl_set(a, pl(7, 1, COORD_PLOCK_WR, 100, 199)), 0);
	/* another node: overlapping ranges conflict, touching ones do not */
	assert_int_equal(pl_set(b, pl(7, 1, COORD_PLOCK_WR, 150, 160)), -EAGAIN);
	assert_int_equal(pl_set(b, pl(7, 1, COORD_PLOCK_RD, 199, 300)), -EAGAIN);
	assert_int_equal(pl_set(b, pl(7, 1, COORD_PLOCK_RD, 0, 100)), -EAGAIN);
	assert_int_equal(pl_set(b, pl(7, 1, COORD_PLOCK_WR, 200, 299)), 0);
	assert_int_equal(pl_set(b, pl(7, 1, COORD_PLOCK_WR, 0, 99)), 0);
	/* another owner of the same node conflicts too; the owner never */
	assert_int_equal(pl_set(a, pl(7, 2, COORD_PLOCK_RD, 100, 100)), -EAGAIN);
	assert_int_equal(pl_set(a, pl(7, 1, COORD_PLOCK_WR, 120, 130)), 0);
	/* other inodes are independent */
	assert_int_equal(pl_set(b, pl(8, 1, COORD_PLOCK_WR, 0, PL_EOF)), 0);

	/* F_GETLK reports the conflicting lock of the other node, its pid
	 * visible (one pid namespace) */
	r = pl_test(b, pl(7, 1, COORD_PLOCK_RD, 150, 150));
	assert_int_equal(r.type, COORD_PLOCK_WR);
	assert_int_equal(r.start, 100);
	assert_int_equal(r.end, 199);
	assert_int_equal(r.slot, 0);
	assert_int_equal(r.owner, 1);
	assert_int_equal(r.pid, 1001);
	r = pl_test(b, pl(7, 1, COORD_PLOCK_WR, 0, 99));           /* its own */
	assert_int_equal(r.type, COORD_PLOCK_UNLCK);
	r = pl_test(a, pl(7, 9, COORD_PLOCK_RD, 250, PL_EOF));
	assert_int_equal(r.type, COORD_PLOCK_WR);
	assert_int_equal(r.slot, 1);
	assert_int_equal(r.start, 200);
	r = pl_test(a, pl(7, 9, COORD_PLOCK_RD, 300, PL_EOF));
	assert_int_equal(r.type, COORD_PLOCK_UNLCK);

	/* readers share */
	assert_int_equal(pl_set(a, pl(9, 1, COORD_PLOCK_RD, 0, PL_EOF)), 0);
	assert_int_equal(pl_set(b, pl(9, 1, COORD_PLOCK_RD, 10, 20)), 0);
	assert_int_equal(pl_set(b, pl(9, 2, COORD_PLOCK_RD, 0, 0)), 0);
	assert_int_equal(pl_set(b, pl(9, 1, COORD_PLOCK_WR, 10, 20)), -EAGAIN); /* upgrade waits */
	r = pl_test(b, pl(9, 1, COORD_PLOCK_WR, 10, 20));
	assert_int_equal(r.type, COORD_PLOCK_RD);
	assert_int_equal(r.slot, 0);
	/* a failed request changed nothing */
	assert_string_equal(pl_dump(a, 9), "0:1:R:0-E 1:2:R:0-0 1:1:R:10-20 ");
	/* POSIX and flock locks live apart */
	assert_int_equal(pl_set(b, fl(7, 5, COORD_PLOCK_WR)), 0);
	assert_int_equal(pl_set(a, fl(7, 5, COORD_PLOCK_RD)), -EAGAIN);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
}

static void test_plock_ranges(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0);

	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_WR, 0, 99)), 0);
	/* unlock in the middle splits */
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_UNLCK, 40, 59)), 0);
	assert_string_equal(pl_dump(a, 3), "0:1:W:0-39 0:1:W:60-99 ");
	/* a downgrade over a part */
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_RD, 50, 69)), 0);
	assert_string_equal(pl_dump(a, 3), "0:1:W:0-39 0:1:R:50-69 0:1:W:70-99 ");
	/* touching the same type merges; another type next to it stays */
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_WR, 40, 49)), 0);
	assert_string_equal(pl_dump(a, 3), "0:1:W:0-49 0:1:R:50-69 0:1:W:70-99 ");
	/* an upgrade joins everything */
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_WR, 50, 69)), 0);
	assert_string_equal(pl_dump(a, 3), "0:1:W:0-99 ");
	/* a downgrade strictly inside splits in three */
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_RD, 10, 19)), 0);
	assert_string_equal(pl_dump(a, 3), "0:1:W:0-9 0:1:R:10-19 0:1:W:20-99 ");
	/* overlapping the same type extends, and to EOF */
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_WR, 90, PL_EOF)), 0);
	assert_string_equal(pl_dump(a, 3), "0:1:W:0-9 0:1:R:10-19 0:1:W:20-E ");
	/* unlock over the ends of two locks */
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_UNLCK, 5, 24)), 0);
	assert_string_equal(pl_dump(a, 3), "0:1:W:0-4 0:1:W:25-E ");
	/* relocking what is held is a no-op */
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_WR, 30, 40)), 0);
	assert_string_equal(pl_dump(a, 3), "0:1:W:0-4 0:1:W:25-E ");
	/* reads touching on both sides merge into one */
	assert_int_equal(pl_set(a, pl(3, 2, COORD_PLOCK_RD, 1000, 1000)), -EAGAIN);
	assert_int_equal(pl_set(a, pl(4, 2, COORD_PLOCK_RD, 0, 9)), 0);
	assert_int_equal(pl_set(a, pl(4, 2, COORD_PLOCK_RD, 20, 29)), 0);
	assert_int_equal(pl_set(a, pl(4, 2, COORD_PLOCK_RD, 10, 19)), 0);
	assert_string_equal(pl_dump(a, 4), "0:2:R:0-29 ");
	/* an unlock of everything */
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_UNLCK, 0, PL_EOF)), 0);
	assert_string_equal(pl_dump(a, 3), "");
	/* the last byte of the range space */
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_WR, PL_EOF, PL_EOF)), 0);
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_WR, 0, PL_EOF - 1)), 0);
	assert_string_equal(pl_dump(a, 3), "0:1:W:0-E ");
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
}

static void test_plock_flock(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);

	assert_int_equal(pl_set(a, fl(2, 1, COORD_PLOCK_WR)), 0);
	assert_int_equal(pl_set(b, fl(2, 1, COORD_PLOCK_WR)), -EAGAIN);
	assert_int_equal(pl_set(b, fl(2, 1, COORD_PLOCK_RD)), -EAGAIN);
	assert_int_equal(pl_set(a, fl(2, 2, COORD_PLOCK_RD)), -EAGAIN);    /* another fd */
	assert_int_equal(pl_set(a, fl(2, 1, COORD_PLOCK_WR)), 0);          /* again */
	/* a range in a flock request means nothing: whole file */
	struct coord_plock p = fl(2, 1, COORD_PLOCK_RD);
	p.start = 5;
	p.end = 6;
	assert_int_equal(coord_plock_set(a, &p, false, NULL, NULL), 0);         /* downgrade */
	assert_string_equal(pl_dump(a, 2), "0:1:fR:0-E ");
	assert_int_equal(pl_set(b, fl(2, 1, COORD_PLOCK_RD)), 0);
	/* converting to EX against another SH holder fails, and (as on
	 * Linux) the old SH is gone */
	assert_int_equal(pl_set(a, fl(2, 1, COORD_PLOCK_WR)), -EAGAIN);
	assert_string_equal(pl_dump(a, 2), "1:1:fR:0-E ");
	struct coord_plock r = pl_test(a, fl(2, 1, COORD_PLOCK_WR));
	assert_int_equal(r.type, COORD_PLOCK_RD);
	assert_int_equal(r.kind, COORD_PLOCK_FLOCK);
	assert_int_equal(r.slot, 1);
	assert_int_equal(pl_set(b, fl(2, 1, COORD_PLOCK_UNLCK)), 0);
	assert_int_equal(pl_set(a, fl(2, 1, COORD_PLOCK_WR)), 0);
	/* POSIX locks of the same owner and file are another thing */
	assert_int_equal(pl_set(b, pl(2, 1, COORD_PLOCK_WR, 0, PL_EOF)), 0);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
}

static void test_plock_release(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);

	assert_int_equal(pl_set(a, pl(2, 1, COORD_PLOCK_WR, 0, 9)), 0);
	assert_int_equal(pl_set(a, pl(2, 1, COORD_PLOCK_RD, 20, 29)), 0);
	assert_int_equal(pl_set(a, pl(3, 1, COORD_PLOCK_WR, 0, 9)), 0);
	assert_int_equal(pl_set(a, fl(2, 1, COORD_PLOCK_WR)), 0);
	assert_int_equal(pl_set(a, pl(2, 2, COORD_PLOCK_WR, 50, 59)), 0);
	assert_int_equal(pl_set(b, pl(2, 1, COORD_PLOCK_WR, 100, 109)), 0);   /* same id, b */
	/* one owner's POSIX locks of one inode (a close) */
	assert_int_equal(coord_plock_release_owner(a, 2, 1, COORD_PLOCK_POSIX), 2);
	assert_string_equal(pl_dump(a, 2), "0:1:fW:0-E 0:2:W:50-59 1:1:W:100-109 ");
	assert_string_equal(pl_dump(a, 3), "0:1:W:0-9 ");
	assert_int_equal(coord_plock_release_owner(a, 2, 1, COORD_PLOCK_POSIX), 0);
	/* flock apart */
	assert_int_equal(coord_plock_release_owner(a, 2, 1, COORD_PLOCK_FLOCK), 1);
	/* every inode */
	assert_int_equal(pl_set(a, pl(4, 1, COORD_PLOCK_WR, 0, 9)), 0);
	assert_int_equal(coord_plock_release_owner(a, 0, 1, COORD_PLOCK_POSIX), 2);
	assert_string_equal(pl_dump(a, 3), "");
	assert_string_equal(pl_dump(a, 2), "0:2:W:50-59 1:1:W:100-109 ");
	/* leaving drops the node's locks */
	coord_close(a);
	assert_string_equal(pl_dump(b, 2), "1:1:W:100-109 ");
	assert_int_equal(coord_local_check(b), 0);
	coord_close(b);
}

/* ---- a waiting advisory lock request on its own thread ---- */

/* The cancel callback: is the int at arg set? */
static bool flag_set(void *arg)
{
	return __atomic_load_n((int *)arg, __ATOMIC_SEQ_CST) != 0;
}

struct plocker {
	pthread_t th;
	struct coord *c;
	struct coord_plock p;
	int cancel;
	int result;
	bool done;
};

static void *plocker_main(void *arg)
{
	struct plocker *l = arg;
	int r = coord_plock_set(l->c, &l->p, true, flag_set, &l->cancel);
	__atomic_store_n(&l->result, r, __ATOMIC_SEQ_CST);
	__atomic_store_n(&l->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

static void plocker_start(struct plocker *l, struct coord *c, struct coord_plock p)
{
	memset(l, 0, sizeof(*l));
	l->c = c;
	l->p = p;
	assert_int_equal(pthread_create(&l->th, NULL, plocker_main, l), 0);
}

static bool plocker_wait(struct plocker *l, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	while (!__atomic_load_n(&l->done, __ATOMIC_SEQ_CST) && now_ms() < end)
		sleep_ms(1);
	return __atomic_load_n(&l->done, __ATOMIC_SEQ_CST);
}

static int plocker_join(struct plocker *l)
{
	pthread_join(l->th, NULL);
	return l->result;
}

static void test_plock_wait_wakeup(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct plocker w1, w2, w3;

	assert_int_equal(pl_set(a, pl(6, 1, COORD_PLOCK_WR, 0, 99)), 0);
	assert_int_equal(pl_set(a, fl(6, 1, COORD_PLOCK_WR)), 0);
	plocker_start(&w1, b, pl(6, 1, COORD_PLOCK_WR, 50, 50));
	plocker_start(&w2, b, pl(6, 2, COORD_PLOCK_RD, 0, 9));
	plocker_start(&w3, b, fl(6, 3, COORD_PLOCK_RD));
	assert_false(plocker_wait(&w1, SETTLE_MS));
	assert_false(plocker_wait(&w2, 1));
	assert_false(plocker_wait(&w3, 1));
	/* unlocking an unrelated range wakes nobody who can go on */
	assert_int_equal(pl_set(a, pl(6, 1, COORD_PLOCK_UNLCK, 60, 99)), 0);
	assert_false(plocker_wait(&w1, SETTLE_MS));
	/* a downgrade lets the reader in, not the writer */
	assert_int_equal(pl_set(a, pl(6, 1, COORD_PLOCK_RD, 0, 59)), 0);
	assert_true(plocker_wait(&w2, 5000));
	assert_int_equal(plocker_join(&w2), 0);
	assert_false(plocker_wait(&w1, SETTLE_MS));
	/* the owner's release (a close) lets the writer in */
	assert_int_equal(coord_plock_release_owner(a, 6, 1, COORD_PLOCK_POSIX), 1);
	assert_true(plocker_wait(&w1, 5000));
	assert_int_equal(plocker_join(&w1), 0);
	/* the flock waiter wakes at the flock release */
	assert_false(plocker_wait(&w3, 1));
	assert_int_equal(pl_set(a, fl(6, 1, COORD_PLOCK_UNLCK)), 0);
	assert_true(plocker_wait(&w3, 5000));
	assert_int_equal(plocker_join(&w3), 0);
	assert_string_equal(pl_dump(a, 6), "1:2:R:0-9 1:3:fR:0-E 1:1:W:50-50 ");
	/* a node leaving wakes waiters of its locks */
	plocker_start(&w1, a, pl(6, 1, COORD_PLOCK_RD, 50, 50));
	assert_false(plocker_wait(&w1, SETTLE_MS));
	coord_close(b);
	assert_true(plocker_wait(&w1, 5000));
	assert_int_equal(plocker_join(&w1), 0);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
}

static void test_plock_interrupt(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	struct plocker w1, w2;

	assert_int_equal(pl_set(a, pl(6, 1, COORD_PLOCK_WR, 0, PL_EOF)), 0);
	plocker_start(&w1, b, pl(6, 1, COORD_PLOCK_WR, 0, 0));
	plocker_start(&w2, b, pl(6, 2, COORD_PLOCK_WR, 0, 0));
	assert_false(plocker_wait(&w1, SETTLE_MS));
	/* a wake-up without the flag changes nothing */
	assert_int_equal(coord_plock_interrupt(b), 0);
	assert_false(plocker_wait(&w1, SETTLE_MS));
	__atomic_store_n(&w1.cancel, 1, __ATOMIC_SEQ_CST);
	uint64_t t0 = now_ms();
	assert_int_equal(coord_plock_interrupt(b), 0);
	assert_true(plocker_wait(&w1, 5000));
	assert_int_equal(plocker_join(&w1), -EINTR);
	/* woken by the interrupt, not by the end of a wait slice */
	assert_true(now_ms() - t0 < 900);
	assert_false(plocker_wait(&w2, 1));                       /* only the flagged one */
	assert_string_equal(pl_dump(a, 6), "0:1:W:0-E ");
	/* a flag set without an interrupt is seen within a wait slice */
	struct plocker w4;
	plocker_start(&w4, b, pl(6, 4, COORD_PLOCK_WR, 0, 0));
	assert_false(plocker_wait(&w4, SETTLE_MS));
	__atomic_store_n(&w4.cancel, 1, __ATOMIC_SEQ_CST);
	assert_true(plocker_wait(&w4, 5000));
	assert_int_equal(plocker_join(&w4), -EINTR);
	/* a flag already set when the request arrives */
	struct coord_plock p = pl(6, 3, COORD_PLOCK_WR, 0, 0);
	int one = 1;
	assert_int_equal(coord_plock_set(b, &p, true, flag_set, &one), -EINTR);
	assert_int_equal(pl_set(a, pl(6, 1, COORD_PLOCK_UNLCK, 0, PL_EOF)), 0);
	assert_true(plocker_wait(&w2, 5000));
	assert_int_equal(plocker_join(&w2), 0);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
}

static void test_plock_deadlock(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1), *c = open_node(t, 2);
	struct plocker w1, w2;
	struct coord_plock p;

	/* two owners on two nodes */
	assert_int_equal(pl_set(a, pl(5, 1, COORD_PLOCK_WR, 0, 0)), 0);
	assert_int_equal(pl_set(b, pl(5, 1, COORD_PLOCK_WR, 1, 1)), 0);
	plocker_start(&w1, a, pl(5, 1, COORD_PLOCK_WR, 1, 1));
	assert_false(plocker_wait(&w1, SETTLE_MS));
	p = pl(5, 1, COORD_PLOCK_WR, 0, 0);
	assert_int_equal(coord_plock_set(b, &p, true, NULL, NULL), -EDEADLK);
	assert_int_equal(coord_plock_set(b, &p, false, NULL, NULL), -EAGAIN);
	/* a cycle through a third owner */
	assert_int_equal(pl_set(c, pl(5, 1, COORD_PLOCK_WR, 2, 2)), 0);
	plocker_start(&w2, b, pl(5, 1, COORD_PLOCK_WR, 2, 2));     /* b waits for c */
	assert_false(plocker_wait(&w2, SETTLE_MS));
	p = pl(5, 1, COORD_PLOCK_WR, 0, 0);                        /* c -> a -> b -> c */
	assert_int_equal(coord_plock_set(c, &p, true, NULL, NULL), -EDEADLK);
	/* no cycle: an owner that waits for something else */
	p = pl(5, 9, COORD_PLOCK_WR, 0, 0);
	struct plocker w3;
	plocker_start(&w3, c, p);
	assert_false(plocker_wait(&w3, SETTLE_MS));
	/* flock requests are never refused for deadlock (Linux neither) */
	assert_int_equal(pl_set(a, fl(5, 1, COORD_PLOCK_WR)), 0);
	/* unwinding: c's lock goes, b gets 2, then b's 1 goes, a gets it */
	assert_int_equal(pl_set(c, pl(5, 1, COORD_PLOCK_UNLCK, 0, PL_EOF)), 0);
	assert_true(plocker_wait(&w2, 5000));
	assert_int_equal(plocker_join(&w2), 0);
	assert_int_equal(pl_set(b, pl(5, 1, COORD_PLOCK_UNLCK, 1, 1)), 0);
	assert_true(plocker_wait(&w1, 5000));
	assert_int_equal(plocker_join(&w1), 0);
	assert_int_equal(coord_plock_release_owner(a, 5, 1, COORD_PLOCK_POSIX), 1);
	assert_true(plocker_wait(&w3, 5000));
	assert_int_equal(plocker_join(&w3), 0);
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
	coord_close(c);
}

static void test_plock_capacity(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1);
	static struct plocker w[COORD_PLOCK_MAX_WAITS + 1];

	for (uint32_t i = 0; i < COORD_PLOCK_MAX - 1; i++)
		assert_int_equal(pl_set(a, pl(100 + i, 1, COORD_PLOCK_WR, 0, 9)), 0);
	/* one record left: a split needs two */
	assert_int_equal(pl_set(a, pl(100, 1, COORD_PLOCK_RD, 3, 4)), -ENOLCK);
	assert_string_equal(pl_dump(a, 100), "0:1:W:0-9 ");
	assert_int_equal(pl_set(a, pl(100, 1, COORD_PLOCK_UNLCK, 3, 4)), 0);
	assert_string_equal(pl_dump(a, 100), "0:1:W:0-2 0:1:W:5-9 ");
	/* full: what is held already can be locked again */
	assert_int_equal(pl_set(a, pl(100, 1, COORD_PLOCK_WR, 6, 9)), 0);
	assert_string_equal(pl_dump(a, 100), "0:1:W:0-2 0:1:W:5-9 ");
	/* full: a new lock is refused, an unlock that needs no split is not */
	assert_int_equal(pl_set(b, pl(2, 1, COORD_PLOCK_WR, 0, 0)), -ENOLCK);
	assert_int_equal(pl_set(b, fl(2, 1, COORD_PLOCK_WR)), -ENOLCK);
	assert_int_equal(pl_set(a, pl(101, 1, COORD_PLOCK_UNLCK, 0, 9)), 0);
	assert_int_equal(pl_set(b, fl(2, 1, COORD_PLOCK_WR)), 0);

	/* waiting requests: a bounded number; of one more than the table
	 * holds, exactly one is refused, whichever came last */
	for (uint32_t i = 0; i <= COORD_PLOCK_MAX_WAITS; i++)
		plocker_start(&w[i], b, pl(102, 10 + i, COORD_PLOCK_RD, 0, 0));
	uint64_t end = now_ms() + 10000;
	uint32_t refused = COORD_PLOCK_MAX_WAITS + 1;
	while (refused > COORD_PLOCK_MAX_WAITS && now_ms() < end) {
		for (uint32_t i = 0; i <= COORD_PLOCK_MAX_WAITS; i++)
			if (__atomic_load_n(&w[i].done, __ATOMIC_SEQ_CST))
				refused = i;
		sleep_ms(1);
	}
	assert_true(refused <= COORD_PLOCK_MAX_WAITS);
	assert_int_equal(plocker_join(&w[refused]), -ENOLCK);
	assert_int_equal(coord_plock_release_owner(a, 0, 1, COORD_PLOCK_POSIX), COORD_PLOCK_MAX - 1);
	for (uint32_t i = 0; i <= COORD_PLOCK_MAX_WAITS; i++) {
		if (i == refused)
			continue;
		assert_true(plocker_wait(&w[i], 10000));
		assert_int_equal(plocker_join(&w[i]), 0);
	}
	assert_int_equal(coord_local_check(a), 0);
	coord_close(a);
	coord_close(b);
}

static void test_plock_dead_node(void **state)
{
	struct tenv *t = *state;
	struct coord *a = open_node(t, 0), *b = open_node(t, 1), *c = open_node(t, 2);
	struct plocker w1, w2, wa;
	struct coord_plock p;

	assert_int_equal(coord_lock(a, R(1), COORD_EX, 0), 0);
	assert_int_equal(pl_set(a, pl(5, 1, COORD_PLOCK_WR, 0, 9)), 0);
	assert_int_equal(pl_set(a, fl(5, 2, COORD_PLOCK_WR)), 0);
	assert_int_equal(pl_set(b, pl(5, 1, COORD_PLOCK_WR, 20, 29)), 0);
	plocker_start(&w1, c, pl(5, 1, COORD_PLOCK_RD, 5, 5));
	plocker_start(&w2, c, fl(5, 3, COORD_PLOCK_RD));
	plocker_start(&wa, a, pl(5, 1, COORD_PLOCK_RD, 25, 25));  /* a waits for b */
	assert_false(plocker_wait(&wa, SETTLE_MS));

	advance_ms(t, DEAD_MS);
	assert_int_equal(coord_heartbeat(b), 0);
	assert_int_equal(coord_heartbeat(c), 0);
	assert_int_equal(coord_declare_dead(b, 0), 0);
	/* the dead node's waiting request fails; its locks stay */
	assert_true(plocker_wait(&wa, 5000));
	assert_int_equal(plocker_join(&wa), -ESTALE);
	assert_false(plocker_wait(&w1, SETTLE_MS));
	assert_false(plocker_wait(&w2, 1));
	p = pl(5, 1, COORD_PLOCK_WR, 0, 0);
	assert_int_equal(coord_plock_set(a, &p, false, NULL, NULL), -ESTALE);
	assert_int_equal(coord_plock_test(a, &p), -ESTALE);
	assert_int_equal(coord_plock_release_owner(a, 5, 1, COORD_PLOCK_POSIX), -ESTALE);
	struct coord_plock r = pl_test(b, pl(5, 1, COORD_PLOCK_WR, 0, 0));
	assert_int_equal(r.slot, 0);
	assert_int_equal(r.type, COORD_PLOCK_WR);
	assert_int_equal(coord_local_check(b), 0);

	/* an early release of one resource keeps them */
	assert_int_equal(coord_register(b, 0, 60000), 0);
	assert_int_equal(coord_release_retained(b, 0, R(1)), 0);
	assert_false(plocker_wait(&w1, SETTLE_MS));
	/* the release of everything drops them and wakes the waiters */
	assert_int_equal(coord_release_retained(b, 0, 0), 0);
	assert_true(plocker_wait(&w1, 5000));
	assert_int_equal(plocker_join(&w1), 0);
	assert_true(plocker_wait(&w2, 5000));
	assert_int_equal(plocker_join(&w2), 0);
	assert_string_equal(pl_dump(b, 5), "2:3:fR:0-E 2:1:R:5-5 1:1:W:20-29 ");
	assert_int_equal(coord_unregister(b, 0), 0);
	coord_close(a);

	/* coord_unlock_all (after the takeover of a slot) drops them too */
	assert_int_equal(pl_set(c, pl(8, 1, COORD_PLOCK_WR, 0, 0)), 0);
	assert_string_equal(pl_dump(b, 8), "2:1:W:0-0 ");
	assert_int_equal(coord_unlock_all(c), 0);
	assert_string_equal(pl_dump(b, 8), "");
	assert_int_equal(coord_local_check(b), 0);
	coord_close(c);
	coord_close(b);
}

/* A process killed inside an advisory lock update, between the removal
 * of a range and the addition of its right part: the repair keeps the
 * table well formed, the dead node's remaining range stays until its
 * recovery. */
static void test_mp_killed_in_plock(void **state)
{
	struct tenv *t = *state;
	struct coord *p = open_node(t, 0);

	run_until_killed(t, COORD_LP_PLOCK_ADD, child_plock_split, NULL);
	assert_int_equal(coord_local_check(p), 0);
	assert_string_equal(pl_dump(p, 5), "1:1:W:0-39 ");
	assert_int_equal(pl_set(p, pl(5, 1, COORD_PLOCK_WR, 39, 39)), -EAGAIN);
	assert_int_equal(pl_set(p, pl(5, 1, COORD_PLOCK_WR, 40, 99)), 0);
	bury_child(p);
	assert_int_equal(coord_register(p, 1, 1000), 0);
	assert_string_equal(pl_dump(p, 5), "1:1:W:0-39 0:1:W:40-99 ");
	assert_int_equal(coord_release_retained(p, 1, 0), 0);
	assert_int_equal(coord_unregister(p, 1), 0);
	assert_string_equal(pl_dump(p, 5), "0:1:W:40-99 ");
	assert_int_equal(coord_local_check(p), 0);
	coord_close(p);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_spec_selects_backend),
		T(test_join_busy_leave),
		T(test_sh_sh_compatible),
		T(test_sh_ex_conflict),
		T(test_ex_ex_conflict_timeout),
		T(test_relock_noop),
		T(test_upgrade),
		T(test_downgrade),
		T(test_ex_waiter_not_starved),
		T(test_threads_of_one_node),
		T(test_wait_records_exhausted),
		T(test_close_releases_locks),
		T(test_table_capacity),
		T(test_callback_release),
		T(test_callback_downgrade),
		T(test_callback_no_release),
		T(test_callback_set_late),
		T(test_callback_overflow),
		T(test_failure_detector),
		T(test_retained_locks),
		T(test_registration),
		T(test_readonly_attach),
		T(test_layout_mismatch),
		T(test_mp_handover),
		T(test_mp_killed_holding_mutex),
		T(test_mp_killed_holder_retained),
		T(test_mp_restart_after_all_died),
		T(test_plock_args),
		T(test_plock_conflicts),
		T(test_plock_ranges),
		T(test_plock_flock),
		T(test_plock_release),
		T(test_plock_wait_wakeup),
		T(test_plock_interrupt),
		T(test_plock_deadlock),
		T(test_plock_capacity),
		T(test_plock_dead_node),
		T(test_mp_killed_in_plock),
	};
#undef T

	if (!getenv("PFS_TEST_VERBOSE"))
		pfs_log_set_level(-1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
