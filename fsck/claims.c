/*
 * claims.c -- who owns which block: the volume-wide computed block usage
 * (f->used), duplicate claims, giving blocks back and allocating blocks
 * for repairs.
 *
 * Design notes
 *
 * f->used has one bit per device block.  Pass 0/2 set the bits of the
 * volume's own metadata; pass 3 claims every block an inode references,
 * in inode order.  Each claim is also recorded as a run (pblk, len,
 * owner) in claim order, so the first owner of a block claimed twice can
 * be named; contiguous claims of one owner share a run.
 *
 * A duplicate claim is reported once per run of doubly claimed blocks.  If
 * the fix is accepted the later claim is dropped whole (the caller removes
 * the reference: the first owner keeps the blocks); if it is declined the
 * claim is recorded anyway and the doubly claimed blocks are remembered as
 * shared, so that giving back one owner's blocks later never frees a block
 * the other still uses.
 *
 * Allocation (repairs in pass 4: lost+found, directory index nodes) takes
 * a block free in the computed usage and, if the group's bitmap block is
 * readable, free on disk too: a block the computed usage missed (its owner
 * damaged and kept) is never handed out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsck.h"
#include "pfs_util.h"

int fsck_claims_init(struct fsck *f)
{
	memset(&f->claims, 0, sizeof(f->claims));
	return fsck_bmap_init(&f->used, f->g.nblocks);
}

void fsck_claims_fini(struct fsck *f)
{
	free(f->claims.runs);
	free(f->claims.shared);
	memset(&f->claims, 0, sizeof(f->claims));
	fsck_bmap_free(&f->used);
}

uint64_t fsck_group_first(const struct fsck *f, uint32_t g)
{
	return f->g.group_start + (uint64_t)g * f->g.bpg;
}

bool fsck_block_valid(const struct fsck *f, uint64_t blk)
{
	if (blk < f->g.group_start)
		return false;
	uint64_t g = (blk - f->g.group_start) / f->g.bpg;
	if (g >= f->g.ngroups)
		return false;
	uint64_t off = blk - fsck_group_first(f, (uint32_t)g);
	return off >= f->g.meta && off < f->groups[g].nblocks;
}

const char *fsck_run_problem(const struct fsck *f, uint64_t pblk, uint64_t len)
{
	if (len == 0)
		return "zero length";
	if (pblk + len < pblk || pblk + len > f->g.nblocks)
		return "beyond the end of the volume";
	if (!fsck_block_valid(f, pblk) || !fsck_block_valid(f, pblk + len - 1))
		return "outside the data area";
	if ((pblk - f->g.group_start) / f->g.bpg !=
	    (pblk + len - 1 - f->g.group_start) / f->g.bpg)
		return "outside the data area";
	return NULL;
}

static int run_append(struct fsck_run **v, size_t *n, size_t *cap,
		      uint64_t owner, uint64_t pblk, uint32_t len, bool merge)
{
	if (merge && *n > 0) {
		struct fsck_run *last = &(*v)[*n - 1];
		if (last->owner == owner && last->pblk + last->len == pblk &&
		    (uint64_t)last->len + len <= UINT32_MAX) {
			last->len += len;
			return 0;
		}
	}
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 1024;
		struct fsck_run *nv = realloc(*v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = (struct fsck_run){ .pblk = pblk, .owner = owner, .len = len };
	return 0;
}

/* The first live owner of blk in claim order, 0 if none. */
static uint64_t first_owner(const struct fsck *f, uint64_t blk)
{
	for (size_t i = 0; i < f->claims.nruns; i++) {
		const struct fsck_run *r = &f->claims.runs[i];
		if (r->owner && blk >= r->pblk && blk - r->pblk < r->len)
			return r->owner;
	}
	return 0;
}

static bool report_dup(struct fsck *f, uint64_t owner, uint64_t first,
		       uint64_t from, uint64_t to)
{
	char where[64];

	if (to - from == 1)
		snprintf(where, sizeof(where), "block %llu", (unsigned long long)from);
	else
		snprintf(where, sizeof(where), "blocks %llu-%llu",
			 (unsigned long long)from, (unsigned long long)(to - 1));
	if (first == owner)
		return fsck_problem(f, FSCK_FIX_ASK, "%s: claimed twice by inode %llu",
				    where, (unsigned long long)owner);
	if (first == 0)
		return fsck_problem(f, FSCK_FIX_ASK,
				    "%s: claimed by inode %llu but already in use",
				    where, (unsigned long long)owner);
	return fsck_problem(f, FSCK_FIX_ASK, "%s: claimed by inode %llu and inode %llu",
			    where, (unsigned long long)first,
			    (unsigned long long)owner);
}

int fsck_claim(struct fsck *f, uint64_t owner, uint64_t pblk, uint32_t len)
{
	uint64_t end = pblk + len;
	uint64_t hit = fsck_bmap_next_set(&f->used, pblk, end);
	bool drop = false;
	int err;

	if (hit < end) {
		while (hit < end) {
			uint64_t stop = fsck_bmap_next_clear(&f->used, hit, end);
			if (report_dup(f, owner, first_owner(f, hit), hit, stop))
				drop = true;
			else {
				err = run_append(&f->claims.shared, &f->claims.nshared,
						 &f->claims.shared_cap, owner, hit,
						 (uint32_t)(stop - hit), false);
				if (err)
					return fsck_fail(f, err, "recording shared blocks");
			}
			hit = fsck_bmap_next_set(&f->used, stop, end);
		}
		if (drop)
			return 1;
	}
	return fsck_claim_new(f, owner, pblk, len);
}

int fsck_claim_new(struct fsck *f, uint64_t owner, uint64_t pblk, uint32_t len)
{
	int err = run_append(&f->claims.runs, &f->claims.nruns, &f->claims.cap,
			     owner, pblk, len, true);
	if (err)
		return fsck_fail(f, err, "recording block claims");
	fsck_bmap_set_range(&f->used, pblk, len);
	return 0;
}

static bool block_shared(const struct fsck *f, uint64_t blk)
{
	for (size_t i = 0; i < f->claims.nshared; i++) {
		const struct fsck_run *r = &f->claims.shared[i];
		if (blk >= r->pblk && blk - r->pblk < r->len)
			return true;
	}
	return false;
}

void fsck_unclaim(struct fsck *f, uint64_t owner, uint64_t pblk, uint32_t len)
{
	uint64_t end = pblk + len;

	for (uint64_t b = pblk; b < end; b++)
		if (!f->claims.nshared || !block_shared(f, b))
			fsck_bmap_clear(&f->used, b);
	for (size_t i = 0; i < f->claims.nruns; i++) {
		struct fsck_run *r = &f->claims.runs[i];
		uint64_t rs = r->pblk, re = r->pblk + r->len;

		if (r->owner != owner || re <= pblk || rs >= end)
			continue;
		if (pblk <= rs && end >= re) {
			r->owner = 0;
		} else if (pblk <= rs) {
			r->pblk = end;
			r->len = (uint32_t)(re - end);
		} else if (end >= re) {
			r->len = (uint32_t)(pblk - rs);
		} else {
			r->len = (uint32_t)(pblk - rs);
			/* The right part keeps its owner; a failure to
			 * record it only loses the name of that owner in a
			 * later duplicate report. */
			run_append(&f->claims.runs, &f->claims.nruns, &f->claims.cap,
				   owner, end, (uint32_t)(re - end), false);
		}
	}
}

/* Is bit off of group g's on-disk block bitmap clear (or unknown)? */
static int disk_free(struct fsck *f, uint32_t g, uint32_t off, bool *is_free)
{
	struct buf *b;
	int err;

	*is_free = true;
	if (!f->groups[g].bbm_ok || f->groups[g].bbm_rewrite)
		return 0;
	err = bcache_read(f->bc, fsck_group_first(f, g) + 1, BUF_META,
			  PFS_MAGIC_BBITMAP, &b);
	if (err == -EUCLEAN)
		return 0;
	if (err)
		return fsck_fail(f, err, "reading the block bitmap of group %u", g);
	*is_free = !fsck_disk_bit(buf_data(b), off);
	buf_put(b);
	return 0;
}

int fsck_alloc_block(struct fsck *f, uint64_t owner, uint64_t goal, uint64_t *blk)
{
	uint32_t g0 = 0;

	if (!f->alloc_ready)
		return -ENOSPC;
	if (goal >= f->g.group_start &&
	    (goal - f->g.group_start) / f->g.bpg < f->g.ngroups)
		g0 = (uint32_t)((goal - f->g.group_start) / f->g.bpg);
	for (uint32_t n = 0; n < f->g.ngroups; n++) {
		uint32_t g = (g0 + n) % f->g.ngroups;
		uint64_t first = fsck_group_first(f, g);
		uint64_t end = first + f->groups[g].nblocks;
		uint64_t cand = fsck_bmap_next_clear(&f->used, first + f->g.meta, end);

		while (cand < end) {
			bool is_free;
			int err = disk_free(f, g, (uint32_t)(cand - first), &is_free);
			if (err)
				return err;
			if (is_free) {
				err = fsck_claim_new(f, owner, cand, 1);
				if (err)
					return err;
				*blk = cand;
				return 0;
			}
			cand = fsck_bmap_next_clear(&f->used, cand + 1, end);
		}
	}
	return fsck_fail(f, -ENOSPC, "no free block for a repair");
}
