/*
 * volume.c -- opening a volume: superblock, key, slot ownership, heartbeat,
 * and the fence.
 *
 * Design notes
 *
 * Mount sequence (fs_mount), each step undone in reverse on failure:
 *   1. open the device; read the superblock (the backup if the primary is
 *      damaged) and check it: magic, checksum, version, features, geometry;
 *   2. read the key file and compare its key check value with the
 *      superblock's (a wrong key is refused before anything is written);
 *   3. claim a node slot (see below);
 *   4. back out what the slot's previous owner left in flight in its undo
 *      log (journal/recover.c), then start a fresh log for the new
 *      generation (journal/jnl.c) and mark the slot MOUNTED;
 *   5. load the allocator summaries, start the transaction layer, finish
 *      interrupted deletions (orphan list), commit;
 *   6. start the heartbeat thread.
 *
 * Slot ownership.  Slot states live in the slot record (pfs_slot.state):
 *   FREE --(mount claims)--> MOUNTED --(clean unmount)--> FREE
 *   MOUNTED --(owner dies; a mount or a peer takes over)--> MOUNTED (gen+1)
 * Invariants:
 *   V1. At most one process on a host owns a slot: the owner holds an
 *       open-file-description write lock on the slot record's byte range
 *       of the device for as long as it is mounted.
 *   V2. A slot whose heartbeat advances is in use, whatever its lock
 *       says (another host may own it): a claim of a MOUNTED slot watches
 *       the heartbeat for two periods first and is refused if it moves.
 *   V3. Every mount of a slot increments its generation, which keys the
 *       slot's journal: records of an older generation cannot be replayed.
 *
 * The fence.  fs->fenced is a sticky error: once an I/O error hits a
 * write-back, a flush or a heartbeat, the node stops writing and fails
 * every request until it is remounted (see pfs_fs.h).  It also stops
 * beating (hb_thread), so its peers declare it dead and recover it: what
 * it left in flight is backed out and its locks are released.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sodium.h>

#include "pfs_backout.h"
#include "pfs_fs.h"
#include "pfs_jnl.h"
#include "pfs_peer.h"
#include "pfs_util.h"

struct hb_state {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;                      /* protected by lock */
	uint64_t seq;
};

static struct hb_state *hb_of(struct pfs_fs *fs);

void pfs_opts_defaults(struct pfs_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->node = -1;
	o->commit_ms = 1000;
	o->data_mode = PFS_DATA_UNDO;
	o->cache_bytes = 256ull << 20;
	o->heartbeat_ms = 500;
	o->dead_ms = 3000;
	o->attr_timeout = 1.0;
	o->fence_ms = 2000;
	o->restart_wait_s = 300;
}

void fs_fence(struct pfs_fs *fs, int err, const char *why)
{
	if (fs->fenced)
		return;
	fs->fenced = -EIO;
	bio_fence(fs->dev);
	pfs_err("node fenced: %s (%s); requests fail with EIO until remount",
		why, strerror(err < 0 ? -err : err));
}

static int super_valid(const struct pfs_super *sb, uint64_t blkno)
{
	if (le32_to_cpu(sb->hdr.magic) != PFS_MAGIC_SUPER)
		return -ENOENT;
	return pfs_meta_verify(sb, blkno, PFS_MAGIC_SUPER,
			       (uint32_t)le64_to_cpu(sb->csum_seed));
}

int vol_read_super(struct bio_dev *dev, struct pfs_super *sb, bool *used_backup)
{
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	if (!blk)
		return -ENOMEM;
	int err = bio_read(dev, 0, 1, blk);
	if (err)
		goto out_free;
	int perr = super_valid((const struct pfs_super *)blk, 0);
	if (!perr) {
		memcpy(sb, blk, sizeof(*sb));
		*used_backup = false;
		goto out_free;
	}
	uint64_t last = bio_nblocks(dev) - 1;
	err = bio_read(dev, last, 1, blk);
	if (err)
		goto out_free;
	int berr = super_valid((const struct pfs_super *)blk, last);
	if (!berr) {
		pfs_warn("primary superblock %s; using the backup at block %llu",
			 perr == -ENOENT ? "missing" : "corrupt", (unsigned long long)last);
		memcpy(sb, blk, sizeof(*sb));
		*used_backup = true;
		goto out_free;
	}
	err = (perr == -ENOENT && berr == -ENOENT) ? -ENOENT : -EUCLEAN;
out_free:
	free(blk);
	return err;
}

int vol_check_super(const struct pfs_super *sb, uint64_t dev_blocks)
{
	uint32_t incompat = le32_to_cpu(sb->feature_incompat);
	uint64_t nblocks = le64_to_cpu(sb->block_count);
	uint32_t slots = le32_to_cpu(sb->max_slots);
	uint32_t bpg = le32_to_cpu(sb->blocks_per_group);
	uint32_t ipg = le32_to_cpu(sb->inodes_per_group);
	uint32_t ngroups = le32_to_cpu(sb->group_count);
	uint64_t jblocks = le64_to_cpu(sb->journal_blocks);

	if (le32_to_cpu(sb->version) != PFS_FORMAT_VERSION) {
		pfs_err("superblock: format version %u is not supported",
			le32_to_cpu(sb->version));
		return -EINVAL;
	}
	if (incompat & ~PFS_FEATURE_INCOMPAT_SUPP) {
		pfs_err("superblock: unsupported incompatible features 0x%x",
			incompat & ~PFS_FEATURE_INCOMPAT_SUPP);
		return -EINVAL;
	}
	if (le32_to_cpu(sb->block_size) != PFS_BLOCK_SIZE || slots == 0 ||
	    slots > PFS_MAX_SLOTS || bpg < 64 || bpg > PFS_BITMAP_BITS ||
	    ipg == 0 || ipg % PFS_INODES_PER_BLOCK || ipg > PFS_BITMAP_BITS ||
	    le32_to_cpu(sb->inode_table_blocks) != ipg / PFS_INODES_PER_BLOCK ||
	    ngroups == 0 || le64_to_cpu(sb->root_ino) != PFS_ROOT_INO ||
	    le64_to_cpu(sb->slot_table_start) < 2 ||
	    le64_to_cpu(sb->journal_start) < le64_to_cpu(sb->slot_table_start) + 2ull * slots ||
	    le64_to_cpu(sb->group_start) < le64_to_cpu(sb->journal_start) + jblocks * slots ||
	    le64_to_cpu(sb->group_start) + (uint64_t)(ngroups - 1) * bpg >= nblocks - 1) {
		pfs_err("superblock: inconsistent geometry");
		return -EUCLEAN;
	}
	if (nblocks > dev_blocks) {
		pfs_err("superblock: volume has %llu blocks but the device only %llu",
			(unsigned long long)nblocks, (unsigned long long)dev_blocks);
		return -EINVAL;
	}
	return 0;
}

static uint64_t slot_rec_block(const struct pfs_fs *fs, uint32_t s)
{
	return le64_to_cpu(fs->sb.slot_table_start) + 2ull * s + 1;
}

static uint64_t slot_hb_block(const struct pfs_fs *fs, uint32_t s)
{
	return le64_to_cpu(fs->sb.slot_table_start) + 2ull * s;
}

/* V1: a non-blocking OFD write lock on the slot record's bytes. */
int vol_slot_lock(struct pfs_fs *fs, uint32_t s)
{
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = (off_t)(slot_rec_block(fs, s) * PFS_BLOCK_SIZE),
		.l_len = PFS_BLOCK_SIZE,
	};
	if (fcntl(bio_fd(fs->dev), F_OFD_SETLK, &fl) < 0)
		return (errno == EAGAIN || errno == EACCES) ? -EBUSY : -errno;
	return 0;
}

void vol_slot_unlock(struct pfs_fs *fs, uint32_t s)
{
	struct flock fl = {
		.l_type = F_UNLCK,
		.l_whence = SEEK_SET,
		.l_start = (off_t)(slot_rec_block(fs, s) * PFS_BLOCK_SIZE),
		.l_len = PFS_BLOCK_SIZE,
	};
	fcntl(bio_fd(fs->dev), F_OFD_SETLK, &fl);
}

static int read_meta_direct(struct pfs_fs *fs, uint64_t blk, uint32_t magic, void *out)
{
	int err = bio_read(fs->dev, blk, 1, out);
	if (err)
		return err;
	err = pfs_meta_verify(out, blk, magic, fs->csum_seed);
	if (err)
		pfs_err("block %llu: damaged slot metadata", (unsigned long long)blk);
	return err;
}

/* V2: is the heartbeat of slot s moving?  1 yes, 0 no, <0 error. */
int vol_slot_heartbeat_live(struct pfs_fs *fs, uint32_t s)
{
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	if (!blk)
		return -ENOMEM;
	int err = read_meta_direct(fs, slot_hb_block(fs, s), PFS_MAGIC_HEARTBEAT, blk);
	if (err)
		goto out_free;
	uint64_t seq0 = le64_to_cpu(((struct pfs_heartbeat *)blk)->seq);
	uint64_t waited = 0, limit = (uint64_t)fs->opts.heartbeat_ms * 2 + 200;
	while (waited < limit) {
		usleep(50000);
		waited += 50;
		err = read_meta_direct(fs, slot_hb_block(fs, s), PFS_MAGIC_HEARTBEAT, blk);
		if (err)
			goto out_free;
		if (le64_to_cpu(((struct pfs_heartbeat *)blk)->seq) != seq0) {
			err = 1;
			goto out_free;
		}
	}
	err = 0;
out_free:
	free(blk);
	return err;
}

int vol_read_heartbeat(struct pfs_fs *fs, uint32_t s, uint64_t *seq)
{
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	if (!blk)
		return -ENOMEM;
	int err = bio_read(fs->dev, slot_hb_block(fs, s), 1, blk);
	if (!err && pfs_meta_verify(blk, slot_hb_block(fs, s), PFS_MAGIC_HEARTBEAT,
				    fs->csum_seed) == 0)
		*seq = le64_to_cpu(((struct pfs_heartbeat *)blk)->seq);
	else if (!err)
		*seq = 0;
	free(blk);
	return err;
}

int vol_slot_read(struct pfs_fs *fs, uint32_t s, struct pfs_slot *out)
{
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	if (!blk)
		return -ENOMEM;
	int err = read_meta_direct(fs, slot_rec_block(fs, s), PFS_MAGIC_SLOT, blk);
	if (!err)
		memcpy(out, blk, sizeof(*out));
	free(blk);
	return err;
}

/* Try to take slot s: 0, -EBUSY (in use), or another error. */
static int slot_try_claim(struct pfs_fs *fs, uint32_t s, bool explicit_choice)
{
	struct pfs_slot rec;
	int err = vol_slot_lock(fs, s);
	if (err) {
		if (explicit_choice)
			pfs_err("slot %u is in use by another process on this host", s);
		return err;
	}
	err = vol_slot_read(fs, s, &rec);
	if (err)
		goto out_unlock;
	if (le32_to_cpu(rec.state) != PFS_SLOT_FREE) {
		if (!explicit_choice) {
			err = -EBUSY;
			goto out_unlock;
		}
		int live = vol_slot_heartbeat_live(fs, s);
		if (live < 0) {
			err = live;
			goto out_unlock;
		}
		if (live) {
			pfs_err("slot %u is in use by %.64s pid %u (its heartbeat advances)",
				s, rec.hostname, le32_to_cpu(rec.owner_pid));
			err = -EBUSY;
			goto out_unlock;
		}
		pfs_warn("slot %u: previous owner %.64s pid %u is gone; taking the slot over",
			 s, rec.hostname, le32_to_cpu(rec.owner_pid));
	}
	fs->slot = s;
	fs->slot_gen = le64_to_cpu(rec.generation) + 1;             /* V3 */
	fs->orphan_head = le64_to_cpu(rec.orphan_head);
	return 0;

out_unlock:
	vol_slot_unlock(fs, s);
	return err;
}

static int slot_claim(struct pfs_fs *fs)
{
	uint32_t nslots = le32_to_cpu(fs->sb.max_slots);
	if (fs->opts.node >= 0) {
		if ((uint32_t)fs->opts.node >= nslots) {
			pfs_err("node=%d: the volume has slots 0..%u", fs->opts.node, nslots - 1);
			return -EINVAL;
		}
		return slot_try_claim(fs, (uint32_t)fs->opts.node, true);
	}
	for (uint32_t s = 0; s < nslots; s++) {
		int err = slot_try_claim(fs, s, false);
		if (err != -EBUSY)
			return err;
	}
	pfs_err("all %u slots are in use; unmount a node or pick one with -o node=N", nslots);
	return -EBUSY;
}

/* ---- restart of a dead node ----
 *
 * A node that mounts its own slot again (node=N) after it died may find N
 * still DEAD at the coordinator: declared dead, its locks retained,
 * waiting for a counterpart or being backed out by one.
 *   R1. A restarting node never touches its slot while N is DEAD: the
 *       counterpart owns it (P1 of recovery/peer.c).  It reads the
 *       coordinator (a read-only handle) and its slot record only.
 *   R2. With restart_wait=S > 0 (default 300) it waits, at most S
 *       seconds, until N is no longer DEAD: the counterpart released N's
 *       locks, freed the slot on disk and unregistered (recovery/peer.c
 *       phases 6 and 7).  Then it claims the slot as any mount does.
 *   R3. With restart_wait=0, or when the bound passes, it fails with a
 *       message naming the slot's owner (the counterpart, or nobody yet)
 *       having written nothing.
 * A node killed but not yet declared dead joins as a takeover of its
 * silent coordinator record (pfs_coord.h); if its peers declare it dead
 * in between, coord_open says -EAGAIN and the mount waits as above.
 */

/* Who owns dead slot s: its registered counterpart, or none yet. */
static void slot_owner_desc(struct coord *c, uint32_t s, char *buf, size_t len)
{
	struct coord_reg_info ri;
	if (coord_reg_info(c, s, &ri) == 0 && ri.status == COORD_REG_ACTIVE) {
		struct coord_node_info ci;
		bool live = coord_node_info(c, ri.counterpart, &ci) == 0 &&
			    ci.state == COORD_LIVE;
		snprintf(buf, len, "node %u recovers it as its counterpart%s", ri.counterpart,
			 live ? "" : " (that node died too: another peer will take over)");
	} else {
		snprintf(buf, len, "no peer recovers it yet (peers mounted recovery=manual "
			 "leave it to \"peerfsctl recover DEVICE --node %u\")", s);
	}
}

/* R1-R3: wait until slot s is not DEAD at the coordinator, until
 * deadline_ns (monotonic).  0 when it is not (or no cluster state exists),
 * -EAGAIN (refused or timed out), or another error. */
static int slot_wait_recovered(struct pfs_fs *fs, uint32_t s, uint64_t deadline_ns)
{
	struct coord_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.spec = fs->opts.coord ? fs->opts.coord : "local";
	memcpy(cfg.uuid, fs->uuid, sizeof(cfg.uuid));
	cfg.slot = s;
	cfg.heartbeat_ms = fs->opts.heartbeat_ms;
	cfg.dead_ms = fs->opts.dead_ms;
	struct coord *c;
	int err = coord_attach_readonly(&cfg, &c);
	if (err == -ENOENT)
		return 0;                       /* no node ever joined */
	if (err)
		return err;
	uint64_t t0 = pfs_now_mono_ns();
	char owner[160] = "", prev[160] = "";
	bool waited = false;
	for (;;) {
		struct coord_node_info ni;
		err = coord_node_info(c, s, &ni);
		if (err || ni.state != COORD_DEAD)
			break;
		slot_owner_desc(c, s, owner, sizeof(owner));
		if (fs->opts.restart_wait_s == 0) {                    /* R3 */
			pfs_err("slot %u: this node was declared dead and is not recovered yet: %s; "
				"refusing to mount (restart_wait=0); nothing was written", s, owner);
			err = -EAGAIN;
			break;
		}
		if (strcmp(owner, prev) != 0) {
			pfs_warn("slot %u: this node was declared dead and is not recovered yet: %s; "
				 "waiting until its slot is released (restart_wait=%d s)",
				 s, owner, fs->opts.restart_wait_s);
			snprintf(prev, sizeof(prev), "%s", owner);
		}
		if (pfs_now_mono_ns() >= deadline_ns) {
			pfs_err("slot %u: still dead after waiting %d s (%s); giving up; nothing was written",
				s, fs->opts.restart_wait_s, owner);
			err = -EAGAIN;
			break;
		}
		waited = true;
		usleep(50000);
	}
	if (!err && waited)
		pfs_info("slot %u: released by its recovery after %.1f s; mounting", s,
			 (double)(pfs_now_mono_ns() - t0) / 1e9);
	coord_close(c);
	return err;
}

/* Write another slot's record directly (a counterpart recovering it,
 * recovery/peer.c), durably. */
int vol_slot_write_direct(struct pfs_fs *fs, uint32_t s, const struct pfs_slot *rec)
{
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	if (!blk)
		return -ENOMEM;
	memset(blk, 0, PFS_BLOCK_SIZE);
	memcpy(blk, rec, sizeof(*rec));
	pfs_meta_seal(blk, slot_rec_block(fs, s), fs->csum_seed);
	int err = bio_write(fs->dev, slot_rec_block(fs, s), 1, blk);
	if (!err)
		err = bio_flush(fs->dev);
	free(blk);
	return err;
}

/* Write our slot record with the given state, through the transaction. */
static int slot_write_state(struct pfs_fs *fs, uint32_t state)
{
	struct buf *b;
	int err = bcache_read(fs->bc, slot_rec_block(fs, fs->slot), BUF_META, PFS_MAGIC_SLOT, &b);
	if (err)
		return err;
	err = tx_dirty(fs, b);
	if (!err) {
		struct pfs_slot *s = buf_data(b);
		s->state = cpu_to_le32(state);
		s->generation = cpu_to_le64(fs->slot_gen);
		s->host_id = cpu_to_le64(fs->host_id);
		s->owner_pid = cpu_to_le32(state == PFS_SLOT_FREE ? 0 : (uint32_t)getpid());
		s->mount_time = cpu_to_le64((uint64_t)time(NULL));
		memset(s->hostname, 0, sizeof(s->hostname));
		if (state != PFS_SLOT_FREE)
			gethostname(s->hostname, sizeof(s->hostname) - 1);
		s->orphan_head = cpu_to_le64(fs->orphan_head);
	}
	buf_put(b);
	return err;
}

/* ---- heartbeat ---- */

static int hb_write(struct pfs_fs *fs, struct hb_state *hb, uint8_t *blk)
{
	struct pfs_heartbeat *h = (struct pfs_heartbeat *)blk;
	memset(blk, 0, PFS_BLOCK_SIZE);
	h->hdr.magic = cpu_to_le32(PFS_MAGIC_HEARTBEAT);
	h->slot = cpu_to_le32(fs->slot);
	h->generation = cpu_to_le64(fs->slot_gen);
	h->seq = cpu_to_le64(++hb->seq);
	h->time_ns = cpu_to_le64(pfs_now_real_ns());
	h->host_id = cpu_to_le64(fs->host_id);
	pfs_meta_seal(blk, slot_hb_block(fs, fs->slot), fs->csum_seed);
	return bio_write(fs->dev, slot_hb_block(fs, fs->slot), 1, blk);
}

static void *hb_thread(void *arg)
{
	struct pfs_fs *fs = arg;
	struct hb_state *hb = hb_of(fs);
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	char ctx[48];

	snprintf(ctx, sizeof(ctx), "node=%u slot=%u: hb:", fs->slot, fs->slot);
	pfs_log_set_context(ctx);
	pthread_mutex_lock(&hb->lock);
	bool silent = false;
	while (!hb->stop && blk) {
		pthread_mutex_unlock(&hb->lock);
		/* A fenced node stops beating, on disk and at the coordinator:
		 * its peers then find it dead, back out what it left in flight
		 * and release its locks (it never writes again).  A beating
		 * fenced node would hold its locks for ever.  (A hint read:
		 * fs->fenced only ever goes from 0 to an error.) */
		if (__atomic_load_n(&fs->fenced, __ATOMIC_RELAXED)) {
			if (!silent) {
				/* Its device refuses writes (bio_fence), so the
				 * slot may go to a local peer's recovery (V1). */
				pfs_warn("fenced: heartbeats stop and the slot is let go, so that the peers recover this node");
				if (!fs->opts.ro)
					vol_slot_unlock(fs, fs->slot);
			}
			silent = true;
		} else {
			int err = hb_write(fs, hb, blk);
			if (err) {
				pthread_mutex_lock(&fs->lock);
				fs_fence(fs, err, "heartbeat write failed");
				pthread_mutex_unlock(&fs->lock);
			}
			if (gl_tick(fs, err == 0) > 0)
				peer_kick(fs);
			/* Unlinked files peers had open (inode.c I5); a hint read. */
			if (__atomic_load_n(&fs->nowait, __ATOMIC_RELAXED))
				orphan_retry_remote(fs);
		}
		pthread_mutex_lock(&hb->lock);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t due = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
			       (uint64_t)fs->opts.heartbeat_ms * 1000000ull;
		ts.tv_sec = (time_t)(due / 1000000000ull);
		ts.tv_nsec = (long)(due % 1000000000ull);
		while (!hb->stop && pthread_cond_timedwait(&hb->cond, &hb->lock, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&hb->lock);
	free(blk);
	return NULL;
}

static struct hb_state *hb_registry[PFS_MAX_SLOTS];
static pthread_mutex_t hb_registry_lock = PTHREAD_MUTEX_INITIALIZER;

static struct hb_state *hb_of(struct pfs_fs *fs)
{
	pthread_mutex_lock(&hb_registry_lock);
	struct hb_state *hb = hb_registry[fs->slot];
	pthread_mutex_unlock(&hb_registry_lock);
	return hb;
}

static int hb_start(struct pfs_fs *fs)
{
	struct hb_state *hb = calloc(1, sizeof(*hb));
	if (!hb)
		return -ENOMEM;
	pthread_mutex_init(&hb->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&hb->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_lock(&hb_registry_lock);
	hb_registry[fs->slot] = hb;
	pthread_mutex_unlock(&hb_registry_lock);
	int err = pthread_create(&hb->thread, NULL, hb_thread, fs);
	if (err) {
		pthread_mutex_lock(&hb_registry_lock);
		hb_registry[fs->slot] = NULL;
		pthread_mutex_unlock(&hb_registry_lock);
		free(hb);
		return -err;
	}
	return 0;
}

static void hb_stop(struct pfs_fs *fs)
{
	struct hb_state *hb = hb_of(fs);
	if (!hb)
		return;
	pthread_mutex_lock(&hb->lock);
	hb->stop = true;
	pthread_cond_signal(&hb->cond);
	pthread_mutex_unlock(&hb->lock);
	pthread_join(hb->thread, NULL);
	pthread_mutex_lock(&hb_registry_lock);
	hb_registry[fs->slot] = NULL;
	pthread_mutex_unlock(&hb_registry_lock);
	pthread_cond_destroy(&hb->cond);
	pthread_mutex_destroy(&hb->lock);
	free(hb);
}

/* ---- mount / unmount ---- */

static int load_key(struct pfs_fs *fs)
{
	char path[4096];
	uint8_t file_uuid[PFS_UUID_SIZE], check[PFS_KEY_CHECK_SIZE];
	char u1[37], u2[37];

	if (fs->opts.keyfile)
		snprintf(path, sizeof(path), "%s", fs->opts.keyfile);
	else
		key_default_path(fs->uuid, path, sizeof(path));
	int err = key_file_read(path, file_uuid, fs->key);
	if (err) {
		pfs_err("cannot read the key file %s: %s", path, strerror(-err));
		return err == -ENOENT ? -ENOKEY : err;
	}
	if (memcmp(file_uuid, fs->uuid, PFS_UUID_SIZE) != 0) {
		uuid_format(file_uuid, u1);
		uuid_format(fs->uuid, u2);
		pfs_err("key file %s is for volume %s, not %s", path, u1, u2);
		return -EKEYREJECTED;
	}
	key_check_value(fs->key, fs->uuid, check);
	if (memcmp(check, fs->sb.key_check, sizeof(check)) != 0) {
		pfs_err("wrong key: the key in %s does not match the volume", path);
		return -EKEYREJECTED;
	}
	return 0;
}

/* Largest write request: under data=undo one request's before-images
 * must fit the log with room to spare (tx.c T6). */
static void set_max_write(struct pfs_fs *fs)
{
	uint64_t cap = jnl_max_images(fs) * 3 / 4;
	uint64_t blocks = cap > 96 ? PFS_MIN((uint64_t)256, (cap - 64) / 2) : 8;
	fs->max_write = (uint32_t)(blocks * PFS_BLOCK_SIZE);
}

static void decode_geometry(struct pfs_fs *fs)
{
	const struct pfs_super *sb = &fs->sb;
	fs->nblocks = le64_to_cpu(sb->block_count);
	fs->group_start = le64_to_cpu(sb->group_start);
	fs->ngroups = le32_to_cpu(sb->group_count);
	fs->bpg = le32_to_cpu(sb->blocks_per_group);
	fs->ipg = le32_to_cpu(sb->inodes_per_group);
	fs->itb = le32_to_cpu(sb->inode_table_blocks);
	fs->csum_seed = (uint32_t)le64_to_cpu(sb->csum_seed);
	memcpy(fs->uuid, sb->uuid, PFS_UUID_SIZE);
	memcpy(fs->hash_seed, sb->hash_seed, PFS_HASH_SEED_SIZE);
}

int fs_mount(const struct pfs_opts *opts, struct pfs_fs **out)
{
	struct pfs_fs *fs = calloc(1, sizeof(*fs));
	bool used_backup;
	int err;

	if (!fs)
		return -ENOMEM;
	fs->opts = *opts;
	pthread_mutex_init(&fs->lock, NULL);
	err = key_init();
	if (err)
		goto out_free_fs;
	err = bio_open(opts->device, !opts->ro, &fs->dev);
	if (err) {
		pfs_err("cannot open %s: %s", opts->device, strerror(-err));
		goto out_free_fs;
	}
	err = vol_read_super(fs->dev, &fs->sb, &used_backup);
	if (err) {
		if (err == -ENOENT)
			pfs_err("%s holds no peerfs volume (no superblock found)", opts->device);
		else if (err == -EUCLEAN)
			pfs_err("%s: the superblock and its backup are corrupt; run fsck.peerfs",
				opts->device);
		goto out_close_dev;
	}
	err = vol_check_super(&fs->sb, bio_nblocks(fs->dev));
	if (err)
		goto out_close_dev;
	decode_geometry(fs);
	err = load_key(fs);
	if (err)
		goto out_close_dev;
	err = bcache_create(fs->dev, opts->cache_bytes, fs->csum_seed, &fs->bc);
	if (err)
		goto out_close_dev;
	randombytes_buf(&fs->host_id, sizeof(fs->host_id));

	if (opts->ro) {
		fs->slot = 0;
		fs->max_write = 1u << 20;
		err = alloc_init(fs);
		if (err)
			goto out_destroy_cache;
		err = tx_init(fs);
		if (err)
			goto out_alloc_fini;
		*out = fs;
		return 0;
	}
	bool clustered = !opts->coord || strcmp(opts->coord, "none") != 0;
	uint64_t restart_deadline = pfs_now_mono_ns() +
				    (uint64_t)opts->restart_wait_s * 1000000000ull;
	for (;;) {
		/* R1, R2: a restart of a dead node waits for its recovery. */
		if (clustered && opts->node >= 0 &&
		    (uint32_t)opts->node < le32_to_cpu(fs->sb.max_slots)) {
			err = slot_wait_recovered(fs, (uint32_t)opts->node, restart_deadline);
			if (err)
				goto out_destroy_cache;
		}
		err = slot_claim(fs);
		if (err)
			goto out_destroy_cache;
		char ctx[48];
		snprintf(ctx, sizeof(ctx), "node=%u slot=%u:", fs->slot, fs->slot);
		pfs_log_set_context(ctx);
		/* Join before the backout: locks a dead incarnation of this
		 * slot left are inherited and stay held until its journal is
		 * backed out (glock.c G2). */
		if (!clustered)
			break;
		err = gl_start(fs);
		if (!err)
			break;
		vol_slot_unlock(fs, fs->slot);
		/* Declared dead while we watched its heartbeat: wait (R2). */
		if (err != -EAGAIN || opts->node < 0)
			goto out_destroy_cache;
	}
	uint64_t log_gen = 0;
	err = bo_recover_slot(fs->dev, &fs->sb, fs->key, fs->slot, fs->slot_gen - 1,
			      fs->opts.recovery_parallelism, &log_gen);
	if (err) {
		pfs_err("cannot recover the journal of slot %u; nothing was changed", fs->slot);
		goto out_unlock_slot;
	}
	/* V3: never reuse a generation, even one whose slot record update
	 * was lost in a crash. */
	if (log_gen >= fs->slot_gen)
		fs->slot_gen = log_gen + 1;
	/* The slot record may have been restored by the backout. */
	struct pfs_slot rec;
	err = vol_slot_read(fs, fs->slot, &rec);
	if (err)
		goto out_unlock_slot;
	fs->orphan_head = le64_to_cpu(rec.orphan_head);
	err = jnl_start(fs);
	if (!err)
		err = bio_flush(fs->dev);
	if (err)
		goto out_unlock_slot;
	set_max_write(fs);
	err = alloc_init(fs);
	if (err)
		goto out_jnl_free;
	err = tx_init(fs);
	if (err)
		goto out_alloc_fini;
	err = gl_run(fs);
	if (err)
		goto out_tx_fini;
	/* Slots other nodes left mounted that the coordinator has never
	 * heard of (its state was lost with them): recover them before
	 * serving, as their locks cannot protect anything. */
	if (fs->gl) {
		uint32_t nslots = le32_to_cpu(fs->sb.max_slots);
		for (uint32_t s = 0; s < nslots; s++) {
			struct pfs_slot other;
			if (s == fs->slot || vol_slot_read(fs, s, &other) ||
			    le32_to_cpu(other.state) == PFS_SLOT_FREE)
				continue;
			int rerr = peer_recover_unowned_slot(fs, s);
			if (rerr && rerr != -EBUSY)
				pfs_warn("slot %u: left mounted and could not be recovered (%s)",
					 s, strerror(-rerr));
		}
	}
	pthread_mutex_lock(&fs->lock);
	err = slot_write_state(fs, PFS_SLOT_MOUNTED);
	if (!err)
		err = orphan_recover(fs);
	if (!err)
		err = tx_commit(fs);
	pthread_mutex_unlock(&fs->lock);
	if (err)
		goto out_tx_fini;
	err = hb_start(fs);
	if (err)
		goto out_tx_fini;
	/* Dead peers nobody recovers (every node died with the coordinator
	 * state kept): recovered before serving, beating meanwhile. */
	peer_recover_at_mount(fs);
	err = peer_start(fs);
	if (err) {
		hb_stop(fs);
		goto out_tx_fini;
	}
	if (used_backup)
		pfs_warn("run fsck.peerfs to repair the primary superblock");
	pfs_info("mounted %s (generation %llu)", opts->device,
		 (unsigned long long)fs->slot_gen);
	*out = fs;
	return 0;

out_tx_fini:
	tx_fini(fs);
out_alloc_fini:
	alloc_fini(fs);
out_jnl_free:
	jnl_free(fs);
out_unlock_slot:
	gl_stop(fs, true);
	if (!opts->ro)
		vol_slot_unlock(fs, fs->slot);
out_destroy_cache:
	bcache_destroy(fs->bc);
out_close_dev:
	bio_close(fs->dev);
out_free_fs:
	pthread_mutex_destroy(&fs->lock);
	free(fs);
	return err;
}

static void inode_cache_free(struct pfs_fs *fs)
{
	for (size_t i = 0; i < fs->itab_size; i++) {
		struct inode *ip = fs->itab[i];
		while (ip) {
			struct inode *next = ip->hnext;
			gl_free_names(ip);
			free(ip);
			ip = next;
		}
	}
	free(fs->itab);
	fs->itab = NULL;
	fs->itab_size = fs->ninodes = 0;
}

int fs_unmount(struct pfs_fs *fs)
{
	int err = 0;
	if (!fs->opts.ro) {
		/* Deferred frees in groups peers hold: take those groups, so
		 * the last commit applies them (alloc.c). */
		for (int round = 0; round < 8; round++) {
			uint32_t groups[16];
			pthread_mutex_lock(&fs->lock);
			size_t ng = fs->fenced ? 0 : alloc_foreign_pending(fs, groups, 16);
			pthread_mutex_unlock(&fs->lock);
			if (ng == 0)
				break;
			for (size_t i = 0; i < ng; i++)
				gl_acquire(fs, gl_res_group(groups[i]), COORD_EX, 5000);
			pthread_mutex_lock(&fs->lock);
			fs->op_changed = false;
			for (size_t i = 0; i < ng; i++)
				gl_need(fs, gl_res_group(groups[i]), COORD_EX);
			pthread_mutex_unlock(&fs->lock);
		}
		pthread_mutex_lock(&fs->lock);
		/* Inodes the kernel still references at unmount are dropped;
		 * unlinked ones stay on the orphan list for the next mount. */
		err = tx_commit(fs);
		if (!err && !fs->fenced) {
			err = slot_write_state(fs, PFS_SLOT_FREE);
			if (!err)
				err = tx_commit(fs);
			if (!err)
				err = jnl_stop(fs);
			if (!err)
				err = bio_flush(fs->dev);
		}
		bool leave = !fs->fenced;
		pthread_mutex_unlock(&fs->lock);
		peer_stop(fs);
		hb_stop(fs);
		gl_stop(fs, leave);
	}
	tx_fini(fs);
	jnl_free(fs);
	alloc_fini(fs);
	inode_cache_free(fs);
	free(fs->scratch);
	free(fs->owait);
	if (!fs->opts.ro)
		vol_slot_unlock(fs, fs->slot);
	bcache_destroy(fs->bc);
	bio_close(fs->dev);
	sodium_memzero(fs->key, sizeof(fs->key));
	pthread_mutex_destroy(&fs->lock);
	free(fs);
	return err;
}
