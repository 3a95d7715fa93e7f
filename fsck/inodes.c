/*
 * inodes.c -- inode records and inode I/O.
 *
 * Design notes
 *
 * f->itab holds one struct fsck_ino per inode found in use, sorted by
 * inode number: pass 3 appends in order, repairs that create an inode
 * insert it in place.  A record is never removed: freeing an inode marks
 * it FI_CLEARED, so lookups stay valid pointers until the next insert
 * (callers do not keep record pointers across fsck_itab_add).
 *
 * Inodes are read and changed in their inode-table block through the
 * block cache (BUF_INODE); a change reseals the inode's own checksum and
 * marks the block dirty (fsck_ino_dirty).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck.h"
#include "pfs_util.h"

bool fsck_ino_valid(const struct fsck *f, uint64_t ino)
{
	return ino >= 1 && ino <= f->g.ninodes;
}

uint64_t fsck_ino_block(const struct fsck *f, uint64_t ino, uint32_t *slot)
{
	uint64_t g = (ino - 1) / f->g.ipg;
	uint64_t i = (ino - 1) % f->g.ipg;

	if (slot)
		*slot = (uint32_t)(i % PFS_INODES_PER_BLOCK);
	return fsck_group_first(f, (uint32_t)g) + PFS_GROUP_META_BLOCKS +
	       i / PFS_INODES_PER_BLOCK;
}

int fsck_ino_read(struct fsck *f, uint64_t ino, struct buf **b,
		  struct pfs_inode **di)
{
	uint32_t slot;
	uint64_t blk = fsck_ino_block(f, ino, &slot);
	int err = bcache_read(f->bc, blk, BUF_INODE, 0, b);

	if (err)
		return fsck_fail(f, err, "reading inode %llu (block %llu)",
				 (unsigned long long)ino, (unsigned long long)blk);
	*di = (struct pfs_inode *)buf_data(*b) + slot;
	return 0;
}

static uint32_t inode_crc(const struct fsck *f, const struct pfs_inode *di)
{
	struct pfs_inode tmp;

	memcpy(&tmp, di, sizeof(tmp));
	tmp.crc = 0;
	return pfs_crc32c(f->g.seed, &tmp, sizeof(tmp));
}

bool fsck_ino_crc_ok(const struct fsck *f, const struct pfs_inode *di)
{
	return le32_to_cpu(di->crc) == inode_crc(f, di);
}

void fsck_ino_seal(const struct fsck *f, struct pfs_inode *di)
{
	di->crc = cpu_to_le32(inode_crc(f, di));
}

void fsck_ino_dirty(struct fsck *f, struct buf *b, struct pfs_inode *di)
{
	fsck_ino_seal(f, di);
	fsck_dev_dirty(f, b);
}

struct fsck_ino *fsck_itab_find(struct fsck *f, uint64_t ino)
{
	size_t lo = 0, hi = f->itab.n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->itab.v[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->itab.n && f->itab.v[lo].ino == ino)
		return &f->itab.v[lo];
	return NULL;
}

struct fsck_ino *fsck_itab_live(struct fsck *f, uint64_t ino)
{
	struct fsck_ino *r = fsck_itab_find(f, ino);

	return r && !(r->state & FI_CLEARED) ? r : NULL;
}

struct fsck_ino *fsck_itab_add(struct fsck *f, const struct fsck_ino *rec)
{
	struct fsck_itab *t = &f->itab;
	size_t pos;

	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 4096;
		struct fsck_ino *nv = realloc(t->v, ncap * sizeof(*nv));
		if (!nv)
			return NULL;
		t->v = nv;
		t->cap = ncap;
	}
	pos = t->n;
	if (pos > 0 && t->v[pos - 1].ino > rec->ino) {
		size_t lo = 0, hi = t->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (t->v[mid].ino < rec->ino)
				lo = mid + 1;
			else
				hi = mid;
		}
		pos = lo;
		memmove(&t->v[pos + 1], &t->v[pos], (t->n - pos) * sizeof(*t->v));
	}
	t->v[pos] = *rec;
	t->n++;
	return &t->v[pos];
}

int fsck_ino_free(struct fsck *f, uint64_t ino)
{
	struct fsck_ino *r = fsck_itab_find(f, ino);
	struct pfs_inode *di;
	struct buf *b;
	uint64_t gen;
	int err = fsck_ino_read(f, ino, &b, &di);

	if (err)
		return err;
	if (r && !(r->state & (FI_BAD | FI_CLEARED))) {
		struct pfs_inode copy;
		memcpy(&copy, di, sizeof(copy));
		err = fsck_map_release(f, ino, &copy);
		if (err) {
			buf_put(b);
			return err;
		}
	}
	/* fs/inode.c I3: a free inode is zero but for its generation. */
	gen = le64_to_cpu(di->generation);
	memset(di, 0, sizeof(*di));
	di->generation = cpu_to_le64(gen);
	fsck_dev_dirty(f, b);
	buf_put(b);
	if (r)
		r->state |= FI_CLEARED;
	fsck_bmap_clear(&f->iused, ino - 1);
	return 0;
}

uint8_t fsck_dtype(uint32_t mode)
{
	return (uint8_t)((mode & S_IFMT) >> 12);
}
