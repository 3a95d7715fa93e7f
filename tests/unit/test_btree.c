/*
 * test_btree.c -- unit tests of lib/btree.c over a real block cache on a
 * temporary image file.
 *
 * The tree's bt_ops are a bitmap allocator kept here (with an allocation
 * budget to inject -ENOSPC) and a dirty hook that marks the buffer dirty
 * in the cache (with a budget to inject failures).  "Write-back" seals and
 * writes every dirty buffer and marks it clean, as the transaction layer
 * does; dropping the cache after a write-back makes every later read come
 * from the image, checksums and node checks included.
 *
 * Random tests draw from a seed taken from PFS_SEED or the clock; it is
 * printed at start and in every failure message.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pfs_bcache.h"
#include "pfs_bio.h"
#include "pfs_btree.h"
#include "pfs_format.h"
#include "pfs_util.h"

#define TB_SEED_CSUM    0x5eed1234u
#define TB_OWNER        77u
#define TB_FIRST_BLOCK  8u

static unsigned long long tb_seed;

#define REQUIRE(c)                                                      \
	do {                                                            \
		if (!(c))                                               \
			fail_msg("%s:%d: %s (PFS_SEED=%llu)", __FILE__, \
				 __LINE__, #c, tb_seed);                \
	} while (0)

#define REQUIRE_EQ(a, b)                                                \
	do {                                                            \
		long long a_ = (long long)(a), b_ = (long long)(b);     \
		if (a_ != b_)                                           \
			fail_msg("%s:%d: %s == %lld, expected %s == %lld "  \
				 "(PFS_SEED=%llu)", __FILE__, __LINE__, #a, \
				 a_, #b, b_, tb_seed);                  \
	} while (0)

/* ------------------------------------------------------------------ */
/* Random numbers.                                                      */
/* ------------------------------------------------------------------ */

static uint64_t rng_state;

static void rng_init(uint64_t seed)
{
	rng_state = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
	if (!rng_state)
		rng_state = 1;
}

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t rng_below(uint64_t n)
{
	return rng() % n;
}

static void shuffle(uint64_t *a, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(i);
		uint64_t x = a[i - 1];
		a[i - 1] = a[j];
		a[j] = x;
	}
}

/* Value bytes of record id: a 4-byte id then a pattern from it. */
static void val_fill(uint8_t *p, uint32_t id, uint16_t len)
{
	uint64_t x = id * 0x9E3779B97F4A7C15ull + 7;

	for (uint16_t i = 0; i < len; i++) {
		if (i < 4) {
			p[i] = (uint8_t)(id >> (8 * i));
			continue;
		}
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static bool val_matches(const void *v, uint16_t vlen, uint32_t id, uint16_t want_len)
{
	uint8_t buf[BT_MAX_VALUE];

	if (vlen != want_len)
		return false;
	val_fill(buf, id, want_len);
	return memcmp(buf, v, vlen) == 0;
}

/* ------------------------------------------------------------------ */
/* Test bed: image, cache, allocator, tree.                             */
/* ------------------------------------------------------------------ */

struct tb {
	char path[64];
	struct bio_dev *dev;
	struct bcache *bc;
	uint64_t cache_bytes;
	uint64_t nblocks;
	uint8_t *bitmap;
	uint64_t nused;         /* blocks allocated to the tree */
	long alloc_budget;      /* allocations left before -ENOSPC; < 0: no limit */
	long dirty_budget;      /* dirty calls left before -EIO; < 0: no limit */
	uint64_t nallocs;       /* alloc calls made */
	struct bt_tree t;
};

static bool tb_used(const struct tb *tb, uint64_t blk)
{
	return tb->bitmap[blk / 8] & (1u << (blk % 8));
}

static int tb_alloc(void *arg, uint64_t goal, uint64_t *blk)
{
	struct tb *tb = arg;
	uint64_t span = tb->nblocks - TB_FIRST_BLOCK, start, i;

	tb->nallocs++;
	if (tb->alloc_budget == 0)
		return -ENOSPC;
	start = goal >= TB_FIRST_BLOCK && goal < tb->nblocks ? goal : TB_FIRST_BLOCK;
	for (i = 0; i < span; i++) {
		uint64_t b = TB_FIRST_BLOCK + (start - TB_FIRST_BLOCK + i) % span;

		if (!tb_used(tb, b)) {
			tb->bitmap[b / 8] |= (uint8_t)(1u << (b % 8));
			tb->nused++;
			if (tb->alloc_budget > 0)
				tb->alloc_budget--;
			*blk = b;
			return 0;
		}
	}
	return -ENOSPC;
}

static int tb_free(void *arg, uint64_t blk)
{
	struct tb *tb = arg;

	REQUIRE(blk >= TB_FIRST_BLOCK && blk < tb->nblocks);
	REQUIRE(tb_used(tb, blk));      /* no double free */
	tb->bitmap[blk / 8] &= (uint8_t)~(1u << (blk % 8));
	tb->nused--;
	return 0;
}

static int tb_dirty(void *arg, struct buf *b)
{
	struct tb *tb = arg;

	/* Only nodes of the tree are ever modified. */
	REQUIRE(tb_used(tb, buf_blkno(b)));
	if (tb->dirty_budget == 0)
		return -EIO;
	if (tb->dirty_budget > 0)
		tb->dirty_budget--;
	bcache_mark_dirty(tb->bc, b);
	return 0;
}

static const struct bt_ops tb_ops = {
	.alloc = tb_alloc,
	.free = tb_free,
	.dirty = tb_dirty,
};

static struct tb *tb_new(uint64_t nblocks, uint64_t cache_bytes, uint16_t type)
{
	struct tb *tb = calloc(1, sizeof(*tb));
	const char *dir = getenv("TMPDIR");
	int fd;

	REQUIRE(tb);
	snprintf(tb->path, sizeof(tb->path), "%s/pfs_btree_XXXXXX",
		 dir && strlen(dir) < 40 ? dir : "/tmp");
	fd = mkstemp(tb->path);
	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, (off_t)(nblocks * PFS_BLOCK_SIZE)) == 0);
	close(fd);
	REQUIRE_EQ(bio_open(tb->path, true, &tb->dev), 0);
	tb->cache_bytes = cache_bytes;
	REQUIRE_EQ(bcache_create(tb->dev, cache_bytes, TB_SEED_CSUM, &tb->bc), 0);
	tb->nblocks = nblocks;
	tb->bitmap = calloc(nblocks / 8 + 1, 1);
	REQUIRE(tb->bitmap);
	rng_init(tb_seed);
	tb->alloc_budget = -1;
	tb->dirty_budget = -1;
	tb->t.bc = tb->bc;
	tb->t.ops = &tb_ops;
	tb->t.arg = tb;
	tb->t.owner = TB_OWNER;
	tb->t.type = type;
	tb->t.root = 0;
	return tb;
}

static void tb_free_bed(struct tb *tb)
{
	bcache_destroy(tb->bc);
	bio_close(tb->dev);
	unlink(tb->path);
	free(tb->bitmap);
	free(tb);
}

/* Seal and write every dirty buffer, then mark it clean. */
static void tb_writeback(struct tb *tb)
{
	struct buf **list;
	size_t n;

	REQUIRE_EQ(bcache_dirty_list(tb->bc, &list, &n), 0);
	for (size_t i = 0; i < n; i++) {
		buf_seal(tb->bc, list[i]);
		REQUIRE_EQ(bio_write(tb->dev, buf_blkno(list[i]), 1,
				     buf_data(list[i])), 0);
		bcache_mark_clean(tb->bc, list[i]);
		buf_put(list[i]);
	}
	free(list);
}

/* Throw the cache away (after a write-back unless discard). */
static void tb_drop_cache(struct tb *tb, bool discard)
{
	if (!discard)
		tb_writeback(tb);
	bcache_destroy(tb->bc);
	REQUIRE_EQ(bcache_create(tb->dev, tb->cache_bytes, TB_SEED_CSUM, &tb->bc), 0);
	tb->t.bc = tb->bc;
}

/*
 * After a write-back, a clean cached buffer equals its block on the
 * image; a node changed without passing through ops->dirty would not.
 */
static void tb_check_clean_buffers(struct tb *tb)
{
	static uint8_t disk[PFS_BLOCK_SIZE];

	for (uint64_t blk = TB_FIRST_BLOCK; blk < tb->nblocks; blk++) {
		struct buf *b;

		if (!tb_used(tb, blk))
			continue;
		b = bcache_peek(tb->bc, blk);
		if (!b)
			continue;
		if (!buf_dirty(b)) {
			REQUIRE_EQ(bio_read(tb->dev, blk, 1, disk), 0);
			if (memcmp(disk, buf_data(b), PFS_BLOCK_SIZE))
				fail_msg("block %" PRIu64 " changed without "
					 "ops->dirty (PFS_SEED=%llu)", blk, tb_seed);
		}
		buf_put(b);
	}
}

/* ------------------------------------------------------------------ */
/* Whole-tree checks.                                                   */
/* ------------------------------------------------------------------ */

struct walk_stats {
	struct tb *tb;
	uint64_t nodes, leaves, recs;
	int max_level;
	uint64_t leaf_blk;      /* some leaf */
	uint64_t interior_blk;  /* some interior node */
	int prev_level;
	bool first;
};

static int walk_cb(void *arg, int level, uint64_t blkno, const struct pfs_bt_node *node)
{
	struct walk_stats *ws = arg;

	REQUIRE(tb_used(ws->tb, blkno));
	REQUIRE_EQ(le64_to_cpu(node->hdr.owner), TB_OWNER);
	/* Pre-order: the first node is the root, and a level is never
	 * visited before its parent's. */
	if (ws->first)
		ws->max_level = level;
	else
		REQUIRE(level < ws->max_level);
	ws->first = false;
	ws->nodes++;
	if (level == 0) {
		ws->leaves++;
		ws->recs += le16_to_cpu(node->nrecs);
		ws->leaf_blk = blkno;
	} else {
		ws->interior_blk = blkno;
	}
	return 0;
}

/* Stops a walk at the second node. */
static int walk_stop_cb(void *arg, int level, uint64_t blkno,
			const struct pfs_bt_node *node)
{
	int *count = arg;

	return ++*count == 2 ? 12345 : 0;
}

/* Walk the tree; every allocated block must be a node (no leaks). */
static struct walk_stats tb_walk(struct tb *tb)
{
	struct walk_stats ws = { .tb = tb, .first = true, .max_level = -1 };

	REQUIRE_EQ(bt_walk(&tb->t, walk_cb, &ws), 0);
	REQUIRE_EQ(ws.nodes, tb->nused);
	if (tb->t.root == 0)
		REQUIRE_EQ(tb->nused, 0);
	return ws;
}

/* The in-memory model: records in tree order. */
struct mrec {
	uint64_t key;
	uint32_t id;
	uint16_t vlen;
};

struct model {
	struct mrec *r;
	size_t n, cap;
};

static void model_reserve(struct model *m, size_t n)
{
	if (n <= m->cap)
		return;
	m->cap = PFS_MAX(n, 2 * m->cap);
	m->r = realloc(m->r, m->cap * sizeof(*m->r));
	REQUIRE(m->r);
}

static size_t model_lower(const struct model *m, uint64_t key)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->r[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static size_t model_upper(const struct model *m, uint64_t key)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->r[mid].key <= key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void model_insert(struct model *m, uint64_t key, uint32_t id, uint16_t vlen)
{
	size_t pos = model_upper(m, key);

	model_reserve(m, m->n + 1);
	/* Element loops: much faster than memmove under ASan. */
	for (size_t i = m->n; i > pos; i--)
		m->r[i] = m->r[i - 1];
	m->r[pos] = (struct mrec){ key, id, vlen };
	m->n++;
}

static void model_remove(struct model *m, size_t pos)
{
	for (size_t i = pos; i + 1 < m->n; i++)
		m->r[i] = m->r[i + 1];
	m->n--;
}

static void require_rec(const struct bt_cursor *c, const struct mrec *want)
{
	uint64_t key;
	const void *val;
	uint16_t vlen;

	bt_get(c, &key, &val, &vlen);
	REQUIRE_EQ(key, want->key);
	REQUIRE_EQ(vlen, want->vlen);
	if (!val_matches(val, vlen, want->id, want->vlen))
		fail_msg("key %" PRIu64 ": value is not record %u (PFS_SEED=%llu)",
			 key, want->id, tb_seed);
}

/* Full forward and backward iteration against the model, and a walk. */
static void tb_check_model(struct tb *tb, const struct model *m)
{
	struct bt_cursor c;
	int ret;

	ret = bt_seek_ge(&tb->t, 0, &c);
	if (m->n == 0) {
		REQUIRE_EQ(ret, -ENOENT);
	} else {
		REQUIRE_EQ(ret, 0);
		for (size_t i = 0; i < m->n; i++) {
			if (i)
				REQUIRE_EQ(bt_next(&c), 0);
			require_rec(&c, &m->r[i]);
		}
		REQUIRE_EQ(bt_next(&c), -ENOENT);
		require_rec(&c, &m->r[m->n - 1]);   /* still valid at the end */
		bt_release(&c);

		REQUIRE_EQ(bt_seek_le(&tb->t, UINT64_MAX, &c), 0);
		for (size_t i = m->n; i-- > 0;) {
			if (i + 1 < m->n)
				REQUIRE_EQ(bt_prev(&c), 0);
			require_rec(&c, &m->r[i]);
		}
		REQUIRE_EQ(bt_prev(&c), -ENOENT);
		bt_release(&c);
	}
	struct walk_stats ws = tb_walk(tb);
	REQUIRE_EQ(ws.recs, m->n);
}

/* Position c on model record pos (first of its key, then step). */
static void tb_seek_index(struct tb *tb, const struct model *m, size_t pos,
			  struct bt_cursor *c)
{
	size_t first = model_lower(m, m->r[pos].key);

	REQUIRE_EQ(bt_seek_ge(&tb->t, m->r[pos].key, c), 0);
	for (size_t i = first; i < pos; i++)
		REQUIRE_EQ(bt_next(c), 0);
	require_rec(c, &m->r[pos]);
}

static void tb_insert(struct tb *tb, struct model *m, uint64_t key, uint32_t id,
		      uint16_t vlen)
{
	uint8_t v[BT_MAX_VALUE];

	val_fill(v, id, vlen);
	REQUIRE_EQ(bt_insert(&tb->t, key, v, vlen), 0);
	if (m)
		model_insert(m, key, id, vlen);
}

static void tb_delete_index(struct tb *tb, struct model *m, size_t pos)
{
	struct bt_cursor c;

	tb_seek_index(tb, m, pos, &c);
	REQUIRE_EQ(bt_delete(&c), 0);
	REQUIRE(!c.valid && c.depth == 0);
	model_remove(m, pos);
}

/* Compare seek_ge / seek_le of key with the model. */
static void tb_check_seeks(struct tb *tb, const struct model *m, uint64_t key)
{
	struct bt_cursor c;
	size_t lo = model_lower(m, key), up = model_upper(m, key);
	int ret;

	ret = bt_seek_ge(&tb->t, key, &c);
	if (lo == m->n) {
		REQUIRE_EQ(ret, -ENOENT);
		REQUIRE(!c.valid && c.depth == 0);
	} else {
		REQUIRE_EQ(ret, 0);
		require_rec(&c, &m->r[lo]);
		if (lo > 0) {
			REQUIRE_EQ(bt_prev(&c), 0);
			require_rec(&c, &m->r[lo - 1]);
		}
		bt_release(&c);
	}
	ret = bt_seek_le(&tb->t, key, &c);
	if (up == 0) {
		REQUIRE_EQ(ret, -ENOENT);
	} else {
		REQUIRE_EQ(ret, 0);
		require_rec(&c, &m->r[up - 1]);
		if (up < m->n) {
			REQUIRE_EQ(bt_next(&c), 0);
			require_rec(&c, &m->r[up]);
		}
		bt_release(&c);
	}
}

static int get_depth(struct tb *tb)
{
	return tb_walk(tb).max_level + 1;
}

/* ------------------------------------------------------------------ */
/* Tests.                                                               */
/* ------------------------------------------------------------------ */

/* A hand-built node image with n records key 10*i, vlen 6. */
static void build_node(uint8_t *blk, unsigned n, unsigned level)
{
	struct pfs_bt_node *nd = (struct pfs_bt_node *)blk;
	unsigned pos = PFS_BLOCK_SIZE;

	memset(blk, 0, PFS_BLOCK_SIZE);
	nd->hdr.magic = cpu_to_le32(PFS_MAGIC_BTREE);
	nd->hdr.blkno = cpu_to_le64(1234);
	nd->level = cpu_to_le16((uint16_t)level);
	nd->tree_type = cpu_to_le16(PFS_BT_DIR);
	for (unsigned i = 0; i < n; i++) {
		uint16_t vlen = level ? 8 : 6;
		le64 k = cpu_to_le64(10 * i);
		le16 vl = cpu_to_le16(vlen);
		le64 child = cpu_to_le64(100 + i);
		le16 off;

		pos -= 10u + vlen;
		memcpy(blk + pos, &k, 8);
		memcpy(blk + pos + 8, &vl, 2);
		if (level)
			memcpy(blk + pos + 10, &child, 8);
		else
			memset(blk + pos + 10, 0xab, vlen);
		off = cpu_to_le16((uint16_t)pos);
		memcpy(blk + sizeof(*nd) + 2 * i, &off, 2);
	}
	nd->nrecs = cpu_to_le16((uint16_t)n);
	nd->rec_start = cpu_to_le16((uint16_t)pos);
}

static void set_le16(uint8_t *p, uint16_t v)
{
	le16 x = cpu_to_le16(v);
	memcpy(p, &x, 2);
}

static void test_node_check(void **state)
{
	static uint8_t blk[PFS_BLOCK_SIZE];
	struct pfs_bt_node *nd = (struct pfs_bt_node *)blk;
	const size_t off0 = sizeof(*nd);
	le16 o;

	build_node(blk, 5, 0);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), 0);
	build_node(blk, 0, 0);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), 0);  /* empty leaf: root */
	build_node(blk, 3, 2);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), 0);

	pfs_log_set_level(-1);  /* the failures below log errors */
	build_node(blk, 5, 0);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_EXTENT), -EUCLEAN);      /* type */
	nd->hdr.magic = cpu_to_le32(PFS_MAGIC_XATTR);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 5, 0);
	nd->level = cpu_to_le16(BT_MAX_DEPTH);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 0, 1);                                  /* empty interior */
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 5, 0);
	nd->nrecs = cpu_to_le16(2000);                          /* nrecs too big */
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 5, 0);
	nd->rec_start = cpu_to_le16(PFS_BLOCK_SIZE + 2);        /* past the end */
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);
	nd->rec_start = cpu_to_le16(50);                        /* in offsets */
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 5, 0);
	set_le16(blk + off0 + 2, 4090);                         /* record crosses end */
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);
	build_node(blk, 5, 0);
	set_le16(blk + off0 + 2, 100);                          /* below rec_start */
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 5, 0);                                  /* value too long */
	memcpy(&o, blk + off0, 2);
	set_le16(blk + le16_to_cpu(o) + 8, BT_MAX_VALUE + 1);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);
	set_le16(blk + le16_to_cpu(o) + 8, 7);                  /* past the end */
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 5, 0);                                  /* unsorted */
	memcpy(&o, blk + off0, 2);
	memcpy(blk + off0, blk + off0 + 2, 2);
	memcpy(blk + off0 + 2, &o, 2);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 5, 0);                                  /* unsorted copy */
	memcpy(blk + off0 + 8, blk + off0 + 4, 2);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	/* Overlapping but sorted: the last record reuses the one before it
	 * and rec_start moves up past the lost one. */
	build_node(blk, 5, 0);
	memcpy(blk + off0 + 8, blk + off0 + 6, 2);
	memcpy(&o, blk + off0 + 6, 2);
	nd->rec_start = o;
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 3, 1);                                  /* interior vlen */
	memcpy(&o, blk + off0 + 2, 2);
	set_le16(blk + le16_to_cpu(o) + 8, 6);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 3, 1);                                  /* null child */
	memcpy(&o, blk + off0 + 2, 2);
	memset(blk + le16_to_cpu(o) + 10, 0, 8);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);

	build_node(blk, 3, 1);                                  /* linked interior */
	nd->next = cpu_to_le64(55);
	REQUIRE_EQ(bt_node_check(blk, PFS_BT_DIR), -EUCLEAN);
	pfs_log_set_level(PFS_LOG_WARN);
}

static void test_small(void **state)
{
	struct tb *tb = tb_new(256, 1 << 20, PFS_BT_EXTENT);
	struct model m = { 0 };
	struct bt_cursor c;
	uint64_t key;
	const void *val;
	uint16_t vlen;

	/* Empty tree. */
	REQUIRE_EQ(bt_seek_ge(&tb->t, 0, &c), -ENOENT);
	REQUIRE_EQ(bt_seek_le(&tb->t, UINT64_MAX, &c), -ENOENT);
	REQUIRE_EQ(bt_walk(&tb->t, walk_cb, &(struct walk_stats){ .tb = tb, .first = true }), 0);
	REQUIRE_EQ(bt_destroy(&tb->t), 0);
	REQUIRE_EQ(bt_insert(&tb->t, 1, "x", BT_MAX_VALUE + 1), -EINVAL);
	REQUIRE_EQ(tb->t.root, 0);

	for (uint64_t k = 10; k <= 100; k += 10)
		tb_insert(tb, &m, k, (uint32_t)k, 16);
	tb_insert(tb, &m, 5, 5, 0);                     /* empty value */
	tb_insert(tb, &m, 1000, 1000, BT_MAX_VALUE);    /* largest value */
	REQUIRE_EQ(get_depth(tb), 1);
	tb_check_model(tb, &m);
	for (uint64_t k = 0; k <= 1001; k++)
		tb_check_seeks(tb, &m, k);
	tb_check_seeks(tb, &m, UINT64_MAX);

	REQUIRE_EQ(bt_seek_ge(&tb->t, 41, &c), 0);
	bt_get(&c, &key, &val, &vlen);
	REQUIRE_EQ(key, 50);
	REQUIRE_EQ(bt_next(&c), 0);
	bt_get(&c, &key, NULL, NULL);
	REQUIRE_EQ(key, 60);
	REQUIRE_EQ(bt_prev(&c), 0);
	REQUIRE_EQ(bt_prev(&c), 0);
	bt_get(&c, &key, NULL, NULL);
	REQUIRE_EQ(key, 40);
	bt_release(&c);
	bt_release(&c);                                 /* idempotent */

	/* Delete the first, a middle one and the last. */
	tb_delete_index(tb, &m, 0);
	tb_delete_index(tb, &m, 4);
	tb_delete_index(tb, &m, m.n - 1);
	tb_check_model(tb, &m);
	while (m.n)
		tb_delete_index(tb, &m, m.n / 2);
	REQUIRE_EQ(tb->t.root, 0);
	REQUIRE_EQ(tb->nused, 0);
	REQUIRE_EQ(bt_seek_ge(&tb->t, 0, &c), -ENOENT);

	/* Values survive a trip through the image. */
	for (uint64_t k = 0; k < 200; k++)
		tb_insert(tb, &m, k * 7 % 200, (uint32_t)k, (uint16_t)(k % 50));
	tb_drop_cache(tb, false);
	tb_check_model(tb, &m);
	REQUIRE_EQ(bt_destroy(&tb->t), 0);
	REQUIRE_EQ(tb->t.root, 0);
	REQUIRE_EQ(tb->nused, 0);
	free(m.r);
	tb_free_bed(tb);
}

/* An empty root leaf (B4 allows one) behaves as an empty tree. */
static void test_empty_root_leaf(void **state)
{
	struct tb *tb = tb_new(64, 1 << 20, PFS_BT_DIR);
	struct pfs_bt_node *nd;
	struct bt_cursor c;
	struct buf *b;
	uint64_t blk;

	REQUIRE_EQ(tb_alloc(tb, 0, &blk), 0);
	REQUIRE_EQ(bcache_get_new(tb->bc, blk, BUF_META, &b), 0);
	nd = buf_data(b);
	nd->hdr.magic = cpu_to_le32(PFS_MAGIC_BTREE);
	nd->hdr.owner = cpu_to_le64(TB_OWNER);
	nd->rec_start = cpu_to_le16(PFS_BLOCK_SIZE);
	nd->tree_type = cpu_to_le16(PFS_BT_DIR);
	bcache_mark_dirty(tb->bc, b);
	buf_put(b);
	tb->t.root = blk;
	tb_drop_cache(tb, false);

	REQUIRE_EQ(bt_seek_ge(&tb->t, 0, &c), -ENOENT);
	REQUIRE_EQ(bt_seek_le(&tb->t, UINT64_MAX, &c), -ENOENT);
	REQUIRE_EQ(tb_walk(tb).nodes, 1);
	REQUIRE_EQ(bt_insert(&tb->t, 9, "abc", 3), 0);
	REQUIRE_EQ(tb->t.root, blk);
	REQUIRE_EQ(bt_seek_le(&tb->t, 9, &c), 0);
	REQUIRE_EQ(bt_delete(&c), 0);
	REQUIRE_EQ(tb->t.root, 0);
	REQUIRE_EQ(tb->nused, 0);
	tb_free_bed(tb);
}

static void test_duplicates(void **state)
{
	struct tb *tb = tb_new(4096, 4 << 20, PFS_BT_DIR);
	struct model m = { 0 };
	struct bt_cursor c;
	uint32_t id = 0;
	const unsigned run = 1000;

	/* A run of one key much longer than a node, among other keys. */
	for (uint64_t k = 10; k <= 90; k += 10)
		tb_insert(tb, &m, k, id++, 40);
	for (unsigned i = 0; i < run; i++) {
		tb_insert(tb, &m, 50, id++, 40);
		if (i % 100 == 0)
			tb_insert(tb, &m, 50 + i % 7, id++, 30);
	}
	REQUIRE(get_depth(tb) >= 2);
	tb_check_model(tb, &m);
	for (uint64_t k = 0; k <= 100; k++)
		tb_check_seeks(tb, &m, k);

	/* The first copy of 50 is the one inserted first (id 4). */
	REQUIRE_EQ(bt_seek_ge(&tb->t, 50, &c), 0);
	require_rec(&c, &m.r[model_lower(&m, 50)]);
	REQUIRE_EQ(m.r[model_lower(&m, 50)].id, 4);
	bt_release(&c);
	REQUIRE_EQ(bt_seek_le(&tb->t, 50, &c), 0);
	require_rec(&c, &m.r[model_upper(&m, 50) - 1]);
	bt_release(&c);

	/* Delete the run from its front, its back and its middle. */
	for (unsigned i = 0; i < run / 2; i++) {
		size_t lo = model_lower(&m, 50), up = model_upper(&m, 50);
		size_t pos = i % 3 == 0 ? lo : i % 3 == 1 ? up - 1 : lo + (up - lo) / 2;

		tb_delete_index(tb, &m, pos);
		if (i % 50 == 0) {
			tb_check_seeks(tb, &m, 50);
			tb_check_model(tb, &m);
		}
	}
	tb_check_model(tb, &m);
	tb_drop_cache(tb, false);
	tb_check_model(tb, &m);
	REQUIRE_EQ(bt_destroy(&tb->t), 0);
	REQUIRE_EQ(tb->nused, 0);
	m.n = 0;

	/*
	 * Pairs of equal keys: many leaf splits fall between the two copies
	 * of a key, and seek_ge must still find the first.
	 */
	for (uint64_t k = 0; k < 4000; k++) {
		tb_insert(tb, &m, k, id++, 24);
		tb_insert(tb, &m, k, id++, 24);
	}
	REQUIRE(get_depth(tb) >= 2);
	tb_check_model(tb, &m);
	for (uint64_t k = 0; k < 4001; k++)
		tb_check_seeks(tb, &m, k);
	/* Same with pairs inserted in random order. */
	REQUIRE_EQ(bt_destroy(&tb->t), 0);
	m.n = 0;
	{
		uint64_t *keys = malloc(8000 * sizeof(*keys));
		REQUIRE(keys);
		for (uint64_t i = 0; i < 8000; i++)
			keys[i] = i / 2;
		shuffle(keys, 8000);
		for (uint64_t i = 0; i < 8000; i++)
			tb_insert(tb, &m, keys[i], id++, 24);
		free(keys);
	}
	tb_check_model(tb, &m);
	for (uint64_t k = 0; k < 4001; k++)
		tb_check_seeks(tb, &m, k);
	while (m.n)
		tb_delete_index(tb, &m, (size_t)rng_below(m.n));
	REQUIRE_EQ(tb->t.root, 0);
	REQUIRE_EQ(tb->nused, 0);
	free(m.r);
	tb_free_bed(tb);
}

static void test_large(void **state)
{
	const uint64_t n = 200000;
	struct tb *tb = tb_new(65536, 8 << 20, PFS_BT_EXTENT);
	uint64_t *keys = malloc(n * sizeof(*keys));
	struct bt_cursor c;
	uint8_t v[BT_MAX_VALUE];
	uint64_t key;
	const void *val;
	uint16_t vlen;
	struct walk_stats ws;

	REQUIRE(keys);
	for (uint64_t i = 0; i < n; i++)
		keys[i] = 3 * i;
	shuffle(keys, n);
	for (uint64_t i = 0; i < n; i++) {
		val_fill(v, (uint32_t)(keys[i] / 3), 40);
		REQUIRE_EQ(bt_insert(&tb->t, keys[i], v, 40), 0);
		if (i % 50000 == 49999)
			tb_writeback(tb);
	}
	ws = tb_walk(tb);
	REQUIRE_EQ(ws.recs, n);
	REQUIRE(ws.max_level >= 2);                     /* depth >= 3 */
	print_message("large: %" PRIu64 " records, depth %d, %" PRIu64
		      " nodes, %" PRIu64 " leaves\n", n, ws.max_level + 1,
		      ws.nodes, ws.leaves);
	tb_drop_cache(tb, false);

	/* Forward, then backward. */
	REQUIRE_EQ(bt_seek_ge(&tb->t, 0, &c), 0);
	for (uint64_t i = 0; i < n; i++) {
		if (i)
			REQUIRE_EQ(bt_next(&c), 0);
		bt_get(&c, &key, &val, &vlen);
		REQUIRE_EQ(key, 3 * i);
		REQUIRE(val_matches(val, vlen, (uint32_t)i, 40));
	}
	REQUIRE_EQ(bt_next(&c), -ENOENT);
	for (uint64_t i = n - 1; i-- > 0;) {
		REQUIRE_EQ(bt_prev(&c), 0);
		bt_get(&c, &key, NULL, NULL);
		REQUIRE_EQ(key, 3 * i);
	}
	REQUIRE_EQ(bt_prev(&c), -ENOENT);
	bt_release(&c);

	/* Random seeks between and on keys. */
	for (int i = 0; i < 20000; i++) {
		uint64_t x = rng_below(3 * n + 3);

		if (bt_seek_ge(&tb->t, x, &c) == 0) {
			bt_get(&c, &key, NULL, NULL);
			REQUIRE_EQ(key, (x + 2) / 3 * 3);
			bt_release(&c);
		} else {
			REQUIRE(x > 3 * (n - 1));
		}
		REQUIRE_EQ(bt_seek_le(&tb->t, x, &c), 0);
		bt_get(&c, &key, &val, &vlen);
		REQUIRE_EQ(key, PFS_MIN(x / 3, n - 1) * 3);
		REQUIRE(val_matches(val, vlen, (uint32_t)(key / 3), 40));
		bt_release(&c);
	}

	/* Delete everything in random order. */
	shuffle(keys, n);
	for (uint64_t i = 0; i < n; i++) {
		REQUIRE_EQ(bt_seek_ge(&tb->t, keys[i], &c), 0);
		bt_get(&c, &key, NULL, NULL);
		REQUIRE_EQ(key, keys[i]);
		REQUIRE_EQ(bt_delete(&c), 0);
		if (i % 50000 == 25000) {
			ws = tb_walk(tb);
			REQUIRE_EQ(ws.recs, n - i - 1);
			tb_writeback(tb);
		}
	}
	REQUIRE_EQ(tb->t.root, 0);
	REQUIRE_EQ(tb->nused, 0);

	/* Ascending and descending insertion, then bt_destroy. */
	for (uint64_t i = 0; i < 30000; i++) {
		val_fill(v, (uint32_t)i, 40);
		REQUIRE_EQ(bt_insert(&tb->t, i, v, 40), 0);
		REQUIRE_EQ(bt_insert(&tb->t, 1000000 - i, v, 40), 0);
	}
	ws = tb_walk(tb);
	REQUIRE_EQ(ws.recs, 60000);
	REQUIRE(ws.max_level >= 2);
	REQUIRE_EQ(bt_seek_ge(&tb->t, 29999, &c), 0);
	REQUIRE_EQ(bt_next(&c), 0);
	bt_get(&c, &key, NULL, NULL);
	REQUIRE_EQ(key, 1000000 - 29999);
	bt_release(&c);
	tb_writeback(tb);
	REQUIRE_EQ(bt_destroy(&tb->t), 0);
	REQUIRE_EQ(tb->t.root, 0);
	REQUIRE_EQ(tb->nused, 0);
	free(keys);
	tb_free_bed(tb);
}

static void test_update(void **state)
{
	struct tb *tb = tb_new(8192, 4 << 20, PFS_BT_EXTENT);
	struct model m = { 0 };
	struct bt_cursor c;
	uint8_t v[BT_MAX_VALUE];
	uint32_t id = 0;

	for (uint64_t k = 0; k < 5000; k++)
		tb_insert(tb, &m, k, id++, 20);
	tb_writeback(tb);

	/* Same length: in place, the cursor stays usable. */
	REQUIRE_EQ(bt_seek_ge(&tb->t, 0, &c), 0);
	for (size_t i = 0; i < m.n; i++) {
		if (i)
			REQUIRE_EQ(bt_next(&c), 0);
		m.r[i].id = id++;
		val_fill(v, m.r[i].id, 20);
		REQUIRE_EQ(bt_update(&c, v, 20), 0);
		require_rec(&c, &m.r[i]);
	}
	bt_release(&c);
	tb_check_clean_buffers(tb);
	tb_check_model(tb, &m);

	/* Growing values split leaves; shrinking leaves holes. */
	for (size_t i = 0; i < m.n; i++) {
		uint16_t len = (uint16_t)(i % 5 == 0 ? BT_MAX_VALUE : 150);

		tb_seek_index(tb, &m, i, &c);
		m.r[i].id = id++;
		m.r[i].vlen = len;
		val_fill(v, m.r[i].id, len);
		REQUIRE_EQ(bt_update(&c, v, len), 0);
		REQUIRE(!c.valid && c.depth == 0);
	}
	tb_check_model(tb, &m);
	tb_writeback(tb);
	for (size_t i = 0; i < m.n; i++) {
		uint16_t len = (uint16_t)(i % 3);

		tb_seek_index(tb, &m, i, &c);
		m.r[i].id = id++;
		m.r[i].vlen = len;
		val_fill(v, m.r[i].id, len);
		REQUIRE_EQ(bt_update(&c, v, len), 0);
		if (i % 1000 == 0) {
			tb_check_clean_buffers(tb);
			tb_writeback(tb);
		}
	}
	tb_check_model(tb, &m);
	/*
	 * Updating from the value's own bytes (a pointer into the node):
	 * same length, then one byte shorter (val_fill's bytes for a length
	 * are a prefix of those for a longer one).
	 */
	for (size_t i = 0; i < m.n; i += 7) {
		const void *cur;
		uint16_t len;

		tb_seek_index(tb, &m, i, &c);
		bt_get(&c, NULL, &cur, &len);
		REQUIRE_EQ(bt_update(&c, cur, len), 0);
		require_rec(&c, &m.r[i]);
		if (len > 0) {
			REQUIRE_EQ(bt_update(&c, cur, (uint16_t)(len - 1)), 0);
			m.r[i].vlen--;
		}
		bt_release(&c);
	}
	tb_drop_cache(tb, false);
	tb_check_model(tb, &m);
	REQUIRE_EQ(bt_seek_ge(&tb->t, 0, &c), 0);
	REQUIRE_EQ(bt_update(&c, v, BT_MAX_VALUE + 1), -EINVAL);
	bt_release(&c);
	REQUIRE_EQ(bt_destroy(&tb->t), 0);
	REQUIRE_EQ(tb->nused, 0);
	free(m.r);
	tb_free_bed(tb);
}

/* bt_destroy frees every node, post-order, and leaves root 0. */
static void test_destroy(void **state)
{
	struct tb *tb = tb_new(16384, 2 << 20, PFS_BT_DIR);
	uint8_t v[BT_MAX_VALUE];

	for (uint64_t i = 0; i < 60000; i++) {
		uint64_t k = rng_below(20000);

		val_fill(v, (uint32_t)i, (uint16_t)(8 + k % 60));
		REQUIRE_EQ(bt_insert(&tb->t, k, v, (uint16_t)(8 + k % 60)), 0);
	}
	REQUIRE(get_depth(tb) >= 3);
	tb_drop_cache(tb, false);
	REQUIRE_EQ(bt_destroy(&tb->t), 0);
	REQUIRE_EQ(tb->t.root, 0);
	REQUIRE_EQ(tb->nused, 0);
	tb_free_bed(tb);
}

/*
 * Deleting from one end empties whole subtrees: the root loses children
 * and must collapse whenever it is left with one (B4, checked by the
 * walk), down to a single root leaf.
 */
static void test_collapse(void **state)
{
	struct tb *tb = tb_new(8192, 4 << 20, PFS_BT_EXTENT);
	struct model m = { 0 };
	struct walk_stats ws;
	int depth, prev_depth;

	for (int round = 0; round < 3; round++) {
		for (uint64_t k = 0; k < 8000; k++)
			tb_insert(tb, &m, k, (uint32_t)k, 100);
		prev_depth = get_depth(tb);
		REQUIRE(prev_depth >= 3);
		while (m.n) {
			/* Front, back, or the middle run of a shrinking tree. */
			size_t pos = round == 0 ? 0 : round == 1 ? m.n - 1
				: (size_t)rng_below(m.n);

			tb_delete_index(tb, &m, pos);
			if (m.n % 97 && m.n > 50)
				continue;
			ws = tb_walk(tb);
			depth = ws.max_level + 1;
			REQUIRE(depth <= prev_depth);
			if (ws.leaves == 1)
				REQUIRE_EQ(depth, 1);
			prev_depth = depth;
		}
		REQUIRE_EQ(tb->t.root, 0);
		REQUIRE_EQ(tb->nused, 0);
	}
	free(m.r);
	tb_free_bed(tb);
}

/* Snapshot of a tree's allocator state, to show a failed call changed
 * nothing. */
static void require_unchanged(struct tb *tb, const struct model *m,
			      uint64_t root, uint64_t nused)
{
	REQUIRE_EQ(tb->t.root, root);
	REQUIRE_EQ(tb->nused, nused);
	tb_check_model(tb, m);
}

static void test_enospc(void **state)
{
	struct tb *tb = tb_new(16384, 4 << 20, PFS_BT_EXTENT);
	struct model m = { 0 };
	struct bt_cursor c;
	uint8_t v[BT_MAX_VALUE];
	uint32_t id = 0;
	uint64_t root, nused, key = 0, calls;
	int ret, multi = 0;

	/* Empty tree: the first leaf cannot be allocated. */
	tb->alloc_budget = 0;
	val_fill(v, id, 40);
	REQUIRE_EQ(bt_insert(&tb->t, 1, v, 40), -ENOSPC);
	REQUIRE_EQ(tb->t.root, 0);
	tb->alloc_budget = -1;

	for (uint64_t i = 0; i < 8000; i++)
		tb_insert(tb, &m, rng_below(1000000), id++, 120);
	REQUIRE(get_depth(tb) >= 3);
	tb_writeback(tb);

	/* No block at all: the first insert that needs a split fails. */
	tb->alloc_budget = 0;
	for (;;) {
		key = rng_below(1000000);
		val_fill(v, id, 40);
		root = tb->t.root;
		nused = tb->nused;
		ret = bt_insert(&tb->t, key, v, 40);
		if (ret)
			break;
		model_insert(&m, key, id++, 40);
	}
	REQUIRE_EQ(ret, -ENOSPC);
	require_unchanged(tb, &m, root, nused);
	tb_check_clean_buffers(tb);

	/*
	 * One block per insert: splits of a leaf alone succeed, a split that
	 * also needs a new interior node fails halfway through allocation.
	 * Appending at the end fills the rightmost nodes quickly.
	 */
	key = 2000000;
	for (int fails = 0; fails < 3;) {
		tb->alloc_budget = 1;
		calls = tb->nallocs;
		root = tb->t.root;
		nused = tb->nused;
		val_fill(v, id, 60);
		ret = bt_insert(&tb->t, key, v, 60);
		if (ret == 0) {
			model_insert(&m, key++, id++, 60);
			continue;
		}
		REQUIRE_EQ(ret, -ENOSPC);
		REQUIRE(tb->nallocs - calls >= 2);
		multi++;
		fails++;
		tb->alloc_budget = -1;
		require_unchanged(tb, &m, root, nused);
		/* With blocks available the same insert goes through. */
		tb_insert(tb, &m, key++, id++, 60);
	}
	REQUIRE_EQ(multi, 3);
	tb_check_model(tb, &m);

	/* A failing dirty hook during a split or a delete changes nothing. */
	for (int round = 0; round < 24; round++) {
		tb->dirty_budget = round % 4;
		root = tb->t.root;
		nused = tb->nused;
		val_fill(v, id, 200);
		ret = bt_insert(&tb->t, key, v, 200);
		tb->dirty_budget = -1;
		if (ret == 0) {
			model_insert(&m, key++, id++, 200);
			continue;
		}
		REQUIRE_EQ(ret, -EIO);
		require_unchanged(tb, &m, root, nused);
	}
	for (int round = 0; round < 12; round++) {
		size_t pos = (size_t)rng_below(m.n);

		tb_seek_index(tb, &m, pos, &c);
		tb->dirty_budget = 0;
		root = tb->t.root;
		nused = tb->nused;
		REQUIRE_EQ(bt_delete(&c), -EIO);
		tb->dirty_budget = -1;
		REQUIRE(!c.valid && c.depth == 0);
		require_unchanged(tb, &m, root, nused);
	}

	/* A same-length update whose dirty hook fails keeps the cursor. */
	tb_seek_index(tb, &m, 0, &c);
	tb->dirty_budget = 0;
	val_fill(v, id, m.r[0].vlen);
	REQUIRE_EQ(bt_update(&c, v, m.r[0].vlen), -EIO);
	tb->dirty_budget = -1;
	require_rec(&c, &m.r[0]);
	bt_release(&c);

	/* Growing a value in a full leaf with no block left. */
	for (int round = 0; round < 12; round++) {
		size_t pos = (size_t)rng_below(m.n);

		tb_seek_index(tb, &m, pos, &c);
		tb->alloc_budget = 0;
		root = tb->t.root;
		nused = tb->nused;
		val_fill(v, id, BT_MAX_VALUE);
		ret = bt_update(&c, v, BT_MAX_VALUE);
		tb->alloc_budget = -1;
		bt_release(&c);
		if (ret == 0) {
			m.r[pos].id = id++;
			m.r[pos].vlen = BT_MAX_VALUE;
			continue;
		}
		REQUIRE_EQ(ret, -ENOSPC);
		require_unchanged(tb, &m, root, nused);
	}
	tb_drop_cache(tb, false);
	tb_check_model(tb, &m);
	while (m.n)
		tb_delete_index(tb, &m, (size_t)rng_below(m.n));
	REQUIRE_EQ(tb->nused, 0);
	free(m.r);
	tb_free_bed(tb);
}

/* Overwrite block blk of the image, sealed (valid crc) if seal. */
static void tb_poke_block(struct tb *tb, uint64_t blk, const uint8_t *img, bool seal)
{
	static uint8_t tmp[PFS_BLOCK_SIZE];

	memcpy(tmp, img, PFS_BLOCK_SIZE);
	if (seal)
		pfs_meta_seal(tmp, blk, TB_SEED_CSUM);
	REQUIRE_EQ(bio_write(tb->dev, blk, 1, tmp), 0);
}

/* Every way of reaching all records fails with -EUCLEAN. */
static void require_corrupt(struct tb *tb)
{
	struct bt_cursor c;
	int ret;

	tb_drop_cache(tb, true);
	REQUIRE_EQ(bt_walk(&tb->t, NULL, NULL), -EUCLEAN);
	ret = bt_seek_ge(&tb->t, 0, &c);
	while (ret == 0) {
		ret = bt_next(&c);
		if (ret == -ENOENT)
			fail_msg("iteration did not meet the corrupt node");
	}
	bt_release(&c);
	REQUIRE_EQ(ret, -EUCLEAN);
	ret = bt_seek_le(&tb->t, UINT64_MAX, &c);
	while (ret == 0) {
		ret = bt_prev(&c);
		if (ret == -ENOENT)
			fail_msg("iteration did not meet the corrupt node");
	}
	bt_release(&c);
	REQUIRE_EQ(ret, -EUCLEAN);
}

static void test_corrupt(void **state)
{
	struct tb *tb = tb_new(4096, 1 << 20, PFS_BT_DIR);
	static uint8_t orig[PFS_BLOCK_SIZE], img[PFS_BLOCK_SIZE];
	struct pfs_bt_node *nd = (struct pfs_bt_node *)img;
	struct model m = { 0 };
	struct walk_stats ws;
	uint64_t leaf, root, key, first_leaf;
	struct bt_cursor c;
	le16 o0, o1;

	for (uint64_t k = 0; k < 3000; k++)
		tb_insert(tb, &m, k, (uint32_t)k, 40);
	tb_drop_cache(tb, false);
	ws = tb_walk(tb);
	REQUIRE(ws.max_level >= 1);
	leaf = ws.leaf_blk;
	root = tb->t.root;
	pfs_log_set_level(-1);

	/* A flipped byte: the checksum fails. */
	REQUIRE_EQ(bio_read(tb->dev, leaf, 1, orig), 0);
	memcpy(img, orig, PFS_BLOCK_SIZE);
	img[2000] ^= 0x10;
	tb_poke_block(tb, leaf, img, false);
	require_corrupt(tb);
	/* A seek into that leaf fails; one elsewhere still works. */
	memcpy(&o0, orig + sizeof(*nd), 2);
	memcpy(&key, orig + le16_to_cpu(o0), 8);
	key = le64_to_cpu(key);
	REQUIRE_EQ(bt_seek_ge(&tb->t, key, &c), -EUCLEAN);
	REQUIRE(!c.valid && c.depth == 0);
	REQUIRE_EQ(bt_insert(&tb->t, key, "zz", 2), -EUCLEAN);
	REQUIRE_EQ(bt_seek_ge(&tb->t, key > 1000 ? 0 : 2999, &c), 0);
	bt_release(&c);
	tb_poke_block(tb, leaf, orig, false);
	tb_drop_cache(tb, true);
	tb_check_model(tb, &m);

	/* A flipped byte in the root. */
	REQUIRE_EQ(bio_read(tb->dev, root, 1, orig), 0);
	memcpy(img, orig, PFS_BLOCK_SIZE);
	img[100] ^= 1;
	tb_poke_block(tb, root, img, false);
	require_corrupt(tb);
	REQUIRE_EQ(bt_seek_ge(&tb->t, 0, &c), -EUCLEAN);
	tb_poke_block(tb, root, orig, false);
	REQUIRE_EQ(bio_read(tb->dev, leaf, 1, orig), 0);

	/* Keys out of order under a valid checksum: the node check fails. */
	memcpy(img, orig, PFS_BLOCK_SIZE);
	memcpy(&o0, img + sizeof(*nd), 2);
	memcpy(&o1, img + sizeof(*nd) + 2, 2);
	memcpy(img + sizeof(*nd), &o1, 2);
	memcpy(img + sizeof(*nd) + 2, &o0, 2);
	tb_poke_block(tb, leaf, img, true);
	require_corrupt(tb);
	tb_poke_block(tb, leaf, orig, false);

	/* A node of another tree type. */
	memcpy(img, orig, PFS_BLOCK_SIZE);
	nd->tree_type = cpu_to_le16(PFS_BT_EXTENT);
	tb_poke_block(tb, leaf, img, true);
	require_corrupt(tb);
	tb_poke_block(tb, leaf, orig, false);

	/* A child at the wrong level: the root's last child points back
	 * at the root. */
	REQUIRE_EQ(bio_read(tb->dev, root, 1, orig), 0);
	memcpy(img, orig, PFS_BLOCK_SIZE);
	{
		le16 off;
		le64 self = cpu_to_le64(root);
		unsigned n = le16_to_cpu(nd->nrecs);

		memcpy(&off, img + sizeof(*nd) + 2 * (n - 1), 2);
		memcpy(img + le16_to_cpu(off) + 10, &self, 8);
	}
	tb_poke_block(tb, root, img, true);
	require_corrupt(tb);
	tb_poke_block(tb, root, orig, false);

	/* A node of another owner. */
	REQUIRE_EQ(bio_read(tb->dev, leaf, 1, orig), 0);
	memcpy(img, orig, PFS_BLOCK_SIZE);
	nd->hdr.owner = cpu_to_le64(TB_OWNER + 1);
	tb_poke_block(tb, leaf, img, true);
	require_corrupt(tb);
	tb_poke_block(tb, leaf, orig, false);

	/* An empty leaf below the root (B4). */
	memcpy(img, orig, PFS_BLOCK_SIZE);
	memset(img + sizeof(*nd), 0, PFS_BLOCK_SIZE - sizeof(*nd));
	nd->nrecs = 0;
	nd->rec_start = cpu_to_le16(PFS_BLOCK_SIZE);
	REQUIRE_EQ(bt_node_check(img, PFS_BT_DIR), 0);
	tb_poke_block(tb, leaf, img, true);
	require_corrupt(tb);
	tb_poke_block(tb, leaf, orig, false);

	/* A wrecked leaf link (B3): the first leaf points to the last. */
	tb_drop_cache(tb, true);
	REQUIRE_EQ(bt_seek_ge(&tb->t, 0, &c), 0);
	first_leaf = buf_blkno(c.path[0]);
	bt_release(&c);
	REQUIRE(first_leaf != leaf);
	REQUIRE_EQ(bio_read(tb->dev, first_leaf, 1, orig), 0);
	memcpy(img, orig, PFS_BLOCK_SIZE);
	nd->next = cpu_to_le64(leaf);
	tb_poke_block(tb, first_leaf, img, true);
	require_corrupt(tb);
	tb_poke_block(tb, first_leaf, orig, false);
	/* ... and the last leaf points somewhere. */
	REQUIRE_EQ(bio_read(tb->dev, leaf, 1, orig), 0);
	memcpy(img, orig, PFS_BLOCK_SIZE);
	REQUIRE_EQ(le64_to_cpu(nd->next), 0);
	nd->next = cpu_to_le64(first_leaf);
	tb_poke_block(tb, leaf, img, true);
	tb_drop_cache(tb, true);
	REQUIRE_EQ(bt_walk(&tb->t, NULL, NULL), -EUCLEAN);
	tb_poke_block(tb, leaf, orig, false);

	/*
	 * A separator raised to the next one (the node stays sorted): the
	 * keys of the child before it fall below its range (B2).  Searches
	 * still work; the walk notices.
	 */
	REQUIRE_EQ(bio_read(tb->dev, root, 1, orig), 0);
	memcpy(img, orig, PFS_BLOCK_SIZE);
	REQUIRE(le16_to_cpu(nd->nrecs) >= 3);
	memcpy(&o1, img + sizeof(*nd) + 2, 2);
	memcpy(&o0, img + sizeof(*nd) + 4, 2);
	memcpy(img + le16_to_cpu(o1), img + le16_to_cpu(o0), 8);
	REQUIRE_EQ(bt_node_check(img, PFS_BT_DIR), 0);
	tb_poke_block(tb, root, img, true);
	tb_drop_cache(tb, true);
	REQUIRE_EQ(bt_walk(&tb->t, NULL, NULL), -EUCLEAN);
	tb_poke_block(tb, root, orig, false);

	/* An interior root cut down to its first child (B4). */
	REQUIRE_EQ(bio_read(tb->dev, root, 1, orig), 0);
	memcpy(img, orig, PFS_BLOCK_SIZE);
	nd->nrecs = cpu_to_le16(1);
	REQUIRE_EQ(bt_node_check(img, PFS_BT_DIR), 0);
	tb_poke_block(tb, root, img, true);
	tb_drop_cache(tb, true);
	REQUIRE_EQ(bt_walk(&tb->t, NULL, NULL), -EUCLEAN);
	tb_poke_block(tb, root, orig, false);

	/* Repaired: everything is back. */
	tb_drop_cache(tb, true);
	pfs_log_set_level(PFS_LOG_WARN);
	tb_check_model(tb, &m);
	{
		int count = 0;

		REQUIRE_EQ(bt_walk(&tb->t, walk_stop_cb, &count), 12345);
		REQUIRE_EQ(count, 2);
	}
	REQUIRE_EQ(bt_destroy(&tb->t), 0);
	REQUIRE_EQ(tb->nused, 0);
	free(m.r);
	tb_free_bed(tb);
}

/*
 * Random inserts, deletes and updates with many duplicate keys against
 * the model.  The tree grows to about 16,000 records and shrinks back,
 * repeatedly.  The first ops commit after every operation and check that
 * no node changed without ops->dirty.
 */
static void test_random(void **state)
{
	const long nops = 120000;
	const uint64_t keyspace = 3000, hot = 1500;
	struct tb *tb = tb_new(16384, 2 << 20, PFS_BT_DIR);
	struct model m = { 0 };
	struct bt_cursor c;
	uint8_t v[BT_MAX_VALUE];
	uint32_t id = 0;
	bool grow = true;
	int max_depth = 0;
	long ninsert = 0, ndelete = 0, nupdate = 0;

	for (long op = 0; op < nops; op++) {
		unsigned p = (unsigned)rng_below(100);
		unsigned pins = grow ? 65 : 35;

		if (m.n >= 16000 && grow) {
			grow = false;
			max_depth = PFS_MAX(max_depth, get_depth(tb));
		} else if (m.n <= 300) {
			grow = true;
		}
		if (m.n == 0 || p < pins) {
			uint64_t key = rng_below(20) == 0 ? hot : rng_below(keyspace);
			uint16_t len = (uint16_t)(4 + rng_below(80));

			if (rng_below(50) == 0)
				len = (uint16_t)(200 + rng_below(BT_MAX_VALUE - 199));
			tb_insert(tb, &m, key, id++, len);
			ninsert++;
		} else if (p < pins + (100 - pins) * 6 / 10) {
			tb_delete_index(tb, &m, (size_t)rng_below(m.n));
			ndelete++;
		} else {
			size_t pos = (size_t)rng_below(m.n);
			uint16_t len = m.r[pos].vlen;

			if (rng_below(2))
				len = (uint16_t)(4 + rng_below(rng_below(10) ? 60 : BT_MAX_VALUE - 3));
			tb_seek_index(tb, &m, pos, &c);
			m.r[pos].id = id++;
			m.r[pos].vlen = len;
			val_fill(v, m.r[pos].id, len);
			REQUIRE_EQ(bt_update(&c, v, len), 0);
			if (c.valid) {
				require_rec(&c, &m.r[pos]);
				if (pos + 1 < m.n) {
					REQUIRE_EQ(bt_next(&c), 0);
					require_rec(&c, &m.r[pos + 1]);
				}
				bt_release(&c);
			}
			nupdate++;
		}
		if (rng_below(16) == 0 && m.n)
			tb_check_seeks(tb, &m, rng_below(keyspace + 2));
		if (op < 1500 || op % 499 == 0) {
			tb_check_clean_buffers(tb);
			tb_writeback(tb);
		}
		if (op % 4000 == 3999) {
			tb_check_model(tb, &m);
			max_depth = PFS_MAX(max_depth, get_depth(tb));
		}
		if (op % 20000 == 19999)
			tb_drop_cache(tb, false);
	}
	tb_check_model(tb, &m);
	tb_drop_cache(tb, false);
	tb_check_model(tb, &m);
	print_message("random: %ld inserts, %ld deletes, %ld updates, "
		      "max depth %d, %zu records left\n", ninsert, ndelete,
		      nupdate, max_depth, m.n);
	REQUIRE(max_depth >= 3);
	while (m.n) {
		tb_delete_index(tb, &m, (size_t)rng_below(m.n));
		if (m.n % 2000 == 0)
			tb_check_model(tb, &m);
	}
	REQUIRE_EQ(tb->t.root, 0);
	REQUIRE_EQ(tb->nused, 0);
	free(m.r);
	tb_free_bed(tb);
}

static int group_setup(void **state)
{
	const char *s = getenv("PFS_SEED");

	tb_seed = s && *s ? strtoull(s, NULL, 0)
		: (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 16);
	rng_init(tb_seed);
	pfs_log_set_level(PFS_LOG_WARN);
	print_message("test_btree: PFS_SEED=%llu\n", tb_seed);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_check),
		cmocka_unit_test(test_small),
		cmocka_unit_test(test_empty_root_leaf),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_update),
		cmocka_unit_test(test_destroy),
		cmocka_unit_test(test_collapse),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
