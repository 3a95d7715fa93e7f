/*
 * bcache.c -- the block cache.
 *
 * Design notes
 *
 * Buffers live in a hash table keyed by block number.  Each buffer is in
 * exactly one of these states:
 *   referenced   ref > 0; on no list (unless dirty);
 *   LRU          hashed, ref == 0 and clean: on bc->lru, evictable;
 *   dirty        hashed and dirty: on bc->dirty, never evicted, whatever
 *                its reference count;
 *   forgotten    no longer hashed (bcache_forget while referenced): on no
 *                list, freed by its last buf_put.
 * A buffer is on at most one list, so the LRU and the dirty list share the
 * buffer's link field.
 *
 * What protects what
 *   - bc->lock protects the hash table, the lists and their counts, the
 *     statistics, the epoch, the seed, and each buffer's ref, dirty,
 *     hashed, kind and link fields.  It is taken and dropped inside every
 *     call and never held across device I/O; while holding it the cache
 *     calls only pfs_crc32c, the logger and the allocator.
 *   - A buffer's data is protected by the caller's filesystem lock
 *     (pfs_fs.h); the cache itself writes a buffer's data only while
 *     nobody else can reach it (a new buffer before it is hashed) or on
 *     behalf of the caller (bcache_get_new zeroing it).
 *   - b->bc, b->blkno and b->data never change while the buffer exists.
 *
 * Invariants
 *   1. At most one hashed buffer per block number.
 *   2. A buffer is on bc->lru iff hashed && ref == 0 && !dirty; on
 *      bc->dirty iff hashed && dirty.  nlru and ndirty count those lists;
 *      nbufs counts hashed buffers.
 *   3. After every call, nbufs * PFS_BLOCK_SIZE <= max_bytes or the LRU is
 *      empty: only referenced or dirty buffers make the cache exceed its
 *      bound.
 *   4. A BUF_META buffer entered the cache either zeroed (bcache_get_new)
 *      or from a device image that passed pfs_meta_verify; an image that
 *      fails is never cached.
 *   5. Misses read the device without bc->lock and insert only if the
 *      block is still absent; a buffer hashed meanwhile wins.  bc->epoch
 *      advances whenever the device copy of a block may have changed or
 *      stopped mattering while a cached buffer existed (write-back marked
 *      by bcache_mark_clean, bcache_forget); a miss whose read overlapped
 *      an epoch change reads again rather than cache a possibly stale
 *      image.
 *   6. A forgotten buffer cannot become dirty again (bcache_mark_dirty
 *      ignores it), so it is never written back over a freed block.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pfs_bcache.h"
#include "pfs_format.h"
#include "pfs_util.h"

#define BCACHE_MIN_BUCKETS      64u

struct buf_link {
	struct buf_link *prev, *next;
};

struct buf {
	struct bcache *bc;              /* immutable */
	uint64_t blkno;                 /* immutable */
	void *data;                     /* immutable pointer, 4096-aligned;
					 * contents protected by the caller */
	enum buf_kind kind;             /* protected by bc->lock */
	uint32_t ref;                   /* protected by bc->lock */
	bool dirty;                     /* protected by bc->lock */
	bool hashed;                    /* protected by bc->lock */
	struct buf *hnext;              /* protected by bc->lock */
	struct buf_link link;           /* protected by bc->lock: lru or dirty */
};

struct bcache {
	struct bio_dev *dev;            /* immutable */
	uint64_t max_bytes;             /* immutable */

	pthread_mutex_t lock;
	uint32_t seed;                  /* protected by lock */
	struct buf **hash;              /* protected by lock */
	unsigned hash_bits;             /* protected by lock */
	size_t nbufs;                   /* protected by lock */
	struct buf_link lru;            /* protected by lock; next = newest */
	size_t nlru;                    /* protected by lock */
	struct buf_link dirty;          /* protected by lock */
	size_t ndirty;                  /* protected by lock */
	size_t nforgotten;              /* protected by lock */
	uint64_t epoch;                 /* protected by lock */
	uint64_t hits, misses, evictions; /* protected by lock */
};

#define BUF_OF_LINK(l) ((struct buf *)((char *)(l) - offsetof(struct buf, link)))

static const char *buf_kind_name(enum buf_kind k)
{
	switch (k) {
	case BUF_DATA:
		return "data";
	case BUF_META:
		return "metadata";
	case BUF_INODE:
		return "inode";
	}
	return "?";
}

/* ------------------------------------------------------------------ */
/* Metadata block checksums.                                            */
/* ------------------------------------------------------------------ */

/* crc32c(seed, the 4096-byte block with the 4-byte hdr.crc taken as 0). */
static uint32_t buf_meta_crc(const void *blk, uint32_t seed)
{
	static const uint8_t zero[sizeof(le32)];
	const uint8_t *p = blk;
	size_t crc_off = offsetof(struct pfs_blk_hdr, crc);
	size_t rest = crc_off + sizeof(le32);
	uint32_t crc;

	crc = pfs_crc32c(seed, p, crc_off);
	crc = pfs_crc32c(crc, zero, sizeof(zero));
	return pfs_crc32c(crc, p + rest, PFS_BLOCK_SIZE - rest);
}

static bool buf_all_zero(const void *blk)
{
	const uint8_t *p = blk;

	for (size_t i = 0; i < PFS_BLOCK_SIZE; i++)
		if (p[i])
			return false;
	return true;
}

const char *pfs_meta_problem(const void *blk, uint64_t blkno, uint32_t magic,
			     uint32_t seed)
{
	struct pfs_blk_hdr h;

	memcpy(&h, blk, sizeof(h));
	if (magic && le32_to_cpu(h.magic) != magic && buf_all_zero(blk))
		return "bad magic";
	if (le32_to_cpu(h.crc) != buf_meta_crc(blk, seed))
		return "bad checksum";
	if (magic && le32_to_cpu(h.magic) != magic)
		return "bad magic";
	if (le64_to_cpu(h.blkno) != blkno)
		return "misdirected";
	return NULL;
}

int pfs_meta_verify(const void *blk, uint64_t blkno, uint32_t magic, uint32_t seed)
{
	return pfs_meta_problem(blk, blkno, magic, seed) ? -EUCLEAN : 0;
}

void pfs_meta_seal(void *blk, uint64_t blkno, uint32_t seed)
{
	struct pfs_blk_hdr h;

	memcpy(&h, blk, sizeof(h));
	h.blkno = cpu_to_le64(blkno);
	memcpy(blk, &h, sizeof(h));
	h.crc = cpu_to_le32(buf_meta_crc(blk, seed));
	memcpy(blk, &h, sizeof(h));
}

/* Log why a metadata image of block blk was rejected. */
static void bcache_log_bad_meta(uint64_t blk, const char *why,
				const void *data, uint32_t magic)
{
	struct pfs_blk_hdr h;

	memcpy(&h, data, sizeof(h));
	if (!strcmp(why, "bad magic"))
		pfs_err("block %" PRIu64 ": bad magic (0x%08x, expected 0x%08x)",
			blk, le32_to_cpu(h.magic), magic);
	else if (!strcmp(why, "misdirected"))
		pfs_err("block %" PRIu64 ": misdirected (header says block %"
			PRIu64 ")", blk, le64_to_cpu(h.blkno));
	else
		pfs_err("block %" PRIu64 ": %s", blk, why);
}

/* ------------------------------------------------------------------ */
/* Lists and the hash table.  Callers hold bc->lock.                    */
/* ------------------------------------------------------------------ */

static void buf_link_init(struct buf_link *head)
{
	head->prev = head->next = head;
}

static void buf_link_add(struct buf_link *head, struct buf_link *l)
{
	l->next = head->next;
	l->prev = head;
	head->next->prev = l;
	head->next = l;
}

static void buf_link_del(struct buf_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = l;
}

static size_t bcache_bucket(const struct bcache *bc, uint64_t blk)
{
	return (size_t)((blk * 0x9e3779b97f4a7c15ull) >> (64 - bc->hash_bits));
}

static struct buf *bcache_find_locked(struct bcache *bc, uint64_t blk)
{
	struct buf *b;

	for (b = bc->hash[bcache_bucket(bc, blk)]; b; b = b->hnext)
		if (b->blkno == blk)
			return b;
	return NULL;
}

/* Double the table when it is more than twice as full as it is wide; a
 * failed allocation keeps the old table (longer chains, still correct). */
static void bcache_maybe_grow_locked(struct bcache *bc)
{
	size_t old_n = (size_t)1 << bc->hash_bits;
	struct buf **old = bc->hash, **nh;

	if (bc->nbufs <= 2 * old_n || bc->hash_bits >= 40)
		return;
	nh = calloc(old_n * 2, sizeof(*nh));
	if (!nh)
		return;
	bc->hash = nh;
	bc->hash_bits++;
	for (size_t i = 0; i < old_n; i++) {
		struct buf *b = old[i];
		while (b) {
			struct buf *next = b->hnext;
			size_t k = bcache_bucket(bc, b->blkno);
			b->hnext = nh[k];
			nh[k] = b;
			b = next;
		}
	}
	free(old);
}

static void bcache_hash_insert_locked(struct bcache *bc, struct buf *b)
{
	size_t k;

	bc->nbufs++;
	bcache_maybe_grow_locked(bc);
	k = bcache_bucket(bc, b->blkno);
	b->hnext = bc->hash[k];
	bc->hash[k] = b;
	b->hashed = true;
}

static void bcache_hash_remove_locked(struct bcache *bc, struct buf *b)
{
	struct buf **pp = &bc->hash[bcache_bucket(bc, b->blkno)];

	while (*pp != b)
		pp = &(*pp)->hnext;
	*pp = b->hnext;
	b->hnext = NULL;
	b->hashed = false;
	bc->nbufs--;
}

/* Take a reference; an LRU buffer leaves the LRU. */
static void buf_ref_locked(struct bcache *bc, struct buf *b)
{
	if (b->ref++ == 0 && b->hashed && !b->dirty) {
		buf_link_del(&b->link);
		bc->nlru--;
	}
}

/* Put an unreferenced clean buffer at the young end of the LRU. */
static void buf_lru_add_locked(struct bcache *bc, struct buf *b)
{
	buf_link_add(&bc->lru, &b->link);
	bc->nlru++;
}

/* Evict old LRU buffers until the cache fits (invariant 3).  Returns the
 * evicted buffers chained through hnext, for the caller to free after
 * dropping the lock. */
static struct buf *bcache_evict_locked(struct bcache *bc)
{
	struct buf *chain = NULL;

	while (bc->nlru && (uint64_t)bc->nbufs * PFS_BLOCK_SIZE > bc->max_bytes) {
		struct buf *b = BUF_OF_LINK(bc->lru.prev);
		buf_link_del(&b->link);
		bc->nlru--;
		bcache_hash_remove_locked(bc, b);
		bc->evictions++;
		b->hnext = chain;
		chain = b;
	}
	return chain;
}

static void buf_free_chain(struct buf *chain);

/* Drop every unreferenced clean buffer (a cluster lock was released:
 * fs/glock.c G2).  Returns the number of buffers dropped. */
size_t bcache_drop_clean(struct bcache *bc)
{
	struct buf *chain = NULL;
	size_t n = 0;

	pthread_mutex_lock(&bc->lock);
	while (bc->nlru) {
		struct buf *b = BUF_OF_LINK(bc->lru.prev);
		buf_link_del(&b->link);
		bc->nlru--;
		bcache_hash_remove_locked(bc, b);
		b->hnext = chain;
		chain = b;
		n++;
	}
	bc->epoch++;            /* reads in flight must not insert old data */
	pthread_mutex_unlock(&bc->lock);
	buf_free_chain(chain);
	return n;
}

/* ------------------------------------------------------------------ */
/* Buffer allocation.                                                   */
/* ------------------------------------------------------------------ */

static struct buf *buf_alloc(struct bcache *bc, uint64_t blk, enum buf_kind kind,
			     bool zero)
{
	struct buf *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	if (posix_memalign(&b->data, PFS_BLOCK_SIZE, PFS_BLOCK_SIZE))
		goto out_free_buf;
	if (zero)
		memset(b->data, 0, PFS_BLOCK_SIZE);
	b->bc = bc;
	b->blkno = blk;
	b->kind = kind;
	buf_link_init(&b->link);
	return b;

out_free_buf:
	free(b);
	return NULL;
}

static void buf_free(struct buf *b)
{
	free(b->data);
	free(b);
}

static void buf_free_chain(struct buf *chain)
{
	while (chain) {
		struct buf *next = chain->hnext;
		buf_free(chain);
		chain = next;
	}
}

/* ------------------------------------------------------------------ */
/* Creation and teardown.                                               */
/* ------------------------------------------------------------------ */

int bcache_create(struct bio_dev *dev, uint64_t max_bytes, uint32_t seed,
		  struct bcache **out)
{
	uint64_t want = PFS_MAX(max_bytes / PFS_BLOCK_SIZE, BCACHE_MIN_BUCKETS);
	struct bcache *bc;
	unsigned bits = 6;
	int err;

	*out = NULL;
	bc = calloc(1, sizeof(*bc));
	if (!bc)
		return -ENOMEM;
	while (bits < 20 && ((uint64_t)1 << bits) < want)
		bits++;
	bc->hash_bits = bits;
	bc->hash = calloc((size_t)1 << bits, sizeof(*bc->hash));
	if (!bc->hash) {
		err = -ENOMEM;
		goto out_free_bc;
	}
	err = pthread_mutex_init(&bc->lock, NULL);
	if (err) {
		err = -err;
		goto out_free_hash;
	}
	bc->dev = dev;
	bc->max_bytes = max_bytes;
	bc->seed = seed;
	buf_link_init(&bc->lru);
	buf_link_init(&bc->dirty);
	*out = bc;
	return 0;

out_free_hash:
	free(bc->hash);
out_free_bc:
	free(bc);
	return err;
}

void bcache_destroy(struct bcache *bc)
{
	size_t nref = 0, ndirty = 0;

	if (!bc)
		return;
	for (size_t i = 0; i < ((size_t)1 << bc->hash_bits); i++) {
		struct buf *b = bc->hash[i];
		while (b) {
			struct buf *next = b->hnext;
			nref += b->ref != 0;
			ndirty += b->dirty;
			buf_free(b);
			b = next;
		}
	}
	if (ndirty)
		pfs_warn("block cache: %zu dirty buffers discarded", ndirty);
	if (nref || bc->nforgotten)
		pfs_err("block cache: destroyed with %zu buffers still referenced",
			nref + bc->nforgotten);
	free(bc->hash);
	pthread_mutex_destroy(&bc->lock);
	free(bc);
}

void bcache_set_seed(struct bcache *bc, uint32_t seed)
{
	pthread_mutex_lock(&bc->lock);
	bc->seed = seed;
	pthread_mutex_unlock(&bc->lock);
}

struct bio_dev *bcache_dev(struct bcache *bc)
{
	return bc->dev;
}

/* ------------------------------------------------------------------ */
/* Lookups.                                                             */
/* ------------------------------------------------------------------ */

/*
 * A cached buffer was found for a read of kind KIND: check it and take a
 * reference.  A clean buffer cached under another kind takes the new one
 * (for BUF_META its content, equal to the device's, is verified first); a
 * dirty one is a caller error.  A BUF_META buffer cached as such is only
 * checked for its magic: its blkno and crc are filled in at write-back.
 */
static int bcache_hit_locked(struct bcache *bc, struct buf *b,
			     enum buf_kind kind, uint32_t magic)
{
	const char *why = NULL;

	if (b->kind != kind) {
		if (b->dirty) {
			pfs_err("block %" PRIu64 ": read as %s while dirty as %s",
				b->blkno, buf_kind_name(kind),
				buf_kind_name(b->kind));
			return -EINVAL;
		}
		if (kind == BUF_META)
			why = pfs_meta_problem(b->data, b->blkno, magic, bc->seed);
	} else if (kind == BUF_META && magic) {
		struct pfs_blk_hdr h;
		memcpy(&h, b->data, sizeof(h));
		if (le32_to_cpu(h.magic) != magic)
			why = "bad magic";
	}
	if (why) {
		bcache_log_bad_meta(b->blkno, why, b->data, magic);
		return -EUCLEAN;
	}
	b->kind = kind;
	buf_ref_locked(bc, b);
	bc->hits++;
	return 0;
}

int bcache_read(struct bcache *bc, uint64_t blk, enum buf_kind kind,
		uint32_t magic, struct buf **out)
{
	uint64_t nblocks = bio_nblocks(bc->dev);
	struct buf *b, *nb, *evicted;
	uint64_t epoch;
	uint32_t seed;
	int err;

	*out = NULL;
	if (blk >= nblocks) {
		pfs_err("block %" PRIu64 ": beyond the end of the device (%"
			PRIu64 " blocks), reading %s", blk, nblocks,
			buf_kind_name(kind));
		return -EUCLEAN;
	}
	for (;;) {
		pthread_mutex_lock(&bc->lock);
		b = bcache_find_locked(bc, blk);
		if (b) {
			err = bcache_hit_locked(bc, b, kind, magic);
			pthread_mutex_unlock(&bc->lock);
			if (!err)
				*out = b;
			return err;
		}
		bc->misses++;
		epoch = bc->epoch;
		seed = bc->seed;
		pthread_mutex_unlock(&bc->lock);

		nb = buf_alloc(bc, blk, kind, false);
		if (!nb)
			return -ENOMEM;
		err = bio_read(bc->dev, blk, 1, nb->data);
		if (err)
			goto out_free_nb;
		if (kind == BUF_META) {
			const char *why = pfs_meta_problem(nb->data, blk, magic, seed);
			if (why) {
				bcache_log_bad_meta(blk, why, nb->data, magic);
				err = -EUCLEAN;
				goto out_free_nb;
			}
		}

		pthread_mutex_lock(&bc->lock);
		b = bcache_find_locked(bc, blk);
		if (b) {
			err = bcache_hit_locked(bc, b, kind, magic);
			pthread_mutex_unlock(&bc->lock);
			buf_free(nb);
			if (!err)
				*out = b;
			return err;
		}
		if (bc->epoch != epoch || bc->seed != seed) {
			pthread_mutex_unlock(&bc->lock);
			buf_free(nb);
			continue;
		}
		nb->ref = 1;
		bcache_hash_insert_locked(bc, nb);
		evicted = bcache_evict_locked(bc);
		pthread_mutex_unlock(&bc->lock);
		buf_free_chain(evicted);
		*out = nb;
		return 0;
	}

out_free_nb:
	buf_free(nb);
	return err;
}

int bcache_get_new(struct bcache *bc, uint64_t blk, enum buf_kind kind,
		   struct buf **out)
{
	uint64_t nblocks = bio_nblocks(bc->dev);
	struct buf *b, *nb, *evicted = NULL;

	*out = NULL;
	if (blk >= nblocks) {
		pfs_err("block %" PRIu64 ": new %s block beyond the end of the "
			"device (%" PRIu64 " blocks)", blk, buf_kind_name(kind),
			nblocks);
		return -EINVAL;
	}
	pthread_mutex_lock(&bc->lock);
	b = bcache_find_locked(bc, blk);
	if (b) {
		buf_ref_locked(bc, b);
		b->kind = kind;
		pthread_mutex_unlock(&bc->lock);
		memset(b->data, 0, PFS_BLOCK_SIZE);
		*out = b;
		return 0;
	}
	pthread_mutex_unlock(&bc->lock);

	nb = buf_alloc(bc, blk, kind, true);
	if (!nb)
		return -ENOMEM;

	pthread_mutex_lock(&bc->lock);
	b = bcache_find_locked(bc, blk);
	if (b) {
		buf_ref_locked(bc, b);
		b->kind = kind;
	} else {
		nb->ref = 1;
		bcache_hash_insert_locked(bc, nb);
		evicted = bcache_evict_locked(bc);
	}
	pthread_mutex_unlock(&bc->lock);
	buf_free_chain(evicted);
	if (b) {
		buf_free(nb);
		memset(b->data, 0, PFS_BLOCK_SIZE);
		*out = b;
	} else {
		*out = nb;
	}
	return 0;
}

struct buf *bcache_peek(struct bcache *bc, uint64_t blk)
{
	struct buf *b;

	pthread_mutex_lock(&bc->lock);
	b = bcache_find_locked(bc, blk);
	if (b)
		buf_ref_locked(bc, b);
	pthread_mutex_unlock(&bc->lock);
	return b;
}

void buf_get(struct buf *b)
{
	struct bcache *bc = b->bc;

	pthread_mutex_lock(&bc->lock);
	PFS_BUG_ON(b->ref == 0);
	b->ref++;
	pthread_mutex_unlock(&bc->lock);
}

void buf_put(struct buf *b)
{
	struct bcache *bc;
	struct buf *evicted = NULL;
	bool free_it = false;

	if (!b)
		return;
	bc = b->bc;
	pthread_mutex_lock(&bc->lock);
	PFS_BUG_ON(b->ref == 0);
	if (--b->ref == 0) {
		if (!b->hashed) {
			bc->nforgotten--;
			free_it = true;
		} else if (!b->dirty) {
			buf_lru_add_locked(bc, b);
			evicted = bcache_evict_locked(bc);
		}
	}
	pthread_mutex_unlock(&bc->lock);
	buf_free_chain(evicted);
	if (free_it)
		buf_free(b);
}

void bcache_forget(struct bcache *bc, uint64_t blk)
{
	struct buf *b;
	bool free_it = false;

	pthread_mutex_lock(&bc->lock);
	b = bcache_find_locked(bc, blk);
	if (!b) {
		pthread_mutex_unlock(&bc->lock);
		return;
	}
	if (b->dirty) {
		buf_link_del(&b->link);
		bc->ndirty--;
		b->dirty = false;
	} else if (b->ref == 0) {
		buf_link_del(&b->link);
		bc->nlru--;
	}
	bcache_hash_remove_locked(bc, b);
	if (b->ref == 0)
		free_it = true;
	else
		bc->nforgotten++;
	bc->epoch++;
	pthread_mutex_unlock(&bc->lock);
	if (free_it)
		buf_free(b);
}

/* ------------------------------------------------------------------ */
/* Accessors.                                                           */
/* ------------------------------------------------------------------ */

int bcache_invalidate(struct bcache *bc, uint64_t blk)
{
	struct buf *b;

	pthread_mutex_lock(&bc->lock);
	b = bcache_find_locked(bc, blk);
	if (!b) {
		pthread_mutex_unlock(&bc->lock);
		return 0;
	}
	if (b->dirty || b->ref) {
		pthread_mutex_unlock(&bc->lock);
		return -EBUSY;
	}
	buf_link_del(&b->link);
	bc->nlru--;
	bcache_hash_remove_locked(bc, b);
	bc->epoch++;
	pthread_mutex_unlock(&bc->lock);
	buf_free(b);
	return 0;
}

void *buf_data(struct buf *b)
{
	return b->data;
}

uint64_t buf_blkno(const struct buf *b)
{
	return b->blkno;
}

enum buf_kind buf_kind(const struct buf *b)
{
	struct bcache *bc = b->bc;
	enum buf_kind k;

	pthread_mutex_lock(&bc->lock);
	k = b->kind;
	pthread_mutex_unlock(&bc->lock);
	return k;
}

bool buf_dirty(const struct buf *b)
{
	struct bcache *bc = b->bc;
	bool dirty;

	pthread_mutex_lock(&bc->lock);
	dirty = b->dirty;
	pthread_mutex_unlock(&bc->lock);
	return dirty;
}

void buf_seal(struct bcache *bc, struct buf *b)
{
	enum buf_kind kind;
	uint32_t seed;

	pthread_mutex_lock(&bc->lock);
	kind = b->kind;
	seed = bc->seed;
	pthread_mutex_unlock(&bc->lock);
	if (kind == BUF_META)
		pfs_meta_seal(b->data, b->blkno, seed);
}

void bcache_get_stats(struct bcache *bc, struct bcache_stats *st)
{
	pthread_mutex_lock(&bc->lock);
	st->hits = bc->hits;
	st->misses = bc->misses;
	st->evictions = bc->evictions;
	st->nbufs = bc->nbufs;
	st->nlru = bc->nlru;
	st->ndirty = bc->ndirty;
	pthread_mutex_unlock(&bc->lock);
}

/* ------------------------------------------------------------------ */
/* Dirty tracking.                                                      */
/* ------------------------------------------------------------------ */

int bcache_mark_dirty(struct bcache *bc, struct buf *b)
{
	int first = 0;

	pthread_mutex_lock(&bc->lock);
	PFS_BUG_ON(b->ref == 0);
	if (!b->hashed) {
		pfs_debug("block %" PRIu64 ": changed after it was freed; "
			  "not written back", b->blkno);
	} else if (!b->dirty) {
		b->dirty = true;
		buf_link_add(&bc->dirty, &b->link);
		bc->ndirty++;
		first = 1;
	}
	pthread_mutex_unlock(&bc->lock);
	return first;
}

void bcache_mark_clean(struct bcache *bc, struct buf *b)
{
	struct buf *evicted = NULL;

	pthread_mutex_lock(&bc->lock);
	if (b->dirty) {
		buf_link_del(&b->link);
		bc->ndirty--;
		b->dirty = false;
		bc->epoch++;
		if (b->ref == 0) {
			buf_lru_add_locked(bc, b);
			evicted = bcache_evict_locked(bc);
		}
	}
	pthread_mutex_unlock(&bc->lock);
	buf_free_chain(evicted);
}

size_t bcache_ndirty(struct bcache *bc)
{
	size_t n;

	pthread_mutex_lock(&bc->lock);
	n = bc->ndirty;
	pthread_mutex_unlock(&bc->lock);
	return n;
}

static int buf_cmp_blkno(const void *a, const void *b)
{
	const struct buf *x = *(const struct buf *const *)a;
	const struct buf *y = *(const struct buf *const *)b;

	return (x->blkno > y->blkno) - (x->blkno < y->blkno);
}

int bcache_dirty_list(struct bcache *bc, struct buf ***list, size_t *n)
{
	struct buf **arr = NULL;
	struct buf_link *l;
	size_t i = 0;

	*list = NULL;
	*n = 0;
	pthread_mutex_lock(&bc->lock);
	if (!bc->ndirty)
		goto out_unlock;
	arr = malloc(bc->ndirty * sizeof(*arr));
	if (!arr) {
		pthread_mutex_unlock(&bc->lock);
		return -ENOMEM;
	}
	for (l = bc->dirty.next; l != &bc->dirty; l = l->next) {
		struct buf *b = BUF_OF_LINK(l);
		b->ref++;
		arr[i++] = b;
	}
out_unlock:
	pthread_mutex_unlock(&bc->lock);
	if (i)
		qsort(arr, i, sizeof(*arr), buf_cmp_blkno);
	*list = arr;
	*n = i;
	return 0;
}
