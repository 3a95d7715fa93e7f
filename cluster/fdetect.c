/*
 * fdetect.c -- the failure detector's decisions (rules in pfs_fdetect.h).
 *
 * Design notes
 *
 * State machine of a peer (struct fd_peer.state), moved by fd_peers_tick
 * unless noted:
 *   IDLE  -> WATCH   it is a candidate (silent at the coordinator); the
 *                    disk window opens now, or is taken as already
 *                    elapsed if no valid sequence was ever seen
 *   WATCH -> WATCH   its disk sequence changed: the window restarts
 *   WATCH -> DEAD    the window reached dead_ms: reported dead
 *   DEAD  -> WATCH   its disk sequence changed (it was alive after all),
 *                    or fd_declare_failed (the caller retries next tick)
 *   any   -> IDLE    it is no longer a candidate
 * This node (fd_state.fenced, last_good_ns): a good beat moves
 * last_good_ns; fenced goes false -> true once, in fd_self_beat.
 *
 * Invariants:
 *   D1. A peer is reported dead only from WATCH, after its disk sequence
 *       stayed the same (or invalid) for dead_ms of the caller's clock,
 *       and while it is a candidate; hence at most once per silence.
 *   D2. A fenced state never reports peers (a fenced node must not act).
 *   D3. Times only move forward; a clock that goes back (it must not)
 *       is treated as no time passing.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "pfs_fdetect.h"

/* D3 */
static uint64_t fd_elapsed(uint64_t since, uint64_t now)
{
	return now > since ? now - since : 0;
}

void fd_init(struct fd_state *st, int dead_ms, int fence_ms, uint64_t now_ns)
{
	memset(st, 0, sizeof(*st));
	st->dead_ns = (uint64_t)dead_ms * 1000000ull;
	st->fence_ns = (uint64_t)fence_ms * 1000000ull;
	st->last_good_ns = now_ns;
}

enum fd_self fd_self_beat(struct fd_state *st, int coord_err, bool disk_ok, uint64_t now_ns)
{
	if (st->fenced)
		return FD_SELF_FENCE;
	if (coord_err == 0 && disk_ok) {
		st->last_good_ns = now_ns;
		return FD_SELF_OK;
	}
	/* -ESTALE: the peers declared us dead; otherwise a slow thread beats
	 * again in time, a stuck one fences */
	if (coord_err == -ESTALE || fd_elapsed(st->last_good_ns, now_ns) > st->fence_ns) {
		st->fenced = true;
		return FD_SELF_FENCE;
	}
	return FD_SELF_LATE;
}

/* One candidate's observation (the IDLE -> WATCH and WATCH -> WATCH
 * edges).  Returns whether its window has reached dead_ms. */
static bool fd_watch(const struct fd_state *st, struct fd_peer *p, const struct fd_obs *o,
		     uint64_t now_ns)
{
	bool valid = o->disk_ok && o->seq != 0;

	if (p->state == FD_PEER_IDLE) {
		p->state = FD_PEER_WATCH;
		p->since_ns = now_ns;
		p->elapsed = !valid;            /* nothing ever seen: no window */
	}
	if (valid && (!p->seq_known || o->seq != p->seq)) {
		/* a first valid sequence after invalid ones is a move too */
		bool moved = p->seq_known || p->elapsed;
		p->seq = o->seq;
		p->seq_known = true;
		if (moved) {                    /* it still writes the disk */
			p->since_ns = now_ns;
			p->elapsed = false;
			if (p->state == FD_PEER_DEAD)
				p->state = FD_PEER_WATCH;
		}
	}
	return p->elapsed || fd_elapsed(p->since_ns, now_ns) >= st->dead_ns;
}

size_t fd_peers_tick(struct fd_state *st, const struct fd_obs *obs, size_t n, uint64_t now_ns,
		     uint32_t *dead, size_t max)
{
	bool candidate[PFS_MAX_SLOTS] = { false };
	size_t ndead = 0;

	for (size_t i = 0; i < n; i++) {
		if (obs[i].slot >= PFS_MAX_SLOTS)
			continue;
		candidate[obs[i].slot] = true;
		struct fd_peer *p = &st->peers[obs[i].slot];
		bool expired = fd_watch(st, p, &obs[i], now_ns);
		if (p->state == FD_PEER_WATCH && expired && !st->fenced && ndead < max) {  /* D1, D2 */
			p->state = FD_PEER_DEAD;
			dead[ndead++] = obs[i].slot;
		}
	}
	for (uint32_t s = 0; s < PFS_MAX_SLOTS; s++)            /* any -> IDLE */
		if (!candidate[s] && st->peers[s].state != FD_PEER_IDLE)
			memset(&st->peers[s], 0, sizeof(st->peers[s]));
	return ndead;
}

void fd_declare_failed(struct fd_state *st, uint32_t slot)
{
	if (slot < PFS_MAX_SLOTS && st->peers[slot].state == FD_PEER_DEAD)
		st->peers[slot].state = FD_PEER_WATCH;
}
