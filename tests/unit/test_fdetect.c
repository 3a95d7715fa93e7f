/*
 * test_fdetect.c -- the failure detector's decisions (cluster/fdetect.c,
 * include/pfs_fdetect.h), driven tick by tick with a fake clock: a peer
 * silent at the coordinator that still writes the disk is alive; one
 * silent at both for dead_ms is dead, reported once; a peer that beats
 * again is forgotten; this node fences after fence_ms of failing beats
 * or at once when declared dead.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "pfs_fdetect.h"

#define DEAD_MS  3000
#define FENCE_MS 1750
#define HB_MS    500
#define MS       1000000ull
#define T0       (1000000ull * MS)

static struct fd_state st;
static uint64_t now;

static int setup(void **state)
{
	now = T0;
	fd_init(&st, DEAD_MS, FENCE_MS, now);
	return 0;
}

/* One tick of the peers at now + ms, with the given candidates; returns
 * the count of dead slots, stored in dead[]. */
static size_t tick(uint64_t ms, const struct fd_obs *obs, size_t n, uint32_t *dead)
{
	now += ms * MS;
	return fd_peers_tick(&st, obs, n, now, dead, PFS_MAX_SLOTS);
}

static struct fd_obs ob(uint32_t slot, uint64_t seq)
{
	return (struct fd_obs){ .slot = slot, .disk_ok = true, .seq = seq };
}

static void test_disk_advancing_is_alive(void **state)
{
	uint32_t dead[PFS_MAX_SLOTS];
	uint64_t seq = 10;
	/* the coordinator lists node 2 as silent for a long time, but its
	 * disk heartbeat keeps moving (slowly: one beat per 2.5 s) */
	for (int i = 0; i < 100; i++) {
		struct fd_obs o = ob(2, seq);
		assert_int_equal(tick(HB_MS, &o, 1, dead), 0);
		if (i % 5 == 4)
			seq++;
	}
	assert_int_equal(st.peers[2].state, FD_PEER_WATCH);
}

static void test_both_stale_dead_once(void **state)
{
	uint32_t dead[PFS_MAX_SLOTS];
	struct fd_obs o = ob(3, 77);

	assert_int_equal(tick(0, &o, 1, dead), 0);              /* window opens */
	assert_int_equal(tick(DEAD_MS - 1, &o, 1, dead), 0);
	assert_int_equal(tick(1, &o, 1, dead), 1);              /* exactly dead_ms */
	assert_int_equal(dead[0], 3);
	assert_int_equal(st.peers[3].state, FD_PEER_DEAD);
	for (int i = 0; i < 20; i++)                            /* once */
		assert_int_equal(tick(HB_MS, &o, 1, dead), 0);
	/* the caller could not declare it: reported again at the next tick */
	fd_declare_failed(&st, 3);
	assert_int_equal(tick(HB_MS, &o, 1, dead), 1);
	assert_int_equal(dead[0], 3);
	assert_int_equal(tick(HB_MS, &o, 1, dead), 0);
}

static void test_disk_move_restarts_window(void **state)
{
	uint32_t dead[PFS_MAX_SLOTS];
	struct fd_obs o = ob(1, 5);

	assert_int_equal(tick(0, &o, 1, dead), 0);
	assert_int_equal(tick(DEAD_MS - 100, &o, 1, dead), 0);
	o.seq = 6;                                              /* one more disk beat */
	assert_int_equal(tick(50, &o, 1, dead), 0);
	assert_int_equal(tick(DEAD_MS - 1, &o, 1, dead), 0);
	/* an unreadable block or a torn one (seq 0) is no move */
	struct fd_obs bad = { .slot = 1, .disk_ok = false };
	assert_int_equal(tick(0, &bad, 1, dead), 0);
	bad = ob(1, 0);
	assert_int_equal(tick(1, &bad, 1, dead), 1);
	assert_int_equal(dead[0], 1);
}

static void test_beats_resume_reset(void **state)
{
	uint32_t dead[PFS_MAX_SLOTS];
	struct fd_obs o = ob(4, 9);

	assert_int_equal(tick(0, &o, 1, dead), 0);
	assert_int_equal(tick(DEAD_MS - 1, &o, 1, dead), 0);
	/* it beat the coordinator again: not a candidate, forgotten */
	assert_int_equal(tick(HB_MS, NULL, 0, dead), 0);
	assert_int_equal(st.peers[4].state, FD_PEER_IDLE);
	/* silent again, the same disk sequence: a new window from now */
	assert_int_equal(tick(HB_MS, &o, 1, dead), 0);
	assert_int_equal(tick(DEAD_MS - 1, &o, 1, dead), 0);
	assert_int_equal(tick(1, &o, 1, dead), 1);
	/* reported dead, then it beats again: forgotten too */
	assert_int_equal(tick(HB_MS, NULL, 0, dead), 0);
	assert_int_equal(st.peers[4].state, FD_PEER_IDLE);
	assert_int_equal(tick(HB_MS, &o, 1, dead), 0);
}

static void test_never_seen_on_disk(void **state)
{
	uint32_t dead[PFS_MAX_SLOTS];
	/* a node the coordinator knows but whose slot has no valid
	 * heartbeat: nothing to wait for */
	struct fd_obs o[2] = { ob(5, 0), { .slot = 6, .disk_ok = false } };
	assert_int_equal(tick(0, o, 2, dead), 2);
	assert_int_equal(dead[0], 5);
	assert_int_equal(dead[1], 6);
	/* a valid sequence appearing later means it is alive after all */
	fd_declare_failed(&st, 5);
	o[0].seq = 1;
	assert_int_equal(tick(HB_MS, o, 1, dead), 0);
	assert_int_equal(tick(DEAD_MS, o, 1, dead), 1);
}

static void test_peers_independent(void **state)
{
	uint32_t dead[PFS_MAX_SLOTS];
	struct fd_obs o[3] = { ob(1, 1), ob(2, 1), ob(7, 1) };

	assert_int_equal(tick(0, o, 3, dead), 0);
	o[1].seq = 2;                                           /* 2 writes the disk */
	assert_int_equal(tick(DEAD_MS / 2, o, 3, dead), 0);
	assert_int_equal(tick(DEAD_MS / 2, o, 3, dead), 2);
	assert_int_equal(dead[0], 1);
	assert_int_equal(dead[1], 7);
	assert_int_equal(tick(DEAD_MS / 2, o, 3, dead), 1);
	assert_int_equal(dead[0], 2);
	/* out-of-range slots are ignored */
	struct fd_obs x = ob(PFS_MAX_SLOTS, 1);
	assert_int_equal(tick(DEAD_MS, &x, 1, dead), 0);
}

static void test_fence_after_fence_ms(void **state)
{
	uint32_t dead[PFS_MAX_SLOTS];

	assert_int_equal(fd_self_beat(&st, 0, true, now += HB_MS * MS), FD_SELF_OK);
	uint64_t good = now;
	/* beats fail (the coordinator, or the disk): late, then fenced
	 * once more than fence_ms passed since the last good one */
	assert_int_equal(fd_self_beat(&st, -EIO, true, now += HB_MS * MS), FD_SELF_LATE);
	assert_int_equal(fd_self_beat(&st, 0, false, now += HB_MS * MS), FD_SELF_LATE);
	assert_int_equal(fd_self_beat(&st, 0, false, good + FENCE_MS * MS), FD_SELF_LATE);
	/* a good beat in time resets */
	assert_int_equal(fd_self_beat(&st, 0, true, now = good + FENCE_MS * MS), FD_SELF_OK);
	good = now;
	assert_int_equal(fd_self_beat(&st, -ETIMEDOUT, true, good + FENCE_MS * MS), FD_SELF_LATE);
	now = good + FENCE_MS * MS + 1;
	assert_int_equal(fd_self_beat(&st, -ETIMEDOUT, true, now), FD_SELF_FENCE);
	/* final: good beats do not undo it, and no peer is reported */
	assert_int_equal(fd_self_beat(&st, 0, true, now += HB_MS * MS), FD_SELF_FENCE);
	struct fd_obs o = ob(1, 0);
	assert_int_equal(tick(DEAD_MS, &o, 1, dead), 0);
}

static void test_fence_when_declared_dead(void **state)
{
	assert_int_equal(fd_self_beat(&st, 0, true, now += HB_MS * MS), FD_SELF_OK);
	assert_int_equal(fd_self_beat(&st, -ESTALE, true, now += 1), FD_SELF_FENCE);
	assert_int_equal(fd_self_beat(&st, 0, true, now += 1), FD_SELF_FENCE);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, setup)
	const struct CMUnitTest tests[] = {
		T(test_disk_advancing_is_alive),
		T(test_both_stale_dead_once),
		T(test_disk_move_restarts_window),
		T(test_beats_resume_reset),
		T(test_never_seen_on_disk),
		T(test_peers_independent),
		T(test_fence_after_fence_ms),
		T(test_fence_when_declared_dead),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
