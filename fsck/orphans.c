/*
 * orphans.c -- the orphan lists of the node slots (fs/inode.c I2).
 *
 * Design notes
 *
 * A slot's orphan list starts at its record's orphan_head and follows the
 * inodes' orphan_next fields.  fsck_orphans_scan (start of pass 4) walks
 * every list: each member must be an inode in use, not on any list yet
 * (no cycles, no shared tails), and carry PFS_IF_ORPHAN; a list that runs
 * into anything else is cut before that point.  Every member is marked
 * FI_ON_LIST with its slot.  An inode flagged PFS_IF_ORPHAN that no list
 * holds loses the flag.
 *
 * Members with nlink 0 are not unattached inodes: they are deletions a
 * mount of their slot would finish.  For the slots whose repair was
 * accepted in pass 1 (not cleanly unmounted, or a free slot with a list),
 * fsck_orphans_finish (end of pass 4, after link counts) does that work:
 * members still at nlink 0 and unreferenced are freed with their blocks,
 * the others leave the list, and the slot is marked FREE with an empty
 * list.
 */
#include <errno.h>
#include <string.h>

#include "fsck.h"
#include "pfs_util.h"

static int slot_set_head(struct fsck *f, uint32_t s, uint64_t head)
{
	struct buf *b;
	int err = bcache_read(f->bc, fsck_slot_rec_block(f, s), BUF_META,
			      PFS_MAGIC_SLOT, &b);
	if (err)
		return fsck_fail(f, err, "reading the record of slot %u", s);
	((struct pfs_slot *)buf_data(b))->orphan_head = cpu_to_le64(head);
	fsck_dev_dirty(f, b);
	buf_put(b);
	f->slots[s].orphan_head = head;
	return 0;
}

/* Set (on slot's list) or clear an inode's orphan flag and link. */
static int set_orphan(struct fsck *f, uint64_t ino, bool flag, uint32_t slot,
		      bool keep_next, uint64_t next)
{
	struct pfs_inode *di;
	struct buf *b;
	int err = fsck_ino_read(f, ino, &b, &di);

	if (err)
		return err;
	uint32_t flags = le32_to_cpu(di->flags);
	di->flags = cpu_to_le32(flag ? flags | PFS_IF_ORPHAN : flags & ~PFS_IF_ORPHAN);
	di->orphan_slot = cpu_to_le32(flag ? slot : 0);
	if (!keep_next)
		di->orphan_next = cpu_to_le64(next);
	fsck_ino_dirty(f, b, di);
	buf_put(b);
	return 0;
}

static int scan_list(struct fsck *f, uint32_t s)
{
	uint64_t prev = 0, cur = f->slots[s].orphan_head;

	while (cur) {
		struct fsck_ino *r = fsck_ino_valid(f, cur) ? fsck_itab_live(f, cur) : NULL;
		struct pfs_inode *di;
		struct buf *b;
		uint64_t next;
		int err;

		if (!r || (r->state & (FI_ON_LIST | FI_BAD))) {
			if (!fsck_problem(f, FSCK_FIX_SAFE,
					  "slot %u: orphan list broken at inode %llu", s,
					  (unsigned long long)cur))
				return 0;
			if (prev == 0)
				return slot_set_head(f, s, 0);
			return set_orphan(f, prev, true, s, false, 0);
		}
		r->state |= FI_ON_LIST;
		r->orphan_slot = (uint16_t)(s + 1);
		err = fsck_ino_read(f, cur, &b, &di);
		if (err)
			return err;
		next = le64_to_cpu(di->orphan_next);
		uint32_t named = le32_to_cpu(di->orphan_slot);
		buf_put(b);
		if (!(r->state & FI_ORPHAN_FLAG) &&
		    fsck_problem(f, FSCK_FIX_SAFE,
				 "inode %llu: on the orphan list of slot %u without "
				 "the orphan flag", (unsigned long long)cur, s)) {
			err = set_orphan(f, cur, true, s, true, 0);
			if (err)
				return err;
			r = fsck_itab_live(f, cur);
			r->state |= FI_ORPHAN_FLAG;
		} else if ((r->state & FI_ORPHAN_FLAG) && named != s &&
			   fsck_problem(f, FSCK_FIX_SAFE,
					"inode %llu: on the orphan list of slot %u but "
					"names slot %u", (unsigned long long)cur, s, named)) {
			err = set_orphan(f, cur, true, s, true, 0);
			if (err)
				return err;
		}
		prev = cur;
		cur = next;
	}
	return 0;
}

int fsck_orphans_scan(struct fsck *f)
{
	int err;

	for (uint32_t s = 0; s < f->g.nslots; s++) {
		if (!f->slots[s].rec_ok || !f->slots[s].orphan_head)
			continue;
		err = scan_list(f, s);
		if (err)
			return err;
	}
	for (size_t i = 0; i < f->itab.n; i++) {
		struct fsck_ino *r = &f->itab.v[i];

		if (r->state & (FI_CLEARED | FI_BAD | FI_ON_LIST) ||
		    !(r->state & FI_ORPHAN_FLAG))
			continue;
		if (!fsck_problem(f, FSCK_FIX_SAFE,
				  "inode %llu: orphan flag set, but not on an orphan list",
				  (unsigned long long)r->ino))
			continue;
		uint64_t ino = r->ino;
		err = set_orphan(f, ino, false, 0, false, 0);
		if (err)
			return err;
		r = fsck_itab_find(f, ino);
		r->state &= (uint16_t)~FI_ORPHAN_FLAG;
	}
	return 0;
}

static int slot_mark_free(struct fsck *f, uint32_t s)
{
	struct pfs_slot *sl;
	struct buf *b;
	int err = bcache_read(f->bc, fsck_slot_rec_block(f, s), BUF_META,
			      PFS_MAGIC_SLOT, &b);

	if (err)
		return fsck_fail(f, err, "reading the record of slot %u", s);
	sl = buf_data(b);
	sl->state = cpu_to_le32(PFS_SLOT_FREE);
	sl->orphan_head = 0;
	sl->owner_pid = 0;
	sl->journal_dirty = 0;
	memset(sl->hostname, 0, sizeof(sl->hostname));
	fsck_dev_dirty(f, b);
	buf_put(b);
	f->slots[s].state = PFS_SLOT_FREE;
	f->slots[s].orphan_head = 0;
	return 0;
}

int fsck_orphans_finish(struct fsck *f)
{
	int err;

	for (uint32_t s = 0; s < f->g.nslots; s++) {
		if (!f->slots[s].process)
			continue;
		for (size_t i = 0; i < f->itab.n; i++) {
			struct fsck_ino *r = &f->itab.v[i];
			uint64_t ino = r->ino;

			if ((r->state & FI_CLEARED) || r->orphan_slot != s + 1)
				continue;
			if (r->nlink == 0 && !(r->state & FI_REACHED))
				err = fsck_ino_free(f, ino);
			else
				err = set_orphan(f, ino, false, 0, false, 0);
			if (err)
				return err;
			r = fsck_itab_find(f, ino);
			r->state &= (uint16_t)~(FI_ON_LIST | FI_ORPHAN_FLAG);
			r->orphan_slot = 0;
		}
		err = slot_mark_free(f, s);
		if (err)
			return err;
	}
	return 0;
}
