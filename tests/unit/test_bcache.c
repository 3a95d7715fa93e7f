/*
 * test_bcache.c -- unit tests of lib/bcache.c: hits and misses, the
 * eviction bound, dirty and referenced buffers staying, metadata checksum
 * verification, sealing, the dirty list, forgetting blocks, and concurrent
 * misses on the same blocks.
 *
 * Each test works on an image file in its own mkdtemp directory, removed
 * at teardown.  Set PFS_TEST_VERBOSE=1 to see the log lines of the code
 * under test (many tests provoke errors on purpose).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pfs_bcache.h"
#include "pfs_bio.h"
#include "pfs_format.h"
#include "pfs_util.h"

#define NBLK 64u
#define BS PFS_BLOCK_SIZE
#define SEED 0x1234abcdu
#define MAGIC PFS_MAGIC_BTREE

struct tctx {
	char dir[64];
	char img[128];
	struct bio_dev *dev;
	struct bcache *bc;
};

/* Block b of the image holds bytes (b + j) & 0xff, except where a test
 * writes a metadata block. */
static void fill_data(uint8_t *p, uint64_t b)
{
	for (size_t j = 0; j < BS; j++)
		p[j] = (uint8_t)(b + j);
}

static int setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));
	uint8_t blk[BS];
	int fd;

	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/pfs_test_bcache.XXXXXX");
	if (!mkdtemp(t->dir))
		goto out_free_t;
	snprintf(t->img, sizeof(t->img), "%s/img", t->dir);
	fd = open(t->img, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0)
		goto out_rmdir;
	for (uint64_t b = 0; b < NBLK; b++) {
		fill_data(blk, b);
		if (pwrite(fd, blk, BS, (off_t)(b * BS)) != BS) {
			close(fd);
			goto out_unlink;
		}
	}
	close(fd);
	if (bio_open(t->img, true, &t->dev))
		goto out_unlink;
	*state = t;
	return 0;

out_unlink:
	unlink(t->img);
out_rmdir:
	rmdir(t->dir);
out_free_t:
	free(t);
	return -1;
}

static int teardown(void **state)
{
	struct tctx *t = *state;

	bcache_destroy(t->bc);
	bio_close(t->dev);
	unlink(t->img);
	rmdir(t->dir);
	free(t);
	return 0;
}

static struct bcache *mkcache(struct tctx *t, uint64_t max_blocks)
{
	assert_int_equal(bcache_create(t->dev, max_blocks * BS, SEED, &t->bc), 0);
	assert_ptr_equal(bcache_dev(t->bc), t->dev);
	return t->bc;
}

/* Write a sealed metadata block to the device, behind the cache. */
static void put_meta(struct tctx *t, uint64_t at, uint64_t sealed_as,
		     uint32_t magic, uint32_t seed, uint8_t fillbyte)
{
	uint8_t blk[BS];
	struct pfs_blk_hdr h = { .magic = cpu_to_le32(magic),
				 .owner = cpu_to_le64(42), .seq = cpu_to_le64(7) };

	memset(blk, fillbyte, sizeof(blk));
	memcpy(blk, &h, sizeof(h));
	pfs_meta_seal(blk, sealed_as, seed);
	assert_int_equal(bio_write(t->dev, at, 1, blk), 0);
}

static void stats(struct tctx *t, struct bcache_stats *st)
{
	bcache_get_stats(t->bc, st);
}

static bool cached(struct tctx *t, uint64_t blk)
{
	struct buf *b = bcache_peek(t->bc, blk);

	if (!b)
		return false;
	buf_put(b);
	return true;
}

/* ------------------------------------------------------------------ */

static void test_hit_miss(void **state)
{
	struct tctx *t = *state;
	struct bcache_stats st;
	struct bio_stats bs;
	uint8_t want[BS];
	struct buf *b, *b2;

	mkcache(t, 16);
	assert_int_equal(bcache_read(t->bc, 5, BUF_DATA, 0, &b), 0);
	assert_int_equal(buf_blkno(b), 5);
	assert_int_equal(buf_kind(b), BUF_DATA);
	assert_false(buf_dirty(b));
	assert_int_equal((uintptr_t)buf_data(b) % BS, 0);
	fill_data(want, 5);
	assert_memory_equal(buf_data(b), want, BS);

	assert_int_equal(bcache_read(t->bc, 5, BUF_DATA, 0, &b2), 0);
	assert_ptr_equal(b, b2);
	buf_put(b2);
	buf_get(b);
	buf_put(b);
	buf_put(b);

	assert_int_equal(bcache_read(t->bc, 5, BUF_DATA, 0, &b), 0);
	buf_put(b);
	stats(t, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.nbufs, 1);
	assert_int_equal(st.nlru, 1);
	bio_get_stats(t->dev, &bs);
	assert_int_equal(bs.reads, 1);

	assert_null(bcache_peek(t->bc, 6));
	b = bcache_peek(t->bc, 5);
	assert_non_null(b);
	stats(t, &st);
	assert_int_equal(st.nlru, 0);
	buf_put(b);

	/* Out of range. */
	assert_int_equal(bcache_read(t->bc, NBLK, BUF_DATA, 0, &b), -EUCLEAN);
	assert_null(b);
	assert_int_equal(bcache_get_new(t->bc, NBLK + 3, BUF_META, &b), -EINVAL);
	assert_null(b);
}

static void test_eviction_bound(void **state)
{
	struct tctx *t = *state;
	struct bcache_stats st;
	struct buf *b;

	mkcache(t, 8);
	for (uint64_t i = 0; i < 32; i++) {
		assert_int_equal(bcache_read(t->bc, i, BUF_DATA, 0, &b), 0);
		buf_put(b);
		stats(t, &st);
		assert_true(st.nbufs <= 8);
	}
	stats(t, &st);
	assert_int_equal(st.nbufs, 8);
	assert_int_equal(st.evictions, 24);
	/* The 8 most recently used stay. */
	for (uint64_t i = 0; i < 32; i++)
		assert_int_equal(cached(t, i), i >= 24);

	/* Using a block makes it young: 24 survives the next 7 misses. */
	assert_int_equal(bcache_read(t->bc, 24, BUF_DATA, 0, &b), 0);
	buf_put(b);
	for (uint64_t i = 40; i < 47; i++) {
		assert_int_equal(bcache_read(t->bc, i, BUF_DATA, 0, &b), 0);
		buf_put(b);
	}
	assert_true(cached(t, 24));
	assert_false(cached(t, 25));

	/* Referenced buffers are not evicted; the bound returns at put. */
	struct buf *held[12];
	for (uint64_t i = 0; i < 12; i++)
		assert_int_equal(bcache_read(t->bc, i, BUF_DATA, 0, &held[i]), 0);
	stats(t, &st);
	assert_int_equal(st.nbufs, 12);
	assert_int_equal(st.nlru, 0);
	for (uint64_t i = 0; i < 12; i++) {
		uint8_t want[BS];
		fill_data(want, i);
		assert_memory_equal(buf_data(held[i]), want, BS);
		buf_put(held[i]);
	}
	stats(t, &st);
	assert_int_equal(st.nbufs, 8);
}

static void test_zero_bound(void **state)
{
	struct tctx *t = *state;
	struct bcache_stats st;
	struct buf *b;

	mkcache(t, 0);
	assert_int_equal(bcache_read(t->bc, 3, BUF_DATA, 0, &b), 0);
	buf_put(b);
	stats(t, &st);
	assert_int_equal(st.nbufs, 0);
}

static void test_dirty_not_evicted(void **state)
{
	struct tctx *t = *state;
	struct bcache_stats st;
	struct buf *b;

	mkcache(t, 4);
	for (uint64_t i = 10; i < 16; i++) {
		assert_int_equal(bcache_get_new(t->bc, i, BUF_DATA, &b), 0);
		memset(buf_data(b), (int)i, BS);
		assert_int_equal(bcache_mark_dirty(t->bc, b), 1);
		assert_int_equal(bcache_mark_dirty(t->bc, b), 0);
		assert_true(buf_dirty(b));
		buf_put(b);
	}
	for (uint64_t i = 30; i < 40; i++) {
		assert_int_equal(bcache_read(t->bc, i, BUF_DATA, 0, &b), 0);
		buf_put(b);
	}
	stats(t, &st);
	assert_int_equal(st.ndirty, 6);
	assert_int_equal(st.nbufs, 6);
	assert_int_equal(bcache_ndirty(t->bc), 6);
	for (uint64_t i = 10; i < 16; i++) {
		b = bcache_peek(t->bc, i);
		assert_non_null(b);
		assert_int_equal(((uint8_t *)buf_data(b))[100], i);
		buf_put(b);
	}

	/* Write-back: once clean and unreferenced they may go. */
	struct buf **list;
	size_t n;
	assert_int_equal(bcache_dirty_list(t->bc, &list, &n), 0);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(bio_write(t->dev, buf_blkno(list[i]), 1,
					   buf_data(list[i])), 0);
		bcache_mark_clean(t->bc, list[i]);
		assert_false(buf_dirty(list[i]));
		buf_put(list[i]);
	}
	free(list);
	stats(t, &st);
	assert_int_equal(st.ndirty, 0);
	assert_int_equal(st.nbufs, 4);
	/* The written data comes back from the device. */
	bcache_forget(t->bc, 12);
	assert_int_equal(bcache_read(t->bc, 12, BUF_DATA, 0, &b), 0);
	assert_int_equal(((uint8_t *)buf_data(b))[0], 12);
	buf_put(b);
}

static void test_meta_verify(void **state)
{
	struct tctx *t = *state;
	struct bcache_stats st;
	struct buf *b;

	mkcache(t, 16);
	put_meta(t, 10, 10, MAGIC, SEED, 0x11);
	assert_int_equal(bcache_read(t->bc, 10, BUF_META, MAGIC, &b), 0);
	assert_int_equal(buf_kind(b), BUF_META);
	assert_int_equal(((uint8_t *)buf_data(b))[100], 0x11);
	buf_put(b);
	/* magic 0 accepts any magic; a cached hit is checked for magic. */
	assert_int_equal(bcache_read(t->bc, 10, BUF_META, 0, &b), 0);
	buf_put(b);
	assert_int_equal(bcache_read(t->bc, 10, BUF_META, PFS_MAGIC_XATTR, &b),
			 -EUCLEAN);
	assert_null(b);
	bcache_forget(t->bc, 10);

	/* A flipped byte anywhere. */
	uint8_t blk[BS];
	size_t flips[] = { 0, 4, 9, 31, 32, 2000, BS - 1 };
	for (size_t i = 0; i < PFS_ARRAY_SIZE(flips); i++) {
		put_meta(t, 10, 10, MAGIC, SEED, 0x11);
		assert_int_equal(bio_read(t->dev, 10, 1, blk), 0);
		assert_int_equal(pfs_meta_verify(blk, 10, MAGIC, SEED), 0);
		blk[flips[i]] ^= 0x04;
		assert_int_equal(pfs_meta_verify(blk, 10, MAGIC, SEED), -EUCLEAN);
		assert_string_equal(pfs_meta_problem(blk, 10, 0, SEED), "bad checksum");
		assert_int_equal(bio_write(t->dev, 10, 1, blk), 0);
		assert_int_equal(bcache_read(t->bc, 10, BUF_META, MAGIC, &b), -EUCLEAN);
		assert_null(b);
		assert_false(cached(t, 10));
	}

	/* Misdirected: sealed for block 11, found at 10. */
	put_meta(t, 10, 11, MAGIC, SEED, 0x22);
	assert_int_equal(bcache_read(t->bc, 10, BUF_META, MAGIC, &b), -EUCLEAN);
	assert_false(cached(t, 10));
	assert_int_equal(bio_read(t->dev, 10, 1, blk), 0);
	assert_string_equal(pfs_meta_problem(blk, 10, MAGIC, SEED), "misdirected");
	assert_null(pfs_meta_problem(blk, 11, MAGIC, SEED));

	/* Wrong magic, valid otherwise. */
	put_meta(t, 10, 10, PFS_MAGIC_GROUP, SEED, 0x33);
	assert_int_equal(bcache_read(t->bc, 10, BUF_META, MAGIC, &b), -EUCLEAN);
	assert_false(cached(t, 10));
	assert_int_equal(bio_read(t->dev, 10, 1, blk), 0);
	assert_string_equal(pfs_meta_problem(blk, 10, MAGIC, SEED), "bad magic");

	/* Wrong seed. */
	put_meta(t, 10, 10, MAGIC, SEED + 1, 0x33);
	assert_int_equal(bcache_read(t->bc, 10, BUF_META, MAGIC, &b), -EUCLEAN);
	bcache_set_seed(t->bc, SEED + 1);
	assert_int_equal(bcache_read(t->bc, 10, BUF_META, MAGIC, &b), 0);
	buf_put(b);
	bcache_set_seed(t->bc, SEED);

	/* An all-zero block, with or without an expected magic. */
	memset(blk, 0, sizeof(blk));
	assert_int_equal(bio_write(t->dev, 20, 1, blk), 0);
	assert_int_equal(bcache_read(t->bc, 20, BUF_META, MAGIC, &b), -EUCLEAN);
	assert_int_equal(bcache_read(t->bc, 20, BUF_META, 0, &b), -EUCLEAN);
	assert_false(cached(t, 20));
	/* ... while as data or inode blocks it is fine. */
	assert_int_equal(bcache_read(t->bc, 20, BUF_INODE, 0, &b), 0);
	buf_put(b);

	/* A block cached as data is verified when read as metadata. */
	assert_int_equal(bcache_read(t->bc, 21, BUF_DATA, 0, &b), 0);
	buf_put(b);
	assert_int_equal(bcache_read(t->bc, 21, BUF_META, 0, &b), -EUCLEAN);
	put_meta(t, 22, 22, MAGIC, SEED, 0x44);
	assert_int_equal(bcache_read(t->bc, 22, BUF_DATA, 0, &b), 0);
	buf_put(b);
	assert_int_equal(bcache_read(t->bc, 22, BUF_META, MAGIC, &b), 0);
	assert_int_equal(buf_kind(b), BUF_META);
	buf_put(b);

	/* Device errors pass through and cache nothing. */
	struct bio_fault f = { .fail_io = bio_io_count(t->dev) + 1 };
	assert_int_equal(bio_set_fault(t->dev, &f), 0);
	assert_int_equal(bcache_read(t->bc, 30, BUF_DATA, 0, &b), -EIO);
	assert_false(cached(t, 30));
	assert_int_equal(bcache_read(t->bc, 30, BUF_DATA, 0, &b), 0);
	buf_put(b);
	stats(t, &st);
	assert_int_equal(st.ndirty, 0);
}

static void test_seal_roundtrip(void **state)
{
	struct tctx *t = *state;
	struct buf *b;
	uint8_t blk[BS], copy[BS];

	mkcache(t, 16);
	/* The checksum definition, computed independently. */
	memset(blk, 0x5c, sizeof(blk));
	pfs_meta_seal(blk, 77, SEED);
	struct pfs_blk_hdr h;
	memcpy(&h, blk, sizeof(h));
	assert_int_equal(le64_to_cpu(h.blkno), 77);
	memcpy(copy, blk, BS);
	memset(copy + offsetof(struct pfs_blk_hdr, crc), 0, 4);
	assert_int_equal(le32_to_cpu(h.crc), pfs_crc32c(SEED, copy, BS));
	uint8_t raw[4];
	memcpy(raw, blk + 4, 4);
	uint32_t crc = pfs_crc32c(SEED, copy, BS);
	assert_int_equal(raw[0], crc & 0xff);   /* little-endian on disk */
	assert_int_equal(raw[3], crc >> 24);
	assert_int_equal(pfs_meta_verify(blk, 77, 0x5c5c5c5c, SEED), 0);
	assert_int_equal(pfs_meta_verify(blk, 77, 0, SEED), 0);
	assert_int_equal(pfs_meta_verify(blk, 77, 0, SEED ^ 1), -EUCLEAN);

	/* Through the cache: new block, fill, seal, write back, re-read. */
	assert_int_equal(bcache_get_new(t->bc, 40, BUF_META, &b), 0);
	uint8_t *p = buf_data(b);
	for (size_t j = 0; j < BS; j++)
		assert_int_equal(p[j], 0);
	struct pfs_bt_node *n = buf_data(b);
	n->hdr.magic = cpu_to_le32(MAGIC);
	n->nrecs = cpu_to_le16(3);
	memset(p + 100, 0x99, 50);
	assert_int_equal(bcache_mark_dirty(t->bc, b), 1);
	buf_seal(t->bc, b);
	assert_int_equal(pfs_meta_verify(p, 40, MAGIC, SEED), 0);
	assert_int_equal(bio_write(t->dev, 40, 1, p), 0);
	bcache_mark_clean(t->bc, b);
	buf_put(b);
	bcache_forget(t->bc, 40);
	assert_false(cached(t, 40));
	assert_int_equal(bcache_read(t->bc, 40, BUF_META, MAGIC, &b), 0);
	n = buf_data(b);
	assert_int_equal(le16_to_cpu(n->nrecs), 3);
	assert_int_equal(((uint8_t *)buf_data(b))[120], 0x99);
	buf_put(b);

	/* buf_seal leaves data and inode blocks alone. */
	assert_int_equal(bcache_read(t->bc, 41, BUF_DATA, 0, &b), 0);
	memcpy(copy, buf_data(b), BS);
	buf_seal(t->bc, b);
	assert_memory_equal(copy, buf_data(b), BS);
	buf_put(b);
	assert_int_equal(bcache_read(t->bc, 42, BUF_INODE, 0, &b), 0);
	memcpy(copy, buf_data(b), BS);
	buf_seal(t->bc, b);
	assert_memory_equal(copy, buf_data(b), BS);
	buf_put(b);
}

static void test_dirty_list_sorted(void **state)
{
	struct tctx *t = *state;
	static const uint64_t order[] = { 9, 3, 50, 7, 1, 33, 2 };
	struct buf **list;
	struct buf *b;
	size_t n;

	mkcache(t, 4);
	assert_int_equal(bcache_dirty_list(t->bc, &list, &n), 0);
	assert_int_equal(n, 0);
	assert_null(list);

	for (size_t i = 0; i < PFS_ARRAY_SIZE(order); i++) {
		assert_int_equal(bcache_read(t->bc, order[i], BUF_DATA, 0, &b), 0);
		assert_int_equal(bcache_mark_dirty(t->bc, b), 1);
		buf_put(b);
	}
	assert_int_equal(bcache_ndirty(t->bc), PFS_ARRAY_SIZE(order));
	assert_int_equal(bcache_dirty_list(t->bc, &list, &n), 0);
	assert_int_equal(n, PFS_ARRAY_SIZE(order));
	for (size_t i = 1; i < n; i++)
		assert_true(buf_blkno(list[i - 1]) < buf_blkno(list[i]));
	assert_int_equal(buf_blkno(list[0]), 1);
	assert_int_equal(buf_blkno(list[n - 1]), 50);

	/* Each entry is referenced: cleaning them all with refs held keeps
	 * every buffer until the puts, even over the bound. */
	for (size_t i = 0; i < n; i++)
		bcache_mark_clean(t->bc, list[i]);
	struct bcache_stats st;
	stats(t, &st);
	assert_int_equal(st.ndirty, 0);
	assert_int_equal(st.nbufs, n);
	for (size_t i = 0; i < n; i++) {
		uint8_t want[BS];
		fill_data(want, buf_blkno(list[i]));
		assert_memory_equal(buf_data(list[i]), want, BS);
		buf_put(list[i]);
	}
	free(list);
	stats(t, &st);
	assert_int_equal(st.nbufs, 4);
}

static void test_forget(void **state)
{
	struct tctx *t = *state;
	struct bcache_stats st;
	struct buf *b, *b2;

	mkcache(t, 16);
	/* Clean, unreferenced: gone at once. */
	assert_int_equal(bcache_read(t->bc, 3, BUF_DATA, 0, &b), 0);
	buf_put(b);
	bcache_forget(t->bc, 3);
	assert_false(cached(t, 3));
	bcache_forget(t->bc, 3);        /* absent: nothing to do */

	/* Referenced and dirty: unreachable at once, dirty state discarded,
	 * the buffer itself lives until the last put. */
	assert_int_equal(bcache_read(t->bc, 4, BUF_META, 0, &b), -EUCLEAN);
	assert_int_equal(bcache_get_new(t->bc, 4, BUF_META, &b), 0);
	memset(buf_data(b), 0x77, BS);
	assert_int_equal(bcache_mark_dirty(t->bc, b), 1);
	buf_get(b);
	bcache_forget(t->bc, 4);
	assert_false(cached(t, 4));
	assert_false(buf_dirty(b));
	assert_int_equal(bcache_ndirty(t->bc), 0);
	assert_int_equal(((uint8_t *)buf_data(b))[9], 0x77);
	/* A forgotten buffer cannot become dirty again. */
	assert_int_equal(bcache_mark_dirty(t->bc, b), 0);
	assert_int_equal(bcache_ndirty(t->bc), 0);
	/* The block can be cached anew meanwhile. */
	assert_int_equal(bcache_read(t->bc, 4, BUF_DATA, 0, &b2), 0);
	assert_ptr_not_equal(b, b2);
	uint8_t want[BS];
	fill_data(want, 4);
	assert_memory_equal(buf_data(b2), want, BS);
	buf_put(b2);
	buf_put(b);
	buf_put(b);

	/* Dirty, unreferenced. */
	assert_int_equal(bcache_get_new(t->bc, 5, BUF_DATA, &b), 0);
	assert_int_equal(bcache_mark_dirty(t->bc, b), 1);
	buf_put(b);
	assert_int_equal(bcache_ndirty(t->bc), 1);
	bcache_forget(t->bc, 5);
	assert_int_equal(bcache_ndirty(t->bc), 0);
	assert_false(cached(t, 5));

	/* get_new on a cached block reuses and zeroes it. */
	assert_int_equal(bcache_read(t->bc, 6, BUF_DATA, 0, &b), 0);
	buf_put(b);
	assert_int_equal(bcache_get_new(t->bc, 6, BUF_META, &b2), 0);
	assert_ptr_equal(b, b2);
	assert_int_equal(buf_kind(b2), BUF_META);
	uint8_t zero[BS];
	memset(zero, 0, sizeof(zero));
	assert_memory_equal(buf_data(b2), zero, BS);
	buf_put(b2);

	stats(t, &st);
	assert_int_equal(st.ndirty, 0);
	assert_int_equal(st.nbufs, st.nlru);
}

/* Several threads miss on the same blocks at once: one buffer per block
 * survives, every reference is returned, and the data is right. */
struct race_arg {
	struct bcache *bc;
	unsigned seed;
	int errors;
};

static void *race_thread(void *p)
{
	struct race_arg *a = p;
	uint8_t want[BS];

	for (unsigned i = 0; i < 2000; i++) {
		uint64_t blk = (a->seed * 7919u + i * 31u) % NBLK;
		struct buf *b;
		if (bcache_read(a->bc, blk, BUF_DATA, 0, &b)) {
			a->errors++;
			continue;
		}
		fill_data(want, blk);
		if (memcmp(buf_data(b), want, BS) || buf_blkno(b) != blk)
			a->errors++;
		buf_put(b);
		if (i % 97 == 0)
			bcache_forget(a->bc, (blk + 1) % NBLK);
	}
	return NULL;
}

static void test_concurrent_misses(void **state)
{
	struct tctx *t = *state;
	struct race_arg args[8];
	pthread_t th[8];
	struct bcache_stats st;

	mkcache(t, 24);
	for (unsigned i = 0; i < 8; i++) {
		args[i] = (struct race_arg){ .bc = t->bc, .seed = i % 4 };
		assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
	}
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].errors, 0);
	}
	stats(t, &st);
	assert_true(st.nbufs <= 24);
	assert_int_equal(st.nbufs, st.nlru);
	for (uint64_t blk = 0; blk < NBLK; blk++) {
		struct buf *b = bcache_peek(t->bc, blk);
		if (!b)
			continue;
		struct buf *b2;
		assert_int_equal(bcache_read(t->bc, blk, BUF_DATA, 0, &b2), 0);
		assert_ptr_equal(b, b2);
		buf_put(b2);
		buf_put(b);
	}
}

/* The hash table grows past its initial size without losing buffers. */
static void test_many_buffers(void **state)
{
	struct tctx *t = *state;
	struct buf *held[NBLK];
	struct bcache_stats st;

	mkcache(t, 1);
	for (uint64_t i = 0; i < NBLK; i++) {
		assert_int_equal(bcache_read(t->bc, i, BUF_DATA, 0, &held[i]), 0);
		assert_int_equal(bcache_mark_dirty(t->bc, held[i]), 1);
	}
	for (uint64_t i = 0; i < NBLK; i++) {
		struct buf *b = bcache_peek(t->bc, i);
		assert_ptr_equal(b, held[i]);
		buf_put(b);
		buf_put(held[i]);
	}
	stats(t, &st);
	assert_int_equal(st.nbufs, NBLK);
	assert_int_equal(st.ndirty, NBLK);
	/* Destroying a cache with dirty buffers discards them (logged). */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hit_miss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_not_evicted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seal_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_list_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_misses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_buffers, setup, teardown),
	};

	if (!getenv("PFS_TEST_VERBOSE"))
		pfs_log_set_level(-1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
