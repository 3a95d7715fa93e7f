/*
 * device.c -- the device under check: opening it, raw reads, the block
 * cache, the slot locks, and writing the repairs back.
 *
 * Design notes
 *
 * The device is opened read-only with -n and read-write otherwise.  Checks
 * of blocks that may be damaged read them raw (fsck_dev_read), so a bad
 * block can be described; everything that is changed goes through the
 * block cache: a fix reads the block through the cache (or takes a zeroed
 * buffer to rebuild it), changes it and marks it dirty.  Dirty buffers are
 * never evicted, so every change is still there at the end, when
 * fsck_dev_commit() seals each one (checksum and block number of metadata
 * blocks; inodes carry their own checksum, set by the change), writes it
 * in place and flushes the device.  Nothing is written before that.
 *
 * Slot locks.  A mount holds an open-file-description write lock on its
 * slot record's bytes (fs/volume.c V1).  In the repair modes the checker
 * takes the same locks on every slot record, so that no node of this host
 * can mount the volume while it is being repaired; a lock held by another
 * process means a node of this host has the volume mounted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsck.h"
#include "pfs_util.h"

int fsck_dev_open(struct fsck *f)
{
	f->rw = f->o.mode != FSCK_MODE_CHECK;
	int err = bio_open(f->o.device, f->rw, &f->dev);
	if (err)
		return fsck_fail(f, err, "cannot open the device");
	if (bio_nblocks(f->dev) < 2) {
		bio_close(f->dev);
		f->dev = NULL;
		fsck_fail(f, 0, "device too small to hold a volume");
		return -EINVAL;
	}
	return 0;
}

int fsck_dev_cache(struct fsck *f)
{
	int err = bcache_create(f->dev, FSCK_CACHE_BYTES, f->g.seed, &f->bc);
	if (err)
		return fsck_fail(f, err, "cannot create the block cache");
	return 0;
}

void fsck_dev_close(struct fsck *f)
{
	if (f->bc) {
		bcache_destroy(f->bc);
		f->bc = NULL;
	}
	if (f->dev) {
		bio_close(f->dev);
		f->dev = NULL;
	}
}

int fsck_dev_read(struct fsck *f, uint64_t blk, void *buf)
{
	int err = bio_read(f->dev, blk, 1, buf);
	if (err)
		return fsck_fail(f, err, "reading block %llu", (unsigned long long)blk);
	return 0;
}

static void slot_lock_range(const struct fsck *f, uint32_t s, struct flock *fl,
			    short type)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = (off_t)(fsck_slot_rec_block(f, s) * PFS_BLOCK_SIZE);
	fl->l_len = PFS_BLOCK_SIZE;
}

bool fsck_dev_slot_locked(struct fsck *f, uint32_t s)
{
	struct flock fl;

	slot_lock_range(f, s, &fl, F_WRLCK);
	if (fcntl(bio_fd(f->dev), F_OFD_GETLK, &fl) < 0)
		return false;
	return fl.l_type != F_UNLCK;
}

int fsck_dev_lock_slots(struct fsck *f, uint32_t *slot)
{
	struct flock fl;

	for (uint32_t s = 0; s < f->g.nslots; s++) {
		slot_lock_range(f, s, &fl, F_WRLCK);
		if (fcntl(bio_fd(f->dev), F_OFD_SETLK, &fl) < 0) {
			int err = errno;
			*slot = s;
			if (err == EAGAIN || err == EACCES)
				return -EBUSY;
			return fsck_fail(f, -err, "locking slot %u", s);
		}
	}
	return 0;
}

int fsck_dev_rebuild(struct fsck *f, uint64_t blk, struct buf **out)
{
	int err = bcache_get_new(f->bc, blk, BUF_META, out);
	if (err)
		return fsck_fail(f, err, "rebuilding block %llu", (unsigned long long)blk);
	bcache_mark_dirty(f->bc, *out);
	return 0;
}

void fsck_dev_dirty(struct fsck *f, struct buf *b)
{
	bcache_mark_dirty(f->bc, b);
}

int fsck_dev_commit(struct fsck *f)
{
	struct buf **list;
	size_t n, i;
	int err;

	if (!f->bc || !f->rw)
		return 0;
	err = bcache_dirty_list(f->bc, &list, &n);
	if (err)
		return fsck_fail(f, err, "listing the repaired blocks");
	if (n == 0) {
		free(list);
		return 0;
	}
	for (i = 0; i < n && !err; i++) {
		buf_seal(f->bc, list[i]);
		err = bio_write(f->dev, buf_blkno(list[i]), 1, buf_data(list[i]));
		if (err)
			fsck_fail(f, err, "writing block %llu",
				  (unsigned long long)buf_blkno(list[i]));
	}
	if (!err) {
		err = bio_flush(f->dev);
		if (err)
			fsck_fail(f, err, "flushing the device");
	}
	for (i = 0; i < n; i++) {
		if (!err)
			bcache_mark_clean(f->bc, list[i]);
		buf_put(list[i]);
	}
	free(list);
	if (!err)
		fsck_verbose(f, "%zu blocks written", n);
	return err;
}
