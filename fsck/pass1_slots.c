/*
 * pass1_slots.c -- pass 1: the slot table (heartbeat block and slot record
 * of every node slot), and whether a node has the volume mounted.
 *
 * Design notes
 *
 * Each heartbeat block and slot record must pass its header checks (magic,
 * checksum, block number) and name its own slot; a slot record must give
 * the journal location the superblock implies, a valid state and a valid
 * registration status, and an orphan list head that is 0 or an inode
 * number.  A damaged heartbeat block is rewritten as a fresh one (safe:
 * the owner rewrites it every period anyway); a damaged record is rebuilt
 * as a FREE slot (its orphan list is lost: the orphans turn up as
 * unattached inodes in pass 4).
 *
 * Live nodes (fs/volume.c V1, V2).  A slot is in use if a process of this
 * host holds the lock on its record, or if its heartbeat advances: every
 * MOUNTED or RECOVERING slot (or one whose record is unreadable) is
 * watched for FSCK_HB_WATCH_MS, two heartbeat periods and a margin.  In
 * the repair modes the checker first takes the record locks itself (so no
 * node of this host can mount meanwhile), and any live slot makes it
 * refuse to go on (exit 8).  With -n it only warns: the results may then
 * show changes in flight.
 *
 * Order: take the locks; survey every slot (record and heartbeat read
 * raw, nothing reported); watch the heartbeats; back out the undo journal
 * of every dead MOUNTED or RECOVERING slot (journal.c), which may restore
 * slot records; only then check and report every heartbeat and record.
 *
 * A MOUNTED (or RECOVERING) slot whose owner is gone was not cleanly
 * unmounted.  Its repair (f->slots[s].process) is done in pass 4: free the
 * orphans left on its list, take the others off it, mark the slot FREE.
 * A FREE slot with an orphan list gets the same treatment.  A slot whose
 * journal cannot be recovered is left as it is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsck.h"
#include "pfs_util.h"

/* What the survey saw of a slot, for the liveness watch and the journal. */
struct watch {
	bool watch;             /* needs watching */
	bool rec_valid;         /* the record passed its header checks */
	uint32_t state;
	uint64_t generation;
	bool hb_valid;          /* last heartbeat read passed its checks */
	uint64_t seq;           /* heartbeat sequence seen first */
	char host[PFS_HOSTNAME_MAX + 1];
	uint32_t pid;
};

static void rebuild_heartbeat(void *blk, uint32_t s, uint64_t gen)
{
	struct pfs_heartbeat *hb = blk;

	memset(blk, 0, PFS_BLOCK_SIZE);
	hb->hdr.magic = cpu_to_le32(PFS_MAGIC_HEARTBEAT);
	hb->slot = cpu_to_le32(s);
	hb->generation = cpu_to_le64(gen);
}

static void rebuild_record(const struct fsck *f, void *blk, uint32_t s)
{
	struct pfs_slot *sl = blk;

	memset(blk, 0, PFS_BLOCK_SIZE);
	sl->hdr.magic = cpu_to_le32(PFS_MAGIC_SLOT);
	sl->slot = cpu_to_le32(s);
	sl->state = cpu_to_le32(PFS_SLOT_FREE);
	sl->journal_start = cpu_to_le64(f->g.journal_start + (uint64_t)s * f->g.journal_blocks);
	sl->journal_blocks = cpu_to_le64(f->g.journal_blocks);
	sl->reg_status = cpu_to_le32(PFS_REG_INACTIVE);
}

/* The slot record through the cache, to change it. */
static int record_get(struct fsck *f, uint32_t s, struct buf **b)
{
	int err = bcache_read(f->bc, fsck_slot_rec_block(f, s), BUF_META,
			      PFS_MAGIC_SLOT, b);
	if (err)
		return fsck_fail(f, err, "reading the record of slot %u", s);
	return 0;
}

/* Read slot s's record and heartbeat raw into w; report nothing. */
static int survey(struct fsck *f, uint32_t s, uint8_t *blk, struct watch *w)
{
	const struct pfs_slot *sl = (const struct pfs_slot *)blk;
	const struct pfs_heartbeat *hb = (const struct pfs_heartbeat *)blk;
	uint64_t bno = fsck_slot_rec_block(f, s);
	int err = fsck_dev_read(f, bno, blk);

	if (err)
		return err;
	w->rec_valid = !pfs_meta_verify(blk, bno, PFS_MAGIC_SLOT, f->g.seed);
	if (w->rec_valid) {
		w->state = le32_to_cpu(sl->state);
		w->generation = le64_to_cpu(sl->generation);
		snprintf(w->host, sizeof(w->host), "%.*s", (int)PFS_HOSTNAME_MAX,
			 sl->hostname);
		w->pid = le32_to_cpu(sl->owner_pid);
	}
	/* Unknown owner: watch the heartbeat too. */
	w->watch = !w->rec_valid || w->state == PFS_SLOT_MOUNTED ||
		   w->state == PFS_SLOT_RECOVERING;
	bno = fsck_slot_hb_block(f, s);
	err = fsck_dev_read(f, bno, blk);
	if (err)
		return err;
	w->hb_valid = !pfs_meta_verify(blk, bno, PFS_MAGIC_HEARTBEAT, f->g.seed);
	if (w->hb_valid)
		w->seq = le64_to_cpu(hb->seq);
	return 0;
}

static int check_heartbeat(struct fsck *f, uint32_t s, uint8_t *blk)
{
	uint64_t bno = fsck_slot_hb_block(f, s);
	const struct pfs_heartbeat *hb = (const struct pfs_heartbeat *)blk;
	const char *why;
	struct buf *b;
	bool fix = false;
	int err = fsck_dev_read(f, bno, blk);

	if (err)
		return err;
	why = pfs_meta_problem(blk, bno, PFS_MAGIC_HEARTBEAT, f->g.seed);
	if (why) {
		fix = fsck_problem(f, FSCK_FIX_SAFE, "slot %u: heartbeat block: %s", s, why);
	} else {
		if (le32_to_cpu(hb->slot) != s)
			fix = fsck_problem(f, FSCK_FIX_SAFE,
					   "slot %u: heartbeat holds slot index %u",
					   s, le32_to_cpu(hb->slot));
	}
	if (!fix)
		return 0;
	err = fsck_dev_rebuild(f, bno, &b);
	if (err)
		return err;
	rebuild_heartbeat(buf_data(b), s, why ? 0 : le64_to_cpu(hb->generation));
	buf_put(b);
	return 0;
}

/* Check the fields of a record that passed its header checks. */
static int check_record_fields(struct fsck *f, uint32_t s, const struct pfs_slot *sl)
{
	uint64_t js = f->g.journal_start + (uint64_t)s * f->g.journal_blocks;
	struct fsck_slot *fs = &f->slots[s];
	bool idx = false, jnl = false, state = false, reg = false, head = false;
	struct pfs_slot *w;
	struct buf *b;
	int err;

	fs->state = le32_to_cpu(sl->state);
	fs->orphan_head = le64_to_cpu(sl->orphan_head);
	if (le32_to_cpu(sl->slot) != s)
		idx = fsck_problem(f, FSCK_FIX_ASK, "slot %u: record holds slot index %u",
				   s, le32_to_cpu(sl->slot));
	if (le64_to_cpu(sl->journal_start) != js ||
	    le64_to_cpu(sl->journal_blocks) != f->g.journal_blocks)
		jnl = fsck_problem(f, FSCK_FIX_ASK,
				   "slot %u: journal at block %llu (%llu blocks), expected "
				   "block %llu (%llu blocks)", s,
				   (unsigned long long)le64_to_cpu(sl->journal_start),
				   (unsigned long long)le64_to_cpu(sl->journal_blocks),
				   (unsigned long long)js,
				   (unsigned long long)f->g.journal_blocks);
	if (fs->state > PFS_SLOT_RECOVERING) {
		state = fsck_problem(f, FSCK_FIX_ASK, "slot %u: invalid state %u", s,
				     fs->state);
		if (state) {
			fs->state = PFS_SLOT_FREE;
			fs->process = true;
		}
	}
	if (le32_to_cpu(sl->reg_status) > PFS_REG_ACTIVE)
		reg = fsck_problem(f, FSCK_FIX_ASK,
				   "slot %u: invalid registration status %u", s,
				   le32_to_cpu(sl->reg_status));
	if (fs->orphan_head && !fsck_ino_valid(f, fs->orphan_head)) {
		head = fsck_problem(f, FSCK_FIX_SAFE,
				    "slot %u: orphan list head %llu is not an inode", s,
				    (unsigned long long)fs->orphan_head);
		fs->orphan_head = 0;
	}
	if (!idx && !jnl && !state && !reg && !head)
		return 0;
	err = record_get(f, s, &b);
	if (err)
		return err;
	w = buf_data(b);
	if (idx)
		w->slot = cpu_to_le32(s);
	if (jnl) {
		w->journal_start = cpu_to_le64(js);
		w->journal_blocks = cpu_to_le64(f->g.journal_blocks);
	}
	if (state)
		w->state = cpu_to_le32(PFS_SLOT_FREE);
	if (reg)
		w->reg_status = cpu_to_le32(PFS_REG_INACTIVE);
	if (head)
		w->orphan_head = 0;
	fsck_dev_dirty(f, b);
	buf_put(b);
	return 0;
}

static int check_record(struct fsck *f, uint32_t s, uint8_t *blk)
{
	uint64_t bno = fsck_slot_rec_block(f, s);
	const struct pfs_slot *sl = (const struct pfs_slot *)blk;
	struct fsck_slot *fs = &f->slots[s];
	const char *why;
	struct buf *b;
	int err = fsck_dev_read(f, bno, blk);

	if (err)
		return err;
	why = pfs_meta_problem(blk, bno, PFS_MAGIC_SLOT, f->g.seed);
	if (!why) {
		fs->rec_ok = true;
		return check_record_fields(f, s, sl);
	}
	if (!fsck_problem(f, FSCK_FIX_ASK, "slot %u: record: %s", s, why))
		return 0;
	err = fsck_dev_rebuild(f, bno, &b);
	if (err)
		return err;
	rebuild_record(f, buf_data(b), s);
	buf_put(b);
	fs->rec_ok = true;
	fs->state = PFS_SLOT_FREE;
	fs->orphan_head = 0;
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0)
		;
}

/* Watch the heartbeats of the slots that need it; set live. */
static int watch_heartbeats(struct fsck *f, struct watch *w, uint8_t *blk)
{
	bool any = false;

	for (uint32_t s = 0; s < f->g.nslots; s++) {
		if (!w[s].watch)
			continue;
		if (fsck_dev_slot_locked(f, s))
			f->slots[s].live = true;
		else
			any = true;
	}
	for (unsigned waited = 0; any && waited < FSCK_HB_WATCH_MS;
	     waited += FSCK_HB_POLL_MS) {
		sleep_ms(FSCK_HB_POLL_MS);
		any = false;
		for (uint32_t s = 0; s < f->g.nslots; s++) {
			uint64_t bno = fsck_slot_hb_block(f, s);
			const struct pfs_heartbeat *hb = (const struct pfs_heartbeat *)blk;

			if (!w[s].watch || f->slots[s].live)
				continue;
			int err = fsck_dev_read(f, bno, blk);
			if (err)
				return err;
			bool valid = !pfs_meta_verify(blk, bno, PFS_MAGIC_HEARTBEAT, f->g.seed);
			if (valid && (!w[s].hb_valid || le64_to_cpu(hb->seq) != w[s].seq))
				f->slots[s].live = true;
			else
				any = true;
		}
	}
	return 0;
}

static int report_live(struct fsck *f, struct watch *w)
{
	for (uint32_t s = 0; s < f->g.nslots; s++) {
		if (!f->slots[s].live)
			continue;
		if (fsck_can_fix(f)) {
			fsck_fail(f, 0, "slot %u is in use by %s pid %u (its heartbeat "
				  "advances or its lock is held): the volume is mounted; "
				  "refusing to repair it", s,
				  w[s].host[0] ? w[s].host : "an unknown host", w[s].pid);
			return -EBUSY;
		}
		fsck_warn(f, "slot %u is in use by %s pid %u: the volume is mounted, "
			  "problems may be changes in flight", s,
			  w[s].host[0] ? w[s].host : "an unknown host", w[s].pid);
	}
	return 0;
}

int fsck_pass1_slots(struct fsck *f)
{
	struct watch *w = calloc(f->g.nslots, sizeof(*w));
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	uint32_t busy;
	int err = 0;

	if (!w || !blk) {
		err = fsck_fail(f, -ENOMEM, "checking the slot table");
		goto out_free;
	}
	if (f->rw) {
		err = fsck_dev_lock_slots(f, &busy);
		if (err == -EBUSY) {
			fsck_fail(f, 0, "slot %u is locked by a process on this host (a "
				  "mount, or another repair): the volume is mounted; "
				  "refusing to repair it", busy);
			goto out_free;
		}
		if (err)
			goto out_free;
	}
	for (uint32_t s = 0; s < f->g.nslots && !err; s++)
		err = survey(f, s, blk, &w[s]);
	if (!err)
		err = watch_heartbeats(f, w, blk);
	if (!err)
		err = report_live(f, w);
	for (uint32_t s = 0; s < f->g.nslots && !err; s++) {
		if (w[s].rec_valid && w[s].state != PFS_SLOT_FREE && !f->slots[s].live)
			err = fsck_journal_slot(f, s, w[s].generation);
	}
	for (uint32_t s = 0; s < f->g.nslots && !err; s++) {
		err = check_heartbeat(f, s, blk);
		if (!err)
			err = check_record(f, s, blk);
		fsck_progress(f, 1, s + 1, f->g.nslots);
	}
	for (uint32_t s = 0; s < f->g.nslots && !err; s++) {
		struct fsck_slot *fs = &f->slots[s];
		enum fsck_fix cls = fs->jnl_bad ? FSCK_FIX_NONE : FSCK_FIX_SAFE;

		if (fs->live || !fs->rec_ok || fs->process)
			continue;
		if (fs->state == PFS_SLOT_MOUNTED) {
			fs->process = fsck_problem(f, cls, "slot %u: not cleanly unmounted", s);
		} else if (fs->state == PFS_SLOT_RECOVERING) {
			fs->process = fsck_problem(f, cls, "slot %u: recovery interrupted", s);
		} else if (fs->orphan_head) {
			fs->process = fsck_problem(f, cls,
						   "slot %u: free slot with an orphan list", s);
		}
	}
	fsck_progress_end(f);
out_free:
	free(blk);
	free(w);
	return err;
}
