/*
 * file.c -- file data: read, write, preallocation, hole punching and
 * SEEK_DATA/SEEK_HOLE over the extent map.
 *
 * Design notes
 *
 * File data does not go through the block cache: reads go straight from
 * the device into the reply buffer, writes straight from the request
 * buffer to the device, in runs as long as the extents allow.  The extent
 * map and the inode change under the running transaction (fs->lock held),
 * and because newly allocated data is written before that transaction can
 * commit, a committed extent never points at unwritten garbage (the
 * data=ordered rule).
 *
 * Invariants:
 *   F1. A block mapped by a written extent holds the file's bytes; an
 *       unwritten extent and a hole read as zeros.
 *   F2. A newly allocated block is written in full before it is mapped as
 *       written: a partial write fills the rest of the block with zeros.
 *   F3. Bytes past i_size in the last block are zero (inode.c I4).
 *   F4. With data=undo, bytes of a block that already holds committed
 *       data are never overwritten in place directly: the block goes
 *       through the block cache and the transaction (its before-image is
 *       logged and it is written at commit), so a write request is all or
 *       nothing across a crash.  Reads prefer such a dirty cached block.
 *       Blocks newly allocated (or unwritten) need no before-image: if
 *       the transaction is backed out they are free again.
 *   F5. A block has one newest copy: once cached, every write of it goes
 *       through the cache until commit, including a block the running
 *       transaction allocated (a request that also overwrites committed
 *       blocks caches the whole range); only an uncached new block is
 *       written directly.
 *   F6. With data=undo, a request that overwrites at least
 *       RELOCATE_MIN_BLOCKS whole committed blocks (none of them cached or
 *       new) writes them to newly allocated blocks instead, and moves the
 *       extent map onto them: the old blocks are freed at commit (alloc.c
 *       A5), so until then they still hold the committed data, and a
 *       backout restores the map and the bitmaps from their before-images.
 *       The request stays all or nothing, without reading or logging the
 *       old data.  Small overwrites stay in place (F4), which keeps files
 *       that see small random writes contiguous.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pfs_fs.h"
#include "pfs_util.h"

#define FILE_MAX_BYTES ((uint64_t)1 << 60)
#define RELOCATE_MIN_BLOCKS 16u         /* F6: 64 KiB */

static const uint8_t zero_block[PFS_BLOCK_SIZE] __attribute__((aligned(64)));

static uint64_t ext_pblk(const struct pfs_extent *e, uint64_t lblk)
{
	return le64_to_cpu(e->pblk) + (lblk - le64_to_cpu(e->lblk));
}

static uint64_t ext_end(const struct pfs_extent *e)
{
	return le64_to_cpu(e->lblk) + le32_to_cpu(e->len);
}

/* A staging buffer for one request's before-images, kept across requests
 * (protected by fs->lock). */
static uint8_t *scratch_get(struct pfs_fs *fs, size_t len)
{
	if (len > fs->scratch_len) {
		free(fs->scratch);
		fs->scratch = aligned_alloc(PFS_BLOCK_SIZE, len);
		fs->scratch_len = fs->scratch ? len : 0;
	}
	return fs->scratch;
}

static bool undo_data(const struct pfs_fs *fs)
{
	return fs->opts.data_mode == PFS_DATA_UNDO && fs->jnl;
}

/* Write the bytes [from, to) of the request directly in place: blocks the
 * running transaction allocated (tx.c T7) that are not cached. */
static int data_write_direct(struct pfs_fs *fs, uint64_t pblk, uint64_t inoff,
			     const char *src, size_t from, size_t to)
{
	int err = bio_pwrite(fs->dev, pblk * PFS_BLOCK_SIZE + inoff + from, to - from,
			     src ? src + from : (const char *)zero_block);
	if (err)
		fs_fence(fs, err, "data write failed");
	return err;
}

/* Overwrite n bytes at byte inoff of committed data starting at block
 * pblk (F4).  Under data=undo a block goes through the cache: the old
 * contents of the blocks not cached yet are read in one request (they are
 * the before-images), then changed under the transaction.  A block the
 * running transaction allocated needs no before-image (tx.c T7) and is
 * written directly, unless it is cached already: then the cached copy
 * is the newest and a direct write would be overwritten by it at commit
 * (F5). */
static int data_overwrite(struct pfs_fs *fs, uint64_t pblk, uint64_t inoff,
			  const char *src, size_t n)
{
	int err;
	if (!undo_data(fs))
		return data_write_direct(fs, pblk, inoff, src, 0, n);
	uint64_t first = pblk + (inoff >> PFS_BLOCK_SHIFT);
	uint64_t nblk = ((inoff + n - 1) >> PFS_BLOCK_SHIFT) - (inoff >> PFS_BLOCK_SHIFT) + 1;
	uint8_t *old = NULL;
	bool old_read = false;
	size_t done = 0, run = 0;
	bool in_run = false;
	err = 0;
	while (done < n) {
		uint64_t b = pblk + ((inoff + done) >> PFS_BLOCK_SHIFT);
		uint32_t o = (uint32_t)((inoff + done) & (PFS_BLOCK_SIZE - 1));
		size_t k = PFS_MIN((size_t)(PFS_BLOCK_SIZE - o), n - done);
		struct buf *bp = bcache_peek(fs->bc, b);
		if (!bp && tx_block_is_new(fs, b)) {
			if (!in_run) {
				in_run = true;
				run = done;
			}
			done += k;
			continue;
		}
		if (in_run) {
			in_run = false;
			err = data_write_direct(fs, pblk, inoff, src, run, done);
			if (err)
				break;
		}
		if (!bp && nblk > 1 && !old_read) {
			old = scratch_get(fs, nblk * PFS_BLOCK_SIZE);
			if (!old)
				return -ENOMEM;
			err = bio_read(fs->dev, first, (uint32_t)nblk, old);
			if (err)
				return err;
			old_read = true;
		}
		if (!bp && old_read) {
			err = bcache_get_new(fs->bc, b, BUF_DATA, &bp);
			if (!err)
				memcpy(buf_data(bp), old + (b - first) * PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
		} else if (!bp) {
			err = bcache_read(fs->bc, b, BUF_DATA, 0, &bp);
		}
		if (err)
			break;
		err = tx_dirty(fs, bp);      /* captures the old contents (T4) */
		if (!err)
			memcpy((char *)buf_data(bp) + o, src ? src + done : (const char *)zero_block, k);
		buf_put(bp);
		if (err)
			break;
		done += k;
	}
	if (!err && in_run)
		err = data_write_direct(fs, pblk, inoff, src, run, done);
	return err;
}

/* Read n bytes of committed data at byte inoff of block pblk, taking
 * blocks the running transaction changed from the cache (F4); runs of
 * blocks not in the cache are read in one request. */
static int data_read(struct pfs_fs *fs, uint64_t pblk, uint64_t inoff, char *dst, size_t n)
{
	if (!undo_data(fs) || bcache_ndirty(fs->bc) == 0)
		return bio_pread(fs->dev, pblk * PFS_BLOCK_SIZE + inoff, n, dst);
	size_t done = 0, run_start = 0;
	bool in_run = false;
	while (done <= n) {
		struct buf *bp = NULL;
		size_t k = 0;
		uint64_t b = 0;
		uint32_t o = 0;
		if (done < n) {
			b = pblk + ((inoff + done) >> PFS_BLOCK_SHIFT);
			o = (uint32_t)((inoff + done) & (PFS_BLOCK_SIZE - 1));
			k = PFS_MIN((size_t)(PFS_BLOCK_SIZE - o), n - done);
			bp = bcache_peek(fs->bc, b);
			if (bp && buf_kind(bp) != BUF_DATA) {
				buf_put(bp);
				bp = NULL;
			}
		}
		if ((bp || done == n) && in_run) {
			int err = bio_pread(fs->dev, pblk * PFS_BLOCK_SIZE + inoff + run_start,
					    done - run_start, dst + run_start);
			if (err) {
				if (bp)
					buf_put(bp);
				return err;
			}
			in_run = false;
		}
		if (done == n)
			break;
		if (bp) {
			memcpy(dst + done, (char *)buf_data(bp) + o, k);
			buf_put(bp);
		} else if (!in_run) {
			in_run = true;
			run_start = done;
		}
		done += k;
	}
	return 0;
}

int file_zero_range(struct pfs_fs *fs, struct inode *ip, uint64_t pblk,
		    uint32_t off, uint32_t len)
{
	PFS_BUG_ON(off + len > PFS_BLOCK_SIZE);
	if (undo_data(fs))
		return data_overwrite(fs, pblk, off, NULL, len);
	return data_overwrite(fs, pblk, off, (const char *)zero_block, len);
}

ssize_t file_read(struct pfs_fs *fs, struct inode *ip, char *buf, size_t size, off_t off)
{
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= ip->size)
		return 0;
	if ((uint64_t)off + size > ip->size)
		size = (size_t)(ip->size - (uint64_t)off);
	size_t done = 0;
	while (done < size) {
		uint64_t pos = (uint64_t)off + done;
		uint64_t lblk = pos >> PFS_BLOCK_SHIFT;
		uint32_t inoff = (uint32_t)(pos & (PFS_BLOCK_SIZE - 1));
		struct pfs_extent e;
		int r = extent_lookup(fs, ip, lblk, &e);
		if (r < 0)
			return done ? (ssize_t)done : r;
		uint64_t nblk = r ? ext_end(&e) - lblk : le32_to_cpu(e.len);
		uint64_t span = nblk * PFS_BLOCK_SIZE - inoff;
		size_t n = (size_t)PFS_MIN((uint64_t)(size - done), span);
		if (r == 0 || (le32_to_cpu(e.flags) & PFS_EXT_UNWRITTEN)) {
			memset(buf + done, 0, n);                   /* F1 */
		} else {
			int err = data_read(fs, ext_pblk(&e, lblk), inoff, buf + done, n);
			if (err)
				return done ? (ssize_t)done : err;
		}
		done += n;
	}
	return (ssize_t)done;
}

/* Write n bytes at byte inoff of freshly allocated or unwritten blocks
 * starting at pblk, zero-filling partial blocks (F2). */
static int write_fresh(struct pfs_fs *fs, uint64_t pblk, uint32_t inoff,
		       const char *src, size_t n)
{
	size_t done = 0;
	uint8_t *tmp = NULL;
	int err = 0;

	while (done < n) {
		uint32_t o = (uint32_t)((inoff + done) & (PFS_BLOCK_SIZE - 1));
		uint64_t b = pblk + ((inoff + done) >> PFS_BLOCK_SHIFT);
		if (o == 0 && n - done >= PFS_BLOCK_SIZE) {
			size_t whole = (n - done) & ~(size_t)(PFS_BLOCK_SIZE - 1);
			err = bio_pwrite(fs->dev, b * PFS_BLOCK_SIZE, whole, src + done);
			if (err)
				break;
			done += whole;
			continue;
		}
		if (!tmp) {
			tmp = malloc(PFS_BLOCK_SIZE);
			if (!tmp)
				return -ENOMEM;
		}
		size_t k = PFS_MIN((size_t)(PFS_BLOCK_SIZE - o), n - done);
		memset(tmp, 0, PFS_BLOCK_SIZE);
		memcpy(tmp + o, src + done, k);
		err = bio_pwrite(fs->dev, b * PFS_BLOCK_SIZE, PFS_BLOCK_SIZE, tmp);
		if (err)
			break;
		done += k;
	}
	free(tmp);
	if (err)
		fs_fence(fs, err, "data write failed");
	return err;
}

/* Goal for new blocks at lblk: right after the block before it, else near
 * the inode. */
static uint64_t data_goal(struct pfs_fs *fs, struct inode *ip, uint64_t lblk)
{
	struct pfs_extent e;
	if (lblk > 0 && extent_lookup(fs, ip, lblk - 1, &e) == 1)
		return ext_pblk(&e, lblk - 1) + 1;
	return inode_table_block(fs, ip->ino, NULL) + fs->itb;
}

/* F6: may the n whole blocks at pblk be relocated rather than
 * overwritten in place? */
static bool relocatable(struct pfs_fs *fs, uint64_t pblk, uint64_t n)
{
	if (!undo_data(fs) || n < RELOCATE_MIN_BLOCKS)
		return false;
	for (uint64_t b = pblk; b < pblk + n; b++) {
		if (tx_block_is_new(fs, b))
			return false;
		struct buf *bp = bcache_peek(fs->bc, b);
		if (bp) {
			buf_put(bp);
			return false;
		}
	}
	return true;
}

/* F6: write n whole blocks of data for logical blocks lblk.. (mapped at
 * pblk..) to new blocks and remap them.  Returns the blocks done; once the
 * map was changed, a failure fences the node (the transaction must never
 * commit half of it; the backout restores the old map). */
static int64_t relocate_blocks(struct pfs_fs *fs, struct inode *ip, uint64_t lblk,
			       uint64_t n, const char *src)
{
	uint64_t done = 0;
	while (done < n) {
		uint64_t start;
		uint32_t got;
		uint64_t want = PFS_MIN(n - done, (uint64_t)PFS_EXT_MAX_LEN);
		int err = alloc_blocks(fs, data_goal(fs, ip, lblk + done), (uint32_t)want,
				       &start, &got);
		if (err)
			return done ? (int64_t)done : err;    /* the rest in place */
		err = write_fresh(fs, start, 0, src + done * PFS_BLOCK_SIZE,
				  (size_t)got * PFS_BLOCK_SIZE);
		if (err) {
			alloc_free_blocks(fs, start, got);
			return err;                         /* fenced by write_fresh */
		}
		err = extent_punch(fs, ip, lblk + done, got);   /* frees at commit */
		if (!err)
			err = extent_add(fs, ip, lblk + done, start, got, 0);
		if (err) {
			fs_fence(fs, err, "an overwrite failed while moving blocks");
			return -EIO;
		}
		done += got;
	}
	return (int64_t)done;
}

/* Overwrite n bytes at byte inoff of the committed, written blocks from
 * pblk on, mapped at logical block lblk: whole blocks by relocation when
 * enough of them (F6), the rest in place (F4). */
static int overwrite_mapped(struct pfs_fs *fs, struct inode *ip, uint64_t lblk,
			    uint64_t pblk, uint32_t inoff, const char *src, size_t n)
{
	uint64_t b0 = inoff ? 1 : 0;                    /* first whole block */
	uint64_t b1 = (inoff + n) >> PFS_BLOCK_SHIFT;   /* end of whole blocks */
	if (b1 <= b0 || !relocatable(fs, pblk + b0, b1 - b0))
		return data_overwrite(fs, pblk, inoff, src, n);
	int err;
	size_t head = (size_t)(b0 * PFS_BLOCK_SIZE - inoff);
	if (head) {
		err = data_overwrite(fs, pblk, inoff, src, head);
		if (err)
			return err;
	}
	int64_t moved = relocate_blocks(fs, ip, lblk + b0, b1 - b0, src + head);
	if (moved < 0)
		return (int)moved;
	size_t at = head + (size_t)moved * PFS_BLOCK_SIZE;
	if (at < n)     /* blocks not moved (no space) and the partial tail */
		return data_overwrite(fs, pblk, inoff + at, src + at, n - at);
	return 0;
}

ssize_t file_write(struct pfs_fs *fs, struct inode *ip, const char *buf, size_t size, off_t off)
{
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off + size > FILE_MAX_BYTES)
		return -EFBIG;
	size_t done = 0;
	int err = 0;
	while (done < size) {
		uint64_t pos = (uint64_t)off + done;
		uint64_t lblk = pos >> PFS_BLOCK_SHIFT;
		uint32_t inoff = (uint32_t)(pos & (PFS_BLOCK_SIZE - 1));
		uint64_t last = ((uint64_t)off + size - 1) >> PFS_BLOCK_SHIFT;
		struct pfs_extent e;
		int r = extent_lookup(fs, ip, lblk, &e);
		if (r < 0) {
			err = r;
			break;
		}
		if (r == 1) {
			uint64_t nblk = PFS_MIN(ext_end(&e) - lblk, last - lblk + 1);
			size_t n = (size_t)PFS_MIN((uint64_t)(size - done),
						   nblk * PFS_BLOCK_SIZE - inoff);
			uint64_t pblk = ext_pblk(&e, lblk);
			if (le32_to_cpu(e.flags) & PFS_EXT_UNWRITTEN) {
				err = write_fresh(fs, pblk, inoff, buf + done, n);
				if (!err)
					err = extent_mark_written(fs, ip, lblk,
						PFS_DIV_ROUND_UP(inoff + n, PFS_BLOCK_SIZE));
			} else {
				err = overwrite_mapped(fs, ip, lblk, pblk, inoff, buf + done, n);
			}
			if (err)
				break;
			done += n;
			continue;
		}
		/* A hole: allocate as much of it as this write covers. */
		uint64_t want = PFS_MIN((uint64_t)le32_to_cpu(e.len), last - lblk + 1);
		want = PFS_MIN(want, (uint64_t)PFS_EXT_MAX_LEN);
		uint64_t pblk;
		uint32_t got;
		err = alloc_blocks(fs, data_goal(fs, ip, lblk), (uint32_t)want, &pblk, &got);
		if (err)
			break;
		size_t n = (size_t)PFS_MIN((uint64_t)(size - done),
					   (uint64_t)got * PFS_BLOCK_SIZE - inoff);
		err = write_fresh(fs, pblk, inoff, buf + done, n);
		if (!err)
			err = extent_add(fs, ip, lblk, pblk, got, 0);
		if (err) {
			alloc_free_blocks(fs, pblk, got);
			break;
		}
		done += n;
	}
	if (done > 0) {
		if ((uint64_t)off + done > ip->size)
			ip->size = (uint64_t)off + done;
		inode_touch(ip, false, true, true);
		int werr = inode_write(fs, ip);
		if (werr)
			return werr;
		return (ssize_t)done;
	}
	return err;
}

/* Allocate unwritten extents over the holes of [lblk, lblk+n). */
static int prealloc_range(struct pfs_fs *fs, struct inode *ip, uint64_t lblk, uint64_t n)
{
	uint64_t end = lblk + n;
	while (lblk < end) {
		struct pfs_extent e;
		int r = extent_lookup(fs, ip, lblk, &e);
		if (r < 0)
			return r;
		if (r == 1) {
			lblk = ext_end(&e);
			continue;
		}
		uint64_t want = PFS_MIN(PFS_MIN((uint64_t)le32_to_cpu(e.len), end - lblk),
					(uint64_t)PFS_EXT_MAX_LEN);
		uint64_t pblk;
		uint32_t got;
		int err = alloc_blocks(fs, data_goal(fs, ip, lblk), (uint32_t)want, &pblk, &got);
		if (err)
			return err;
		err = extent_add(fs, ip, lblk, pblk, got, PFS_EXT_UNWRITTEN);
		if (err) {
			alloc_free_blocks(fs, pblk, got);
			return err;
		}
		lblk += got;
	}
	return 0;
}

/* Zero bytes [from, to) that lie inside one block, if it holds data. */
static int zero_partial(struct pfs_fs *fs, struct inode *ip, uint64_t from, uint64_t to)
{
	if (from >= to)
		return 0;
	uint64_t lblk = from >> PFS_BLOCK_SHIFT;
	struct pfs_extent e;
	int r = extent_lookup(fs, ip, lblk, &e);
	if (r <= 0 || (le32_to_cpu(e.flags) & PFS_EXT_UNWRITTEN))
		return r < 0 ? r : 0;
	return file_zero_range(fs, ip, ext_pblk(&e, lblk),
			       (uint32_t)(from & (PFS_BLOCK_SIZE - 1)), (uint32_t)(to - from));
}

/* Make [off, end) read as zeros: zero partial edge blocks, unmap whole
 * blocks. */
static int punch_range(struct pfs_fs *fs, struct inode *ip, uint64_t off, uint64_t end)
{
	uint64_t first_full = PFS_DIV_ROUND_UP(off, PFS_BLOCK_SIZE);
	uint64_t last_full = end >> PFS_BLOCK_SHIFT;     /* exclusive */
	int err;
	if (first_full > last_full) {                     /* inside one block */
		return zero_partial(fs, ip, off, end);
	}
	err = zero_partial(fs, ip, off, first_full << PFS_BLOCK_SHIFT);
	if (!err)
		err = zero_partial(fs, ip, last_full << PFS_BLOCK_SHIFT, end);
	if (!err && last_full > first_full)
		err = extent_punch(fs, ip, first_full, last_full - first_full);
	return err;
}

int file_fallocate(struct pfs_fs *fs, struct inode *ip, int mode, off_t off, off_t len)
{
	if (off < 0 || len <= 0)
		return -EINVAL;
	if ((uint64_t)off + (uint64_t)len > FILE_MAX_BYTES)
		return -EFBIG;
	uint64_t end = (uint64_t)off + (uint64_t)len;
	int err;

	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		if (!(mode & FALLOC_FL_KEEP_SIZE) || (mode & FALLOC_FL_ZERO_RANGE))
			return -EINVAL;
		uint64_t stop = PFS_MIN(end, PFS_MAX(ip->size, end));
		err = punch_range(fs, ip, (uint64_t)off, stop);
	} else if (mode & FALLOC_FL_ZERO_RANGE) {
		err = punch_range(fs, ip, (uint64_t)off, end);
		if (!err) {
			uint64_t first_full = PFS_DIV_ROUND_UP((uint64_t)off, PFS_BLOCK_SIZE);
			uint64_t last_full = end >> PFS_BLOCK_SHIFT;
			if (last_full > first_full)
				err = prealloc_range(fs, ip, first_full, last_full - first_full);
		}
	} else {
		uint64_t lblk = (uint64_t)off >> PFS_BLOCK_SHIFT;
		uint64_t n = PFS_DIV_ROUND_UP(end, PFS_BLOCK_SIZE) - lblk;
		err = prealloc_range(fs, ip, lblk, n);
	}
	if (!err && !(mode & FALLOC_FL_KEEP_SIZE) && end > ip->size)
		ip->size = end;
	inode_touch(ip, false, !(mode == 0 || mode == FALLOC_FL_KEEP_SIZE), true);
	int werr = inode_write(fs, ip);
	return err ? err : werr;
}

off_t file_seek_data(struct pfs_fs *fs, struct inode *ip, off_t off, int whence)
{
	if (off < 0)
		return -ENXIO;
	if ((uint64_t)off >= ip->size)
		return -ENXIO;
	uint64_t lblk = (uint64_t)off >> PFS_BLOCK_SHIFT;
	if (whence == SEEK_DATA) {
		for (;;) {
			struct pfs_extent e;
			int r = extent_next(fs, ip, lblk, &e);
			if (r < 0)
				return r;
			if (r == 0)
				return -ENXIO;
			if (le32_to_cpu(e.flags) & PFS_EXT_UNWRITTEN) {
				lblk = ext_end(&e);
				continue;
			}
			uint64_t pos = PFS_MAX((uint64_t)off, le64_to_cpu(e.lblk) << PFS_BLOCK_SHIFT);
			if (pos >= ip->size)
				return -ENXIO;
			return (off_t)pos;
		}
	}
	if (whence != SEEK_HOLE)
		return -EINVAL;
	for (;;) {
		if ((lblk << PFS_BLOCK_SHIFT) >= ip->size)
			return (off_t)ip->size;
		struct pfs_extent e;
		int r = extent_lookup(fs, ip, lblk, &e);
		if (r < 0)
			return r;
		if (r == 1 && !(le32_to_cpu(e.flags) & PFS_EXT_UNWRITTEN)) {
			lblk = ext_end(&e);
			continue;
		}
		uint64_t pos = PFS_MAX((uint64_t)off, lblk << PFS_BLOCK_SHIFT);
		return (off_t)PFS_MIN(pos, ip->size);
	}
}
