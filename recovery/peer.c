/*
 * peer.c -- peer recovery: a surviving node becomes a dead node's
 * counterpart, backs out the dead node's in-flight transactions from its
 * private journal, releases its retained locks and unregisters.
 *
 * Design notes
 *
 * The flow, for dead node N and counterpart C (this node); each phase is
 * logged with its duration:
 *   1. detect       C's failure detector declared N dead (fs/glock.c
 *                   gl_tick): its beats stopped at the coordinator and on
 *                   disk for dead_ms.  N's locks are retained.
 *   2. register     coord_register(N) under a lease: exactly one peer
 *                   wins; the others see -EBUSY and stand by.
 *   3. initialize   take N's slot: the OFD lock on its slot record (V1 of
 *                   volume.c), then the record says RECOVERING with C as
 *                   counterpart and the lease date (durable);
 *   4. retrieve     scan N's journal with N's key (derived from the cluster
 *                   key and N's generation): its in-flight transactions
 *                   (the journals of nodes found dead together are
 *                   scanned at once, a thread each);
 *   5. back out     write their before-images, flush, ABORT records, clean
 *                   header, flush: the backout engine (recovery/backout.c),
 *                   with at most recovery_parallelism workers.  Dead nodes
 *                   found together are taken (2-4) one after the other and
 *                   then backed out in ONE engine run that shares the
 *                   workers: the smallest first, and first of all a node
 *                   whose retained lock a live node waits for (on-demand
 *                   rollback, coord_wanted_retained, checked every tick);
 *                   the lease of each is renewed every quarter lease;
 *   6. release      as soon as N's own backout is durable (the engine's
 *                   slot_done, not the end of the run): the slot record
 *                   says FREE (durable), then every lock N retained is
 *                   released: waiters on them proceed;
 *   7. unregister   N's registration is INACTIVE and N is ABSENT: it may
 *                   mount again (a fresh generation) or another node may
 *                   take the slot; its orphan list is finished by whoever
 *                   mounts the slot next.
 *
 * Invariants:
 *   P1. Only N's registered counterpart writes N's journal or N's slot
 *       record: the registration (coordinator) and the OFD lock (disk)
 *       are both held from phase 3 to phase 6.
 *   P2. N's retained locks are released only after the backout is
 *       durable (phase 6 after 5): no node ever reads what N left half
 *       done.
 *   P3. Backout is idempotent: before-images are the blocks' contents
 *       before N's in-flight transactions, so writing them twice is
 *       harmless, and the ABORT records are written last.  A counterpart
 *       that dies mid-way stops renewing its lease; another peer takes
 *       the registration over and runs the whole flow again.
 *   P4. The lease is renewed between phases; a counterpart that finds its
 *       registration taken over (renew fails) stops before writing more.
 *
 * The recovery thread (peer_start .. peer_stop) polls the coordinator
 * every heartbeat period for DEAD nodes that nobody recovers (no
 * registration, or one whose lease expired) and recovers those it finds
 * together (peer_recover_set), unless recovery=manual.
 *
 * Retained locks are released per node, not per block: the journal does
 * not say which lock covered a before-image (data, extent and directory
 * blocks carry no owner), so no lock of N is known to be unneeded until
 * all of N's images are durable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfs_backout.h"
#include "pfs_fs.h"
#include "pfs_jnl.h"
#include "pfs_peer.h"
#include "pfs_util.h"

struct peer_state {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;                      /* protected by mu */
	bool running;
	struct peer_stats last;         /* protected by mu */
	uint64_t recovered;             /* protected by mu */
};

static int lease_ms_of(const struct pfs_fs *fs)
{
	return PFS_MAX(fs->opts.dead_ms * 3, 10000);
}

static double ms_since(uint64_t t0)
{
	return (double)(pfs_now_mono_ns() - t0) / 1e6;
}

static void set_phase(struct peer_stats *st, int phase, uint64_t t0)
{
	st->phase_ms[phase] = ms_since(t0);
}

/* After the backout: slot s is FREE, its registration record cleared,
 * its generation at least the log's (V3 of volume.c), durably. */
static int slot_set_free(struct pfs_fs *fs, uint32_t s, uint64_t log_gen)
{
	struct pfs_slot rec;
	int err = vol_slot_read(fs, s, &rec);   /* the backout may restore it */
	if (err)
		return err;
	if (log_gen > le64_to_cpu(rec.generation))
		rec.generation = cpu_to_le64(log_gen);
	rec.state = cpu_to_le32(PFS_SLOT_FREE);
	rec.reg_status = cpu_to_le32(PFS_REG_INACTIVE);
	rec.reg_counterpart = 0;
	rec.reg_lease_expiry_ns = 0;
	rec.owner_pid = 0;
	return vol_slot_write_direct(fs, s, &rec);
}

/* One dead node of a recovery run. */
struct peer_job {
	uint32_t dead;
	struct peer_stats *st;
	uint64_t t_all, t_backout;
	uint64_t gen, log_gen;
	uint64_t renewed_ns;            /* last lease renewal */
	struct pfs_fs *fs;
	struct jnl_scan scan;
	int scan_err;
	bool scanned;
	bool asked;                     /* a live node waits for its locks */
	bool started;                   /* its scan runs on `thread` */
	pthread_t thread;
	bool lost;                      /* registration taken over (P4) */
	uint64_t undo;                  /* undo blocks of its dead transactions */
	int err;
};

/* The dead nodes backed out together. */
struct peer_run {
	struct pfs_fs *fs;
	struct peer_job **jobs;         /* by engine index */
	size_t n;
	int lease;
};

/* Undo what job_take did after a failure: P3, its locks stay retained
 * and a later attempt (or another peer) runs the flow again. */
static void job_fail(struct pfs_fs *fs, struct peer_job *j, int err)
{
	struct coord *c = gl_coord(fs);
	j->err = err;
	if (j->lost) {
		pfs_err("recovery of node %u: the registration was taken over (%s); stopping",
			j->dead, strerror(-err));
		vol_slot_unlock(fs, j->dead);
		return;
	}
	if (err == -EIO) {
		pthread_mutex_lock(&fs->lock);
		fs_fence(fs, err, "writing a dead node's slot failed during its recovery");
		pthread_mutex_unlock(&fs->lock);
	}
	vol_slot_unlock(fs, j->dead);
	coord_unregister(c, j->dead);
}

/* Phases 2 and 3: register, take the slot on disk (P1).  On failure
 * nothing is left held. */
static int job_take(struct pfs_fs *fs, struct peer_job *j, int lease)
{
	struct coord *c = gl_coord(fs);
	struct pfs_slot rec;
	uint32_t dead = j->dead;
	uint64_t t = pfs_now_mono_ns();
	int err = coord_register(c, dead, lease);
	if (err) {
		if (err != -EBUSY)
			pfs_warn("recovery of node %u: cannot register as its counterpart: %s",
				 dead, strerror(-err));
		return err;
	}
	j->renewed_ns = pfs_now_mono_ns();
	set_phase(j->st, PEER_REGISTER, t);
	pfs_info("recovery of node %u: registered as its counterpart (lease %d ms, %.1f ms)",
		 dead, lease, j->st->phase_ms[PEER_REGISTER]);

	t = pfs_now_mono_ns();
	err = vol_slot_lock(fs, dead);
	if (err) {
		/* Retried every half heartbeat: said once every 10 s.  (The
		 * holder is usually a killed daemon that has not finished
		 * exiting.) */
		static uint64_t said_ns[PFS_MAX_SLOTS];         /* atomic: a log hint */
		uint64_t now = pfs_now_mono_ns();
		uint64_t said = __atomic_load_n(&said_ns[dead], __ATOMIC_RELAXED);
		if (!said || now - said >= 10000000000ull) {
			__atomic_store_n(&said_ns[dead], now, __ATOMIC_RELAXED);
			pfs_err("recovery of node %u: its slot record is locked by a process of this host; "
				"retrying", dead);
		}
		coord_unregister(c, dead);
		return err;
	}
	err = vol_slot_read(fs, dead, &rec);
	if (err) {
		pfs_err("recovery of node %u: its slot record is unreadable; run fsck.peerfs", dead);
		vol_slot_unlock(fs, dead);
		coord_unregister(c, dead);
		return err;
	}
	j->gen = le64_to_cpu(rec.generation);
	if (le32_to_cpu(rec.state) != PFS_SLOT_FREE) {
		rec.state = cpu_to_le32(PFS_SLOT_RECOVERING);
		rec.reg_status = cpu_to_le32(PFS_REG_ACTIVE);
		rec.reg_counterpart = cpu_to_le32(fs->slot);
		rec.reg_lease_expiry_ns = cpu_to_le64(pfs_now_real_ns() + (uint64_t)lease * 1000000ull);
		err = vol_slot_write_direct(fs, dead, &rec);
		if (err) {
			job_fail(fs, j, err);
			return err;
		}
	}
	set_phase(j->st, PEER_INIT, t);
	pfs_info("recovery of node %u: took over slot %u (generation %llu, %.1f ms)",
		 dead, dead, (unsigned long long)j->gen, j->st->phase_ms[PEER_INIT]);

	err = coord_renew(c, dead, lease);                          /* P4 */
	if (err) {
		j->lost = true;
		job_fail(fs, j, err);
		return err;
	}
	j->renewed_ns = pfs_now_mono_ns();
	return 0;
}

/* Phase 4, possibly on a thread of its own: the journal scan. */
static void *job_scan_main(void *arg)
{
	struct peer_job *j = arg;
	j->t_backout = pfs_now_mono_ns();
	j->scan_err = jnl_scan(j->fs->dev, &j->fs->sb, j->fs->key, j->dead, j->gen, &j->scan);
	return NULL;
}

/* After the scan: its result logged, a failure undone. */
static int job_scanned(struct pfs_fs *fs, struct peer_job *j)
{
	uint32_t dead = j->dead;
	int err = j->scan_err;
	if (err) {
		pfs_err("recovery of node %u: journal scan failed (%s); its locks stay retained",
			dead, strerror(-err));
		job_fail(fs, j, err);
		return err;
	}
	j->scanned = true;
	j->log_gen = j->scan.generation;
	uint64_t undo = 0;
	for (size_t i = 0; i < j->scan.ndead; i++)
		undo += j->scan.dead[i].nimages;
	j->undo = undo;
	/* The same words as a recovery at mount (bo_recover_slot). */
	pfs_info("recovery of node %u: journal of slot %u: scan: %llu records, %llu transactions "
		 "committed, %zu in flight with %llu undo blocks (%.1f ms)",
		 dead, dead, (unsigned long long)j->scan.records,
		 (unsigned long long)j->scan.committed, j->scan.ndead, (unsigned long long)undo,
		 (double)j->scan.scan_ns / 1e6);
	return 0;
}

/* Phases 6 and 7, once the node's backout is durable (P2): the slot is
 * free, then its locks go, then the registration. */
static int job_release(struct pfs_fs *fs, struct peer_job *j, int lease)
{
	struct coord *c = gl_coord(fs);
	uint32_t dead = j->dead;
	set_phase(j->st, PEER_BACKOUT, j->t_backout);
	int err = coord_renew(c, dead, lease);
	if (err) {
		j->lost = true;
		job_fail(fs, j, err);
		return err;
	}
	uint64_t t = pfs_now_mono_ns();
	err = slot_set_free(fs, dead, j->log_gen);
	if (err) {
		job_fail(fs, j, err);
		return err;
	}
	struct coord_node_info ni;
	if (coord_node_info(c, dead, &ni) == 0)
		j->st->locks_released = ni.retained_locks;
	err = coord_release_retained(c, dead, 0);
	if (err) {
		pfs_err("recovery of node %u: cannot release its retained locks: %s",
			dead, strerror(-err));
		job_fail(fs, j, err);
		return err;
	}
	set_phase(j->st, PEER_RELEASE, t);
	vol_slot_unlock(fs, dead);

	t = pfs_now_mono_ns();
	err = coord_unregister(c, dead);
	set_phase(j->st, PEER_UNREGISTER, t);
	j->st->total_ms = ms_since(j->t_all);
	pfs_info("recovery of node %u: done in %.1f ms (register %.1f, initialize %.1f, scan+backout %.1f, release %u locks %.1f, unregister %.1f)",
		 dead, j->st->total_ms, j->st->phase_ms[PEER_REGISTER], j->st->phase_ms[PEER_INIT],
		 j->st->phase_ms[PEER_BACKOUT], j->st->locks_released, j->st->phase_ms[PEER_RELEASE],
		 j->st->phase_ms[PEER_UNREGISTER]);
	j->err = err;
	return err;
}

/* Engine callback: node idx's dead transactions are durable and its log
 * closed (err == 0): release it now, whatever the others still do. */
static void run_slot_done(void *arg, struct bo_run *r, size_t idx, int err)
{
	struct peer_run *pr = arg;
	struct peer_job *j = pr->jobs[idx];
	if (err) {
		pfs_err("recovery of node %u: backout failed (%s); its locks stay retained",
			j->dead, strerror(-err));
		job_fail(pr->fs, j, err);
		return;
	}
	pfs_info("recovery of node %u: journal of slot %u: backout: %zu transactions, "
		 "%llu blocks restored, log closed (%.1f ms)", j->dead, j->dead, j->scan.ndead,
		 (unsigned long long)j->undo, ms_since(j->t_backout));
	job_release(pr->fs, j, pr->lease);
}

/* For peerfsctl status: undo blocks done and total of each dead
 * transaction of node `dead` (engine index idx), and its worker. */
static void publish_progress(struct coord *c, struct bo_run *r, size_t idx, uint32_t dead)
{
	struct bo_tx_progress tp[COORD_PROGRESS_TX];
	struct coord_progress cp;
	memset(&cp, 0, sizeof(cp));
	size_t n = bo_progress(r, idx, tp, COORD_PROGRESS_TX);
	cp.ntx = (uint32_t)bo_progress_count(r, idx);
	cp.workers = bo_workers(r);
	for (size_t k = 0; k < n; k++) {
		cp.tx[k].txseq = tp[k].txseq;
		cp.tx[k].undo_done = tp[k].undo_done;
		cp.tx[k].undo_total = tp[k].undo_total;
		cp.tx[k].worker = tp[k].worker;
		cp.tx[k].durable = tp[k].done;
	}
	coord_set_progress(c, dead, &cp);       /* display only: errors ignored */
}

/* Engine callback, every tick: renew the leases (P4), serve first a node
 * whose retained locks a live node waits for (on-demand rollback). */
static void run_tick(void *arg, struct bo_run *r)
{
	struct peer_run *pr = arg;
	struct coord *c = gl_coord(pr->fs);
	uint64_t now = pfs_now_mono_ns();
	for (size_t i = 0; i < pr->n; i++) {
		struct peer_job *j = pr->jobs[i];
		if (j->err || j->st->total_ms > 0)
			continue;
		if (now - j->renewed_ns >= (uint64_t)pr->lease * 1000000ull / 4) {
			int err = coord_renew(c, j->dead, pr->lease);
			if (err) {
				j->lost = true;
				j->err = err;
				bo_cancel(r, i, err);                       /* P4 */
				continue;
			}
			j->renewed_ns = now;
		}
		publish_progress(c, r, i, j->dead);
		uint64_t res;
		if (!j->asked && pr->n > 1 && coord_wanted_retained(c, j->dead, &res, 1) > 0) {
			j->asked = true;
			pfs_info("recovery of node %u: a live node waits for its lock %llx: backing it out first",
				 j->dead, (unsigned long long)res);
			bo_prioritize(r, i);
		}
	}
}

/* Recover the dead nodes dead[0..n) together: each is taken (phases 2-4)
 * in turn, then one engine run backs them all out, sharing its workers,
 * and releases each as soon as its own backout is durable. */
static int peer_recover_set(struct pfs_fs *fs, const uint32_t *dead, size_t n,
			    struct peer_stats *st)
{
	struct peer_job *jobs = calloc(n ? n : 1, sizeof(*jobs));
	struct peer_job **run = calloc(n ? n : 1, sizeof(*run));
	struct jnl_scan *scans = calloc(n ? n : 1, sizeof(*scans));
	struct peer_run pr = { .fs = fs, .jobs = run, .lease = lease_ms_of(fs) };
	int err = 0;

	if (!jobs || !run || !scans) {
		err = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < n; i++) {
		memset(&st[i], 0, sizeof(st[i]));
		st[i].slot = dead[i];
		jobs[i] = (struct peer_job){ .dead = dead[i], .st = &st[i],
					     .t_all = pfs_now_mono_ns() };
		if (!gl_coord(fs) || dead[i] == fs->slot) {
			jobs[i].err = !gl_coord(fs) ? -ENOTCONN : -EINVAL;
			continue;
		}
		int terr = job_take(fs, &jobs[i], pr.lease);
		if (terr)
			jobs[i].err = terr;
	}
	/* 4. retrieve: the journals of several dead nodes are scanned at
	 * once (a thread each), unless backout is to be serial. */
	bool threads = n > 1 && fs->opts.recovery_parallelism != 1;
	for (size_t i = 0; i < n; i++) {
		jobs[i].fs = fs;
		jobs[i].started = false;
		if (jobs[i].err)
			continue;
		if (threads && pthread_create(&jobs[i].thread, NULL, job_scan_main, &jobs[i]) == 0)
			jobs[i].started = true;
		else
			job_scan_main(&jobs[i]);
	}
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].err)
			continue;
		if (jobs[i].started)
			pthread_join(jobs[i].thread, NULL);
		int serr = job_scanned(fs, &jobs[i]);
		if (serr) {
			jobs[i].err = serr;
			continue;
		}
		if (jobs[i].scan.clean || jobs[i].scan.empty) {
			job_release(fs, &jobs[i], pr.lease);        /* nothing to back out */
			continue;
		}
		scans[pr.n] = jobs[i].scan;
		run[pr.n++] = &jobs[i];
	}
	if (pr.n) {
		struct bo_params p = {
			.max_parallelism = fs->opts.recovery_parallelism,
			.arg = &pr,
			.tick = run_tick,
			.slot_done = run_slot_done,
		};
		struct bo_stats bs;
		bo_run(fs->dev, &fs->sb, fs->key, scans, pr.n, &p, &bs);
		pfs_info("recovery: %zu dead node%s backed out in %.1f ms with %u workers (first released after %.1f ms)",
			 pr.n, pr.n == 1 ? "" : "s", bs.total_ms, bs.workers, bs.first_slot_ms);
	}
out_free:
	for (size_t i = 0; jobs && i < n; i++) {
		if (jobs[i].scanned)
			jnl_scan_free(&jobs[i].scan);
		if (!err && jobs[i].err)
			err = jobs[i].err;
	}
	free(scans);
	free(run);
	free(jobs);
	return err;
}

int peer_recover(struct pfs_fs *fs, uint32_t dead, struct peer_stats *st)
{
	int err = peer_recover_set(fs, &dead, 1, st);
	return err;
}

/* A slot left MOUNTED (or RECOVERING) on disk by a node the coordinator
 * does not know (its state was lost with every node, e.g. a power loss of
 * the whole cluster): nobody holds locks for it, so recovering it is the
 * disk part of the flow only.  Done before this node serves requests. */
int peer_recover_unowned_slot(struct pfs_fs *fs, uint32_t s)
{
	struct pfs_slot rec;
	struct coord *c = gl_coord(fs);
	struct coord_node_info ni;

	if (s == fs->slot)
		return -EINVAL;
	if (c && coord_node_info(c, s, &ni) == 0 && ni.state != COORD_ABSENT)
		return -EBUSY;          /* the coordinator knows it: peer_recover */
	int err = vol_slot_lock(fs, s);
	if (err)
		return err;             /* a process of this host owns it */
	err = vol_slot_read(fs, s, &rec);
	if (err || le32_to_cpu(rec.state) == PFS_SLOT_FREE)
		goto out_unlock;
	/* V2 of volume.c: a heartbeat that still moves is a node of another
	 * host, alive. */
	err = vol_slot_heartbeat_live(fs, s);
	if (err) {
		if (err > 0)
			err = -EBUSY;
		goto out_unlock;
	}
	uint64_t t0 = pfs_now_mono_ns(), log_gen = 0;
	pfs_info("slot %u: left mounted by %.64s pid %u, unknown to the coordinator: backing out its journal",
		 s, rec.hostname, le32_to_cpu(rec.owner_pid));
	err = bo_recover_slot(fs->dev, &fs->sb, fs->key, s, le64_to_cpu(rec.generation),
			      fs->opts.recovery_parallelism, &log_gen);
	if (err)
		goto out_unlock;
	err = slot_set_free(fs, s, log_gen);
	if (!err)
		pfs_info("slot %u: recovered in %.1f ms; its slot is free", s, ms_since(t0));
out_unlock:
	vol_slot_unlock(fs, s);
	return err;
}

int peer_recover_node(struct pfs_fs *fs, uint32_t n, struct peer_stats *st)
{
	struct coord *c = gl_coord(fs);
	struct coord_node_info ni;
	memset(st, 0, sizeof(*st));
	st->slot = n;
	if (!c)
		return -ENOTCONN;
	int err = coord_node_info(c, n, &ni);
	if (err)
		return err;
	if (ni.state == COORD_ABSENT)
		return peer_recover_unowned_slot(fs, n);
	if (ni.state == COORD_LIVE) {
		/* Only a node that is silent at the coordinator and on disk. */
		if (vol_slot_heartbeat_live(fs, n) != 0) {
			pfs_err("node %u is alive: its disk heartbeat advances", n);
			return -EBUSY;
		}
		err = coord_declare_dead(c, n);
		if (err) {
			pfs_err("node %u is alive at the coordinator (%s)", n, strerror(-err));
			return err == -EAGAIN ? -EBUSY : err;
		}
	}
	return peer_recover(fs, n, st);
}

/* Defined with the recovery thread below. */
static int peer_find_work(struct pfs_fs *fs, uint32_t *out, int max);

int peer_recover_at_mount(struct pfs_fs *fs)
{
	struct coord *c = gl_coord(fs);
	if (!c || fs->opts.recovery_manual)
		return 0;
	uint32_t silent[PFS_MAX_SLOTS], work[PFS_MAX_SLOTS];
	int n = coord_silent_nodes(c, silent, PFS_MAX_SLOTS);
	for (int i = 0; i < n; i++) {
		/* As gl_tick: silent at the coordinator and on disk. */
		if (vol_slot_heartbeat_live(fs, silent[i]) != 0)
			continue;
		if (coord_declare_dead(c, silent[i]) == 0)
			pfs_warn("node %u is dead: its process is gone and its disk heartbeat stopped; recovering it before serving",
				 silent[i]);
	}
	int recovered = 0;
	n = peer_find_work(fs, work, (int)PFS_MAX_SLOTS);
	for (int i = 0; i < n; i++) {
		struct peer_stats st;
		int err = peer_recover(fs, work[i], &st);
		if (err == 0)
			recovered++;
		else if (err != -EBUSY)
			pfs_warn("node %u: not recovered before serving (%s); the recovery thread retries",
				 work[i], strerror(-err));
	}
	return recovered;
}

/* ---- the recovery thread ---- */

static struct peer_state *peer_of(struct pfs_fs *fs)
{
	return fs->peer;
}

/* DEAD nodes that nobody recovers: no registration, or one whose lease
 * expired or whose counterpart is gone. */
static int peer_find_work(struct pfs_fs *fs, uint32_t *out, int max)
{
	struct coord *c = gl_coord(fs);
	uint32_t nslots = le32_to_cpu(fs->sb.max_slots);
	int n = 0;
	for (uint32_t s = 0; s < nslots && n < max; s++) {
		struct coord_node_info ni;
		struct coord_reg_info ri;
		if (s == fs->slot || coord_node_info(c, s, &ni) || ni.state != COORD_DEAD)
			continue;
		if (coord_reg_info(c, s, &ri))
			continue;
		if (ri.status == COORD_REG_ACTIVE) {
			struct coord_node_info ci;
			bool cp_live = coord_node_info(c, ri.counterpart, &ci) == 0 &&
				       ci.state == COORD_LIVE;
			if (cp_live && ri.lease_expiry_ns > pfs_now_mono_ns())
				continue;
		}
		out[n++] = s;
	}
	return n;
}

static void *peer_thread(void *arg)
{
	struct pfs_fs *fs = arg;
	struct peer_state *ps = peer_of(fs);
	char ctx[48];
	snprintf(ctx, sizeof(ctx), "node=%u slot=%u: recovery:", fs->slot, fs->slot);
	pfs_log_set_context(ctx);

	pthread_mutex_lock(&ps->mu);
	while (!ps->stop) {
		pthread_mutex_unlock(&ps->mu);
		uint32_t work[PFS_MAX_SLOTS];
		pthread_mutex_lock(&fs->lock);
		int fenced = fs->fenced;
		pthread_mutex_unlock(&fs->lock);
		int n = fenced ? 0 : peer_find_work(fs, work, (int)PFS_MAX_SLOTS);
		if (n > 0) {
			/* Every dead node found is recovered in one run: they
			 * share the backout workers. */
			struct peer_stats st[PFS_MAX_SLOTS];
			peer_recover_set(fs, work, (size_t)n, st);
			for (int i = 0; i < n; i++) {
				if (st[i].total_ms <= 0)
					continue;
				pthread_mutex_lock(&ps->mu);
				ps->last = st[i];
				ps->recovered++;
				pthread_mutex_unlock(&ps->mu);
			}
		}
		pthread_mutex_lock(&ps->mu);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t due = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
			       (uint64_t)fs->opts.heartbeat_ms * 1000000ull / 2;
		ts.tv_sec = (time_t)(due / 1000000000ull);
		ts.tv_nsec = (long)(due % 1000000000ull);
		if (!ps->stop)
			pthread_cond_timedwait(&ps->cond, &ps->mu, &ts);
	}
	pthread_mutex_unlock(&ps->mu);
	return NULL;
}

void peer_kick(struct pfs_fs *fs)
{
	struct peer_state *ps = peer_of(fs);
	if (!ps)
		return;
	pthread_mutex_lock(&ps->mu);
	pthread_cond_signal(&ps->cond);
	pthread_mutex_unlock(&ps->mu);
}

int peer_start(struct pfs_fs *fs)
{
	if (!gl_coord(fs) || fs->opts.recovery_manual)
		return 0;
	struct peer_state *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	pthread_mutex_init(&ps->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ps->cond, &ca);
	pthread_condattr_destroy(&ca);
	fs->peer = ps;
	int err = pthread_create(&ps->thread, NULL, peer_thread, fs);
	if (err) {
		fs->peer = NULL;
		pthread_cond_destroy(&ps->cond);
		pthread_mutex_destroy(&ps->mu);
		free(ps);
		return -err;
	}
	ps->running = true;
	return 0;
}

void peer_stop(struct pfs_fs *fs)
{
	struct peer_state *ps = peer_of(fs);
	if (!ps)
		return;
	pthread_mutex_lock(&ps->mu);
	ps->stop = true;
	pthread_cond_signal(&ps->cond);
	pthread_mutex_unlock(&ps->mu);
	if (ps->running)
		pthread_join(ps->thread, NULL);
	pthread_cond_destroy(&ps->cond);
	pthread_mutex_destroy(&ps->mu);
	fs->peer = NULL;
	free(ps);
}
