/*
 * pfs_fdetect.h -- the failure detector's decisions, as a pure state
 * machine fed with observations (cluster/fdetect.c): whether this node
 * must fence itself, and which peers are dead.  No I/O and no clock of
 * its own: the caller (fs/glock.c gl_tick, once per heartbeat period)
 * passes what it saw and the time, so tests drive it with a fake clock.
 *
 * Rules:
 *   Self.  A beat is good when both the coordinator beat and the disk
 *     heartbeat write succeeded.  The node fences when the coordinator
 *     says it was declared dead (-ESTALE), or when beats have been
 *     failing for more than fence_ms since the last good one.  A fence
 *     is final.
 *   Peers.  A peer is a candidate while the coordinator lists it as
 *     silent (no coordinator beat for dead_ms, or its process is gone).
 *     From the first tick it is a candidate, the detector watches its
 *     disk heartbeat sequence: each change restarts the window (the peer
 *     still writes the disk: alive, whatever the coordinator says).  A
 *     sequence of 0 (no valid heartbeat block) or an unreadable block is
 *     no change; a candidate never seen with a valid sequence has no
 *     window to wait for.  When the window reaches dead_ms the peer is
 *     dead: reported once.  A peer that stops being a candidate (it beat
 *     the coordinator again, or it left, or it is DEAD already) is
 *     forgotten, so a later silence starts afresh.
 */
#ifndef PFS_FDETECT_H
#define PFS_FDETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pfs_format.h"

/* One candidate's disk heartbeat, as read this tick. */
struct fd_obs {
	uint32_t slot;
	bool disk_ok;                   /* the heartbeat block was read */
	uint64_t seq;                   /* its sequence; 0: no valid block */
};

enum fd_peer_state {
	FD_PEER_IDLE = 0,       /* not a candidate (alive at the coordinator) */
	FD_PEER_WATCH,          /* candidate: disk window open since since_ns */
	FD_PEER_DEAD,           /* reported dead; until it stops being a candidate */
};

struct fd_peer {
	enum fd_peer_state state;
	bool seq_known;                 /* seq holds a valid sequence */
	uint64_t seq;
	uint64_t since_ns;              /* start of the disk window */
	bool elapsed;                   /* no valid sequence seen since the
					 * silence began: no window to wait for */
};

struct fd_state {
	uint64_t dead_ns, fence_ns;
	uint64_t last_good_ns;          /* the last good own beat */
	bool fenced;
	struct fd_peer peers[PFS_MAX_SLOTS];
};

enum fd_self {
	FD_SELF_OK,             /* beats are good */
	FD_SELF_LATE,           /* beats are failing, for fence_ms at most so far */
	FD_SELF_FENCE,          /* fence (final) */
};

void fd_init(struct fd_state *st, int dead_ms, int fence_ms, uint64_t now_ns);

/* This node's beat of this tick: coord_err is coord_heartbeat's result,
 * disk_ok the disk heartbeat write's. */
enum fd_self fd_self_beat(struct fd_state *st, int coord_err, bool disk_ok, uint64_t now_ns);

/* This tick's candidates (the coordinator's silent list, self excluded,
 * with their disk heartbeats).  Stores in dead[] the slots to declare
 * dead now (each reported once per silence) and returns their count. */
size_t fd_peers_tick(struct fd_state *st, const struct fd_obs *obs, size_t n, uint64_t now_ns,
		     uint32_t *dead, size_t max);

/* The caller could not declare `slot` dead (an error other than "it beat
 * again"): report it again at the next tick. */
void fd_declare_failed(struct fd_state *st, uint32_t slot);

#endif /* PFS_FDETECT_H */
