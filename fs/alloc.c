/*
 * alloc.c -- block and inode allocation in allocation groups.
 *
 * Design notes
 *
 * Each group has a descriptor (free counts), a block bitmap and an inode
 * bitmap (pfs_format.h).  The descriptors are mirrored in fs->groups so a
 * search for a group with room needs no I/O; the bitmaps are read through
 * the block cache when a group is searched.
 *
 * Invariants (all protected by fs->lock):
 *   A1. fs->groups[g].free_blocks == the descriptor's free_blocks == the
 *       number of clear bits among the group's first nblocks bits.  The
 *       same holds for inodes.  Every change updates bitmap, descriptor
 *       and mirror in one call, under the running transaction.
 *   A2. fs->free_blocks / fs->free_inodes are the sums over the groups.
 *   A3. Group metadata (descriptor, bitmaps, inode table) is always marked
 *       used, so an allocation can never hand it out; alloc_free_blocks
 *       refuses to free it (alloc_block_valid).
 *   A4. Freeing a clear bit or allocating a set bit is corruption: the
 *       call fails with -EUCLEAN and changes nothing.
 *   A5. A block freed by the running transaction stays marked used until
 *       that transaction commits (the frees are applied at the start of
 *       the commit, inside it).  So a block is never reused, and written
 *       in place, by the transaction that freed it: backing that
 *       transaction out restores the old owner's pointer to contents
 *       that are still intact.
 *
 * Placement: each node slot starts its data allocations in its own region
 * of groups (slot * ngroups / max_slots) so nodes of a cluster rarely
 * contend for a group; files' blocks go near their inode, their extents
 * continue from the previous one (the caller passes that as goal);
 * directories spread over groups with more than average free inodes.
 */
#include <errno.h>
#include <string.h>
#include <stdlib.h>

#include "pfs_fs.h"
#include "pfs_util.h"

uint64_t fs_group_first_block(const struct pfs_fs *fs, uint32_t g)
{
	return fs->group_start + (uint64_t)g * fs->bpg;
}

static uint32_t group_of_block(const struct pfs_fs *fs, uint64_t blk)
{
	return (uint32_t)((blk - fs->group_start) / fs->bpg);
}

/* G1 of glock.c: this node allocates and frees only in groups it holds. */
static bool group_usable(const struct pfs_fs *fs, uint32_t g)
{
	return !fs->gl || fs->groups[g].held;
}

static uint32_t group_meta_blocks(const struct pfs_fs *fs)
{
	return PFS_GROUP_META_BLOCKS + fs->itb;
}

bool alloc_block_valid(const struct pfs_fs *fs, uint64_t blk)
{
	if (blk < fs->group_start)
		return false;
	uint32_t g = group_of_block(fs, blk);
	if (g >= fs->ngroups)
		return false;
	uint64_t off = blk - fs_group_first_block(fs, g);
	return off >= group_meta_blocks(fs) && off < fs->groups[g].nblocks;
}

static int read_desc(struct pfs_fs *fs, uint32_t g, struct buf **out)
{
	return bcache_read(fs->bc, fs_group_first_block(fs, g), BUF_META,
			   PFS_MAGIC_GROUP, out);
}

static int desc_check(struct pfs_fs *fs, uint32_t g, const struct pfs_group_desc *d)
{
	uint64_t first = fs_group_first_block(fs, g);
	uint32_t nb = le32_to_cpu(d->nblocks);
	if (le32_to_cpu(d->group) != g || nb > fs->bpg ||
	    nb <= group_meta_blocks(fs) ||
	    le32_to_cpu(d->free_blocks) > nb ||
	    le32_to_cpu(d->ninodes) != fs->ipg ||
	    le32_to_cpu(d->free_inodes) > fs->ipg ||
	    le64_to_cpu(d->block_bitmap) != first + 1 ||
	    le64_to_cpu(d->inode_bitmap) != first + 2 ||
	    le64_to_cpu(d->inode_table) != first + 3 ||
	    first + nb > fs->nblocks - 1) {
		pfs_err("group %u: descriptor at block %llu is inconsistent", g,
			(unsigned long long)first);
		return -EUCLEAN;
	}
	return 0;
}

int alloc_init(struct pfs_fs *fs)
{
	fs->groups = calloc(fs->ngroups, sizeof(*fs->groups));
	if (!fs->groups)
		return -ENOMEM;
	fs->free_blocks = fs->free_inodes = 0;
	int err = 0;
	for (uint32_t g = 0; g < fs->ngroups; g++) {
		struct buf *b;
		err = read_desc(fs, g, &b);
		if (err)
			goto out_free_groups;
		const struct pfs_group_desc *d = buf_data(b);
		err = desc_check(fs, g, d);
		if (!err) {
			fs->groups[g].nblocks = le32_to_cpu(d->nblocks);
			fs->groups[g].free_blocks = le32_to_cpu(d->free_blocks);
			fs->groups[g].free_inodes = le32_to_cpu(d->free_inodes);
			fs->groups[g].ndirs = le32_to_cpu(d->ndirs);
			fs->free_blocks += fs->groups[g].free_blocks;
			fs->free_inodes += fs->groups[g].free_inodes;
		}
		buf_put(b);
		if (err)
			goto out_free_groups;
	}
	uint32_t nslots = le32_to_cpu(fs->sb.max_slots);
	/* Each slot's own region of groups; with fewer groups than slots,
	 * neighbouring slots still start in different groups. */
	if (fs->ngroups >= nslots)
		fs->alloc_group = (uint32_t)(((uint64_t)fs->slot * fs->ngroups) / (nslots ? nslots : 1));
	else
		fs->alloc_group = fs->slot % fs->ngroups;
	return 0;

out_free_groups:
	free(fs->groups);
	fs->groups = NULL;
	return err;
}

void alloc_fini(struct pfs_fs *fs)
{
	free(fs->groups);
	fs->groups = NULL;
	free(fs->pending);
	fs->pending = NULL;
	fs->npending = fs->pending_cap = 0;
	fs->pending_blocks = 0;
	free(fs->pending_ino);
	fs->pending_ino = NULL;
	fs->npending_ino = fs->pending_ino_cap = 0;
}

/* ---- bitmap helpers: bit i of a bitmap block ---- */

static inline uint8_t *bm_bits(void *blk)
{
	return (uint8_t *)blk + PFS_BITMAP_OFFSET;
}

static inline bool bm_test(const uint8_t *bits, uint32_t i)
{
	return bits[i >> 3] & (1u << (i & 7));
}

static inline void bm_set(uint8_t *bits, uint32_t i) { bits[i >> 3] |= (uint8_t)(1u << (i & 7)); }
static inline void bm_clear(uint8_t *bits, uint32_t i) { bits[i >> 3] &= (uint8_t)~(1u << (i & 7)); }

/* First clear bit in [from, limit), or limit.  Skips full bytes fast. */
static uint32_t bm_find_clear(const uint8_t *bits, uint32_t from, uint32_t limit)
{
	uint32_t i = from;
	while (i < limit) {
		if ((i & 63) == 0 && i + 64 <= limit) {
			uint64_t w;
			memcpy(&w, bits + (i >> 3), 8);
			if (w == UINT64_MAX) {
				i += 64;
				continue;
			}
		}
		if (!bm_test(bits, i))
			return i;
		i++;
	}
	return limit;
}

/* Length of the run of clear bits at i, at most max. */
static uint32_t bm_run_clear(const uint8_t *bits, uint32_t i, uint32_t limit, uint32_t max)
{
	uint32_t n = 0;
	while (i + n < limit && n < max && !bm_test(bits, i + n))
		n++;
	return n;
}

/* Change the free counts of group g by dblocks/dinodes/ddirs, in the
 * descriptor (under the transaction) and in the mirror (A1, A2). */
static int group_adjust(struct pfs_fs *fs, uint32_t g, int64_t dblocks,
			int64_t dinodes, int64_t ddirs)
{
	struct buf *b;
	int err = read_desc(fs, g, &b);
	if (err)
		return err;
	err = tx_dirty(fs, b);
	if (err) {
		buf_put(b);
		return err;
	}
	struct pfs_group_desc *d = buf_data(b);
	struct pfs_group *gm = &fs->groups[g];
	gm->free_blocks = (uint32_t)((int64_t)gm->free_blocks + dblocks);
	gm->free_inodes = (uint32_t)((int64_t)gm->free_inodes + dinodes);
	gm->ndirs = (uint32_t)((int64_t)gm->ndirs + ddirs);
	PFS_BUG_ON(gm->free_blocks > gm->nblocks || gm->free_inodes > fs->ipg);
	d->free_blocks = cpu_to_le32(gm->free_blocks);
	d->free_inodes = cpu_to_le32(gm->free_inodes);
	d->ndirs = cpu_to_le32(gm->ndirs);
	fs->free_blocks = (uint64_t)((int64_t)fs->free_blocks + dblocks);
	fs->free_inodes = (uint64_t)((int64_t)fs->free_inodes + dinodes);
	buf_put(b);
	return 0;
}

/* Try to allocate in group g from offset goal_off; 0 on success, -ENOSPC
 * if the group has no free block. */
static int alloc_in_group(struct pfs_fs *fs, uint32_t g, uint32_t goal_off,
			  uint32_t want, uint64_t *start, uint32_t *got)
{
	struct pfs_group *gm = &fs->groups[g];
	struct buf *b;
	int err;

	if (gm->free_blocks == 0 || !group_usable(fs, g))
		return -ENOSPC;
	err = bcache_read(fs->bc, fs_group_first_block(fs, g) + 1, BUF_META,
			  PFS_MAGIC_BBITMAP, &b);
	if (err)
		return err;
	uint8_t *bits = bm_bits(buf_data(b));
	uint32_t limit = gm->nblocks;
	uint32_t meta = group_meta_blocks(fs);
	if (goal_off < meta || goal_off >= limit)
		goal_off = meta;

	/* Prefer a run of the full length near the goal; else the first
	 * free block at or after the goal; else the first in the group. */
	uint32_t best = limit, best_len = 0;
	uint32_t i = bm_find_clear(bits, goal_off, limit);
	uint32_t scanned = 0;
	while (i < limit && scanned < 4096) {
		uint32_t run = bm_run_clear(bits, i, limit, want);
		if (run > best_len) {
			best = i;
			best_len = run;
			if (run == want)
				break;
		}
		scanned++;
		i = bm_find_clear(bits, i + run, limit);
	}
	if (best_len == 0) {
		i = bm_find_clear(bits, meta, limit);
		if (i < limit) {
			best = i;
			best_len = bm_run_clear(bits, i, limit, want);
		}
	}
	if (best_len == 0) {
		pfs_err("group %u: %u free blocks counted but none in the bitmap",
			g, gm->free_blocks);
		buf_put(b);
		return -EUCLEAN;
	}
	err = tx_dirty(fs, b);
	if (err)
		goto out_put;
	for (uint32_t k = 0; k < best_len; k++) {
		PFS_BUG_ON(bm_test(bits, best + k));        /* A4 */
		bm_set(bits, best + k);
	}
	err = group_adjust(fs, g, -(int64_t)best_len, 0, 0);
	if (err)
		goto out_put;
	*start = fs_group_first_block(fs, g) + best;
	*got = best_len;
out_put:
	buf_put(b);
	return err;
}

int alloc_blocks(struct pfs_fs *fs, uint64_t goal, uint32_t want,
		 uint64_t *start, uint32_t *got)
{
	uint32_t g0, goal_off = 0;

	if (want == 0)
		want = 1;
	if (want > PFS_EXT_MAX_LEN)
		want = PFS_EXT_MAX_LEN;
	if (fs->free_blocks == 0)
		return -ENOSPC;
	if (goal >= fs->group_start && group_of_block(fs, goal) < fs->ngroups) {
		g0 = group_of_block(fs, goal);
		goal_off = (uint32_t)(goal - fs_group_first_block(fs, g0));
	} else {
		g0 = fs->alloc_group % fs->ngroups;
	}
	for (uint32_t n = 0; n < fs->ngroups; n++) {
		uint32_t g = (g0 + n) % fs->ngroups;
		int err = alloc_in_group(fs, g, n == 0 ? goal_off : 0, want, start, got);
		if (err == -ENOSPC)
			continue;
		if (!err) {
			fs->alloc_group = g;
			err = tx_note_alloc(fs, *start, *got);
		}
		return err;
	}
	return -ENOSPC;
}

static int free_now(struct pfs_fs *fs, uint64_t start, uint32_t len)
{
	while (len > 0) {
		if (!alloc_block_valid(fs, start)) {
			pfs_err("freeing block %llu outside any data area",
				(unsigned long long)start);
			return -EUCLEAN;                     /* A3 */
		}
		uint32_t g = group_of_block(fs, start);
		uint64_t first = fs_group_first_block(fs, g);
		uint32_t off = (uint32_t)(start - first);
		uint32_t n = PFS_MIN(len, fs->groups[g].nblocks - off);
		struct buf *b;
		int err = bcache_read(fs->bc, first + 1, BUF_META, PFS_MAGIC_BBITMAP, &b);
		if (err)
			return err;
		uint8_t *bits = bm_bits(buf_data(b));
		for (uint32_t k = 0; k < n; k++) {
			if (!bm_test(bits, off + k)) {
				pfs_err("group %u: freeing free block %llu", g,
					(unsigned long long)(start + k));
				buf_put(b);
				return -EUCLEAN;             /* A4 */
			}
		}
		err = tx_dirty(fs, b);
		if (err) {
			buf_put(b);
			return err;
		}
		for (uint32_t k = 0; k < n; k++)
			bm_clear(bits, off + k);
		buf_put(b);
		err = group_adjust(fs, g, n, 0, 0);
		if (err)
			return err;
		start += n;
		len -= n;
	}
	return 0;
}

int alloc_free_blocks(struct pfs_fs *fs, uint64_t start, uint32_t len)
{
	if (len == 0)
		return 0;
	for (uint32_t k = 0; k < len; k++) {
		/* Every block: a run may not cross another group's metadata. */
		if (!alloc_block_valid(fs, start + k)) {
			pfs_err("freeing blocks %llu+%u: block %llu is outside any data area",
				(unsigned long long)start, len,
				(unsigned long long)(start + k));
			return -EUCLEAN;                             /* A3 */
		}
	}
	if (fs->npending == fs->pending_cap) {
		size_t cap = fs->pending_cap ? fs->pending_cap * 2 : 64;
		struct pfs_extent_run *n = realloc(fs->pending, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		fs->pending = n;
		fs->pending_cap = cap;
	}
	for (uint32_t k = 0; k < len; k++)
		bcache_forget(fs->bc, start + k);
	fs->pending[fs->npending].start = start;
	fs->pending[fs->npending].len = len;
	fs->npending++;
	fs->pending_blocks += len;                                   /* A5 */
	return 0;
}

static int free_inode_now(struct pfs_fs *fs, uint64_t ino, bool is_dir);

/* A group for a deferred free: held, or taken now if no peer holds it
 * (a try: a commit never waits for a cluster lock, glock.c G3). */
static bool group_for_free(struct pfs_fs *fs, uint32_t g)
{
	if (group_usable(fs, g))
		return true;
	return gl_trylock(fs, gl_res_group(g), COORD_EX) == 0 && group_usable(fs, g);
}

/* Apply the deferred frees that fall in groups this node holds or can
 * take at once; the others stay pending until it holds their groups (the
 * FUSE edge asks for them after the request, glock.c G3, and unmount
 * waits for them).  A run is inside one group (alloc_free_blocks checked
 * every block). */
int alloc_apply_pending(struct pfs_fs *fs)
{
	size_t i, kept = 0;
	int err = 0;
	for (i = 0; i < fs->npending; i++) {
		struct pfs_extent_run r = fs->pending[i];
		if (err || !group_for_free(fs, group_of_block(fs, r.start))) {
			fs->pending[kept++] = r;
			continue;
		}
		/* On failure the run stays pending, so nothing is freed twice. */
		err = free_now(fs, r.start, r.len);
		if (err)
			fs->pending[kept++] = r;
		else
			fs->pending_blocks -= r.len;
	}
	fs->npending = kept;
	kept = 0;
	for (i = 0; i < fs->npending_ino; i++) {
		struct pfs_ino_free f = fs->pending_ino[i];
		if (err || !group_for_free(fs, (uint32_t)((f.ino - 1) / fs->ipg))) {
			fs->pending_ino[kept++] = f;
			continue;
		}
		err = free_inode_now(fs, f.ino, f.is_dir);
		if (err)
			fs->pending_ino[kept++] = f;
	}
	fs->npending_ino = kept;
	return err;
}

size_t alloc_foreign_pending(struct pfs_fs *fs, uint32_t *groups, size_t max)
{
	size_t n = 0;
	if (!fs->gl)
		return 0;
	for (size_t i = 0; i < fs->npending + fs->npending_ino && n < max; i++) {
		uint32_t g = i < fs->npending ? group_of_block(fs, fs->pending[i].start)
			: (uint32_t)((fs->pending_ino[i - fs->npending].ino - 1) / fs->ipg);
		if (group_usable(fs, g))
			continue;
		bool dup = false;
		for (size_t k = 0; k < n; k++)
			dup |= groups[k] == g;
		if (!dup)
			groups[n++] = g;
	}
	return n;
}

int alloc_reload_group(struct pfs_fs *fs, uint32_t g)
{
	uint64_t first = fs_group_first_block(fs, g);
	for (uint64_t b = first; b < first + PFS_GROUP_META_BLOCKS; b++)
		bcache_invalidate(fs->bc, b);
	struct buf *b;
	int err = read_desc(fs, g, &b);
	if (err)
		return err;
	const struct pfs_group_desc *d = buf_data(b);
	err = desc_check(fs, g, d);
	if (!err) {
		struct pfs_group *gm = &fs->groups[g];
		fs->free_blocks += (int64_t)le32_to_cpu(d->free_blocks) - (int64_t)gm->free_blocks;
		fs->free_inodes += (int64_t)le32_to_cpu(d->free_inodes) - (int64_t)gm->free_inodes;
		gm->free_blocks = le32_to_cpu(d->free_blocks);
		gm->free_inodes = le32_to_cpu(d->free_inodes);
		gm->ndirs = le32_to_cpu(d->ndirs);
		gm->held = true;
	}
	buf_put(b);
	return err;
}

void alloc_refresh_foreign(struct pfs_fs *fs)
{
	if (!fs->gl)
		return;
	uint8_t *blk = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
	if (!blk)
		return;
	for (uint32_t g = 0; g < fs->ngroups; g++) {
		struct pfs_group *gm = &fs->groups[g];
		uint64_t first = fs_group_first_block(fs, g);
		if (gm->held || bio_read(fs->dev, first, 1, blk) ||
		    pfs_meta_verify(blk, first, PFS_MAGIC_GROUP, fs->csum_seed))
			continue;
		const struct pfs_group_desc *d = (const struct pfs_group_desc *)blk;
		if (desc_check(fs, g, d))
			continue;
		fs->free_blocks += (int64_t)le32_to_cpu(d->free_blocks) - (int64_t)gm->free_blocks;
		fs->free_inodes += (int64_t)le32_to_cpu(d->free_inodes) - (int64_t)gm->free_inodes;
		gm->free_blocks = le32_to_cpu(d->free_blocks);
		gm->free_inodes = le32_to_cpu(d->free_inodes);
	}
	free(blk);
}

int alloc_reserve(struct pfs_fs *fs, uint64_t blocks, uint32_t inodes)
{
	if (!fs->gl)
		return 0;
	for (uint32_t round = 0; round <= fs->ngroups; round++) {
		uint64_t fb = 0, fi = 0;
		for (uint32_t g = 0; g < fs->ngroups; g++) {
			if (fs->groups[g].held) {
				fb += fs->groups[g].free_blocks;
				fi += fs->groups[g].free_inodes;
			}
		}
		if (fb >= blocks && fi >= inodes)
			return 0;
		/* Take, without waiting, the first group with room from this
		 * node's own region on (by its last known counts): a group a
		 * peer holds (or a dead node retains) is skipped.  Only when
		 * every group with room is held elsewhere, wait for one. */
		uint32_t g0 = fs->alloc_group % fs->ngroups, wait_for = UINT32_MAX;
		bool took = false;
		for (uint32_t n = 0; n < fs->ngroups && !took; n++) {
			uint32_t g = (g0 + n) % fs->ngroups;
			struct pfs_group *gm = &fs->groups[g];
			if (gm->held || (fb < blocks && gm->free_blocks == 0) ||
			    (fi < inodes && gm->free_inodes == 0))
				continue;
			if (gl_trylock(fs, gl_res_group(g), COORD_EX) == 0 && gm->held)
				took = true;
			else if (wait_for == UINT32_MAX)
				wait_for = g;
		}
		if (took)
			continue;
		if (wait_for == UINT32_MAX)
			return 0;               /* the allocator will say ENOSPC */
		return gl_need(fs, gl_res_group(wait_for), COORD_EX);
	}
	return 0;
}

/* Group for a new inode: files near the parent, directories spread out. */
static uint32_t inode_group_choice(struct pfs_fs *fs, uint64_t parent, bool is_dir)
{
	uint32_t pg = parent ? (uint32_t)((parent - 1) / fs->ipg) : 0;
	if (pg >= fs->ngroups)
		pg = 0;
	if (!is_dir)
		return pg;
	uint64_t avg_inodes = fs->free_inodes / fs->ngroups;
	uint64_t avg_blocks = fs->free_blocks / fs->ngroups;
	for (uint32_t n = 1; n <= fs->ngroups; n++) {
		uint32_t g = (pg + n) % fs->ngroups;
		if (fs->groups[g].free_inodes > 0 &&
		    fs->groups[g].free_inodes >= avg_inodes &&
		    fs->groups[g].free_blocks >= avg_blocks)
			return g;
	}
	return pg;
}

/* May this node put a new inode at index i of group g?  G1 of glock.c:
 * the inode's table block must be ours in EX (a peer may hold it for
 * the block's other inodes). */
static bool inode_slot_ok(struct pfs_fs *fs, uint32_t g, uint32_t i)
{
	return !fs->gl || gl_trylock(fs, gl_res_inode((uint64_t)g * fs->ipg + i + 1), COORD_EX) == 0;
}

/* Placement of a new inode in group g.  Cluster locks cover one table
 * block of PFS_INODES_PER_BLOCK inodes (glock.c), so: a directory starts
 * an empty table block, and a file goes into its parent's block while it
 * has room.  A directory and the files created in it then share one lock,
 * and nodes working in different directories never contend for one.
 * Otherwise the first free inode whose block this node can lock.
 * Returns fs->ipg if none. */
static uint32_t pick_inode(struct pfs_fs *fs, uint32_t g, const uint8_t *bits,
			   uint64_t parent, bool is_dir)
{
	const uint32_t ipb = PFS_INODES_PER_BLOCK;
	if (!is_dir && parent && (parent - 1) / fs->ipg == g) {
		uint32_t start = (uint32_t)((parent - 1) % fs->ipg) & ~(ipb - 1);
		uint32_t end = PFS_MIN(start + ipb, fs->ipg);
		uint32_t i = bm_find_clear(bits, start, end);
		if (i < end && inode_slot_ok(fs, g, i))
			return i;
	}
	if (is_dir) {
		_Static_assert(PFS_INODES_PER_BLOCK == 16, "two bitmap bytes per table block");
		for (uint32_t k = 0; (k + 1) * ipb <= fs->ipg; k++) {
			if (bits[2 * k] == 0 && bits[2 * k + 1] == 0 && inode_slot_ok(fs, g, k * ipb))
				return k * ipb;
		}
	}
	uint32_t i = bm_find_clear(bits, 0, fs->ipg);
	while (i < fs->ipg && !inode_slot_ok(fs, g, i)) {
		uint32_t next = (i | (ipb - 1)) + 1;
		i = next < fs->ipg ? bm_find_clear(bits, next, fs->ipg) : fs->ipg;
	}
	return i;
}

int alloc_inode(struct pfs_fs *fs, uint64_t parent, bool is_dir, uint64_t *ino)
{
	if (fs->free_inodes == 0)
		return -ENOSPC;
	uint32_t g0 = inode_group_choice(fs, parent, is_dir);
	for (uint32_t n = 0; n < fs->ngroups; n++) {
		uint32_t g = (g0 + n) % fs->ngroups;
		if (fs->groups[g].free_inodes == 0 || !group_usable(fs, g))
			continue;
		struct buf *b;
		int err = bcache_read(fs->bc, fs_group_first_block(fs, g) + 2,
				      BUF_META, PFS_MAGIC_IBITMAP, &b);
		if (err)
			return err;
		uint8_t *bits = bm_bits(buf_data(b));
		if (bm_find_clear(bits, 0, fs->ipg) >= fs->ipg) {
			pfs_err("group %u: free inodes counted but none in the bitmap", g);
			buf_put(b);
			return -EUCLEAN;
		}
		uint32_t i = pick_inode(fs, g, bits, parent, is_dir);
		if (i >= fs->ipg) {
			buf_put(b);
			continue;
		}
		err = tx_dirty(fs, b);
		if (!err) {
			bm_set(bits, i);
			err = group_adjust(fs, g, 0, -1, is_dir ? 1 : 0);
		}
		buf_put(b);
		if (err)
			return err;
		*ino = (uint64_t)g * fs->ipg + i + 1;
		return 0;
	}
	return -ENOSPC;
}

/* Like blocks (A5), a freed inode number is applied at commit, in a
 * group this node holds. */
int alloc_free_inode(struct pfs_fs *fs, uint64_t ino, bool is_dir)
{
	if (ino == 0 || ino > (uint64_t)fs->ngroups * fs->ipg)
		return -EUCLEAN;
	for (size_t k = 0; k < fs->npending_ino; k++) {
		if (fs->pending_ino[k].ino == ino) {
			pfs_err("freeing inode %llu twice", (unsigned long long)ino);
			return -EUCLEAN;                     /* A4 */
		}
	}
	uint32_t g = (uint32_t)((ino - 1) / fs->ipg);
	if (group_usable(fs, g)) {
		/* A4 now where the bitmap is ours to read; else at commit. */
		struct buf *b;
		int err = bcache_read(fs->bc, fs_group_first_block(fs, g) + 2, BUF_META,
				      PFS_MAGIC_IBITMAP, &b);
		if (err)
			return err;
		bool set = bm_test(bm_bits(buf_data(b)), (uint32_t)((ino - 1) % fs->ipg));
		buf_put(b);
		if (!set) {
			pfs_err("group %u: freeing free inode %llu", g, (unsigned long long)ino);
			return -EUCLEAN;
		}
	}
	if (fs->npending_ino == fs->pending_ino_cap) {
		size_t cap = fs->pending_ino_cap ? fs->pending_ino_cap * 2 : 64;
		struct pfs_ino_free *n = realloc(fs->pending_ino, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		fs->pending_ino = n;
		fs->pending_ino_cap = cap;
	}
	fs->pending_ino[fs->npending_ino].ino = ino;
	fs->pending_ino[fs->npending_ino].is_dir = is_dir;
	fs->npending_ino++;
	return 0;
}

static int free_inode_now(struct pfs_fs *fs, uint64_t ino, bool is_dir)
{
	if (ino == 0 || ino > (uint64_t)fs->ngroups * fs->ipg)
		return -EUCLEAN;
	uint32_t g = (uint32_t)((ino - 1) / fs->ipg);
	uint32_t i = (uint32_t)((ino - 1) % fs->ipg);
	struct buf *b;
	int err = bcache_read(fs->bc, fs_group_first_block(fs, g) + 2, BUF_META,
			      PFS_MAGIC_IBITMAP, &b);
	if (err)
		return err;
	uint8_t *bits = bm_bits(buf_data(b));
	if (!bm_test(bits, i)) {
		pfs_err("group %u: freeing free inode %llu", g, (unsigned long long)ino);
		buf_put(b);
		return -EUCLEAN;                             /* A4 */
	}
	err = tx_dirty(fs, b);
	if (!err) {
		bm_clear(bits, i);
		err = group_adjust(fs, g, 0, 1, is_dir ? -1 : 0);
	}
	buf_put(b);
	return err;
}

/* ---- bt_ops for inode-owned trees ---- */

static int abt_alloc(void *arg, uint64_t goal, uint64_t *blk)
{
	struct inode_tree *it = arg;
	uint32_t got;
	if (!goal)
		goal = inode_table_block(it->fs, it->ip->ino, NULL);
	int err = alloc_blocks(it->fs, goal, 1, blk, &got);
	if (!err)
		it->ip->blocks++;
	return err;
}

static int abt_free(void *arg, uint64_t blk)
{
	struct inode_tree *it = arg;
	int err = alloc_free_blocks(it->fs, blk, 1);
	if (!err) {
		if (it->ip->blocks == 0)
			pfs_warn("inode %llu: block count already 0 while freeing a tree node",
				 (unsigned long long)it->ip->ino);
		else
			it->ip->blocks--;
	}
	return err;
}

static int abt_dirty(void *arg, struct buf *b)
{
	struct inode_tree *it = arg;
	return tx_dirty(it->fs, b);
}

const struct bt_ops alloc_bt_ops = {
	.alloc = abt_alloc,
	.free = abt_free,
	.dirty = abt_dirty,
};
