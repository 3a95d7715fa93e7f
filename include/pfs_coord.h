/*
 * pfs_coord.h -- the coordination layer of a peerfs cluster: membership
 * and heartbeats, cluster locks (with retained locks of dead nodes), and
 * the registration table of peer recovery.
 *
 * One interface, several backends:
 *   local   (embedded default, "-o coord=local") nodes on one host share a
 *           memory segment named after the volume UUID, guarded by robust
 *           process-shared mutexes: a killed process never leaves it
 *           wedged, and a mount after every node died starts correctly
 *           from the stale state it finds (cluster/coord_local.c);
 *   zk      ZooKeeper, "-o coord=zk://host:port,.../path" (later).
 * Every backend passes the same conformance tests (tests/unit/test_coord.c).
 *
 * Nodes are named by their slot (0..PFS_MAX_SLOTS-1).  All calls return 0
 * or a negative errno.  Calls are thread-safe.
 *
 * Membership.  A node joins with (slot, generation), beats every
 * heartbeat period, and leaves at unmount.  Node states:
 *   ABSENT --join--> LIVE --leave--> ABSENT
 *   LIVE --declare_dead--> DEAD --(counterpart) release_retained--> ABSENT
 *   (precisely: DEAD -> ABSENT once the node holds no retained lock AND
 *   its registration is INACTIVE, i.e. at the counterpart's unregister
 *   after release_retained dropped everything; see "Contract details")
 * declare_dead is called by a surviving node's failure detector once the
 * node's coordinator beats have stopped for dead_ms AND its disk heartbeat
 * has not advanced for as long (a node that still writes the disk is
 * alive, whatever the coordinator says).  A DEAD node's join is refused
 * (-EAGAIN) until it is ABSENT again.
 *
 * Locks.  A resource is a 64-bit id (COORD_RES_*).  Modes SH and EX; a
 * holder caches its locks.  coord_lock blocks until the mode is granted;
 * when another node holds a conflicting mode, that holder's blocking
 * callback runs (on a thread of the backend) and the holder must, in due
 * course, coord_unlock or coord_downgrade.  A DEAD node's locks are
 * retained: requests for them wait until its counterpart calls
 * coord_release_retained; nothing else waits.
 *
 * Registration table (peer recovery), per slot: status INACTIVE/ACTIVE,
 * the counterpart's slot, a lease.
 *   register(N) by C: accepted only while N's status is INACTIVE (or the
 *     lease of the ACTIVE registration expired), making it ACTIVE with
 *     counterpart C and a lease; rejected (-EBUSY) while ACTIVE; rejected
 *     (-EPERM) when C == N or C is not LIVE.
 *   renew(N) by the counterpart extends the lease; unregister(N) makes it
 *   INACTIVE.  The lease expires if the counterpart stops renewing (it
 *   died), so another peer can take over.
 *
 * Contract details (every backend; the conformance tests check them):
 *  - Fencing.  A handle whose node is no longer LIVE in the incarnation
 *    it joined (declared dead, or its slot taken over by a later
 *    coord_open) fails coord_heartbeat, coord_lock, coord_unlock,
 *    coord_unlock_all, coord_downgrade and coord_declare_dead with
 *    -ESTALE (the node must stop writing), and coord_register/renew/
 *    unregister/release_retained with -EPERM.  A handle of
 *    coord_attach_readonly fails every call that changes state with
 *    -EROFS.  No call may run concurrently with coord_close of its handle,
 *    and coord_close must not be called from a blocking callback.
 *  - Joining a silent slot.  coord_open of a slot whose record is LIVE
 *    but whose owner is silent -- its process provably gone, or, where
 *    that cannot be told, its beats stopped for dead_ms -- takes the slot
 *    over instead of failing with -EBUSY: the new incarnation inherits the
 *    old one's locks in the same modes, so nothing touches what the old
 *    incarnation left in flight while the caller backs out the slot's own
 *    journal; the caller then calls coord_unlock_all.  The caller opens a
 *    slot only once it owns it on disk (fs/volume.c V1, V2): that is the
 *    failure detection this decision rests on.
 *  - Restart after every node died.  The backend state persists (local:
 *    the memory segment stays until the last clean close); every node's
 *    process is gone, so each counts as silent at once.  The first mount
 *    takes its own slot over (above); its failure detector finds every
 *    other LIVE node silent, declares it dead and recovers it as its
 *    counterpart (register, backout, release_retained, unregister); a
 *    node already DEAD whose counterpart died is recovered the same way
 *    (its registration can be taken over, below).  Later mounts of the
 *    recovered slots then find them ABSENT.
 *  - Failure detection.  coord_silent_nodes lists LIVE nodes other than
 *    the caller whose beats stopped for the caller's dead_ms, or whose
 *    process provably no longer exists (those at once).  Beats and lease
 *    dates use the backend clock (cfg->clock_ns).  coord_declare_dead(N):
 *    0 if N is already DEAD, -ENOENT if it is ABSENT, -EAGAIN if it is
 *    not silent (it beat again), -EINVAL for the caller's own slot.  N's
 *    locks stay held (retained); its pending lock requests fail.
 *  - Locks are held per node (slot), not per thread: any thread of the
 *    node may unlock.  coord_unlock of a resource not held: -ENOENT.
 *    coord_downgrade to NL unlocks, to the held mode is a no-op, to a
 *    stronger mode is -EINVAL, of a resource not held -ENOENT.
 *    timeout_ms counts real (CLOCK_MONOTONIC) time, whatever
 *    cfg->clock_ns; 0 tries once, without blocking callbacks.  A node
 *    holding nothing on a resource is not granted SH while another node
 *    waits for EX on it (EX requests do not starve).  A retained lock
 *    keeps its mode: a SH request next to a retained SH is granted (a
 *    reader leaves nothing in flight), conflicting requests wait.  Two
 *    nodes upgrading the same resource wait for each other until one
 *    times out.  -ENOSPC: the lock table is full (resources nobody holds
 *    or waits for take no room).
 *  - Blocking callbacks run on a backend thread, outside every backend
 *    lock, and may call coord_unlock or coord_downgrade.  They are hints:
 *    one may arrive after the lock was released, or twice.  A callback
 *    that does not release only delays the requester (its timeout
 *    applies) and the node's later callbacks; a node without a callback
 *    keeps its posts until coord_set_blocking_cb.
 *  - Registration.  register(N) also requires N to be DEAD (-EINVAL
 *    otherwise).  An ACTIVE registration can be taken over by another
 *    node once its lease expired or its counterpart is no longer LIVE in
 *    the incarnation that registered; until someone does, the counterpart
 *    keeps it (renew and release_retained still succeed after the lease
 *    date).  renew/unregister: -ENOENT if INACTIVE, -EPERM for a caller
 *    that is not the counterpart.  release_retained: -EINVAL if N is not
 *    DEAD, -ENOENT if res is not held by N.  unregister with retained
 *    locks left keeps N DEAD: a new registration must release them.
 *  - coord_locks stores one record per holder of each resource, plus one
 *    with holder COORD_NO_SLOT and mode NL for a resource that only has
 *    waiters.  coord_locks, coord_silent_nodes and coord_wanted_retained
 *    return the number of records stored (at most max).
 *  - Local backend: -EPROTO from coord_open/coord_attach_readonly when the
 *    volume's segment has another layout (another peerfs version) and
 *    running processes still use it; unused, it is rebuilt.
 *
 * Advisory locks (flock(2) and fcntl(2) byte-range locks, cluster-wide).
 * A separate table from the cluster locks above: an advisory lock is
 * held by an owner, the pair (node slot, the FUSE lock_owner of that
 * node: a 64-bit id the node's kernel gives each open file description
 * for flock, each set of files of a process for POSIX locks), on an
 * inode, with a type RD or WR and, for POSIX locks, an inclusive byte
 * range [start, end] (end COORD_PLOCK_EOF: to the end of file, however it
 * grows).  flock locks cover the whole file and live apart from POSIX
 * locks, as on Linux: neither kind ever conflicts with the other.
 *   Conflicts: two locks of different owners on the same inode and kind
 *     conflict when their ranges overlap and either is WR.  An owner never
 *     conflicts with itself.
 *   coord_plock_set of type RD or WR (POSIX): replaces whatever the
 *     owner held on the range by the new type (upgrade or downgrade in
 *     place, splitting the owner's locks that stick out of the range),
 *     then merges it with the owner's locks of the same type that overlap
 *     or touch it; type UNLCK removes the range from the owner's locks
 *     (splitting one that contains it).  All or nothing: on any error the
 *     owner's locks are as before.
 *   coord_plock_set (flock): one lock per owner and inode; a new type
 *     first drops the owner's lock of the other type (as Linux does: a
 *     conversion is not atomic, and two SH holders converting to EX
 *     cannot deadlock), then takes the new one; UNLCK drops it.
 *   Waiting (wait true): until no conflict remains.  -EINTR once
 *     cancelled(arg) returns true: it is called each time the waiter
 *     wakes, at least once a second, under the backend's lock (it must
 *     be quick and take no lock); coord_plock_interrupt wakes every
 *     waiter of this node at once.  -EDEADLK (POSIX only) when the
 *     request would close a cycle: the owner that holds a conflicting
 *     lock waits, directly or through a chain of up to 16 owners, for a
 *     lock this owner holds.  Without wait a conflict is -EAGAIN (flock:
 *     EWOULDBLOCK is the same number).
 *   F_GETLK: coord_plock_test fills *lk with the first conflicting lock
 *     (type, range, its node's slot, owner and pid) or sets type UNLCK.
 *     The pid is the holder's pid as its node's kernel gave it, when the
 *     holder's node runs in the caller's pid namespace (the same node, or
 *     local backend: another daemon of this host in the same namespace);
 *     otherwise 0, a number that names no process.  A filesystem passes
 *     it to its kernel as is (FUSE maps it into the caller's namespace).
 *   Release: coord_plock_release_owner drops every lock of one owner
 *     (close of a file: POSIX at flush, flock at the last release).  A
 *     node's locks all go when it leaves (coord_close), when a takeover
 *     of its slot calls coord_unlock_all, and, for a DEAD node, when its
 *     counterpart calls coord_release_retained with res 0: they are kept
 *     until then like its cluster locks, so no other process takes a
 *     range the dead node's processes guarded before the dead node's
 *     half-done changes are backed out (GFS2 drops a dead node's plocks
 *     at recovery too).  coord_release_retained of one resource keeps
 *     them.  A DEAD node's waiters fail (its pending requests fail); a
 *     node that is ABSENT holds none.
 *   Limits: COORD_PLOCK_MAX locks and COORD_PLOCK_MAX_WAITS waiting
 *     requests in the whole cluster; -ENOLCK when a request would need
 *     more (a set that adds records needs room for the records it may
 *     add, at most two).
 *   Errors: -ESTALE for a fenced handle, -EROFS for a read-only one,
 *     -EINVAL for bad arguments (ino 0, type or kind out of range,
 *     start > end; UNLCK to coord_plock_test).
 */
#ifndef PFS_COORD_H
#define PFS_COORD_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

struct coord;

/* Resource ids: type in the top byte. */
#define COORD_RES_TYPE_SHIFT 56
#define COORD_RES_INODE  1ull  /* an inode: attributes, data, entries */
#define COORD_RES_GROUP  2ull  /* an allocation group's bitmaps */
#define COORD_RES_SLOT   3ull  /* a node slot (its journal) */
#define COORD_RES_FLOCK  4ull  /* unused: advisory locks have a table of their own */
#define COORD_RES_OPEN   5ull  /* an inode is open on the holders (SH) */
static inline uint64_t coord_res(uint64_t type, uint64_t id)
{
	return (type << COORD_RES_TYPE_SHIFT) | (id & ((1ull << COORD_RES_TYPE_SHIFT) - 1));
}

enum coord_mode { COORD_NL = 0, COORD_SH = 1, COORD_EX = 2 };
enum coord_node_state { COORD_ABSENT = 0, COORD_LIVE = 1, COORD_DEAD = 2 };
enum coord_reg_status { COORD_REG_INACTIVE = 0, COORD_REG_ACTIVE = 1 };

/* coord_lock_info.holder of a resource that only has waiters. */
#define COORD_NO_SLOT UINT32_MAX

struct coord_config {
	const char *spec;               /* "local" (default) */
	uint8_t uuid[16];               /* the volume */
	uint32_t slot;
	uint64_t generation;
	uint64_t host_id;
	const char *hostname;
	int heartbeat_ms;               /* default 500 */
	int dead_ms;                    /* default 3000 */
	/* Clock in ns (CLOCK_MONOTONIC-like, shared by every node of the
	 * backend); NULL for the real clock.  Tests pass a fake one. */
	uint64_t (*clock_ns)(void *arg);
	void *clock_arg;
};

/* Called on a backend thread when another node waits for `res` in
 * `wanted` mode and we hold a conflicting mode. */
typedef void (*coord_blocking_cb)(void *arg, uint64_t res, enum coord_mode wanted);

struct coord_node_info {
	uint32_t slot;
	enum coord_node_state state;
	uint64_t generation;
	uint64_t host_id;
	int32_t pid;                    /* local backend: the daemon's pid */
	uint64_t last_beat_ns;          /* backend clock */
	uint32_t retained_locks;        /* while DEAD */
	char hostname[64];
};

struct coord_reg_info {
	uint32_t slot;
	enum coord_reg_status status;
	uint32_t counterpart;
	uint64_t lease_expiry_ns;       /* backend clock */
};

struct coord_lock_info {
	uint64_t res;
	uint32_t holder;                /* a holder's slot */
	enum coord_mode mode;
	bool retained;                  /* holder is DEAD */
	uint32_t waiters;
};

/* Connect (creating the backend's state if needed) and join as cfg->slot.
 * -EBUSY: the slot is LIVE (another node); -EAGAIN: the slot is DEAD and
 * being (or waiting to be) recovered. */
int coord_open(const struct coord_config *cfg, struct coord **out);
/* Leave (releasing every lock) and disconnect. */
void coord_close(struct coord *c);

int coord_heartbeat(struct coord *c);
void coord_set_blocking_cb(struct coord *c, coord_blocking_cb cb, void *arg);
/* Nodes whose coordinator beats stopped for dead_ms (candidates for the
 * disk check).  Fills up to max slots; returns the count. */
int coord_silent_nodes(struct coord *c, uint32_t *slots, size_t max);
int coord_declare_dead(struct coord *c, uint32_t slot);
int coord_node_info(struct coord *c, uint32_t slot, struct coord_node_info *out);

/* Lock: blocks until granted or timeout_ms passes (-ETIMEDOUT; < 0 waits
 * forever).  Re-locking a held resource in a weaker or equal mode is a
 * no-op; SH -> EX upgrades (may wait). */
int coord_lock(struct coord *c, uint64_t res, enum coord_mode mode, int timeout_ms);
int coord_unlock(struct coord *c, uint64_t res);
int coord_downgrade(struct coord *c, uint64_t res, enum coord_mode mode);
/* Release every lock this node holds (after a takeover at coord_open, once
 * the slot's own journal is backed out). */
int coord_unlock_all(struct coord *c);
/* Release every lock retained by dead `slot` (the counterpart calls this
 * after backout; only while registered as its counterpart: -EPERM
 * otherwise).  With res != 0 only that resource (early release). */
int coord_release_retained(struct coord *c, uint32_t slot, uint64_t res);
/* Resources of dead `slot` that live nodes wait for (on-demand backout). */
int coord_wanted_retained(struct coord *c, uint32_t slot, uint64_t *res, size_t max);
/* Snapshot of the lock table for status displays; returns the count. */
int coord_locks(struct coord *c, struct coord_lock_info *out, size_t max);

int coord_register(struct coord *c, uint32_t dead_slot, int lease_ms);
int coord_renew(struct coord *c, uint32_t dead_slot, int lease_ms);
int coord_unregister(struct coord *c, uint32_t dead_slot);
int coord_reg_info(struct coord *c, uint32_t slot, struct coord_reg_info *out);

/* Backout progress of a dead node, published by its counterpart for
 * status displays (recovery/peer.c, peerfsctl status).  set: only the
 * registered counterpart (-EPERM otherwise, -ENOENT while INACTIVE);
 * get: -ENOENT unless the registration is ACTIVE and progress was set
 * since it was registered (register and unregister clear it). */
#define COORD_PROGRESS_TX 4
struct coord_progress {
	uint32_t ntx;                   /* dead transactions (all, even if > 4) */
	uint32_t workers;               /* of the run; 0 serial */
	struct {
		uint64_t txseq;
		uint64_t undo_done, undo_total;
		int32_t worker;         /* -1 none yet; 0 the coordinator */
		uint32_t durable;
	} tx[COORD_PROGRESS_TX];
};
int coord_set_progress(struct coord *c, uint32_t dead_slot, const struct coord_progress *p);
int coord_progress(struct coord *c, uint32_t slot, struct coord_progress *out);

/* Read-only attach for status tools (no join): -ENOENT if no node ever
 * created the state. */
int coord_attach_readonly(const struct coord_config *cfg, struct coord **out);

/* ---- advisory locks (flock and fcntl byte ranges) ---- */

#define COORD_PLOCK_EOF       UINT64_MAX       /* end of a range "to EOF" */
#define COORD_PLOCK_MAX       4096u            /* locks in the cluster */
#define COORD_PLOCK_MAX_WAITS 256u             /* waiting requests */

enum coord_plock_kind { COORD_PLOCK_POSIX = 0, COORD_PLOCK_FLOCK = 1 };
enum coord_plock_type { COORD_PLOCK_UNLCK = 0, COORD_PLOCK_RD = 1, COORD_PLOCK_WR = 2 };

struct coord_plock {
	uint64_t ino;
	uint64_t owner;                 /* the node's lock owner id */
	uint32_t slot;                  /* the owner's node (set by the calls) */
	int32_t pid;                    /* the process that asked (0 unknown) */
	enum coord_plock_kind kind;
	enum coord_plock_type type;
	uint64_t start, end;            /* inclusive; flock: 0, EOF */
};

/* F_GETLK: lk is a request of this node (ino, owner, kind, type, range);
 * on return lk describes the first conflicting lock, or its type is
 * COORD_PLOCK_UNLCK. */
int coord_plock_test(struct coord *c, struct coord_plock *lk);
/* Lock, convert or unlock (see "Advisory locks").  wait: block until the
 * lock is granted, -EINTR once cancelled(arg) (may be NULL) is true. */
int coord_plock_set(struct coord *c, const struct coord_plock *lk, bool wait,
		    bool (*cancelled)(void *arg), void *arg);
/* Wake this node's waiting requests so they ask cancelled() again. */
int coord_plock_interrupt(struct coord *c);
/* Drop every lock of (this node, owner) of that kind on ino (0: on every
 * inode); returns the number of locks dropped. */
int coord_plock_release_owner(struct coord *c, uint64_t ino, uint64_t owner,
			      enum coord_plock_kind kind);
/* Snapshot of the advisory locks; returns the number stored. */
int coord_plocks(struct coord *c, struct coord_plock *out, size_t max);

/* Names for displays and logs: "NL", "SH", "EX"; "absent", "live", "dead". */
const char *coord_mode_name(enum coord_mode m);
const char *coord_node_state_name(enum coord_node_state s);

#endif /* PFS_COORD_H */
