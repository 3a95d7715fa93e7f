/*
 * pass3_inodes.c -- pass 3: every inode slot of every inode table.
 *
 * Design notes
 *
 * A slot whose magic is 0 is free (fs/inode.c I3); whether the bitmap
 * agrees is pass 5's business.  Any other slot is examined on a working
 * copy, in this order:
 *   1. magic: not PFS_MAGIC_INODE is garbage: clear the slot;
 *   2. structure: the inode number field, a valid file type, at most
 *      PFS_INLINE_EXTENTS inline extents, flags that fit the type (inline
 *      data only for symlinks of 1..PFS_INLINE_SIZE bytes, no extent map
 *      on directories and special files, tree form without inline extents
 *      and inline form without a tree root), symlink length: a violation
 *      clears the inode;
 *   3. checksum: an inode that passes 2 with a bad checksum is resealed;
 *   4. version, unknown flags;
 *   5. the extent map (extents.c) or directory index, then the xattr
 *      block (xattr.c): both claim their blocks;
 *   6. blocks == data blocks + tree nodes + xattr block;
 *   7. size: no written extent past the end of a regular file, a
 *      directory's size is its index size (fs/dir.c D5), special files are
 *      empty, an extent-mapped symlink maps its first block.
 * An inode whose clearing is declined stays in use, marked FI_BAD: later
 * passes count it as in use and look no further into it.
 *
 * The working copy is stored back (resealed) only if a fix changed it.
 * At the end every inode in use has a record in f->itab and its bit in
 * f->iused, and the computed block usage is complete, so repairs may
 * allocate from now on (f->alloc_ready).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck.h"
#include "pfs_util.h"

#define KNOWN_FLAGS (PFS_IF_EXTENT_TREE | PFS_IF_INLINE_DATA | PFS_IF_ORPHAN)

static bool is_special(uint32_t mode)
{
	return S_ISCHR(mode) || S_ISBLK(mode) || S_ISFIFO(mode) || S_ISSOCK(mode);
}

/* Why the inode cannot be used at all, or NULL. */
static const char *structure_problem(uint64_t ino, const struct pfs_inode *di,
				     char *buf, size_t n)
{
	uint32_t mode = le32_to_cpu(di->mode);
	uint32_t flags = le32_to_cpu(di->flags);
	uint32_t nin = le32_to_cpu(di->n_inline);
	uint64_t size = le64_to_cpu(di->size);
	uint64_t root = le64_to_cpu(di->tree_root);
	bool tree = flags & PFS_IF_EXTENT_TREE;

	if (le64_to_cpu(di->ino) != ino) {
		snprintf(buf, n, "inode number field is %llu",
			 (unsigned long long)le64_to_cpu(di->ino));
		return buf;
	}
	if (!S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode) && !is_special(mode)) {
		snprintf(buf, n, "invalid file type 0%o", mode & S_IFMT);
		return buf;
	}
	if (nin > PFS_INLINE_EXTENTS) {
		snprintf(buf, n, "%u inline extents", nin);
		return buf;
	}
	if (flags & PFS_IF_INLINE_DATA) {
		if (!S_ISLNK(mode))
			return "inline data flag on a non-symlink";
		if (tree)
			return "inline data and extent tree flags both set";
		if (nin || root)
			return "inline symlink with an extent map";
		if (size == 0 || size > PFS_INLINE_SIZE) {
			snprintf(buf, n, "inline symlink of %llu bytes",
				 (unsigned long long)size);
			return buf;
		}
		return NULL;
	}
	if (S_ISDIR(mode) && (tree || nin))
		return "directory with an extent map";
	if (is_special(mode) && (tree || nin || root))
		return "special file with an extent map";
	if (S_ISREG(mode) || S_ISLNK(mode)) {
		if (tree && nin)
			return "extent tree with inline extents";
		if (!tree && root)
			return "inline extents with a tree root";
	}
	if (S_ISLNK(mode) && (size == 0 || size > PFS_SYMLINK_MAX)) {
		snprintf(buf, n, "symlink of %llu bytes", (unsigned long long)size);
		return buf;
	}
	return NULL;
}

/* Zero an inode slot, keeping its generation (fs/inode.c I3). */
static void zero_slot(struct fsck *f, struct buf *b, struct pfs_inode *di)
{
	uint64_t gen = le64_to_cpu(di->generation);

	memset(di, 0, sizeof(*di));
	di->generation = cpu_to_le64(gen);
	fsck_dev_dirty(f, b);
}

static int add_record(struct fsck *f, uint64_t ino, const struct pfs_inode *di,
		      uint16_t state)
{
	struct fsck_ino rec = { 0 };

	rec.ino = ino;
	rec.mode = le32_to_cpu(di->mode);
	rec.nlink = le32_to_cpu(di->nlink);
	rec.parent = le64_to_cpu(di->parent);
	rec.state = state;
	if (le32_to_cpu(di->flags) & PFS_IF_ORPHAN)
		rec.state |= FI_ORPHAN_FLAG;
	if (!fsck_itab_add(f, &rec))
		return fsck_fail(f, -ENOMEM, "recording inode %llu", (unsigned long long)ino);
	fsck_bmap_set(&f->iused, ino - 1);
	return 0;
}

/* Steps 6 and 7 on the working copy w. */
static void check_counts(struct fsck *f, uint64_t ino, struct pfs_inode *w,
			 const struct fsck_map_info *mi, uint64_t xblocks,
			 bool *changed, bool *clear)
{
	uint32_t mode = le32_to_cpu(w->mode);
	uint64_t counted = mi->blocks + xblocks;
	uint64_t size = le64_to_cpu(w->size);

	if (le64_to_cpu(w->blocks) != counted &&
	    fsck_problem(f, FSCK_FIX_ASK, "inode %llu: blocks is %llu, counted %llu",
			 (unsigned long long)ino,
			 (unsigned long long)le64_to_cpu(w->blocks),
			 (unsigned long long)counted)) {
		w->blocks = cpu_to_le64(counted);
		*changed = true;
	}
	if (S_ISREG(mode) && mi->written_end > PFS_DIV_ROUND_UP(size, PFS_BLOCK_SIZE) &&
	    fsck_problem(f, FSCK_FIX_ASK, "inode %llu: size is %llu, but file block "
			 "%llu is mapped", (unsigned long long)ino,
			 (unsigned long long)size,
			 (unsigned long long)(mi->written_end - 1))) {
		w->size = cpu_to_le64(mi->written_end * PFS_BLOCK_SIZE);
		*changed = true;
	}
	if (S_ISDIR(mode) && size != mi->blocks * PFS_BLOCK_SIZE &&
	    fsck_problem(f, FSCK_FIX_ASK, "directory %llu: size is %llu, expected %llu",
			 (unsigned long long)ino, (unsigned long long)size,
			 (unsigned long long)(mi->blocks * PFS_BLOCK_SIZE))) {
		w->size = cpu_to_le64(mi->blocks * PFS_BLOCK_SIZE);
		*changed = true;
	}
	if (is_special(mode) && size != 0 &&
	    fsck_problem(f, FSCK_FIX_ASK, "inode %llu: special file with size %llu",
			 (unsigned long long)ino, (unsigned long long)size)) {
		w->size = 0;
		*changed = true;
	}
	if (S_ISLNK(mode) && !(le32_to_cpu(w->flags) & PFS_IF_INLINE_DATA) &&
	    !mi->maps_block0 &&
	    fsck_problem(f, FSCK_FIX_ASK, "inode %llu: symlink without a target block",
			 (unsigned long long)ino))
		*clear = true;
}

static int check_inode(struct fsck *f, uint64_t ino, struct buf *b,
		       struct pfs_inode *di)
{
	struct fsck_map_info mi = { 0 };
	struct pfs_inode w;
	uint64_t xblocks = 0;
	uint16_t state = 0;
	bool changed = false, clear = false, index_bad = false;
	const char *why;
	char buf[64];
	int err;

	memcpy(&w, di, sizeof(w));
	if (le16_to_cpu(w.magic) != PFS_MAGIC_INODE) {
		if (fsck_problem(f, FSCK_FIX_ASK, "inode %llu: bad magic 0x%04x",
				 (unsigned long long)ino, le16_to_cpu(w.magic))) {
			zero_slot(f, b, di);
			return 0;
		}
		return add_record(f, ino, &w, FI_BAD);
	}
	bool crc_ok = fsck_ino_crc_ok(f, &w);
	why = structure_problem(ino, &w, buf, sizeof(buf));
	if (why) {
		if (fsck_problem(f, FSCK_FIX_ASK, "inode %llu: %s",
				 (unsigned long long)ino, why)) {
			zero_slot(f, b, di);
			return 0;
		}
		return add_record(f, ino, &w, FI_BAD);
	}
	if (!crc_ok && fsck_problem(f, FSCK_FIX_ASK, "inode %llu: bad checksum",
				    (unsigned long long)ino))
		changed = true;
	if (le16_to_cpu(w.version) != 1 &&
	    fsck_problem(f, FSCK_FIX_ASK, "inode %llu: version is %u",
			 (unsigned long long)ino, le16_to_cpu(w.version))) {
		w.version = cpu_to_le16(1);
		changed = true;
	}
	uint32_t flags = le32_to_cpu(w.flags);
	if ((flags & ~KNOWN_FLAGS) &&
	    fsck_problem(f, FSCK_FIX_ASK, "inode %llu: unknown flags 0x%x",
			 (unsigned long long)ino, flags & ~KNOWN_FLAGS)) {
		w.flags = cpu_to_le32(flags & KNOWN_FLAGS);
		changed = true;
	}

	uint32_t mode = le32_to_cpu(w.mode);
	if (S_ISDIR(mode)) {
		err = fsck_dir_index_check(f, ino, &w, &mi.blocks, &changed, &index_bad);
		if (index_bad)
			state |= FI_INDEX_BAD;
	} else if ((S_ISREG(mode) || S_ISLNK(mode)) &&
		   !(le32_to_cpu(w.flags) & PFS_IF_INLINE_DATA)) {
		err = fsck_extents_check(f, ino, &w, &mi, &changed);
	} else {
		err = 0;
	}
	if (!err)
		err = fsck_xattr_check(f, ino, &w, &xblocks, &changed);
	if (err)
		return err;
	check_counts(f, ino, &w, &mi, xblocks, &changed, &clear);
	if (clear) {
		err = fsck_map_release(f, ino, &w);
		if (err)
			return err;
		zero_slot(f, b, di);
		return 0;
	}
	if (changed) {
		memcpy(di, &w, sizeof(w));
		fsck_ino_dirty(f, b, di);
	}
	return add_record(f, ino, &w, state);
}

int fsck_pass3_inodes(struct fsck *f)
{
	for (uint32_t g = 0; g < f->g.ngroups; g++) {
		uint64_t table = fsck_group_first(f, g) + PFS_GROUP_META_BLOCKS;

		for (uint32_t bi = 0; bi < f->g.itb; bi++) {
			struct buf *b;
			int err = bcache_read(f->bc, table + bi, BUF_INODE, 0, &b);
			if (err)
				return fsck_fail(f, err, "reading inode table block %llu",
						 (unsigned long long)(table + bi));
			struct pfs_inode *v = buf_data(b);
			for (uint32_t s = 0; s < PFS_INODES_PER_BLOCK && !err; s++) {
				uint64_t ino = (uint64_t)g * f->g.ipg +
					       (uint64_t)bi * PFS_INODES_PER_BLOCK + s + 1;
				if (le16_to_cpu(v[s].magic) == 0)
					continue;
				err = check_inode(f, ino, b, &v[s]);
			}
			buf_put(b);
			if (err)
				return err;
		}
		fsck_progress(f, 3, g + 1, f->g.ngroups);
	}
	fsck_progress_end(f);
	f->alloc_ready = true;
	return 0;
}
