/*
 * coord_plock.h -- the table of advisory locks (flock and fcntl byte
 * ranges) that a coordination backend keeps for the whole cluster
 * (coord_plock.c).  The table is plain memory with no pointers, so a
 * backend can place it in a shared memory segment; it has no lock of its
 * own: every function expects the backend's lock over the table held
 * (hence no _locked suffix here: all of them are).
 */
#ifndef PFS_COORD_PLOCK_H
#define PFS_COORD_PLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "pfs_coord.h"
#include "pfs_format.h"

#define CPL_NSLOTS        PFS_MAX_SLOTS
#define CPL_DEADLOCK_HOPS 16u      /* owners followed from one holder */
#define CPL_DEADLOCK_HOLDERS 32u   /* conflicting holders followed */

/* A lock: used while type != 0 (the commit store, P1). */
struct cpl_rec {
	uint32_t type;                  /* enum coord_plock_type; 0: free */
	uint32_t kind;                  /* enum coord_plock_kind */
	uint32_t slot;
	int32_t pid;
	uint64_t ino;
	uint64_t owner;
	uint64_t start, end;
};

/* A waiting request: used while id != 0 (the commit store). */
struct cpl_wait {
	uint64_t id;
	struct cpl_rec req;
};

struct cpl_table {
	uint64_t next_wait_id;
	uint32_t nlocks;                /* P4 */
	uint32_t nwaits;                /* P4 */
	uint32_t nheld[CPL_NSLOTS];     /* P4: records per node; stored
					 * atomically (read without the lock) */
	struct cpl_rec locks[COORD_PLOCK_MAX];
	struct cpl_wait waits[COORD_PLOCK_MAX_WAITS];
};

/* Set of node slots (waiters to wake). */
struct cpl_nodes {
	bool has[CPL_NSLOTS];
	bool any;
};

/* The number of locks node `slot` holds, read without the table's lock:
 * exact for the caller's own node, whose count only its own calls
 * change while it is LIVE. */
uint32_t cpl_node_locks(const struct cpl_table *t, uint32_t slot);

/* Valid request (P1 shapes): 0 or -EINVAL.  unlock_ok: UNLCK allowed. */
int cpl_validate(const struct coord_plock *req, bool unlock_ok);

/* The first lock of another owner that conflicts with req, or NULL. */
const struct cpl_rec *cpl_conflict(const struct cpl_table *t, const struct coord_plock *req);

/* Apply req (lock, convert or unlock) for owner (req->slot, req->owner).
 * 0, -EAGAIN (a conflict; the owner's locks are as before, except a
 * flock conversion that dropped the old lock, as documented), -ENOLCK
 * (no room).  *changed: some lock was dropped or weakened, so waiters of
 * req->ino may now be granted.  step (NULL: none) is called between the
 * removals and the additions of a POSIX update (crash tests). */
int cpl_set(struct cpl_table *t, const struct coord_plock *req, bool *changed,
	    void (*step)(void));

/* Drop the locks of (slot, owner) of `kind` on ino (0: every inode);
 * returns the count and adds the nodes waiting on those inodes to wake. */
uint32_t cpl_release_owner(struct cpl_table *t, uint32_t slot, uint64_t owner, uint64_t ino,
			   enum coord_plock_kind kind, struct cpl_nodes *wake);
/* Drop every lock of a node; returns the count, adds waiters to wake. */
uint32_t cpl_release_node(struct cpl_table *t, uint32_t slot, struct cpl_nodes *wake);

/* Would req, if it waited, close a cycle of waiting POSIX owners? */
bool cpl_deadlock(const struct cpl_table *t, const struct coord_plock *req);

/* Waiting requests.  add: the record's id (> 0) or -ENOLCK; del by id
 * (a no-op if it is gone already, e.g. cleared by cpl_clear_node_waits). */
int64_t cpl_wait_add(struct cpl_table *t, const struct coord_plock *req);
void cpl_wait_del(struct cpl_table *t, uint64_t id);
uint32_t cpl_clear_node_waits(struct cpl_table *t, uint32_t slot);
/* Nodes waiting on ino (0: on any inode). */
void cpl_waiters(const struct cpl_table *t, uint64_t ino, struct cpl_nodes *wake);
/* Copy lock record to the public form. */
void cpl_to_plock(const struct cpl_rec *r, struct coord_plock *out);

/* Invariant check: 0, or -EUCLEAN with the violation written to why. */
int cpl_check(const struct cpl_table *t, char *why, size_t len);
/* After a holder of the backend lock died: drop records that are not
 * well formed (P1) and recount (P4).  Returns the number dropped. */
uint32_t cpl_repair(struct cpl_table *t);

#endif /* PFS_COORD_PLOCK_H */
