/*
 * coord_plock.c -- the cluster's table of advisory locks: flock(2) locks
 * and fcntl(2) byte-range (POSIX) locks, with the POSIX rules for
 * splitting, merging and converting the ranges of one owner, conflicts
 * between owners, waiting requests and deadlock detection.  Semantics
 * are documented in pfs_coord.h ("Advisory locks"); the coordination
 * backend (coord_local.c) keeps the table in its segment, under its
 * mutex, and does the waiting.
 *
 * Design notes
 *
 * The table is two fixed arrays, scanned linearly: COORD_PLOCK_MAX lock
 * records and COORD_PLOCK_MAX_WAITS waiting requests.  Advisory locks are
 * few (a lock per open file at most, in practice) and every operation is
 * one pass over 4096 records of 48 bytes, a few microseconds, so no index
 * is kept that a crash could tear.
 *
 * An owner is (slot, owner id); a lock's identity is (owner, ino, kind).
 *
 * Invariants (hold whenever the backend's lock is free; cited as [Pn]):
 *   P1. A lock record is used iff its type is RD or WR; a used record has
 *       kind POSIX or FLOCK, slot < CPL_NSLOTS, ino != 0, start <= end,
 *       and a flock record covers [0, EOF].  The same for a waiting
 *       request with id != 0 (its type may not be UNLCK).
 *   P2. The POSIX records of one owner on one inode never overlap, and
 *       two of them of the same type never touch (they are merged); an
 *       owner has at most one flock record per inode.
 *   P3. No two records of different owners conflict (same inode and kind,
 *       overlapping, one of them WR).
 *   P4. nlocks and nwaits count the used records, nheld[n] the used lock
 *       records of node n; wait ids are unique and at most next_wait_id.
 *
 * Moves (the only functions that change records):
 *   free -> used            cpl_add (from cpl_set)
 *   used -> shrunk | free   cpl_set (unlock, conversion, merge),
 *                           cpl_release_owner, cpl_release_node
 *
 * Crash consistency.  A record becomes used by its last store (its type)
 * and free by one store.  cpl_set changes only the records of the
 * requesting owner, and removes or shrinks before it adds, so a process
 * dying in the middle leaves a subset of that owner's old and new ranges:
 * P2 and P3 hold at every step.  The only process that changes an
 * owner's records is that owner's node's daemon, whose death ends the
 * mount its processes used; its records are dropped whole at the node's
 * takeover or recovery.  The repair after a death (cpl_repair) drops what
 * P1 rejects (a torn record) and recounts P4.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "coord_plock.h"
#include "pfs_util.h"

static bool cpl_same_owner(const struct cpl_rec *a, const struct cpl_rec *b)
{
	return a->slot == b->slot && a->owner == b->owner;
}

static bool cpl_overlap(const struct cpl_rec *a, uint64_t s, uint64_t e)
{
	return a->start <= e && s <= a->end;
}

/* Do a's range and [s, e] overlap or touch? */
static bool cpl_touch(const struct cpl_rec *a, uint64_t s, uint64_t e)
{
	uint64_t e1 = e == COORD_PLOCK_EOF ? e : e + 1;
	uint64_t s1 = s == 0 ? 0 : s - 1;
	return a->start <= e1 && s1 <= a->end;
}

/* P3: does lock l conflict with request r (of another owner)? */
static bool cpl_conflicts(const struct cpl_rec *l, const struct cpl_rec *r)
{
	return l->type != COORD_PLOCK_UNLCK && l->ino == r->ino && l->kind == r->kind &&
	       !cpl_same_owner(l, r) && cpl_overlap(l, r->start, r->end) &&
	       (l->type == COORD_PLOCK_WR || r->type == COORD_PLOCK_WR);
}

static struct cpl_rec cpl_from_plock(const struct coord_plock *p)
{
	struct cpl_rec r = {
		.type = p->type, .kind = p->kind, .slot = p->slot, .pid = p->pid,
		.ino = p->ino, .owner = p->owner, .start = p->start, .end = p->end,
	};
	if (p->kind == COORD_PLOCK_FLOCK) {
		r.start = 0;
		r.end = COORD_PLOCK_EOF;
	}
	return r;
}

void cpl_to_plock(const struct cpl_rec *r, struct coord_plock *out)
{
	*out = (struct coord_plock){
		.ino = r->ino, .owner = r->owner, .slot = r->slot, .pid = r->pid,
		.kind = (enum coord_plock_kind)r->kind, .type = (enum coord_plock_type)r->type,
		.start = r->start, .end = r->end,
	};
}

uint32_t cpl_node_locks(const struct cpl_table *t, uint32_t slot)
{
	return slot < CPL_NSLOTS ? __atomic_load_n(&t->nheld[slot], __ATOMIC_ACQUIRE) : 0;
}

int cpl_validate(const struct coord_plock *req, bool unlock_ok)
{
	if (!req || req->ino == 0 || req->slot >= CPL_NSLOTS)
		return -EINVAL;
	if (req->kind != COORD_PLOCK_POSIX && req->kind != COORD_PLOCK_FLOCK)
		return -EINVAL;
	if ((unsigned)req->type > COORD_PLOCK_WR || (!unlock_ok && req->type == COORD_PLOCK_UNLCK))
		return -EINVAL;
	if (req->kind == COORD_PLOCK_POSIX && req->start > req->end)
		return -EINVAL;
	return 0;
}

static const struct cpl_rec *cpl_conflict_rec(const struct cpl_table *t, const struct cpl_rec *r)
{
	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++)
		if (cpl_conflicts(&t->locks[i], r))
			return &t->locks[i];
	return NULL;
}

const struct cpl_rec *cpl_conflict(const struct cpl_table *t, const struct coord_plock *req)
{
	struct cpl_rec r = cpl_from_plock(req);
	return cpl_conflict_rec(t, &r);
}

/* free -> used: body first, the type last (P1). */
static void cpl_add(struct cpl_table *t, const struct cpl_rec *r)
{
	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++) {
		struct cpl_rec *l = &t->locks[i];
		if (l->type != COORD_PLOCK_UNLCK)
			continue;
		struct cpl_rec body = *r;
		body.type = COORD_PLOCK_UNLCK;
		*l = body;
		__atomic_store_n(&l->type, r->type, __ATOMIC_RELEASE);     /* P1 commit */
		t->nlocks++;                                               /* P4 */
		__atomic_store_n(&t->nheld[r->slot], t->nheld[r->slot] + 1, __ATOMIC_RELEASE);
		return;
	}
	PFS_BUG_ON(1);          /* callers check the room first */
}

static void cpl_del(struct cpl_table *t, struct cpl_rec *l)
{
	__atomic_store_n(&l->type, COORD_PLOCK_UNLCK, __ATOMIC_RELEASE);
	PFS_BUG_ON(t->nlocks == 0 || t->nheld[l->slot] == 0);
	t->nlocks--;                                                       /* P4 */
	__atomic_store_n(&t->nheld[l->slot], t->nheld[l->slot] - 1, __ATOMIC_RELEASE);
}

static bool cpl_own(const struct cpl_rec *l, const struct cpl_rec *r)
{
	return l->type != COORD_PLOCK_UNLCK && l->ino == r->ino && l->kind == r->kind &&
	       cpl_same_owner(l, r);
}

static int cpl_set_flock(struct cpl_table *t, const struct cpl_rec *r, bool *changed)
{
	struct cpl_rec *own = NULL;
	for (uint32_t i = 0; i < COORD_PLOCK_MAX && !own; i++)
		if (cpl_own(&t->locks[i], r))
			own = &t->locks[i];
	if (own && own->type == r->type)
		return 0;
	if (own) {
		/* a conversion drops the old lock first (Linux does the same) */
		cpl_del(t, own);
		*changed = true;
	}
	if (r->type == COORD_PLOCK_UNLCK)
		return 0;
	if (cpl_conflict_rec(t, r))
		return -EAGAIN;
	if (t->nlocks >= COORD_PLOCK_MAX)
		return -ENOLCK;
	cpl_add(t, r);
	return 0;
}

static int cpl_set_posix(struct cpl_table *t, const struct cpl_rec *r, bool *changed,
			 void (*step)(void))
{
	uint64_t s = r->start, e = r->end;
	bool lock = r->type != COORD_PLOCK_UNLCK;
	uint32_t need = lock ? 1 : 0;

	if (lock && cpl_conflict_rec(t, r))
		return -EAGAIN;
	/* P2: at most one of the owner's records contains the range; of the
	 * same type, nothing changes; of another, with room on both sides,
	 * it is split in two. */
	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++) {
		const struct cpl_rec *l = &t->locks[i];
		if (!cpl_own(l, r) || l->start > s || l->end < e)
			continue;
		if (l->type == r->type)
			return 0;
		if (l->start < s && l->end > e)
			need++;
		break;
	}
	if (need > COORD_PLOCK_MAX - t->nlocks)
		return -ENOLCK;

	/* Remove and shrink first, add last (crash consistency). */
	uint64_t ns = s, ne = e;
	struct cpl_rec right = { .type = COORD_PLOCK_UNLCK };
	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++) {
		struct cpl_rec *l = &t->locks[i];
		if (!cpl_own(l, r))
			continue;
		if (lock && l->type == r->type && cpl_touch(l, ns, ne)) {
			/* merge; P2 says no other record of this type touches
			 * what l adds to the range */
			ns = PFS_MIN(ns, l->start);
			ne = PFS_MAX(ne, l->end);
			cpl_del(t, l);
			continue;
		}
		if (!cpl_overlap(l, s, e))
			continue;
		*changed = true;
		bool left_part = l->start < s, right_part = l->end > e;
		if (left_part && right_part) {
			right = *l;
			right.start = e + 1;
			l->end = s - 1;
		} else if (left_part) {
			l->end = s - 1;
		} else if (right_part) {
			l->start = e + 1;
		} else {
			cpl_del(t, l);
		}
	}
	if (step)
		step();
	if (right.type != COORD_PLOCK_UNLCK)
		cpl_add(t, &right);
	if (lock) {
		struct cpl_rec n = *r;
		n.start = ns;
		n.end = ne;
		cpl_add(t, &n);
	}
	return 0;
}

int cpl_set(struct cpl_table *t, const struct coord_plock *req, bool *changed,
	    void (*step)(void))
{
	struct cpl_rec r = cpl_from_plock(req);
	*changed = false;
	if (r.kind == COORD_PLOCK_FLOCK)
		return cpl_set_flock(t, &r, changed);
	return cpl_set_posix(t, &r, changed, step);
}

void cpl_waiters(const struct cpl_table *t, uint64_t ino, struct cpl_nodes *wake)
{
	for (uint32_t k = 0; k < COORD_PLOCK_MAX_WAITS; k++) {
		const struct cpl_wait *w = &t->waits[k];
		if (w->id && (ino == 0 || w->req.ino == ino)) {
			wake->has[w->req.slot] = true;
			wake->any = true;
		}
	}
}

uint32_t cpl_release_owner(struct cpl_table *t, uint32_t slot, uint64_t owner, uint64_t ino,
			   enum coord_plock_kind kind, struct cpl_nodes *wake)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++) {
		struct cpl_rec *l = &t->locks[i];
		if (l->type == COORD_PLOCK_UNLCK || l->slot != slot || l->owner != owner ||
		    l->kind != (uint32_t)kind || (ino && l->ino != ino))
			continue;
		cpl_waiters(t, l->ino, wake);
		cpl_del(t, l);
		n++;
	}
	return n;
}

uint32_t cpl_release_node(struct cpl_table *t, uint32_t slot, struct cpl_nodes *wake)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++) {
		struct cpl_rec *l = &t->locks[i];
		if (l->type == COORD_PLOCK_UNLCK || l->slot != slot)
			continue;
		cpl_waiters(t, l->ino, wake);
		cpl_del(t, l);
		n++;
	}
	return n;
}

/* The POSIX request an owner waits for, if any. */
static const struct cpl_rec *cpl_waiting_for(const struct cpl_table *t, const struct cpl_rec *o)
{
	for (uint32_t k = 0; k < COORD_PLOCK_MAX_WAITS; k++) {
		const struct cpl_wait *w = &t->waits[k];
		if (w->id && w->req.kind == COORD_PLOCK_POSIX && cpl_same_owner(&w->req, o))
			return &w->req;
	}
	return NULL;
}

bool cpl_deadlock(const struct cpl_table *t, const struct coord_plock *req)
{
	struct cpl_rec r = cpl_from_plock(req);
	uint32_t holders = 0;
	if (r.kind != COORD_PLOCK_POSIX)
		return false;
	/* bounded work under the backend's lock: at most
	 * CPL_DEADLOCK_HOLDERS holders, CPL_DEADLOCK_HOPS owners from each */
	for (uint32_t i = 0; i < COORD_PLOCK_MAX && holders < CPL_DEADLOCK_HOLDERS; i++) {
		const struct cpl_rec *h = &t->locks[i];
		if (!cpl_conflicts(h, &r))
			continue;
		holders++;
		/* follow what the holder waits for, and who blocks that */
		for (uint32_t hop = 0; hop < CPL_DEADLOCK_HOPS; hop++) {
			const struct cpl_rec *w = cpl_waiting_for(t, h);
			if (!w)
				break;
			h = cpl_conflict_rec(t, w);
			if (!h)
				break;
			if (cpl_same_owner(h, &r))
				return true;
		}
	}
	return false;
}

int64_t cpl_wait_add(struct cpl_table *t, const struct coord_plock *req)
{
	for (uint32_t k = 0; k < COORD_PLOCK_MAX_WAITS; k++) {
		struct cpl_wait *w = &t->waits[k];
		if (w->id)
			continue;
		w->req = cpl_from_plock(req);
		uint64_t id = ++t->next_wait_id;
		__atomic_store_n(&w->id, id, __ATOMIC_RELEASE);            /* commit */
		t->nwaits++;                                               /* P4 */
		return (int64_t)id;
	}
	return -ENOLCK;
}

void cpl_wait_del(struct cpl_table *t, uint64_t id)
{
	for (uint32_t k = 0; k < COORD_PLOCK_MAX_WAITS; k++) {
		struct cpl_wait *w = &t->waits[k];
		if (id && w->id == id) {
			__atomic_store_n(&w->id, 0, __ATOMIC_RELEASE);
			PFS_BUG_ON(t->nwaits == 0);
			t->nwaits--;
			return;
		}
	}
}

uint32_t cpl_clear_node_waits(struct cpl_table *t, uint32_t slot)
{
	uint32_t n = 0;
	for (uint32_t k = 0; k < COORD_PLOCK_MAX_WAITS; k++) {
		struct cpl_wait *w = &t->waits[k];
		if (w->id && w->req.slot == slot) {
			cpl_wait_del(t, w->id);
			n++;
		}
	}
	return n;
}

/* P1 for a record that claims to be used. */
static bool cpl_rec_ok(const struct cpl_rec *l)
{
	return (l->type == COORD_PLOCK_RD || l->type == COORD_PLOCK_WR) &&
	       (l->kind == COORD_PLOCK_POSIX || l->kind == COORD_PLOCK_FLOCK) &&
	       l->slot < CPL_NSLOTS && l->ino != 0 && l->start <= l->end &&
	       (l->kind == COORD_PLOCK_POSIX || (l->start == 0 && l->end == COORD_PLOCK_EOF));
}

#define CPL_FAIL(...) do { snprintf(why, len, __VA_ARGS__); return -EUCLEAN; } while (0)

int cpl_check(const struct cpl_table *t, char *why, size_t len)
{
	uint32_t used = 0, waits = 0;
	uint32_t held[CPL_NSLOTS] = { 0 };

	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++) {
		const struct cpl_rec *a = &t->locks[i];
		if (a->type == COORD_PLOCK_UNLCK)
			continue;
		used++;
		if (!cpl_rec_ok(a))
			CPL_FAIL("P1: lock record %u malformed", i);
		held[a->slot]++;
		for (uint32_t j = i + 1; j < COORD_PLOCK_MAX; j++) {
			const struct cpl_rec *b = &t->locks[j];
			if (b->type == COORD_PLOCK_UNLCK || b->ino != a->ino || b->kind != a->kind)
				continue;
			if (cpl_same_owner(a, b)) {
				if (a->kind == COORD_PLOCK_FLOCK)
					CPL_FAIL("P2: two flock records %u %u of one owner", i, j);
				if (cpl_overlap(b, a->start, a->end))
					CPL_FAIL("P2: records %u %u of one owner overlap", i, j);
				if (a->type == b->type && cpl_touch(b, a->start, a->end))
					CPL_FAIL("P2: records %u %u of one owner not merged", i, j);
			} else if (cpl_conflicts(b, a)) {
				CPL_FAIL("P3: records %u %u of different owners conflict", i, j);
			}
		}
	}
	if (used != t->nlocks)
		CPL_FAIL("P4: %u locks used, count %u", used, t->nlocks);
	for (uint32_t n = 0; n < CPL_NSLOTS; n++)
		if (held[n] != t->nheld[n])
			CPL_FAIL("P4: node %u holds %u locks, count %u", n, held[n], t->nheld[n]);
	for (uint32_t k = 0; k < COORD_PLOCK_MAX_WAITS; k++) {
		const struct cpl_wait *w = &t->waits[k];
		if (!w->id)
			continue;
		waits++;
		if (w->id > t->next_wait_id || !cpl_rec_ok(&w->req))
			CPL_FAIL("P1/P4: wait record %u malformed", k);
		for (uint32_t m = k + 1; m < COORD_PLOCK_MAX_WAITS; m++)
			if (t->waits[m].id == w->id)
				CPL_FAIL("P4: wait id %llu twice", (unsigned long long)w->id);
	}
	if (waits != t->nwaits)
		CPL_FAIL("P4: %u waits used, count %u", waits, t->nwaits);
	return 0;
}

uint32_t cpl_repair(struct cpl_table *t)
{
	uint32_t dropped = 0, used = 0, waits = 0;
	uint32_t held[CPL_NSLOTS] = { 0 };
	uint64_t max_id = 0;

	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++) {
		struct cpl_rec *l = &t->locks[i];
		if (l->type == COORD_PLOCK_UNLCK)
			continue;
		if (!cpl_rec_ok(l)) {
			l->type = COORD_PLOCK_UNLCK;
			dropped++;
			continue;
		}
		used++;
		held[l->slot]++;
	}
	for (uint32_t n = 0; n < CPL_NSLOTS; n++)
		__atomic_store_n(&t->nheld[n], held[n], __ATOMIC_RELEASE);
	for (uint32_t k = 0; k < COORD_PLOCK_MAX_WAITS; k++) {
		struct cpl_wait *w = &t->waits[k];
		if (!w->id)
			continue;
		if (!cpl_rec_ok(&w->req)) {
			w->id = 0;
			dropped++;
			continue;
		}
		waits++;
		if (w->id > max_id)
			max_id = w->id;
	}
	if (t->next_wait_id < max_id)
		t->next_wait_id = max_id;
	t->nlocks = used;
	t->nwaits = waits;
	return dropped;
}
