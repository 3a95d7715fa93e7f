/*
 * pfs_bcache.h -- the block cache.
 *
 * A buffer is one 4 KiB block of the device.  Buffers are reference
 * counted; an unreferenced clean buffer may be evicted (LRU) when the cache
 * is over its size.  Dirty buffers stay until the transaction layer writes
 * them back (journal/tx.c) and never get evicted.
 *
 * Every buffer has a kind that says how its integrity is checked:
 *   BUF_META   begins with struct pfs_blk_hdr: on read, the magic, the
 *              blkno and the crc32c are verified (mismatch: -EUCLEAN,
 *              logged with the block number, the buffer is not cached);
 *              on write-back, blkno and crc are filled in (buf_seal).
 *   BUF_INODE  an inode-table block: each inode carries its own crc,
 *              which the inode code checks and sets.
 *   BUF_DATA   file data, no check.
 *
 * Locking: the cache has its own mutex (bc->lock, innermost in the global
 * lock order); buffer contents are protected by the filesystem lock of the
 * caller.  The cache never does I/O while holding bc->lock.
 */
#ifndef PFS_BCACHE_H
#define PFS_BCACHE_H

#include <stdint.h>
#include <stdbool.h>
#include "pfs_bio.h"

enum buf_kind { BUF_DATA = 0, BUF_META = 1, BUF_INODE = 2 };

struct bcache;
struct buf;

/* max_bytes bounds clean buffers kept; seed is the volume's csum seed. */
int bcache_create(struct bio_dev *dev, uint64_t max_bytes, uint32_t seed,
		  struct bcache **out);
void bcache_destroy(struct bcache *bc);
void bcache_set_seed(struct bcache *bc, uint32_t seed);

/* Read block BLK (from the cache or the device).  For BUF_META, MAGIC is
 * checked too (0 accepts any magic).  Returns a referenced buffer. */
int bcache_read(struct bcache *bc, uint64_t blk, enum buf_kind kind,
		uint32_t magic, struct buf **out);
/* Get a buffer for BLK without reading it: contents zeroed.  For blocks
 * just allocated, whose old contents do not matter. */
int bcache_get_new(struct bcache *bc, uint64_t blk, enum buf_kind kind,
		   struct buf **out);
/* Look up a cached buffer without I/O; NULL if absent.  A buffer found is
 * referenced, as from bcache_read. */
struct buf *bcache_peek(struct bcache *bc, uint64_t blk);
void buf_get(struct buf *b);
void buf_put(struct buf *b);
/* Drop BLK from the cache (it was freed); its dirty state, if any, is
 * discarded, so a freed block is never written back. */
void bcache_forget(struct bcache *bc, uint64_t blk);

/* Drop BLK if it is cached clean and unreferenced (another node may have
 * changed it); -EBUSY if it is dirty or in use. */
int bcache_invalidate(struct bcache *bc, uint64_t blk);
/* Drop every unreferenced clean buffer; returns how many. */
size_t bcache_drop_clean(struct bcache *bc);

void *buf_data(struct buf *b);
uint64_t buf_blkno(const struct buf *b);
enum buf_kind buf_kind(const struct buf *b);
bool buf_dirty(const struct buf *b);

/* Fill in hdr.blkno and hdr.crc of a BUF_META buffer before it is written. */
void buf_seal(struct bcache *bc, struct buf *b);
/* Verify a metadata block image: 0, or -EUCLEAN (bad crc/blkno/magic). */
int pfs_meta_verify(const void *blk, uint64_t blkno, uint32_t magic, uint32_t seed);
void pfs_meta_seal(void *blk, uint64_t blkno, uint32_t seed);
/* Why a metadata block image fails pfs_meta_verify: NULL if it passes,
 * else "bad checksum", "bad magic" or "misdirected". */
const char *pfs_meta_problem(const void *blk, uint64_t blkno, uint32_t magic,
			     uint32_t seed);

/*
 * Dirty tracking, used by the transaction layer only.
 * bcache_mark_dirty returns 1 if the buffer was clean (first change since
 * its last write-back; the caller captures the before-image then), 0 if it
 * was dirty already.
 */
int bcache_mark_dirty(struct bcache *bc, struct buf *b);
/* Snapshot of the dirty list: an array of referenced buffers, sorted by
 * block number.  Caller frees the array and puts each buffer. */
int bcache_dirty_list(struct bcache *bc, struct buf ***list, size_t *n);
void bcache_mark_clean(struct bcache *bc, struct buf *b);
size_t bcache_ndirty(struct bcache *bc);
struct bio_dev *bcache_dev(struct bcache *bc);

struct bcache_stats {
	uint64_t hits, misses, evictions;
	uint64_t nbufs;         /* buffers cached */
	uint64_t nlru;          /* of which unreferenced and clean */
	uint64_t ndirty;        /* of which dirty */
};
void bcache_get_stats(struct bcache *bc, struct bcache_stats *st);

#endif /* PFS_BCACHE_H */
