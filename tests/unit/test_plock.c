/*
 * test_plock.c -- the advisory lock table (cluster/coord_plock.c) on its
 * own, against a reference model: random lock, unlock, conversion and
 * release requests of several owners on a few inodes, each checked
 * against a byte map of who holds what, with the table's invariants
 * (P1-P4, so every owner's ranges stay split and merged exactly) after
 * every request.  The coordinator's conformance tests (test_coord.c)
 * cover the same table through the coord API, with waiting and nodes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../cluster/coord_plock.h"

#define NOWN  4         /* owners: (slot, id) = (k / 2, 10 + k) */
#define NINO  2
#define NB    65        /* bytes 0..63, and 64 standing for [64, EOF] */

static uint8_t model[NINO][NOWN][NB];   /* 0, RD, WR */
static uint8_t fmodel[NINO][NOWN];      /* flock */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static struct coord_plock req_of(int ino, int k, int type, int s, int e, bool flock)
{
	return (struct coord_plock){
		.ino = 100 + (uint64_t)ino, .owner = 10 + (uint64_t)k, .slot = (uint32_t)k / 2,
		.pid = 1, .kind = flock ? COORD_PLOCK_FLOCK : COORD_PLOCK_POSIX,
		.type = (enum coord_plock_type)type,
		.start = (uint64_t)s, .end = e == NB - 1 ? COORD_PLOCK_EOF : (uint64_t)e,
	};
}

static bool model_conflict(int ino, int k, int type, int s, int e)
{
	for (int o = 0; o < NOWN; o++) {
		if (o == k)
			continue;
		for (int b = s; b <= e; b++)
			if (model[ino][o][b] == COORD_PLOCK_WR ||
			    (model[ino][o][b] && type == COORD_PLOCK_WR))
				return true;
	}
	return false;
}

/* The table must hold exactly what the model says. */
static void compare(const struct cpl_table *t)
{
	uint8_t got[NINO][NOWN][NB];
	uint8_t fgot[NINO][NOWN];
	char why[128];

	memset(got, 0, sizeof(got));
	memset(fgot, 0, sizeof(fgot));
	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++) {
		const struct cpl_rec *l = &t->locks[i];
		if (!l->type)
			continue;
		int ino = (int)(l->ino - 100), k = (int)(l->owner - 10);
		assert_true(ino >= 0 && ino < NINO && k >= 0 && k < NOWN);
		assert_int_equal(l->slot, (uint32_t)k / 2);
		if (l->kind == COORD_PLOCK_FLOCK) {
			fgot[ino][k] = (uint8_t)l->type;
			continue;
		}
		uint64_t e = l->end == COORD_PLOCK_EOF ? NB - 1 : l->end;
		assert_true(e < NB);
		for (uint64_t b = l->start; b <= e; b++) {
			assert_int_equal(got[ino][k][b], 0);
			got[ino][k][b] = (uint8_t)l->type;
		}
	}
	assert_memory_equal(got, model, sizeof(got));
	assert_memory_equal(fgot, fmodel, sizeof(fgot));
	if (cpl_check(t, why, sizeof(why)))
		fail_msg("%s", why);
}

static void test_plock_model(void **state)
{
	struct cpl_table *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	memset(model, 0, sizeof(model));
	memset(fmodel, 0, sizeof(fmodel));

	for (int step = 0; step < 30000; step++) {
		int ino = (int)rnd(NINO), k = (int)rnd(NOWN), op = (int)rnd(20);
		bool changed = false;
		if (op == 0) {                                  /* a close */
			struct cpl_nodes w = { .any = false };
			uint32_t n = cpl_release_owner(t, (uint32_t)k / 2, 10 + (uint64_t)k,
						       100 + (uint64_t)ino, COORD_PLOCK_POSIX, &w);
			uint32_t want = 0;
			for (int b = 0; b < NB; b++)
				want += model[ino][k][b] &&
					(b == 0 || model[ino][k][b - 1] != model[ino][k][b]);
			memset(model[ino][k], 0, NB);
			assert_int_equal(n, want);              /* one record per run */
		} else if (op <= 3) {                           /* flock */
			int type = (int)rnd(3);
			struct coord_plock r = req_of(ino, k, type, 0, NB - 1, true);
			int err = cpl_set(t, &r, &changed, NULL);
			if (type && fmodel[ino][k] != type)
				fmodel[ino][k] = 0;             /* a conversion drops first */
			bool conflict = false;
			for (int o = 0; o < NOWN; o++)
				if (o != k && fmodel[ino][o] &&
				    (type == COORD_PLOCK_WR || fmodel[ino][o] == COORD_PLOCK_WR))
					conflict = true;
			if (!type) {
				assert_int_equal(err, 0);
				fmodel[ino][k] = 0;
			} else if (conflict) {
				assert_int_equal(err, -EAGAIN);
			} else {
				assert_int_equal(err, 0);
				fmodel[ino][k] = (uint8_t)type;
			}
		} else {                                        /* fcntl */
			int type = (int)rnd(3), s = (int)rnd(NB), e = s + (int)rnd((uint32_t)(NB - s));
			if (rnd(4) == 0)                        /* short ranges */
				e = s + (int)rnd(3);
			if (e > NB - 1)
				e = NB - 1;
			struct coord_plock r = req_of(ino, k, type, s, e, false);
			struct coord_plock q = r;
			const struct cpl_rec *c = type ? cpl_conflict(t, &q) : NULL;
			int err = cpl_set(t, &r, &changed, NULL);
			if (type && model_conflict(ino, k, type, s, e)) {
				assert_int_equal(err, -EAGAIN);
				assert_non_null(c);
				/* the reported lock overlaps and conflicts */
				uint64_t ce = c->end == COORD_PLOCK_EOF ? NB - 1 : c->end;
				assert_true(c->start <= (uint64_t)e && (uint64_t)s <= ce);
				assert_true(c->owner != 10 + (uint64_t)k);
				assert_true(c->type == COORD_PLOCK_WR || type == COORD_PLOCK_WR);
			} else {
				assert_int_equal(err, 0);
				assert_null(c);
				for (int b = s; b <= e; b++)
					model[ino][k][b] = (uint8_t)type;
			}
		}
		compare(t);
	}
	/* every owner's remaining locks go with their nodes */
	struct cpl_nodes w = { .any = false };
	for (uint32_t slot = 0; slot < NOWN / 2; slot++)
		cpl_release_node(t, slot, &w);
	memset(model, 0, sizeof(model));
	memset(fmodel, 0, sizeof(fmodel));
	compare(t);
	assert_int_equal(t->nlocks, 0);
	free(t);
}

/* cpl_repair drops torn records and recounts. */
static void test_plock_repair(void **state)
{
	struct cpl_table *t = calloc(1, sizeof(*t));
	char why[128];
	bool changed;
	assert_non_null(t);
	struct coord_plock r = req_of(0, 0, COORD_PLOCK_WR, 0, 9, false);
	assert_int_equal(cpl_set(t, &r, &changed, NULL), 0);
	r = req_of(0, 2, COORD_PLOCK_RD, 20, 29, false);
	assert_int_equal(cpl_set(t, &r, &changed, NULL), 0);
	assert_int_equal(cpl_check(t, why, sizeof(why)), 0);
	/* a record taken but torn: its type stored, its range not */
	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++) {
		if (!t->locks[i].type) {
			t->locks[i] = (struct cpl_rec){ .type = COORD_PLOCK_WR, .ino = 0, .start = 5,
							.end = 1 };
			break;
		}
	}
	t->nlocks = 7;
	assert_int_equal(cpl_check(t, why, sizeof(why)), -EUCLEAN);
	assert_int_equal(cpl_repair(t), 1);
	assert_int_equal(cpl_check(t, why, sizeof(why)), 0);
	assert_int_equal(t->nlocks, 2);
	assert_int_equal(cpl_node_locks(t, 0), 1);
	assert_int_equal(cpl_node_locks(t, 1), 1);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plock_model),
		cmocka_unit_test(test_plock_repair),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
