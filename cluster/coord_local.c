/*
 * coord_local.c -- the embedded ("local") coordination backend: the nodes
 * of a volume run on one host and share a POSIX shared memory segment
 * named "/peerfs-<uuid hex>" (mode 0600).
 *
 * Design notes
 *
 * Segment (struct cl_shm): a header (magic, version, size, the mutex,
 * counters), nodes[PFS_MAX_SLOTS], regs[PFS_MAX_SLOTS] (registrations of
 * peer recovery), and the lock table: CL_TABLE_SLOTS entries, open
 * addressing with linear probing, at most CL_MAX_RES in use.  An entry
 * holds a resource id, its EX holder or its SH holders (a 256-bit set),
 * and the nodes waiting for it (a set, and the subset waiting for EX).
 * Each node record also holds the node's wait records (one per distinct
 * (resource, mode) its threads wait for), a futex word its lock waiters
 * sleep on, and its mailbox of blocking-callback posts.
 *
 * Attaching.  Two OFD record locks on the segment's file:
 *   byte 0, the setup lock: held exclusively while a process creates,
 *           checks, rebuilds or removes the segment (briefly);
 *   byte 1, the attach lock: held shared by every handle while mapped.
 *           Taking it exclusively (without waiting) proves that no other
 *           handle is attached, so the segment may be rebuilt or removed.
 * A segment of another layout is rebuilt only then; otherwise the open
 * fails with -EPROTO.  The last clean close removes a segment whose state
 * is empty (every node ABSENT); openers that find the name unlinked under
 * the setup lock start over.
 *
 * Lock order (outermost first; never taken in the other direction):
 *   1. the setup lock (OFD byte 0), only in attach and detach;
 *   2. the segment mutex hdr.mutex: every field of the segment marked
 *      "protected by the mutex" (all but the header's identity fields);
 *   3. a handle's cb_lock (process-local leaf: the blocking callback).
 * Functions named *_locked expect the segment mutex held.
 *
 * Invariants (hold whenever the mutex is free; cited as [X] in code):
 *   S1. The header's magic is stored last when the segment is built; a
 *       segment whose magic, version or size differ is never used.
 *   N1. A node record that is LIVE or DEAD has an incarnation, unique in
 *       the segment: 0 < incarnation < hdr.next_incarnation.
 *   N2. Only LIVE nodes have wait records or mailbox posts.
 *   N3. An ABSENT node holds no lock and its registration is INACTIVE.
 *   N4. nodes[n].nheld is the number of entries that n holds.
 *   L1. Every used entry has a holder or a waiter; an entry that has
 *       neither is deleted at once (resources nobody holds take no room).
 *   L2. An entry has either one EX holder and no SH holder, or SH holders
 *       only.  (Inside the mutex, an upgrade or downgrade of node n passes
 *       through {EX n, SH {n}}; repair resolves it to EX.)
 *   L3. Every holder is LIVE or DEAD; the locks of a DEAD holder are the
 *       retained locks.
 *   L4. An entry's waiters and ex_waiters sets are exactly the nodes with
 *       a wait record for its resource (for EX).
 *   L5. Linear probing: every used entry is reached from its home slot
 *       through used slots only, no resource is stored twice, and
 *       hdr.nlocks counts the used entries (<= CL_MAX_RES).
 *   L6. A grant keeps L2: it follows coord_mode_compatible against every
 *       other holder, and a node holding nothing is not granted SH while
 *       another node waits for EX (fairness).
 *   R1. An ACTIVE registration belongs to a DEAD node and names another
 *       node as counterpart.
 *   M1. Mailbox: head <= tail <= head + CL_MBOX_CAP (free-running).
 *
 * State machines, and the function that moves each edge:
 *   node:   ABSENT -> LIVE               cl_join_locked (coord_open)
 *           LIVE -> LIVE, new incarnation cl_join_locked (takeover of a
 *                                         silent record of the own slot)
 *           LIVE -> ABSENT               cl_leave_node_locked (coord_close)
 *           LIVE -> DEAD                 cl_declare_dead
 *           DEAD -> ABSENT               cl_maybe_absent_locked, from
 *                                         cl_unregister (no retained lock,
 *                                         registration INACTIVE)
 *   lock of node n on resource r:
 *           NL -> SH | EX, SH -> EX      cl_grant_locked (coord_lock)
 *           EX -> SH                     cl_downgrade
 *           SH | EX -> NL                cl_drop_holder_locked (unlock,
 *                                         downgrade to NL, leave,
 *                                         release_retained)
 *   entry:  empty -> used                cl_insert_locked
 *           used -> empty                cl_delete_locked (backward shift)
 *   registration:
 *           INACTIVE -> ACTIVE, ACTIVE -> ACTIVE (takeover)  cl_register
 *           ACTIVE -> INACTIVE           cl_unregister
 *   A registration also holds the counterpart's backout progress
 *   (cl_set_progress), cleared by both edges above; it is only displayed,
 *   so a copy torn by a dying process is harmless.
 *
 * Crash consistency.  The mutex is robust: when a process dies holding it
 * the next locker gets EOWNERDEAD and runs cl_repair_locked before
 * pthread_mutex_consistent.  Updates are ordered so that a process dying
 * between any two stores leaves a state the repair brings back to the
 * invariants: every multi-store update ends with one commit store (a
 * node's state, an entry's res, a registration's status, a mailbox tail)
 * and the stores before it are invisible or harmless without it; the
 * derived fields (N4, L4, hdr.nlocks) are recomputed; the only
 * multi-slot update, the backward shift of a delete, leaves at worst a
 * hole in a probe chain or an entry stored twice, both of which the
 * repair's re-placement pass fixes (L5).  cl_step marks the boundaries
 * (a compiler barrier: a process dies between instructions, and other
 * processes look only after taking the mutex); tests stop a process
 * there (coord_local.h).
 *
 * Waiting.  Waits use futex words in the segment (struct cl_cond): a
 * waiter reads the word under the mutex, releases the mutex and sleeps
 * while the word is unchanged; a waker bumps the word under the mutex and
 * wakes all.  A process-shared pthread_cond_t of glibc 2.36 keeps per-group
 * references of its waiters, and a waiter killed while blocked keeps its
 * reference forever: the next broadcast that switches groups would block
 * on it while holding our mutex, wedging every node.  A futex word keeps
 * no state about its waiters, so a killed waiter leaves nothing behind.
 * Sleeps are cut into slices of CL_WAIT_SLICE_NS and the condition is
 * checked again after each.  Lock waiters sleep on their own node's word
 * and are woken by whoever changes an entry they wait for (releasing one
 * resource wakes only the nodes waiting for it).  Each node's backend
 * thread sleeps on its mailbox word, takes posts under the mutex and
 * calls the blocking callback outside it.
 *
 * Advisory locks (flock, fcntl byte ranges; pfs_coord.h "Advisory
 * locks").  A block of their own at the end of the segment (struct
 * cl_plk): the table of coord_plock.c (its invariants P1-P4 hold under
 * the segment mutex) and one futex word per node that the node's waiting
 * requests sleep on; whoever drops or weakens a lock wakes the nodes that
 * wait on that inode, and coord_plock_interrupt wakes the caller's own
 * node so its waiters ask their cancel callbacks again (a FUSE
 * interrupt); waits are cut in slices (CL_WAIT_SLICE_NS), so a callback
 * whose answer changes without an interrupt is asked within a slice.  A
 * futex word rather than polling: a waiter sleeps until something it
 * waits for changes, and, as for the cluster locks, a killed waiter
 * leaves nothing behind.  Further invariants:
 *   A1. Only LIVE or DEAD nodes hold advisory locks; only LIVE nodes have
 *       waiting requests (the advisory side of N2, N3).
 *   A2. A node's advisory locks go when it leaves (cl_leave_node_locked),
 *       at the takeover of its slot (cl_unlock_all), and once DEAD at its
 *       recovery (cl_release_retained with res 0, and in any case when it
 *       becomes ABSENT, cl_maybe_absent_locked).  Its waiting requests go
 *       with its other wait records (cl_clear_node_waits_locked).
 *
 * Liveness of a node's process.  Each node record holds its pid, the
 * process start time (/proc/PID/stat) and its pid namespace.  Within our
 * namespace, a pid that no longer exists, is a zombie or was reused by a
 * later process proves that the node's process is gone: it can beat no
 * more, so it is silent at once.  Across namespaces only beats count.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "coord_backend.h"
#include "coord_local.h"
#include "coord_plock.h"
#include "pfs_format.h"
#include "pfs_util.h"

#define CL_MAGIC         0x314452434f534650ull   /* "PFSOCRD1" */
#define CL_VERSION       3u              /* 2: advisory locks; 3: and backout progress */
#define CL_NSLOTS        PFS_MAX_SLOTS
#define CL_TABLE_SLOTS   (1u << 17)
#define CL_TABLE_MASK    (CL_TABLE_SLOTS - 1)
#define CL_MAX_RES       (1u << 16)              /* L5: load factor <= 1/2 */
#define CL_NODE_WAITS    64u
#define CL_MBOX_CAP      32u
#define CL_WAIT_SLICE_NS 1000000000ull
#define CL_NO_SLOT       UINT32_MAX
#define CL_BYTE_SETUP    0
#define CL_BYTE_ATTACH   1
#define CL_OPEN_RETRIES  100

_Static_assert(CL_NSLOTS == 256, "node sets hold 256 slots");
_Static_assert(CL_MAX_RES < CL_TABLE_SLOTS, "the table always keeps an empty slot");

/* ---- shared layout ---- */

struct cl_set {
	uint64_t w[4];
};

/* A futex word: bumped by every wake-up (see "Waiting"). */
struct cl_cond {
	uint32_t seq;                   /* bumped under the mutex; read atomically */
	uint32_t pad;
};

struct cl_wait {
	uint64_t res;                   /* 0: free; stored last when taken */
	uint32_t mode;                  /* enum coord_mode wanted */
	uint32_t nthreads;              /* threads of the node waiting for it */
};

struct cl_post {
	uint64_t res;
	uint32_t wanted;                /* enum coord_mode */
	uint32_t pad;
};

struct cl_mbox {
	uint32_t head;                  /* protected by the mutex (M1) */
	uint32_t tail;                  /* protected by the mutex; stored last */
	uint32_t overflow;              /* protected by the mutex: posts were
					 * dropped, scan the table */
	uint32_t pad;
	struct cl_post ring[CL_MBOX_CAP];       /* protected by the mutex */
	struct cl_cond cond;            /* the node's backend thread sleeps here */
};

struct cl_node {
	uint32_t state;                 /* protected by the mutex: enum
					 * coord_node_state, the commit store */
	int32_t pid;                    /* protected by the mutex (all below) */
	uint64_t incarnation;           /* N1 */
	uint64_t generation;
	uint64_t host_id;
	uint64_t pid_start;             /* starttime of the pid; 0 unknown */
	uint64_t pidns;                 /* pid namespace inode; 0 unknown */
	uint64_t last_beat_ns;          /* backend clock */
	uint32_t nheld;                 /* N4 */
	uint32_t pad;
	char hostname[COORD_HOSTNAME_MAX];
	struct cl_wait waits[CL_NODE_WAITS];
	struct cl_cond lock_cond;       /* the node's lock waiters sleep here */
	struct cl_mbox mbox;
};

struct cl_reg {
	uint32_t status;                /* protected by the mutex: enum
					 * coord_reg_status, stored last */
	uint32_t counterpart;           /* protected by the mutex (all below) */
	uint64_t cp_incarnation;        /* the counterpart's, when it registered */
	uint64_t lease_expiry_ns;       /* backend clock */
	uint32_t has_progress;          /* progress set since registering */
	struct coord_progress progress; /* the counterpart's backout */
};

struct cl_entry {
	uint64_t res;                   /* protected by the mutex; 0: empty;
					 * stored last when filled (L5) */
	uint32_t ex;                    /* protected by the mutex (all below):
					 * EX holder + 1, 0 none */
	uint32_t pad;
	struct cl_set sh;               /* SH holders */
	struct cl_set waiters;          /* L4 */
	struct cl_set ex_waiters;       /* L4 */
};

struct cl_hdr {
	uint64_t magic;                 /* S1: identity, stored last at build */
	uint32_t version;
	uint32_t nslots;
	uint64_t size;
	uint32_t table_slots;
	uint32_t max_res;
	pthread_mutex_t mutex;          /* robust, process-shared */
	uint64_t next_incarnation;      /* protected by the mutex; N1 */
	uint32_t nlocks;                /* protected by the mutex; L5 */
	uint32_t repairs;               /* protected by the mutex */
};

/* Advisory locks (see "Advisory locks"). */
struct cl_plk {
	struct cl_cond cond[CL_NSLOTS]; /* a node's waiting requests sleep here */
	struct cpl_table tab;           /* protected by the mutex (P1-P4) */
};

struct cl_shm {
	struct cl_hdr hdr;
	struct cl_node nodes[CL_NSLOTS];
	struct cl_reg regs[CL_NSLOTS];
	struct cl_entry table[CL_TABLE_SLOTS];
	struct cl_plk plk;
};

/* ---- process-local handle ---- */

struct cl_handle {
	struct coord *c;
	struct cl_shm *shm;
	int fd;
	char name[48];                  /* segment name */
	char tag[80];                   /* log prefix */
	uint32_t slot;                  /* CL_NO_SLOT for a read-only handle */
	uint64_t incarnation;           /* ours once joined; 0 before */
	uint64_t pidns;
	bool joined;
	bool thread_started;
	pthread_t thread;
	bool stop;                      /* protected by the mutex (atomic) */
	pthread_mutex_t cb_lock;        /* lock order 3 */
	coord_blocking_cb cb;           /* protected by cb_lock */
	void *cb_arg;                   /* protected by cb_lock */
	uint32_t ovf_cursor;            /* backend thread only */
	bool ovf_active;                /* backend thread only */
};

/* ---- step points ---- */

static void (*cl_step_hook)(enum coord_local_point pt);

void coord_local_set_step_hook(void (*hook)(enum coord_local_point pt))
{
	__atomic_store_n(&cl_step_hook, hook, __ATOMIC_SEQ_CST);
}

/* A step boundary of a multi-store update (see "Crash consistency"). */
static inline void cl_step(enum coord_local_point pt)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	void (*hook)(enum coord_local_point) = __atomic_load_n(&cl_step_hook, __ATOMIC_RELAXED);
	if (hook)
		hook(pt);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* ---- node sets ---- */

static inline bool cl_set_has(const struct cl_set *s, uint32_t n)
{
	return (s->w[n >> 6] >> (n & 63)) & 1;
}

static inline void cl_set_add(struct cl_set *s, uint32_t n)
{
	s->w[n >> 6] |= 1ull << (n & 63);
}

static inline void cl_set_del(struct cl_set *s, uint32_t n)
{
	s->w[n >> 6] &= ~(1ull << (n & 63));
}

static inline bool cl_set_empty(const struct cl_set *s)
{
	return !(s->w[0] | s->w[1] | s->w[2] | s->w[3]);
}

/* Is s empty once n is taken out? (n may be CL_NO_SLOT) */
static inline bool cl_set_empty_but(const struct cl_set *s, uint32_t n)
{
	struct cl_set t = *s;
	if (n < CL_NSLOTS)
		cl_set_del(&t, n);
	return cl_set_empty(&t);
}

static inline uint32_t cl_set_count(const struct cl_set *s)
{
	return (uint32_t)(__builtin_popcountll(s->w[0]) + __builtin_popcountll(s->w[1]) +
			  __builtin_popcountll(s->w[2]) + __builtin_popcountll(s->w[3]));
}

/* First member >= from, or CL_NSLOTS. */
static inline uint32_t cl_set_next(const struct cl_set *s, uint32_t from)
{
	while (from < CL_NSLOTS) {
		uint64_t w = s->w[from >> 6] >> (from & 63);
		if (w)
			return from + (uint32_t)__builtin_ctzll(w);
		from = (from | 63) + 1;
	}
	return CL_NSLOTS;
}

#define cl_set_for_each(n, s) \
	for (uint32_t n = cl_set_next((s), 0); n < CL_NSLOTS; n = cl_set_next((s), n + 1))

/* ---- the segment mutex ---- */

static void cl_repair_locked(struct cl_handle *h);

/* Take the mutex; repair the segment if its last holder died. */
static int cl_enter(struct cl_handle *h)
{
	int r = pthread_mutex_lock(&h->shm->hdr.mutex);
	if (r == 0)
		return 0;
	if (r == EOWNERDEAD) {
		pfs_warn("%s a process died holding the segment mutex; repairing the state",
			 h->tag);
		cl_repair_locked(h);
		r = pthread_mutex_consistent(&h->shm->hdr.mutex);
		PFS_BUG_ON(r != 0);
		return 0;
	}
	pfs_err("%s the segment mutex is unusable (%s); restart every node of the volume",
		h->tag, strerror(r));
	return -EIO;
}

static void cl_leave(struct cl_handle *h)
{
	int r = pthread_mutex_unlock(&h->shm->hdr.mutex);
	PFS_BUG_ON(r != 0);
}

/* ---- futex words ---- */

static long cl_futex(uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

static void cl_cond_broadcast_locked(struct cl_cond *cv)
{
	__atomic_fetch_add(&cv->seq, 1, __ATOMIC_SEQ_CST);
	cl_futex(&cv->seq, FUTEX_WAKE, INT_MAX, NULL);
}

/* Release the mutex, sleep until cv is bumped, the deadline (monotonic
 * ns) or the end of a slice, and take the mutex again.  0 with the mutex
 * held, or -EIO without it (cl_enter failed). */
static int cl_cond_wait_locked(struct cl_handle *h, struct cl_cond *cv, uint64_t deadline)
{
	uint32_t seq = __atomic_load_n(&cv->seq, __ATOMIC_SEQ_CST);
	uint64_t now = pfs_now_mono_ns();
	uint64_t until = now;

	if (deadline > now)
		until = deadline - now > CL_WAIT_SLICE_NS ? now + CL_WAIT_SLICE_NS : deadline;

	cl_leave(h);
	if (until > now) {
		struct timespec ts = {
			.tv_sec = (time_t)(until / 1000000000ull),
			.tv_nsec = (long)(until % 1000000000ull),
		};
		/* FUTEX_WAIT_BITSET: absolute CLOCK_MONOTONIC timeout */
		cl_futex(&cv->seq, FUTEX_WAIT_BITSET, seq, &ts);
	}
	return cl_enter(h);
}

/* ---- processes ---- */

static uint64_t cl_pidns_self(void)
{
	struct stat st;
	if (stat("/proc/self/ns/pid", &st) < 0)
		return 0;
	return (uint64_t)st.st_ino;
}

/* State letter and start time of pid: 0, -ENOENT (no such process), or
 * another -errno. */
static int cl_proc_stat(pid_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? -ENOENT : -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int rerr = errno;
	close(fd);
	if (n < 0)
		return rerr == ESRCH ? -ENOENT : -rerr;
	buf[n] = '\0';
	/* "pid (comm) S ppid ...": comm may hold anything, so parse from the
	 * last ')'; starttime is the 19th field after the state. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -EIO;
	p += 2;
	*state = *p;
	for (int i = 0; i < 19; i++) {
		p = strchr(p, ' ');
		if (!p)
			return -EIO;
		p++;
	}
	*start = strtoull(p, NULL, 10);
	return 0;
}

enum cl_owner { CL_OWNER_ALIVE, CL_OWNER_GONE, CL_OWNER_UNKNOWN };

/* Does the process of node record r still exist?  Only a process of our
 * pid namespace can be told. */
static enum cl_owner cl_owner_locked(const struct cl_handle *h, const struct cl_node *r)
{
	char st;
	uint64_t start;

	if (r->pid <= 0)
		return CL_OWNER_GONE;           /* died while joining */
	if (!r->pidns || !h->pidns || r->pidns != h->pidns)
		return CL_OWNER_UNKNOWN;
	if (kill(r->pid, 0) < 0 && errno == ESRCH)
		return CL_OWNER_GONE;
	int err = cl_proc_stat(r->pid, &st, &start);
	if (err == -ENOENT)
		return CL_OWNER_GONE;
	if (err)
		return CL_OWNER_UNKNOWN;
	if (st == 'Z' || st == 'X')
		return CL_OWNER_GONE;
	if (r->pid_start && start != r->pid_start)
		return CL_OWNER_GONE;           /* the pid was reused */
	return CL_OWNER_ALIVE;
}

static bool cl_beats_stale_locked(const struct cl_handle *h, const struct cl_node *r, uint64_t now)
{
	uint64_t dead_ns = (uint64_t)h->c->cfg.dead_ms * 1000000ull;
	return now >= r->last_beat_ns && now - r->last_beat_ns >= dead_ns;
}

/* A LIVE node is silent when its beats stopped for dead_ms or its
 * process is provably gone. */
static bool cl_silent_locked(const struct cl_handle *h, const struct cl_node *r, uint64_t now)
{
	if (r->state != COORD_LIVE)
		return false;
	return cl_beats_stale_locked(h, r, now) || cl_owner_locked(h, r) == CL_OWNER_GONE;
}

/* Is this handle's node LIVE in the incarnation it joined? */
static bool cl_current_locked(const struct cl_handle *h)
{
	if (!h->joined)
		return false;
	const struct cl_node *r = &h->shm->nodes[h->slot];
	return r->state == COORD_LIVE && r->incarnation == h->incarnation;
}

/* ---- the lock table ---- */

static uint32_t cl_home(uint64_t res)
{
	uint64_t x = res;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (uint32_t)x & CL_TABLE_MASK;
}

uint32_t coord_local_home(uint64_t res)
{
	return cl_home(res);
}

static inline uint32_t cl_next(uint32_t i)
{
	return (i + 1) & CL_TABLE_MASK;
}

/* Copy everything but res (the commit field) from src to dst. */
static void cl_entry_copy_body_locked(struct cl_entry *dst, const struct cl_entry *src)
{
	memcpy((char *)dst + sizeof(dst->res), (const char *)src + sizeof(src->res),
	       sizeof(*dst) - sizeof(dst->res));
}

static struct cl_entry *cl_find_locked(struct cl_shm *shm, uint64_t res)
{
	for (uint32_t i = cl_home(res), n = 0; n < CL_TABLE_SLOTS; i = cl_next(i), n++) {
		struct cl_entry *e = &shm->table[i];
		if (e->res == res)
			return e;
		if (e->res == 0)
			return NULL;            /* L5 */
	}
	return NULL;
}

static enum coord_mode cl_held_locked(const struct cl_entry *e, uint32_t n)
{
	if (n >= CL_NSLOTS)
		return COORD_NL;
	if (e->ex == n + 1)
		return COORD_EX;
	if (cl_set_has(&e->sh, n))
		return COORD_SH;
	return COORD_NL;
}

static bool cl_entry_idle_locked(const struct cl_entry *e)
{
	return !e->ex && cl_set_empty(&e->sh) && cl_set_empty(&e->waiters);
}

static struct cl_set cl_holders_locked(const struct cl_entry *e)
{
	struct cl_set s = e->sh;
	if (e->ex)
		cl_set_add(&s, e->ex - 1);
	return s;
}

static struct cl_entry *cl_insert_locked(struct cl_handle *h, uint64_t res)
{
	struct cl_shm *shm = h->shm;

	if (shm->hdr.nlocks >= CL_MAX_RES) {
		pfs_warn("%s lock table full: %u resources are held or awaited", h->tag,
			 shm->hdr.nlocks);
		return NULL;
	}
	uint32_t i = cl_home(res);
	while (shm->table[i].res != 0) {
		PFS_ASSERT(shm->table[i].res != res);          /* L5 */
		i = cl_next(i);
	}
	struct cl_entry *e = &shm->table[i];
	memset((char *)e + sizeof(e->res), 0, sizeof(*e) - sizeof(e->res));
	cl_step(COORD_LP_INSERT);
	__atomic_store_n(&e->res, res, __ATOMIC_RELEASE);      /* L5 commit */
	shm->hdr.nlocks++;
	return e;
}

/* Delete an idle entry (L1) by backward shift: later entries of the probe
 * cluster that may live in the hole move into it, so no tombstones. */
static void cl_delete_locked(struct cl_shm *shm, struct cl_entry *e)
{
	uint32_t i = (uint32_t)(e - shm->table);

	PFS_ASSERT(cl_entry_idle_locked(e));
	__atomic_store_n(&e->res, 0, __ATOMIC_RELEASE);
	PFS_BUG_ON(shm->hdr.nlocks == 0);
	shm->hdr.nlocks--;
	for (uint32_t j = cl_next(i); shm->table[j].res; j = cl_next(j)) {
		struct cl_entry *f = &shm->table[j];
		uint32_t home = cl_home(f->res);
		/* f stays if its home lies cyclically in (i, j] */
		if (((j - home) & CL_TABLE_MASK) < ((j - i) & CL_TABLE_MASK))
			continue;
		cl_step(COORD_LP_SHIFT_HOLE);
		cl_entry_copy_body_locked(&shm->table[i], f);
		__atomic_store_n(&shm->table[i].res, f->res, __ATOMIC_RELEASE);
		cl_step(COORD_LP_SHIFT_DUP);
		__atomic_store_n(&f->res, 0, __ATOMIC_RELEASE);
		i = j;
	}
}

static void cl_wake_waiters_locked(struct cl_shm *shm, const struct cl_entry *e)
{
	cl_set_for_each(n, &e->waiters)
		cl_cond_broadcast_locked(&shm->nodes[n].lock_cond);
}

/* Take node n off e's holders; wake e's waiters; delete e if idle (L1).
 * e may be moved or deleted: callers look it up again. */
static void cl_drop_holder_locked(struct cl_shm *shm, struct cl_entry *e, uint32_t n)
{
	struct cl_node *r = &shm->nodes[n];

	PFS_ASSERT(cl_held_locked(e, n) != COORD_NL);
	if (e->ex == n + 1)
		e->ex = 0;
	cl_set_del(&e->sh, n);
	PFS_BUG_ON(r->nheld == 0);                               /* N4 */
	r->nheld--;
	cl_wake_waiters_locked(shm, e);
	if (cl_entry_idle_locked(e))
		cl_delete_locked(shm, e);
}

/* Drop every lock node n holds (n's own, or retained ones).  Returns the
 * count. */
static uint32_t cl_drop_all_locked(struct cl_shm *shm, uint32_t n)
{
	uint32_t count = 0;

	for (uint32_t i = 0; i < CL_TABLE_SLOTS; ) {
		struct cl_entry *e = &shm->table[i];
		uint64_t res = e->res;
		if (res && cl_held_locked(e, n) != COORD_NL) {
			cl_drop_holder_locked(shm, e, n);
			count++;
			/* a delete shifts later entries back into slot i:
			 * look at it again (entries only move backward to
			 * slots at or after i, or from the wrapped start of
			 * the table, already visited) */
			if (shm->table[i].res != res)
				continue;
		}
		i++;
	}
	PFS_ASSERT(shm->nodes[n].nheld == 0);                    /* N4 */
	return count;
}

/* L6: may node n, holding `held` (< mode), be granted `mode` on e (NULL:
 * nobody holds or waits for the resource)? */
static bool cl_grantable_locked(const struct cl_entry *e, uint32_t n, enum coord_mode mode,
				enum coord_mode held)
{
	if (!e)
		return true;
	if (e->ex && e->ex != n + 1 && !coord_mode_compatible(COORD_EX, mode))
		return false;
	if (!cl_set_empty_but(&e->sh, n) && !coord_mode_compatible(COORD_SH, mode))
		return false;
	if (mode == COORD_SH && held == COORD_NL && !cl_set_empty_but(&e->ex_waiters, n))
		return false;                                   /* fairness */
	return true;
}

static void cl_grant_locked(struct cl_handle *h, struct cl_entry *e, enum coord_mode mode,
			    enum coord_mode held)
{
	uint32_t n = h->slot;

	if (mode == COORD_EX) {
		e->ex = n + 1;
		if (held == COORD_SH) {
			cl_step(COORD_LP_UPGRADE);              /* L2 transient */
			cl_set_del(&e->sh, n);
		}
	} else {
		cl_set_add(&e->sh, n);
	}
	if (held == COORD_NL)
		h->shm->nodes[n].nheld++;                       /* N4 */
	PFS_ASSERT(!e->ex || cl_set_empty(&e->sh));             /* L2 */
}

/* ---- wait records (L4) ---- */

/* Join or take node r's wait record for (res, mode); NULL if all are in
 * use by other requests. */
static struct cl_wait *cl_wait_get_locked(struct cl_node *r, uint64_t res, enum coord_mode mode)
{
	struct cl_wait *free_w = NULL;

	for (uint32_t k = 0; k < CL_NODE_WAITS; k++) {
		struct cl_wait *w = &r->waits[k];
		if (w->res == res && w->mode == (uint32_t)mode) {
			w->nthreads++;
			return w;
		}
		if (!w->res && !free_w)
			free_w = w;
	}
	if (!free_w)
		return NULL;
	free_w->mode = mode;
	free_w->nthreads = 1;
	__atomic_store_n(&free_w->res, res, __ATOMIC_RELEASE);  /* commit */
	return free_w;
}

/* L4: set node n's bits in e from its wait records. */
static void cl_wait_bits_locked(struct cl_shm *shm, struct cl_entry *e, uint32_t n)
{
	const struct cl_node *r = &shm->nodes[n];
	bool any = false, ex = false;

	for (uint32_t k = 0; k < CL_NODE_WAITS; k++) {
		if (r->waits[k].res != e->res)
			continue;
		any = true;
		if (r->waits[k].mode == COORD_EX)
			ex = true;
	}
	if (any)
		cl_set_add(&e->waiters, n);
	else
		cl_set_del(&e->waiters, n);
	if (ex)
		cl_set_add(&e->ex_waiters, n);
	else
		cl_set_del(&e->ex_waiters, n);
}

/* The end of one thread's wait: give its record back, update the bits,
 * wake the other waiters (an EX wait that ends may let SH requests in,
 * L6), delete the entry if idle (L1). */
static void cl_wait_put_locked(struct cl_handle *h, uint64_t res, enum coord_mode mode)
{
	struct cl_shm *shm = h->shm;
	struct cl_node *r = &shm->nodes[h->slot];

	for (uint32_t k = 0; k < CL_NODE_WAITS; k++) {
		struct cl_wait *w = &r->waits[k];
		if (w->res != res || w->mode != (uint32_t)mode)
			continue;
		PFS_ASSERT(w->nthreads > 0);
		if (--w->nthreads == 0) {
			__atomic_store_n(&w->res, 0, __ATOMIC_RELEASE);
			/* a thread of ours may wait for a free record */
			cl_cond_broadcast_locked(&r->lock_cond);
		}
		break;
	}
	/* The record is gone already if our node was declared dead (N2). */
	struct cl_entry *e = cl_find_locked(shm, res);
	if (!e)
		return;
	cl_wait_bits_locked(shm, e, h->slot);
	cl_wake_waiters_locked(shm, e);
	if (cl_entry_idle_locked(e))
		cl_delete_locked(shm, e);
}

/* ---- advisory locks: the parts other state changes call ---- */

static void cl_plk_wake_locked(struct cl_shm *shm, const struct cpl_nodes *w)
{
	if (!w->any)
		return;
	for (uint32_t n = 0; n < CL_NSLOTS; n++)
		if (w->has[n])
			cl_cond_broadcast_locked(&shm->plk.cond[n]);
}

/* A2: drop every advisory lock of node n; returns the count. */
static uint32_t cl_plk_drop_node_locked(struct cl_shm *shm, uint32_t n)
{
	struct cpl_nodes wake = { .any = false };
	uint32_t count = cpl_release_node(&shm->plk.tab, n, &wake);
	cl_plk_wake_locked(shm, &wake);
	return count;
}

/* N2: drop every wait record and post of node n (declared dead, taken
 * over, leaving). */
static void cl_clear_node_waits_locked(struct cl_shm *shm, uint32_t n)
{
	struct cl_node *r = &shm->nodes[n];

	for (uint32_t k = 0; k < CL_NODE_WAITS; k++) {
		uint64_t res = r->waits[k].res;
		if (!res)
			continue;
		__atomic_store_n(&r->waits[k].res, 0, __ATOMIC_RELEASE);
		r->waits[k].nthreads = 0;
		struct cl_entry *e = cl_find_locked(shm, res);
		if (!e)
			continue;
		cl_wait_bits_locked(shm, e, n);
		cl_wake_waiters_locked(shm, e);
		if (cl_entry_idle_locked(e))
			cl_delete_locked(shm, e);
	}
	r->mbox.head = r->mbox.tail;
	r->mbox.overflow = 0;
	cpl_clear_node_waits(&shm->plk.tab, n);                 /* A1 */
	cl_cond_broadcast_locked(&r->lock_cond);
	cl_cond_broadcast_locked(&r->mbox.cond);
	cl_cond_broadcast_locked(&shm->plk.cond[n]);
}

/* ---- blocking callbacks: posting ---- */

static void cl_post_locked(struct cl_shm *shm, uint32_t n, uint64_t res, enum coord_mode wanted)
{
	struct cl_mbox *mb = &shm->nodes[n].mbox;
	bool queued = false;

	PFS_ASSERT(shm->nodes[n].state == COORD_LIVE);            /* N2 */
	PFS_ASSERT(mb->tail - mb->head <= CL_MBOX_CAP);           /* M1 */
	for (uint32_t k = mb->head; k != mb->tail && !queued; k++) {
		struct cl_post *p = &mb->ring[k % CL_MBOX_CAP];
		if (p->res == res) {
			if (p->wanted < (uint32_t)wanted)
				p->wanted = wanted;
			queued = true;
		}
	}
	if (!queued && mb->tail - mb->head == CL_MBOX_CAP) {
		mb->overflow = 1;
	} else if (!queued) {
		mb->ring[mb->tail % CL_MBOX_CAP] = (struct cl_post){ .res = res, .wanted = wanted };
		__atomic_store_n(&mb->tail, mb->tail + 1, __ATOMIC_RELEASE);   /* M1 commit */
	}
	cl_cond_broadcast_locked(&mb->cond);
}

/* Post a blocking callback to every holder of e that conflicts with a
 * request for `mode` and was not told yet.  `told` is the requester's
 * record of holders already posted to; a holder that left and came back
 * is told again. */
static void cl_notify_holders_locked(struct cl_handle *h, struct cl_entry *e,
				     enum coord_mode mode, struct cl_set *told)
{
	struct cl_shm *shm = h->shm;
	struct cl_set holders = cl_holders_locked(e);

	cl_set_del(&holders, h->slot);
	for (int k = 0; k < 4; k++)
		told->w[k] &= holders.w[k];
	cl_set_for_each(n, &holders) {
		if (cl_set_has(told, n) || !coord_mode_conflicts(cl_held_locked(e, n), mode))
			continue;
		cl_set_add(told, n);
		if (shm->nodes[n].state == COORD_LIVE)          /* retained: nobody to tell */
			cl_post_locked(shm, n, e->res, mode);
	}
}

/* ---- segment setup ---- */

int coord_local_segment_name(const uint8_t uuid[16], char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	if (len < sizeof("/peerfs-") + 32)
		return -ENAMETOOLONG;
	size_t p = (size_t)snprintf(buf, len, "/peerfs-");
	for (int i = 0; i < 16; i++) {
		buf[p++] = hex[uuid[i] >> 4];
		buf[p++] = hex[uuid[i] & 15];
	}
	buf[p] = '\0';
	return 0;
}

static int cl_ofd(int fd, short type, off_t byte, bool wait)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = byte,
		.l_len = 1,
	};
	for (;;) {
		if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
			return 0;
		if (errno != EINTR)
			return errno == EACCES ? -EAGAIN : -errno;
	}
}

/* S1: build a fresh segment in zeroed memory. */
static int cl_build(struct cl_handle *h)
{
	struct cl_hdr *hd = &h->shm->hdr;
	pthread_mutexattr_t ma;
	int r;

	r = pthread_mutexattr_init(&ma);
	if (r)
		return -r;
	r = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	if (!r)
		r = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	if (!r)
		r = pthread_mutex_init(&hd->mutex, &ma);
	pthread_mutexattr_destroy(&ma);
	if (r)
		return -r;
	hd->version = CL_VERSION;
	hd->nslots = CL_NSLOTS;
	hd->size = sizeof(struct cl_shm);
	hd->table_slots = CL_TABLE_SLOTS;
	hd->max_res = CL_MAX_RES;
	hd->next_incarnation = 1;
	__atomic_store_n(&hd->magic, CL_MAGIC, __ATOMIC_RELEASE);   /* S1 commit */
	return 0;
}

static bool cl_layout_ok(const struct cl_shm *shm)
{
	const struct cl_hdr *hd = &shm->hdr;
	return __atomic_load_n(&hd->magic, __ATOMIC_ACQUIRE) == CL_MAGIC &&
	       hd->version == CL_VERSION && hd->size == sizeof(struct cl_shm) &&
	       hd->nslots == CL_NSLOTS && hd->table_slots == CL_TABLE_SLOTS &&
	       hd->max_res == CL_MAX_RES;
}

static int cl_map(struct cl_handle *h)
{
	void *p = mmap(NULL, sizeof(struct cl_shm), PROT_READ | PROT_WRITE, MAP_SHARED, h->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	h->shm = p;
	return 0;
}

static void cl_unmap(struct cl_handle *h)
{
	if (h->shm)
		munmap(h->shm, sizeof(struct cl_shm));
	h->shm = NULL;
}

/* Under the setup lock: make h->fd's segment usable (build or rebuild it
 * if it has no layout or another one and nobody is attached), map it and
 * take the attach lock. */
static int cl_setup_locked(struct cl_handle *h, bool create, off_t size)
{
	bool built = false;
	int err;

	if (size == (off_t)sizeof(struct cl_shm)) {
		err = cl_map(h);
		if (err)
			return err;
		if (cl_layout_ok(h->shm))
			return cl_ofd(h->fd, F_RDLCK, CL_BYTE_ATTACH, false);
		built = __atomic_load_n(&h->shm->hdr.magic, __ATOMIC_ACQUIRE) != 0;
		cl_unmap(h);
	}
	if (!create) {
		/* never finished by its creator (S1): no node ever had state */
		if (size == 0 || (size == (off_t)sizeof(struct cl_shm) && !built))
			return -ENOENT;
		pfs_err("%s segment has another layout (%lld bytes)", h->tag, (long long)size);
		return -EPROTO;
	}
	err = cl_ofd(h->fd, F_WRLCK, CL_BYTE_ATTACH, false);
	if (err == -EAGAIN) {
		pfs_err("%s segment has another layout (%lld bytes, expected %zu) and running "
			"processes use it: stop them (another peerfs version?) and retry",
			h->tag, (long long)size, sizeof(struct cl_shm));
		return -EPROTO;
	}
	if (err)
		return err;
	if (size != 0)
		pfs_warn("%s segment has another layout or was left half-built (%lld bytes); "
			 "nobody uses it: rebuilding", h->tag, (long long)size);
	if (ftruncate(h->fd, 0) < 0 || ftruncate(h->fd, (off_t)sizeof(struct cl_shm)) < 0) {
		err = -errno;
		pfs_err("%s cannot size the segment to %zu bytes: %s", h->tag,
			sizeof(struct cl_shm), strerror(-err));
		return err;
	}
	err = cl_map(h);
	if (err)
		return err;
	err = cl_build(h);
	if (err) {
		cl_unmap(h);
		return err;
	}
	/* downgrade to the shared attach lock */
	return cl_ofd(h->fd, F_RDLCK, CL_BYTE_ATTACH, false);
}

/* Open, set up and map the segment of c's volume. */
static int cl_attach(struct coord *c, bool create, struct cl_handle **out)
{
	struct cl_handle *h = calloc(1, sizeof(*h));
	struct stat st;
	int err;

	if (!h)
		return -ENOMEM;
	h->c = c;
	h->fd = -1;
	h->slot = c->readonly ? CL_NO_SLOT : c->cfg.slot;
	h->pidns = cl_pidns_self();
	coord_local_segment_name(c->cfg.uuid, h->name, sizeof(h->name));
	if (c->readonly)
		snprintf(h->tag, sizeof(h->tag), "coord %s (read-only):", h->name);
	else
		snprintf(h->tag, sizeof(h->tag), "coord %s slot %u:", h->name, h->slot);
	err = -pthread_mutex_init(&h->cb_lock, NULL);
	if (err)
		goto out_free;

	for (int attempt = 0;; attempt++) {
		h->fd = shm_open(h->name, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
		if (h->fd < 0) {
			err = -errno;
			if (err != -ENOENT || create)
				pfs_err("%s shm_open: %s", h->tag, strerror(-err));
			goto out_cb_lock;
		}
		err = cl_ofd(h->fd, F_WRLCK, CL_BYTE_SETUP, true);
		if (err)
			goto out_close;
		if (fstat(h->fd, &st) < 0) {
			err = -errno;
			goto out_close;
		}
		if (st.st_nlink > 0)
			break;
		/* removed by a last close while we waited: start over */
		close(h->fd);
		h->fd = -1;
		if (attempt == CL_OPEN_RETRIES) {
			err = -EAGAIN;
			goto out_cb_lock;
		}
	}
	err = cl_setup_locked(h, create, st.st_size);
	if (err)
		goto out_unmap;
	cl_ofd(h->fd, F_UNLCK, CL_BYTE_SETUP, false);
	*out = h;
	return 0;

out_unmap:
	cl_unmap(h);
out_close:
	close(h->fd);                   /* drops the OFD locks */
out_cb_lock:
	pthread_mutex_destroy(&h->cb_lock);
out_free:
	free(h);
	return err;
}

/* Is there nothing left worth keeping (every node ABSENT, N3)? */
static bool cl_state_empty_locked(const struct cl_shm *shm)
{
	for (uint32_t n = 0; n < CL_NSLOTS; n++)
		if (shm->nodes[n].state != COORD_ABSENT || shm->regs[n].status != COORD_REG_INACTIVE)
			return false;
	return shm->hdr.nlocks == 0;
}

/* Unmap and close; the last handle of an empty segment removes it. */
static void cl_detach(struct cl_handle *h)
{
	if (h->shm && cl_ofd(h->fd, F_WRLCK, CL_BYTE_SETUP, true) == 0 &&
	    cl_ofd(h->fd, F_WRLCK, CL_BYTE_ATTACH, false) == 0 && cl_enter(h) == 0) {
		bool empty = cl_state_empty_locked(h->shm);
		cl_leave(h);
		if (empty && shm_unlink(h->name) == 0)
			pfs_debug("%s last node left: segment removed", h->tag);
	}
	cl_unmap(h);
	close(h->fd);                   /* drops the OFD locks */
	pthread_mutex_destroy(&h->cb_lock);
	free(h);
}

/* ---- repair and check ---- */

/* L5: move every entry to the first hole of its probe chain and drop the
 * second copy of an entry stored twice, until nothing moves.  Each move
 * brings an entry closer to its home and each drop removes one, so this
 * ends; at the end no chain has a hole or a duplicate. */
static void cl_repair_table_locked(struct cl_shm *shm, uint32_t *moved, uint32_t *dups)
{
	bool changed;

	do {
		changed = false;
		for (uint32_t i = 0; i < CL_TABLE_SLOTS; i++) {
			struct cl_entry *e = &shm->table[i];
			if (!e->res)
				continue;
			for (uint32_t k = cl_home(e->res); k != i; k = cl_next(k)) {
				struct cl_entry *f = &shm->table[k];
				if (f->res == e->res) {
					/* a copy left by an interrupted shift */
					__atomic_store_n(&e->res, 0, __ATOMIC_RELEASE);
					(*dups)++;
					changed = true;
					break;
				}
				if (!f->res) {
					cl_entry_copy_body_locked(f, e);
					__atomic_store_n(&f->res, e->res, __ATOMIC_RELEASE);
					__atomic_store_n(&e->res, 0, __ATOMIC_RELEASE);
					(*moved)++;
					changed = true;
					break;
				}
			}
		}
	} while (changed);
}

/* Bring the segment back to the invariants after a process died holding
 * the mutex (see "Crash consistency"). */
static void cl_repair_locked(struct cl_handle *h)
{
	struct cl_shm *shm = h->shm;
	uint32_t moved = 0, dups = 0, fixed = 0;
	uint64_t max_inc = 0;

	shm->hdr.repairs++;
	cl_repair_table_locked(shm, &moved, &dups);              /* L5 */

	for (uint32_t n = 0; n < CL_NSLOTS; n++) {
		struct cl_node *r = &shm->nodes[n];
		PFS_BUG_ON(r->state > COORD_DEAD);                /* a torn store cannot make this */
		if (r->state != COORD_ABSENT && r->incarnation > max_inc)
			max_inc = r->incarnation;
		if (r->mbox.tail - r->mbox.head > CL_MBOX_CAP) {  /* M1 */
			r->mbox.head = r->mbox.tail;
			r->mbox.overflow = 1;
			fixed++;
		}
		for (uint32_t k = 0; k < CL_NODE_WAITS; k++) {
			struct cl_wait *w = &r->waits[k];
			/* N2; a record of no thread or mode is a torn take */
			if (w->res && (r->state != COORD_LIVE || w->nthreads == 0 ||
				       (w->mode != COORD_SH && w->mode != COORD_EX))) {
				w->res = 0;
				fixed++;
			}
		}
		if (r->state != COORD_LIVE) {                      /* N2 */
			r->mbox.head = r->mbox.tail;
			r->mbox.overflow = 0;
		}
		r->nheld = 0;                                     /* N4, recounted below */
	}
	if (shm->hdr.next_incarnation <= max_inc)                 /* N1 */
		shm->hdr.next_incarnation = max_inc + 1;

	uint32_t nlocks = 0;
	for (uint32_t i = 0; i < CL_TABLE_SLOTS; i++) {
		struct cl_entry *e = &shm->table[i];
		if (!e->res)
			continue;
		nlocks++;
		PFS_BUG_ON(e->ex > CL_NSLOTS);                    /* a torn store cannot make this */
		if (e->ex && cl_set_has(&e->sh, e->ex - 1)) {     /* L2 transient -> EX */
			cl_set_del(&e->sh, e->ex - 1);
			fixed++;
		}
		PFS_BUG_ON(e->ex && !cl_set_empty(&e->sh));       /* L2: no step makes this */
		struct cl_set holders = cl_holders_locked(e);
		cl_set_for_each(n, &holders) {
			if (shm->nodes[n].state == COORD_ABSENT) {        /* L3, N3 */
				if (e->ex == n + 1)
					e->ex = 0;
				cl_set_del(&e->sh, n);
				fixed++;
			} else {
				shm->nodes[n].nheld++;
			}
		}
		memset(&e->waiters, 0, sizeof(e->waiters));
		memset(&e->ex_waiters, 0, sizeof(e->ex_waiters));
	}
	shm->hdr.nlocks = nlocks;

	/* L4 from the wait records; an entry a record lacks is re-created */
	for (uint32_t n = 0; n < CL_NSLOTS; n++) {
		struct cl_node *r = &shm->nodes[n];
		for (uint32_t k = 0; k < CL_NODE_WAITS; k++) {
			struct cl_wait *w = &r->waits[k];
			if (!w->res)
				continue;
			struct cl_entry *e = cl_find_locked(shm, w->res);
			if (!e)
				e = cl_insert_locked(h, w->res);
			if (!e) {
				w->res = 0;
				continue;
			}
			cl_set_add(&e->waiters, n);
			if (w->mode == COORD_EX)
				cl_set_add(&e->ex_waiters, n);
		}
	}

	for (uint32_t i = 0; i < CL_TABLE_SLOTS; ) {            /* L1 */
		struct cl_entry *e = &shm->table[i];
		uint64_t res = e->res;
		if (res && cl_entry_idle_locked(e)) {
			cl_delete_locked(shm, e);
			if (shm->table[i].res != res)
				continue;
		}
		i++;
	}

	for (uint32_t n = 0; n < CL_NSLOTS; n++) {                /* R1, N3 */
		struct cl_reg *g = &shm->regs[n];
		struct cl_node *r = &shm->nodes[n];
		if (g->status == COORD_REG_ACTIVE &&
		    (r->state != COORD_DEAD || g->counterpart == n || g->counterpart >= CL_NSLOTS)) {
			g->status = COORD_REG_INACTIVE;
			fixed++;
		}
		/* A DEAD node holding nothing with an INACTIVE registration stays
		 * DEAD: it may just have been declared dead, and only its
		 * counterpart's unregister says that it was recovered. */
	}

	/* advisory locks: P1, P4, then A1 */
	uint32_t plk_fixed = cpl_repair(&shm->plk.tab);
	for (uint32_t n = 0; n < CL_NSLOTS; n++) {
		struct cpl_nodes none = { .any = false };
		if (shm->nodes[n].state == COORD_ABSENT)
			plk_fixed += cpl_release_node(&shm->plk.tab, n, &none);
		if (shm->nodes[n].state != COORD_LIVE)
			plk_fixed += cpl_clear_node_waits(&shm->plk.tab, n);
	}

	/* wake everyone: whatever the dead holder meant to wake */
	for (uint32_t n = 0; n < CL_NSLOTS; n++) {
		cl_cond_broadcast_locked(&shm->nodes[n].lock_cond);
		cl_cond_broadcast_locked(&shm->nodes[n].mbox.cond);
		cl_cond_broadcast_locked(&shm->plk.cond[n]);
	}
	pfs_warn("%s repaired: %u entries re-placed, %u duplicates dropped, %u fields fixed, "
		 "%u resources in use, %u advisory records dropped", h->tag, moved, dups, fixed,
		 nlocks, plk_fixed);
}

#define CL_CHECK(cond, ...) do { \
	if (!(cond)) { \
		pfs_err(__VA_ARGS__); \
		return -EUCLEAN; \
	} \
} while (0)

static int cl_check_locked(struct cl_handle *h)
{
	struct cl_shm *shm = h->shm;
	uint32_t nheld[CL_NSLOTS] = { 0 };
	uint32_t used = 0;

	CL_CHECK(cl_layout_ok(shm), "%s S1: bad header", h->tag);
	for (uint32_t i = 0; i < CL_TABLE_SLOTS; i++) {
		const struct cl_entry *e = &shm->table[i];
		if (!e->res)
			continue;
		used++;
		for (uint32_t k = cl_home(e->res); k != i; k = cl_next(k))
			CL_CHECK(shm->table[k].res && shm->table[k].res != e->res,
				 "%s L5: resource %#llx at %u: hole or copy at %u", h->tag,
				 (unsigned long long)e->res, i, k);
		CL_CHECK(!cl_entry_idle_locked(e), "%s L1: resource %#llx idle", h->tag,
			 (unsigned long long)e->res);
		CL_CHECK(e->ex <= CL_NSLOTS && (!e->ex || cl_set_empty(&e->sh)),
			 "%s L2: resource %#llx: EX %u with SH holders", h->tag,
			 (unsigned long long)e->res, e->ex);
		struct cl_set holders = cl_holders_locked(e);
		cl_set_for_each(n, &holders) {
			CL_CHECK(shm->nodes[n].state != COORD_ABSENT,
				 "%s L3: resource %#llx held by absent node %u", h->tag,
				 (unsigned long long)e->res, n);
			nheld[n]++;
		}
		/* L4, from the bits to the records */
		cl_set_for_each(n, &e->waiters) {
			bool any = false, ex = false;
			for (uint32_t k = 0; k < CL_NODE_WAITS; k++) {
				if (shm->nodes[n].waits[k].res == e->res) {
					any = true;
					ex |= shm->nodes[n].waits[k].mode == COORD_EX;
				}
			}
			CL_CHECK(any && ex == cl_set_has(&e->ex_waiters, n),
				 "%s L4: resource %#llx: waiter bits of node %u", h->tag,
				 (unsigned long long)e->res, n);
		}
		CL_CHECK(!(e->ex_waiters.w[0] & ~e->waiters.w[0]) &&
			 !(e->ex_waiters.w[1] & ~e->waiters.w[1]) &&
			 !(e->ex_waiters.w[2] & ~e->waiters.w[2]) &&
			 !(e->ex_waiters.w[3] & ~e->waiters.w[3]),
			 "%s L4: resource %#llx: EX waiters that do not wait", h->tag,
			 (unsigned long long)e->res);
	}
	CL_CHECK(used == shm->hdr.nlocks && used <= CL_MAX_RES, "%s L5: %u used, count %u",
		 h->tag, used, shm->hdr.nlocks);
	char why[128];
	CL_CHECK(cpl_check(&shm->plk.tab, why, sizeof(why)) == 0, "%s advisory locks: %s",
		 h->tag, why);
	for (uint32_t i = 0; i < COORD_PLOCK_MAX; i++) {                 /* A1 */
		const struct cpl_rec *l = &shm->plk.tab.locks[i];
		CL_CHECK(!l->type || shm->nodes[l->slot].state != COORD_ABSENT,
			 "%s A1: advisory lock of absent node %u", h->tag, l->slot);
	}
	for (uint32_t k = 0; k < COORD_PLOCK_MAX_WAITS; k++) {
		const struct cpl_wait *w = &shm->plk.tab.waits[k];
		CL_CHECK(!w->id || shm->nodes[w->req.slot].state == COORD_LIVE,
			 "%s A1: node %u is not live and waits for an advisory lock", h->tag,
			 w->req.slot);
	}
	for (uint32_t n = 0; n < CL_NSLOTS; n++) {
		const struct cl_node *r = &shm->nodes[n];
		const struct cl_reg *g = &shm->regs[n];
		CL_CHECK(r->state <= COORD_DEAD, "%s node %u: state %u", h->tag, n, r->state);
		CL_CHECK(r->state == COORD_ABSENT ||
			 (r->incarnation && r->incarnation < shm->hdr.next_incarnation),
			 "%s N1: node %u incarnation %llu", h->tag, n,
			 (unsigned long long)r->incarnation);
		CL_CHECK(nheld[n] == r->nheld, "%s N4: node %u holds %u, counted %u", h->tag, n,
			 nheld[n], r->nheld);
		CL_CHECK(r->state != COORD_ABSENT || (!r->nheld && g->status == COORD_REG_INACTIVE),
			 "%s N3: absent node %u holds locks or is registered", h->tag, n);
		CL_CHECK(r->mbox.tail - r->mbox.head <= CL_MBOX_CAP, "%s M1: node %u mailbox",
			 h->tag, n);
		if (r->state != COORD_LIVE) {
			CL_CHECK(r->mbox.tail == r->mbox.head && !r->mbox.overflow,
				 "%s N2: node %u has posts", h->tag, n);
			for (uint32_t k = 0; k < CL_NODE_WAITS; k++)
				CL_CHECK(!r->waits[k].res, "%s N2: node %u has waits", h->tag, n);
		}
		for (uint32_t k = 0; k < CL_NODE_WAITS; k++) {  /* L4, from the records */
			const struct cl_wait *w = &r->waits[k];
			const struct cl_entry *e = w->res ? cl_find_locked(shm, w->res) : NULL;
			CL_CHECK(!w->res || (e && w->nthreads && cl_set_has(&e->waiters, n) &&
					     (w->mode != COORD_EX || cl_set_has(&e->ex_waiters, n))),
				 "%s L4: node %u waits for %#llx: no matching entry bits", h->tag, n,
				 (unsigned long long)w->res);
		}
		CL_CHECK(g->status == COORD_REG_INACTIVE ||
			 (g->status == COORD_REG_ACTIVE && r->state == COORD_DEAD &&
			  g->counterpart != n && g->counterpart < CL_NSLOTS),
			 "%s R1: registration of node %u", h->tag, n);
	}
	return 0;
}

int coord_local_check(struct coord *c)
{
	struct cl_handle *h = c->be;
	int err = cl_enter(h);
	if (err)
		return err;
	err = cl_check_locked(h);
	cl_leave(h);
	return err;
}

/* ---- the backend thread: blocking callbacks ---- */

static bool cl_has_cb(struct cl_handle *h)
{
	pthread_mutex_lock(&h->cb_lock);
	bool has = h->cb != NULL;
	pthread_mutex_unlock(&h->cb_lock);
	return has;
}

/* The mode another node wants on e that our `held` mode blocks, or NL. */
static enum coord_mode cl_wanted_from_locked(const struct cl_entry *e, uint32_t me,
					     enum coord_mode held)
{
	if (!cl_set_empty_but(&e->ex_waiters, me) && coord_mode_conflicts(held, COORD_EX))
		return COORD_EX;
	if (!cl_set_empty_but(&e->waiters, me) && coord_mode_conflicts(held, COORD_SH))
		return COORD_SH;
	return COORD_NL;
}

/* After an overflow: find the resources we hold that others wait for,
 * from the cursor on; at most max per call. */
static size_t cl_overflow_scan_locked(struct cl_handle *h, struct cl_post *out, size_t max)
{
	struct cl_shm *shm = h->shm;
	size_t n = 0;

	while (h->ovf_cursor < CL_TABLE_SLOTS && n < max) {
		const struct cl_entry *e = &shm->table[h->ovf_cursor++];
		if (!e->res)
			continue;
		enum coord_mode held = cl_held_locked(e, h->slot);
		enum coord_mode wanted = cl_wanted_from_locked(e, h->slot, held);
		if (wanted != COORD_NL)
			out[n++] = (struct cl_post){ .res = e->res, .wanted = wanted };
	}
	if (h->ovf_cursor >= CL_TABLE_SLOTS)
		h->ovf_active = false;
	return n;
}

/* Take the posts of our mailbox that still apply (we hold a mode that
 * blocks the wanted one). */
static size_t cl_mbox_take_locked(struct cl_handle *h, struct cl_post *out, size_t max)
{
	struct cl_shm *shm = h->shm;
	struct cl_mbox *mb = &shm->nodes[h->slot].mbox;
	size_t n = 0;

	PFS_ASSERT(mb->tail - mb->head <= CL_MBOX_CAP);               /* M1 */
	while (mb->head != mb->tail && n < max) {
		struct cl_post p = mb->ring[mb->head % CL_MBOX_CAP];
		mb->head++;
		struct cl_entry *e = cl_find_locked(shm, p.res);
		if (e && coord_mode_conflicts(cl_held_locked(e, h->slot), p.wanted))
			out[n++] = p;
	}
	if (n < max && (mb->overflow || h->ovf_active)) {
		if (!h->ovf_active) {
			/* a round starts: posts dropped from now on set the
			 * flag again and get a round of their own */
			mb->overflow = 0;
			h->ovf_active = true;
			h->ovf_cursor = 0;
		}
		n += cl_overflow_scan_locked(h, out + n, max - n);
	}
	return n;
}

static void *cl_thread_main(void *arg)
{
	struct cl_handle *h = arg;
	struct cl_post batch[CL_MBOX_CAP];

	if (cl_enter(h))
		return NULL;
	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		size_t n = 0;
		/* a fenced node's mailbox belongs to no one or to a later
		 * incarnation of the slot */
		if (cl_current_locked(h) && cl_has_cb(h))
			n = cl_mbox_take_locked(h, batch, CL_MBOX_CAP);
		if (n == 0) {
			if (cl_cond_wait_locked(h, &h->shm->nodes[h->slot].mbox.cond, UINT64_MAX))
				return NULL;
			continue;
		}
		cl_leave(h);
		pthread_mutex_lock(&h->cb_lock);
		coord_blocking_cb cb = h->cb;
		void *cb_arg = h->cb_arg;
		pthread_mutex_unlock(&h->cb_lock);
		for (size_t k = 0; k < n && cb; k++) {
			pfs_debug("%s blocking callback: resource %#llx wanted %s", h->tag,
				  (unsigned long long)batch[k].res,
				  coord_mode_name((enum coord_mode)batch[k].wanted));
			cb(cb_arg, batch[k].res, (enum coord_mode)batch[k].wanted);
		}
		if (cl_enter(h))
			return NULL;
	}
	cl_leave(h);
	return NULL;
}

static int cl_thread_start(struct cl_handle *h)
{
	sigset_t all, old;
	int r;

	/* the thread takes no signals: the daemon's threads handle them */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&h->thread, NULL, cl_thread_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		pfs_err("%s cannot start the callback thread: %s", h->tag, strerror(r));
		return -r;
	}
	h->thread_started = true;
	return 0;
}

static void cl_thread_stop(struct cl_handle *h)
{
	if (!h->thread_started)
		return;
	bool locked = cl_enter(h) == 0;
	__atomic_store_n(&h->stop, true, __ATOMIC_RELEASE);
	cl_cond_broadcast_locked(&h->shm->nodes[h->slot].mbox.cond);
	if (locked)
		cl_leave(h);
	pthread_join(h->thread, NULL);
	h->thread_started = false;
}

/* ---- membership ---- */

static void cl_fill_node_locked(struct cl_handle *h, struct cl_node *r, uint64_t now)
{
	const struct coord_config *cfg = &h->c->cfg;
	char st;
	uint64_t start = 0;

	if (cl_proc_stat(getpid(), &st, &start))
		start = 0;
	r->incarnation = h->shm->hdr.next_incarnation++;         /* N1 */
	r->generation = cfg->generation;
	r->host_id = cfg->host_id;
	r->pid = (int32_t)getpid();
	r->pid_start = start;
	r->pidns = h->pidns;
	r->last_beat_ns = now;
	snprintf(r->hostname, sizeof(r->hostname), "%s", cfg->hostname);
	h->incarnation = r->incarnation;
}

static int cl_join_locked(struct cl_handle *h)
{
	struct cl_shm *shm = h->shm;
	struct cl_node *r = &shm->nodes[h->slot];
	uint64_t now = coord_clock_ns(h->c);

	switch (r->state) {
	case COORD_ABSENT:
		PFS_ASSERT(r->nheld == 0 && shm->regs[h->slot].status == COORD_REG_INACTIVE); /* N3 */
		cl_fill_node_locked(h, r, now);
		cl_step(COORD_LP_JOIN);
		__atomic_store_n(&r->state, COORD_LIVE, __ATOMIC_RELEASE);   /* commit */
		pfs_info("%s joined (generation %llu, incarnation %llu)", h->tag,
			 (unsigned long long)h->c->cfg.generation,
			 (unsigned long long)h->incarnation);
		break;
	case COORD_LIVE: {
		enum cl_owner owner = cl_owner_locked(h, r);
		if (owner == CL_OWNER_ALIVE ||
		    (owner == CL_OWNER_UNKNOWN && !cl_beats_stale_locked(h, r, now))) {
			pfs_err("%s the slot is in use by pid %d on %.64s (generation %llu)", h->tag,
				r->pid, r->hostname, (unsigned long long)r->generation);
			return -EBUSY;
		}
		pfs_warn("%s previous incarnation (pid %d on %.64s, generation %llu) is silent: "
			 "taking the slot over with its %u locks", h->tag, r->pid, r->hostname,
			 (unsigned long long)r->generation, r->nheld);
		/* N2: its threads are gone; its locks stay ours */
		cl_clear_node_waits_locked(shm, h->slot);
		cl_fill_node_locked(h, r, now);
		break;
	}
	case COORD_DEAD:
		pfs_err("%s the slot was declared dead and is not recovered yet (%u locks retained, "
			"registration %s); retry once a peer recovered it", h->tag, r->nheld,
			shm->regs[h->slot].status == COORD_REG_ACTIVE ? "active" : "inactive");
		return -EAGAIN;
	default:
		PFS_BUG_ON(r->state > COORD_DEAD);
	}
	h->joined = true;
	return 0;
}

static void cl_leave_node_locked(struct cl_handle *h)
{
	struct cl_shm *shm = h->shm;
	struct cl_node *r = &shm->nodes[h->slot];

	PFS_ASSERT(cl_current_locked(h));
	uint32_t n = cl_drop_all_locked(shm, h->slot);
	uint32_t np = cl_plk_drop_node_locked(shm, h->slot);           /* A2 */
	cl_clear_node_waits_locked(shm, h->slot);
	cl_step(COORD_LP_LEAVE);
	PFS_ASSERT(shm->regs[h->slot].status == COORD_REG_INACTIVE);   /* R1 */
	__atomic_store_n(&r->state, COORD_ABSENT, __ATOMIC_RELEASE);   /* commit; N3 */
	pfs_info("%s left (%u locks, %u advisory locks released)", h->tag, n, np);
}

/* DEAD -> ABSENT once nothing is retained and nobody is registered. */
static void cl_maybe_absent_locked(struct cl_handle *h, uint32_t slot)
{
	struct cl_shm *shm = h->shm;
	struct cl_node *r = &shm->nodes[slot];

	if (r->state != COORD_DEAD || r->nheld || shm->regs[slot].status != COORD_REG_INACTIVE)
		return;
	cl_plk_drop_node_locked(shm, slot);                              /* A1, A2 */
	__atomic_store_n(&r->state, COORD_ABSENT, __ATOMIC_RELEASE);   /* N3 */
	pfs_info("%s node %u is recovered: its slot is free", h->tag, slot);
}

/* ---- ops ---- */

static int cl_open(struct coord *c)
{
	struct cl_handle *h;
	int err = cl_attach(c, true, &h);
	if (err)
		return err;
	err = cl_enter(h);
	if (err)
		goto out_detach;
	err = cl_join_locked(h);
	cl_leave(h);
	if (err)
		goto out_detach;
	err = cl_thread_start(h);
	if (err)
		goto out_unjoin;
	c->be = h;
	return 0;

out_unjoin:
	if (cl_enter(h) == 0) {
		if (cl_current_locked(h))
			cl_leave_node_locked(h);
		cl_leave(h);
	}
out_detach:
	cl_detach(h);
	return err;
}

static int cl_attach_readonly(struct coord *c)
{
	struct cl_handle *h;
	int err = cl_attach(c, false, &h);
	if (err)
		return err;
	c->be = h;
	return 0;
}

static void cl_close(struct coord *c)
{
	struct cl_handle *h = c->be;

	cl_thread_stop(h);
	if (h->joined && cl_enter(h) == 0) {
		/* a fenced node leaves nothing: its locks are retained */
		if (cl_current_locked(h))
			cl_leave_node_locked(h);
		cl_leave(h);
	}
	cl_detach(h);
	c->be = NULL;
}

static int cl_heartbeat(struct coord *c)
{
	struct cl_handle *h = c->be;
	int err = cl_enter(h);
	if (err)
		return err;
	if (cl_current_locked(h))
		h->shm->nodes[h->slot].last_beat_ns = coord_clock_ns(c);
	else
		err = -ESTALE;
	cl_leave(h);
	return err;
}

static void cl_set_blocking_cb(struct coord *c, coord_blocking_cb cb, void *arg)
{
	struct cl_handle *h = c->be;

	pthread_mutex_lock(&h->cb_lock);
	h->cb = cb;
	h->cb_arg = arg;
	pthread_mutex_unlock(&h->cb_lock);
	/* posts kept while there was no callback are delivered now */
	if (cl_enter(h) == 0) {
		cl_cond_broadcast_locked(&h->shm->nodes[h->slot].mbox.cond);
		cl_leave(h);
	}
}

static int cl_silent_nodes(struct coord *c, uint32_t *slots, size_t max)
{
	struct cl_handle *h = c->be;
	uint64_t now = coord_clock_ns(c);
	size_t count = 0;
	int err = cl_enter(h);
	if (err)
		return err;
	for (uint32_t n = 0; n < CL_NSLOTS && count < max; n++)
		if (n != h->slot && cl_silent_locked(h, &h->shm->nodes[n], now))
			slots[count++] = n;
	cl_leave(h);
	return (int)count;
}

static int cl_declare_dead(struct coord *c, uint32_t slot)
{
	struct cl_handle *h = c->be;
	struct cl_shm *shm = h->shm;
	struct cl_node *r = &shm->nodes[slot];
	int err = cl_enter(h);
	if (err)
		return err;
	if (!cl_current_locked(h)) {
		err = -ESTALE;
		goto out_leave;
	}
	if (slot == h->slot) {
		err = -EINVAL;
		goto out_leave;
	}
	switch (r->state) {
	case COORD_ABSENT:
		err = -ENOENT;
		goto out_leave;
	case COORD_DEAD:
		goto out_leave;                                 /* already */
	default:
		break;
	}
	if (!cl_silent_locked(h, r, coord_clock_ns(c))) {
		pfs_info("%s node %u beat within %d ms: not declaring it dead", h->tag, slot,
			 c->cfg.dead_ms);
		err = -EAGAIN;
		goto out_leave;
	}
	__atomic_store_n(&r->state, COORD_DEAD, __ATOMIC_RELEASE);   /* commit */
	cl_step(COORD_LP_DECLARE);
	cl_clear_node_waits_locked(shm, slot);                       /* N2 */
	pfs_warn("%s node %u (pid %d on %.64s, generation %llu) declared dead: %u locks retained",
		 h->tag, slot, r->pid, r->hostname, (unsigned long long)r->generation, r->nheld);
out_leave:
	cl_leave(h);
	return err;
}

static int cl_node_info(struct coord *c, uint32_t slot, struct coord_node_info *out)
{
	struct cl_handle *h = c->be;
	const struct cl_node *r = &h->shm->nodes[slot];
	int err = cl_enter(h);
	if (err)
		return err;
	memset(out, 0, sizeof(*out));
	out->slot = slot;
	out->state = (enum coord_node_state)r->state;
	if (r->state != COORD_ABSENT) {
		out->generation = r->generation;
		out->host_id = r->host_id;
		out->pid = r->pid;
		out->last_beat_ns = r->last_beat_ns;
		memcpy(out->hostname, r->hostname, sizeof(out->hostname) - 1);
		out->hostname[sizeof(out->hostname) - 1] = '\0';
	}
	if (r->state == COORD_DEAD)
		out->retained_locks = r->nheld;
	cl_leave(h);
	return 0;
}

static int cl_lock(struct coord *c, uint64_t res, enum coord_mode mode, int timeout_ms)
{
	struct cl_handle *h = c->be;
	struct cl_shm *shm = h->shm;
	struct cl_node *me = &shm->nodes[h->slot];
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX :
			    pfs_now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct cl_set told = { { 0 } };
	bool waiting = false;
	int err = cl_enter(h);
	if (err)
		return err;

	/* Entries move (deletes shift them) whenever the mutex is released:
	 * look the resource up again after every sleep. */
	for (;;) {
		if (!cl_current_locked(h)) {
			err = -ESTALE;
			break;
		}
		struct cl_entry *e = cl_find_locked(shm, res);
		enum coord_mode held = e ? cl_held_locked(e, h->slot) : COORD_NL;
		if (held >= mode) {
			err = 0;                        /* held, or granted to another thread */
			break;
		}
		if (cl_grantable_locked(e, h->slot, mode, held)) {         /* L6 */
			if (!e && !(e = cl_insert_locked(h, res))) {
				err = -ENOSPC;
				break;
			}
			cl_grant_locked(h, e, mode, held);
			err = 0;
			break;
		}
		if (timeout_ms == 0 || pfs_now_mono_ns() >= deadline) {
			err = -ETIMEDOUT;
			break;
		}
		PFS_BUG_ON(!e);         /* refused only because of holders or waiters (L1) */
		if (!waiting) {
			if (!cl_wait_get_locked(me, res, mode)) {
				/* every wait record is taken: wait for one */
				err = cl_cond_wait_locked(h, &me->lock_cond, deadline);
				if (err)
					return err;
				continue;
			}
			waiting = true;
			cl_step(COORD_LP_WAIT);
			cl_wait_bits_locked(shm, e, h->slot);               /* L4 */
		}
		cl_notify_holders_locked(h, e, mode, &told);
		err = cl_cond_wait_locked(h, &me->lock_cond, deadline);
		if (err)
			return err;
	}
	/* A fenced node's records were cleared by whoever fenced it (N2);
	 * after a takeover they belong to the slot's new incarnation. */
	if (waiting && err != -ESTALE)
		cl_wait_put_locked(h, res, mode);
	cl_leave(h);
	if (err == -ETIMEDOUT && timeout_ms > 0)
		pfs_debug("%s lock %#llx %s: timed out after %d ms", h->tag,
			  (unsigned long long)res, coord_mode_name(mode), timeout_ms);
	return err;
}

static int cl_unlock(struct coord *c, uint64_t res)
{
	struct cl_handle *h = c->be;
	int err = cl_enter(h);
	if (err)
		return err;
	if (!cl_current_locked(h)) {
		err = -ESTALE;
	} else {
		struct cl_entry *e = cl_find_locked(h->shm, res);
		if (!e || cl_held_locked(e, h->slot) == COORD_NL)
			err = -ENOENT;
		else
			cl_drop_holder_locked(h->shm, e, h->slot);
	}
	cl_leave(h);
	return err;
}

static int cl_unlock_all(struct coord *c)
{
	struct cl_handle *h = c->be;
	int err = cl_enter(h);
	if (err)
		return err;
	if (!cl_current_locked(h)) {
		err = -ESTALE;
	} else {
		uint32_t n = cl_drop_all_locked(h->shm, h->slot);
		uint32_t np = cl_plk_drop_node_locked(h->shm, h->slot);        /* A2 */
		if (n || np)
			pfs_info("%s released all %u locks and %u advisory locks", h->tag, n, np);
	}
	cl_leave(h);
	return err;
}

static int cl_downgrade(struct coord *c, uint64_t res, enum coord_mode mode)
{
	struct cl_handle *h = c->be;
	int err = cl_enter(h);
	if (err)
		return err;
	if (!cl_current_locked(h)) {
		err = -ESTALE;
		goto out_leave;
	}
	struct cl_entry *e = cl_find_locked(h->shm, res);
	enum coord_mode held = e ? cl_held_locked(e, h->slot) : COORD_NL;
	if (held == COORD_NL) {
		err = -ENOENT;
	} else if (mode > held) {
		err = -EINVAL;
	} else if (mode == COORD_NL) {
		cl_drop_holder_locked(h->shm, e, h->slot);
	} else if (mode < held) {
		PFS_ASSERT(held == COORD_EX && mode == COORD_SH);
		cl_set_add(&e->sh, h->slot);
		cl_step(COORD_LP_DOWNGRADE);                    /* L2 transient */
		e->ex = 0;
		cl_wake_waiters_locked(h->shm, e);
	}
out_leave:
	cl_leave(h);
	return err;
}

/* Is the caller the counterpart of slot's registration? */
static bool cl_is_counterpart_locked(const struct cl_handle *h, uint32_t slot)
{
	const struct cl_reg *g = &h->shm->regs[slot];
	return g->status == COORD_REG_ACTIVE && g->counterpart == h->slot &&
	       g->cp_incarnation == h->incarnation;
}

static int cl_release_retained(struct coord *c, uint32_t slot, uint64_t res)
{
	struct cl_handle *h = c->be;
	struct cl_shm *shm = h->shm;
	uint32_t n = 0;
	int err = cl_enter(h);
	if (err)
		return err;
	if (!cl_current_locked(h)) {
		err = -EPERM;
		goto out_leave;
	}
	if (shm->nodes[slot].state != COORD_DEAD) {
		err = -EINVAL;
		goto out_leave;
	}
	if (!cl_is_counterpart_locked(h, slot)) {
		pfs_warn("%s release of node %u's retained locks refused: not its registered "
			 "counterpart", h->tag, slot);
		err = -EPERM;
		goto out_leave;
	}
	if (res) {
		struct cl_entry *e = cl_find_locked(shm, res);
		if (!e || cl_held_locked(e, slot) == COORD_NL) {
			err = -ENOENT;
			goto out_leave;
		}
		cl_drop_holder_locked(shm, e, slot);
		n = 1;
	} else {
		n = cl_drop_all_locked(shm, slot);
		uint32_t np = cl_plk_drop_node_locked(shm, slot);              /* A2 */
		pfs_info("%s released %u advisory locks of node %u", h->tag, np, slot);
	}
	pfs_info("%s released %u retained locks of node %u (%u left)", h->tag, n, slot,
		 shm->nodes[slot].nheld);
out_leave:
	cl_leave(h);
	return err;
}

static int cl_wanted_retained(struct coord *c, uint32_t slot, uint64_t *res, size_t max)
{
	struct cl_handle *h = c->be;
	struct cl_shm *shm = h->shm;
	size_t count = 0;
	int err = cl_enter(h);
	if (err)
		return err;
	if (shm->nodes[slot].state == COORD_DEAD) {
		for (uint32_t i = 0; i < CL_TABLE_SLOTS && count < max; i++) {
			const struct cl_entry *e = &shm->table[i];
			if (e->res && cl_held_locked(e, slot) != COORD_NL &&
			    !cl_set_empty_but(&e->waiters, slot))
				res[count++] = e->res;
		}
	}
	cl_leave(h);
	return (int)count;
}

static int cl_locks(struct coord *c, struct coord_lock_info *out, size_t max)
{
	struct cl_handle *h = c->be;
	struct cl_shm *shm = h->shm;
	size_t count = 0;
	int err = cl_enter(h);
	if (err)
		return err;
	for (uint32_t i = 0; i < CL_TABLE_SLOTS && count < max; i++) {
		const struct cl_entry *e = &shm->table[i];
		if (!e->res)
			continue;
		uint32_t waiters = cl_set_count(&e->waiters);
		struct cl_set holders = cl_holders_locked(e);
		if (cl_set_empty(&holders))
			out[count++] = (struct coord_lock_info){
				.res = e->res, .holder = COORD_NO_SLOT, .mode = COORD_NL,
				.waiters = waiters,
			};
		cl_set_for_each(n, &holders) {
			if (count == max)
				break;
			out[count++] = (struct coord_lock_info){
				.res = e->res, .holder = n, .mode = cl_held_locked(e, n),
				.retained = shm->nodes[n].state == COORD_DEAD, .waiters = waiters,
			};
		}
	}
	cl_leave(h);
	return (int)count;
}

/* May another node take this ACTIVE registration over?  Yes once its
 * lease expired or its counterpart left the incarnation that registered. */
static bool cl_reg_lapsed_locked(const struct cl_shm *shm, const struct cl_reg *g, uint64_t now)
{
	const struct cl_node *cp = &shm->nodes[g->counterpart];
	return now >= g->lease_expiry_ns || cp->state != COORD_LIVE ||
	       cp->incarnation != g->cp_incarnation;
}

static int cl_register(struct coord *c, uint32_t slot, int lease_ms)
{
	struct cl_handle *h = c->be;
	struct cl_shm *shm = h->shm;
	struct cl_reg *g = &shm->regs[slot];
	uint64_t now;
	int err;

	if (slot == h->slot) {
		pfs_warn("%s registration as its own counterpart refused", h->tag);
		return -EPERM;
	}
	err = cl_enter(h);
	if (err)
		return err;
	now = coord_clock_ns(c);
	if (!cl_current_locked(h)) {
		pfs_warn("%s registration for node %u refused: this node is not live", h->tag, slot);
		err = -EPERM;
		goto out_leave;
	}
	if (shm->nodes[slot].state != COORD_DEAD) {
		err = -EINVAL;
		goto out_leave;
	}
	if (g->status == COORD_REG_ACTIVE && !cl_reg_lapsed_locked(shm, g, now)) {
		pfs_info("%s registration for node %u refused: node %u is its counterpart",
			 h->tag, slot, g->counterpart);
		err = -EBUSY;
		goto out_leave;
	}
	if (g->status == COORD_REG_ACTIVE)
		pfs_warn("%s taking over the recovery of node %u from node %u (lease expired or "
			 "counterpart gone)", h->tag, slot, g->counterpart);
	g->counterpart = h->slot;
	g->cp_incarnation = h->incarnation;
	g->lease_expiry_ns = now + (uint64_t)lease_ms * 1000000ull;
	cl_step(COORD_LP_REGISTER);
	g->has_progress = 0;
	__atomic_store_n(&g->status, COORD_REG_ACTIVE, __ATOMIC_RELEASE);  /* R1 commit */
	pfs_info("%s registered as the counterpart of node %u (lease %d ms)", h->tag, slot,
		 lease_ms);
out_leave:
	cl_leave(h);
	return err;
}

static int cl_renew(struct coord *c, uint32_t slot, int lease_ms)
{
	struct cl_handle *h = c->be;
	struct cl_reg *g = &h->shm->regs[slot];
	int err = cl_enter(h);
	if (err)
		return err;
	if (!cl_current_locked(h))
		err = -EPERM;
	else if (g->status != COORD_REG_ACTIVE)
		err = -ENOENT;
	else if (!cl_is_counterpart_locked(h, slot))
		err = -EPERM;
	else
		g->lease_expiry_ns = coord_clock_ns(c) + (uint64_t)lease_ms * 1000000ull;
	cl_leave(h);
	return err;
}

static int cl_unregister(struct coord *c, uint32_t slot)
{
	struct cl_handle *h = c->be;
	struct cl_reg *g = &h->shm->regs[slot];
	int err = cl_enter(h);
	if (err)
		return err;
	if (!cl_current_locked(h)) {
		err = -EPERM;
	} else if (g->status != COORD_REG_ACTIVE) {
		err = -ENOENT;
	} else if (!cl_is_counterpart_locked(h, slot)) {
		err = -EPERM;
	} else {
		__atomic_store_n(&g->status, COORD_REG_INACTIVE, __ATOMIC_RELEASE);
		g->has_progress = 0;
		pfs_info("%s unregistered as the counterpart of node %u (%u locks still retained)",
			 h->tag, slot, h->shm->nodes[slot].nheld);
		cl_maybe_absent_locked(h, slot);
	}
	cl_leave(h);
	return err;
}

static int cl_reg_info(struct coord *c, uint32_t slot, struct coord_reg_info *out)
{
	struct cl_handle *h = c->be;
	const struct cl_reg *g = &h->shm->regs[slot];
	int err = cl_enter(h);
	if (err)
		return err;
	memset(out, 0, sizeof(*out));
	out->slot = slot;
	out->status = (enum coord_reg_status)g->status;
	if (g->status == COORD_REG_ACTIVE) {
		out->counterpart = g->counterpart;
		out->lease_expiry_ns = g->lease_expiry_ns;
	}
	cl_leave(h);
	return 0;
}

/* ---- advisory locks: the ops ---- */

static void cl_plk_step(void)
{
	cl_step(COORD_LP_PLOCK_ADD);
}

/* The pid of lock l that the caller can show (pfs_coord.h): its own
 * node's, or that of a node in the caller's pid namespace; else 0. */
static int32_t cl_plk_pid_locked(const struct cl_handle *h, const struct cpl_rec *l)
{
	const struct cl_node *r = &h->shm->nodes[l->slot];
	if (l->slot == h->slot || (r->pidns && r->pidns == h->pidns))
		return l->pid;
	return 0;
}

static int cl_plock_test(struct coord *c, struct coord_plock *lk)
{
	struct cl_handle *h = c->be;
	int err = cl_enter(h);
	if (err)
		return err;
	if (!cl_current_locked(h)) {
		err = -ESTALE;
	} else {
		const struct cpl_rec *l = cpl_conflict(&h->shm->plk.tab, lk);
		if (l) {
			cpl_to_plock(l, lk);
			lk->pid = cl_plk_pid_locked(h, l);
		} else {
			lk->type = COORD_PLOCK_UNLCK;
		}
	}
	cl_leave(h);
	return err;
}

static int cl_plock_set(struct coord *c, const struct coord_plock *lk, bool wait,
			bool (*cancelled)(void *arg), void *arg)
{
	struct cl_handle *h = c->be;
	struct cl_shm *shm = h->shm;
	struct cpl_table *t = &shm->plk.tab;
	int64_t wid = 0;
	int err = cl_enter(h);
	if (err)
		return err;
	for (;;) {
		if (!cl_current_locked(h)) {
			err = -ESTALE;
			break;
		}
		bool changed = false;
		err = cpl_set(t, lk, &changed, cl_plk_step);
		if (changed) {
			struct cpl_nodes wake = { .any = false };
			cpl_waiters(t, lk->ino, &wake);
			cl_plk_wake_locked(shm, &wake);
		}
		if (err != -EAGAIN || !wait)
			break;
		if (cancelled && cancelled(arg)) {
			err = -EINTR;
			break;
		}
		if (cpl_deadlock(t, lk)) {
			pfs_debug("%s advisory lock of owner %#llx on inode %llu: deadlock", h->tag,
				  (unsigned long long)lk->owner, (unsigned long long)lk->ino);
			err = -EDEADLK;
			break;
		}
		if (!wid) {
			wid = cpl_wait_add(t, lk);
			if (wid < 0) {
				err = (int)wid;
				wid = 0;
				pfs_warn("%s advisory locks: %u requests wait already", h->tag,
					 COORD_PLOCK_MAX_WAITS);
				break;
			}
		}
		err = cl_cond_wait_locked(h, &shm->plk.cond[h->slot], UINT64_MAX);
		if (err)
			return err;
	}
	/* gone already if our node was fenced (A1) */
	if (wid)
		cpl_wait_del(t, (uint64_t)wid);
	cl_leave(h);
	if (err == -ENOLCK)
		pfs_warn("%s advisory lock table full (%u locks)", h->tag, COORD_PLOCK_MAX);
	return err;
}

static int cl_plock_interrupt(struct coord *c)
{
	struct cl_handle *h = c->be;
	int err = cl_enter(h);
	if (err)
		return err;
	cl_cond_broadcast_locked(&h->shm->plk.cond[h->slot]);
	cl_leave(h);
	return 0;
}

static int cl_plock_release_owner(struct coord *c, uint64_t ino, uint64_t owner,
				  enum coord_plock_kind kind)
{
	struct cl_handle *h = c->be;
	/* every close of a file comes here: a node without advisory locks
	 * does not take the segment mutex */
	if (cpl_node_locks(&h->shm->plk.tab, h->slot) == 0)
		return 0;
	int err = cl_enter(h);
	if (err)
		return err;
	if (!cl_current_locked(h)) {
		err = -ESTALE;
	} else {
		struct cpl_nodes wake = { .any = false };
		err = (int)cpl_release_owner(&h->shm->plk.tab, h->slot, owner, ino, kind, &wake);
		cl_plk_wake_locked(h->shm, &wake);
	}
	cl_leave(h);
	return err;
}

static int cl_plocks(struct coord *c, struct coord_plock *out, size_t max)
{
	struct cl_handle *h = c->be;
	size_t count = 0;
	int err = cl_enter(h);
	if (err)
		return err;
	for (uint32_t i = 0; i < COORD_PLOCK_MAX && count < max; i++) {
		const struct cpl_rec *l = &h->shm->plk.tab.locks[i];
		if (l->type != COORD_PLOCK_UNLCK)
			cpl_to_plock(l, &out[count++]);
	}
	cl_leave(h);
	return (int)count;
}

static int cl_set_progress(struct coord *c, uint32_t slot, const struct coord_progress *p)
{
	struct cl_handle *h = c->be;
	struct cl_reg *g = &h->shm->regs[slot];
	int err = cl_enter(h);
	if (err)
		return err;
	if (!cl_current_locked(h))
		err = -EPERM;
	else if (g->status != COORD_REG_ACTIVE)
		err = -ENOENT;
	else if (!cl_is_counterpart_locked(h, slot))
		err = -EPERM;
	else {
		g->progress = *p;
		g->has_progress = 1;
	}
	cl_leave(h);
	return err;
}

static int cl_progress(struct coord *c, uint32_t slot, struct coord_progress *out)
{
	struct cl_handle *h = c->be;
	const struct cl_reg *g = &h->shm->regs[slot];
	int err = cl_enter(h);
	if (err)
		return err;
	if (g->status != COORD_REG_ACTIVE || !g->has_progress)
		err = -ENOENT;
	else
		*out = g->progress;
	cl_leave(h);
	return err;
}

const struct coord_ops coord_local_ops = {
	.name = "local",
	.open = cl_open,
	.attach_readonly = cl_attach_readonly,
	.close = cl_close,
	.heartbeat = cl_heartbeat,
	.set_blocking_cb = cl_set_blocking_cb,
	.silent_nodes = cl_silent_nodes,
	.declare_dead = cl_declare_dead,
	.node_info = cl_node_info,
	.lock = cl_lock,
	.unlock = cl_unlock,
	.unlock_all = cl_unlock_all,
	.downgrade = cl_downgrade,
	.release_retained = cl_release_retained,
	.wanted_retained = cl_wanted_retained,
	.locks = cl_locks,
	.reg = cl_register,
	.renew = cl_renew,
	.unregister = cl_unregister,
	.reg_info = cl_reg_info,
	.plock_test = cl_plock_test,
	.plock_set = cl_plock_set,
	.plock_interrupt = cl_plock_interrupt,
	.plock_release_owner = cl_plock_release_owner,
	.plocks = cl_plocks,
	.set_progress = cl_set_progress,
	.progress = cl_progress,
};
