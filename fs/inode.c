/*
 * inode.c -- the in-memory inode cache, inode encode/decode, creation,
 * truncation, deletion and the orphan list.
 *
 * Design notes
 *
 * An inode lives in the cache (fs->itab, a chained hash table) while
 * anything refers to it:
 *   nlookup  references the kernel holds (FUSE lookup counts, dropped by
 *            forget),
 *   nopen    open file handles,
 *   ref      users inside a request (inode_get ... inode_put).
 * Invariants (protected by fs->lock):
 *   I1. The cached struct inode is the truth; the inode-table buffer is
 *       brought up to date by inode_write() under the running transaction
 *       after every change, before the request that made it returns.
 *   I2. An inode with nlink == 0 and any reference left is on the orphan
 *       list of our slot (PFS_IF_ORPHAN).  When the last reference goes
 *       it is deleted: its blocks, xattrs and number are freed and it
 *       leaves the list.  A crash leaves it on the list; orphan_recover()
 *       at the next mount of the slot finishes the deletion.
 *   I3. A free inode on disk is all zeros except its generation, so a
 *       reused number gets a new generation (NFS-style stale handles).
 *   I4. Bytes of the last block past i_size are zero on disk, so growing
 *       a file by truncate or by a write past EOF exposes zeros.
 *   I5. Open across nodes.  A node holds the cluster lock OPEN(ino) SH
 *       while it has the inode open (nopen > 0: open files, directories
 *       and mappings).  An unlinked inode is deleted only under OPEN(ino)
 *       EX, taken without waiting (gl_open_excl) while the inode's lock is
 *       held EX, so an open elsewhere (which needs the inode's lock
 *       first) cannot start meanwhile.  When a peer still has it open the
 *       inode stays on the orphan list of the slot that removed its last
 *       name (orphan_slot) and that node retries (orphan_retry_remote,
 *       with backoff) until the peers closed it; the locks of a dead
 *       peer's opens go at its recovery.  Only the slot named by
 *       orphan_slot deletes an orphan: a peer's last close just forgets
 *       it.  At unmount such orphans stay on the list for the slot's
 *       next mount (orphan_recover).
 *   I6. A cached inode another node deleted is "gone": requests by its
 *       number answer -ESTALE.  When the number was reused meanwhile and a
 *       directory entry names it (lookup, readdirplus: inode_get_named),
 *       the cached struct becomes the new incarnation, keeping the
 *       kernel's lookup count: the entry reply carries the new generation,
 *       so the kernel retires its inode of the old one (FUSE compares
 *       generations) and later forgets it.  Not while the old incarnation
 *       is open here: that stays -ESTALE.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pfs_fs.h"
#include "pfs_util.h"

static inline size_t ihash(const struct pfs_fs *fs, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (fs->itab_size - 1);
}

uint64_t inode_table_block(const struct pfs_fs *fs, uint64_t ino, uint32_t *slot_in_block)
{
	uint64_t g = (ino - 1) / fs->ipg;
	uint64_t i = (ino - 1) % fs->ipg;
	if (slot_in_block)
		*slot_in_block = (uint32_t)(i % PFS_INODES_PER_BLOCK);
	return fs_group_first_block(fs, (uint32_t)g) + PFS_GROUP_META_BLOCKS +
	       i / PFS_INODES_PER_BLOCK;
}

static uint32_t inode_crc(const struct pfs_inode *di, uint32_t seed)
{
	struct pfs_inode tmp;
	memcpy(&tmp, di, sizeof(tmp));
	tmp.crc = 0;
	return pfs_crc32c(seed, &tmp, sizeof(tmp));
}

static void ts_dec(struct timespec *ts, le64 sec, le32 nsec)
{
	ts->tv_sec = (time_t)le64_to_cpu(sec);
	ts->tv_nsec = le32_to_cpu(nsec);
}

int inode_decode(const struct pfs_inode *di, uint64_t ino, uint32_t seed, struct inode *ip)
{
	if (le16_to_cpu(di->magic) != PFS_MAGIC_INODE)
		return -ENOENT;
	if (le32_to_cpu(di->crc) != inode_crc(di, seed)) {
		pfs_err("inode %llu: bad checksum", (unsigned long long)ino);
		return -EUCLEAN;
	}
	if (le64_to_cpu(di->ino) != ino || le32_to_cpu(di->n_inline) > PFS_INLINE_EXTENTS) {
		pfs_err("inode %llu: inconsistent fields", (unsigned long long)ino);
		return -EUCLEAN;
	}
	ip->ino = ino;
	ip->mode = le32_to_cpu(di->mode);
	ip->uid = le32_to_cpu(di->uid);
	ip->gid = le32_to_cpu(di->gid);
	ip->nlink = le32_to_cpu(di->nlink);
	ip->size = le64_to_cpu(di->size);
	ip->blocks = le64_to_cpu(di->blocks);
	ts_dec(&ip->atime, di->atime_sec, di->atime_nsec);
	ts_dec(&ip->mtime, di->mtime_sec, di->mtime_nsec);
	ts_dec(&ip->ctime, di->ctime_sec, di->ctime_nsec);
	ts_dec(&ip->btime, di->btime_sec, di->btime_nsec);
	ip->generation = le64_to_cpu(di->generation);
	ip->flags = le32_to_cpu(di->flags);
	ip->rdev = le32_to_cpu(di->rdev);
	ip->xattr_blk = le64_to_cpu(di->xattr_blk);
	ip->orphan_next = le64_to_cpu(di->orphan_next);
	ip->orphan_slot = le32_to_cpu(di->orphan_slot);
	ip->parent = le64_to_cpu(di->parent);
	ip->tree_root = le64_to_cpu(di->tree_root);
	ip->n_inline = le32_to_cpu(di->n_inline);
	memcpy(ip->inline_area, di->inline_area, PFS_INLINE_SIZE);
	return 0;
}

void inode_encode(const struct inode *ip, struct pfs_inode *di, uint32_t seed)
{
	memset(di, 0, sizeof(*di));
	di->magic = cpu_to_le16(PFS_MAGIC_INODE);
	di->version = cpu_to_le16(1);
	di->ino = cpu_to_le64(ip->ino);
	di->mode = cpu_to_le32(ip->mode);
	di->uid = cpu_to_le32(ip->uid);
	di->gid = cpu_to_le32(ip->gid);
	di->nlink = cpu_to_le32(ip->nlink);
	di->size = cpu_to_le64(ip->size);
	di->blocks = cpu_to_le64(ip->blocks);
	di->atime_sec = cpu_to_le64((uint64_t)ip->atime.tv_sec);
	di->mtime_sec = cpu_to_le64((uint64_t)ip->mtime.tv_sec);
	di->ctime_sec = cpu_to_le64((uint64_t)ip->ctime.tv_sec);
	di->btime_sec = cpu_to_le64((uint64_t)ip->btime.tv_sec);
	di->atime_nsec = cpu_to_le32((uint32_t)ip->atime.tv_nsec);
	di->mtime_nsec = cpu_to_le32((uint32_t)ip->mtime.tv_nsec);
	di->ctime_nsec = cpu_to_le32((uint32_t)ip->ctime.tv_nsec);
	di->btime_nsec = cpu_to_le32((uint32_t)ip->btime.tv_nsec);
	di->generation = cpu_to_le64(ip->generation);
	di->flags = cpu_to_le32(ip->flags);
	di->rdev = cpu_to_le32(ip->rdev);
	di->xattr_blk = cpu_to_le64(ip->xattr_blk);
	di->orphan_next = cpu_to_le64(ip->orphan_next);
	di->orphan_slot = cpu_to_le32(ip->orphan_slot);
	di->parent = cpu_to_le64(ip->parent);
	di->tree_root = cpu_to_le64(ip->tree_root);
	di->n_inline = cpu_to_le32(ip->n_inline);
	memcpy(di->inline_area, ip->inline_area, PFS_INLINE_SIZE);
	di->crc = cpu_to_le32(inode_crc(di, seed));
}

static bool ino_valid(const struct pfs_fs *fs, uint64_t ino)
{
	return ino >= 1 && ino <= (uint64_t)fs->ngroups * fs->ipg;
}

static int itab_grow(struct pfs_fs *fs)
{
	size_t nsize = fs->itab_size ? fs->itab_size * 2 : 1024;
	struct inode **n = calloc(nsize, sizeof(*n));
	if (!n)
		return -ENOMEM;
	size_t osize = fs->itab_size;
	struct inode **o = fs->itab;
	fs->itab = n;
	fs->itab_size = nsize;
	for (size_t i = 0; i < osize; i++) {
		struct inode *ip = o[i];
		while (ip) {
			struct inode *next = ip->hnext;
			size_t h = ihash(fs, ip->ino);
			ip->hnext = n[h];
			n[h] = ip;
			ip = next;
		}
	}
	free(o);
	return 0;
}

static struct inode *itab_find(struct pfs_fs *fs, uint64_t ino)
{
	if (!fs->itab_size)
		return NULL;
	for (struct inode *ip = fs->itab[ihash(fs, ino)]; ip; ip = ip->hnext)
		if (ip->ino == ino)
			return ip;
	return NULL;
}

static int itab_insert(struct pfs_fs *fs, struct inode *ip)
{
	if (fs->ninodes + 1 > fs->itab_size) {
		int err = itab_grow(fs);
		if (err)
			return err;
	}
	size_t h = ihash(fs, ip->ino);
	ip->hnext = fs->itab[h];
	fs->itab[h] = ip;
	fs->ninodes++;
	return 0;
}

static void itab_remove(struct pfs_fs *fs, struct inode *ip)
{
	struct inode **pp = &fs->itab[ihash(fs, ip->ino)];
	while (*pp && *pp != ip)
		pp = &(*pp)->hnext;
	PFS_BUG_ON(!*pp);
	*pp = ip->hnext;
	fs->ninodes--;
}

struct inode *inode_peek(struct pfs_fs *fs, uint64_t ino)
{
	return itab_find(fs, ino);
}

void inode_mark_stale(struct pfs_fs *fs, uint64_t first, unsigned n)
{
	for (uint64_t ino = first; ino < first + n; ino++) {
		struct inode *ip = itab_find(fs, ino);
		if (ip)
			ip->stale = true;
	}
}

/* G4 of glock.c: reread a cached inode another node may have changed.
 * One that was deleted there (or whose number was reused) is gone: it
 * answers -ESTALE and is never written or deleted here. */
static int inode_reload(struct pfs_fs *fs, struct inode *ip, bool renew)
{
	uint32_t slot;
	struct buf *b;
	int err = bcache_read(fs->bc, inode_table_block(fs, ip->ino, &slot), BUF_INODE, 0, &b);
	if (err)
		return err;
	struct inode fresh;
	memset(&fresh, 0, sizeof(fresh));
	err = inode_decode((const struct pfs_inode *)buf_data(b) + slot, ip->ino,
			   fs->csum_seed, &fresh);
	buf_put(b);
	bool reused = !err && fresh.generation != ip->generation;
	if (err == -ENOENT || (reused && !renew)) {
		ip->gone = true;
		ip->stale = false;
		return -ESTALE;
	}
	if (err)
		return err;
	fresh.hnext = ip->hnext;
	fresh.nlookup = ip->nlookup;
	fresh.nopen = ip->nopen;
	fresh.ref = ip->ref;
	/* A new incarnation's last change may not be committed yet. */
	fresh.dirty_seq = reused ? tx_running_seq(fs) : ip->dirty_seq;
	fresh.names = ip->names;
	*ip = fresh;
	return 0;
}

int inode_get(struct pfs_fs *fs, uint64_t ino, struct inode **out)
{
	if (!ino_valid(fs, ino))
		return -ESTALE;
	int err = gl_need_inode(fs, ino, COORD_SH);                 /* G1 */
	if (err)
		return err;
	struct inode *ip = itab_find(fs, ino);
	if (ip) {
		if (ip->gone)
			return -ESTALE;
		if (ip->stale) {
			err = inode_reload(fs, ip, false);
			if (err)
				return err;
		}
		ip->ref++;
		*out = ip;
		return 0;
	}
	uint32_t slot;
	struct buf *b;
	err = bcache_read(fs->bc, inode_table_block(fs, ino, &slot), BUF_INODE, 0, &b);
	if (err)
		return err;
	ip = calloc(1, sizeof(*ip));
	if (!ip) {
		err = -ENOMEM;
		goto out_put_buf;
	}
	const struct pfs_inode *di = (const struct pfs_inode *)buf_data(b) + slot;
	err = inode_decode(di, ino, fs->csum_seed, ip);
	if (err)
		goto out_free_ip;
	err = itab_insert(fs, ip);
	if (err)
		goto out_free_ip;
	buf_put(b);
	ip->ref = 1;
	/* Its last change may not be committed yet: assume it is not. */
	ip->dirty_seq = tx_running_seq(fs);
	*out = ip;
	return 0;

out_free_ip:
	free(ip);
out_put_buf:
	buf_put(b);
	return err;
}

static void inode_drop(struct pfs_fs *fs, struct inode *ip)
{
	itab_remove(fs, ip);
	gl_free_names(ip);
	free(ip);
}

struct inode *inode_ready_to_delete(struct pfs_fs *fs, uint64_t ino, int *err)
{
	*err = 0;
	struct inode *ip = itab_find(fs, ino);
	if (!ip || ip->gone || fs->fenced)
		return ip;
	struct inode *tmp;
	int e = inode_get_ex(fs, ino, &tmp);
	if (e == -ERESTART) {
		*err = e;
		return NULL;
	}
	if (!e)
		inode_put(fs, tmp);     /* the caller's reference keeps it cached */
	return itab_find(fs, ino);
}

int inode_get_ex(struct pfs_fs *fs, uint64_t ino, struct inode **out)
{
	if (!ino_valid(fs, ino))
		return -ESTALE;
	int err = gl_need_inode(fs, ino, COORD_EX);                 /* G1 */
	if (err)
		return err;
	return inode_get(fs, ino, out);
}

int inode_get_named(struct pfs_fs *fs, uint64_t ino, bool ex, struct inode **out)
{
	int err = ex ? inode_get_ex(fs, ino, out) : inode_get(fs, ino, out);
	if (err != -ESTALE)
		return err;
	/* I6: the lock is held (the -ESTALE came after gl_need_inode). */
	struct inode *ip = itab_find(fs, ino);
	if (!ip || !ip->gone || ip->nopen > 0)
		return err;
	ip->gone = false;
	err = inode_reload(fs, ip, true);
	if (err) {
		ip->gone = true;
		return err;
	}
	ip->ref++;
	*out = ip;
	return 0;
}

void inode_put(struct pfs_fs *fs, struct inode *ip)
{
	if (!ip)
		return;
	PFS_BUG_ON(ip->ref == 0);
	if (--ip->ref > 0 || ip->nlookup > 0 || ip->nopen > 0)
		return;
	if (ip->nlink == 0 && !ip->gone) {
		ip->ref++;
		/* G1: normally taken by the request already (no wait). */
		int err = gl_need_inode(fs, ip->ino, COORD_EX);
		if (!err)
			err = inode_evict_if_dead(fs, ip);
		ip->ref--;
		if (err) {
			pfs_err("inode %llu: deletion failed (%d); it stays an orphan",
				(unsigned long long)ip->ino, err);
		}
	}
	inode_drop(fs, ip);
}

int inode_write(struct pfs_fs *fs, struct inode *ip)
{
	uint32_t slot;
	struct buf *b;
	int err = bcache_read(fs->bc, inode_table_block(fs, ip->ino, &slot), BUF_INODE, 0, &b);
	if (err)
		return err;
	err = tx_dirty(fs, b);
	if (!err) {
		inode_encode(ip, (struct pfs_inode *)buf_data(b) + slot, fs->csum_seed);
		ip->dirty_seq = tx_running_seq(fs);
	}
	buf_put(b);
	return err;
}

void inode_touch(struct inode *ip, bool a, bool m, bool c)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (a)
		ip->atime = now;
	if (m)
		ip->mtime = now;
	if (c)
		ip->ctime = now;
}

int inode_new(struct pfs_fs *fs, struct inode *dir, uint32_t mode,
	      uint32_t uid, uint32_t gid, uint32_t rdev, struct inode **out)
{
	uint64_t ino;
	bool is_dir = S_ISDIR(mode);
	int err = alloc_inode(fs, dir ? dir->ino : 0, is_dir, &ino);
	if (err)
		return err;

	uint32_t slot;
	struct buf *b;
	err = bcache_read(fs->bc, inode_table_block(fs, ino, &slot), BUF_INODE, 0, &b);
	if (err)
		goto out_free_ino;
	const struct pfs_inode *old = (const struct pfs_inode *)buf_data(b) + slot;
	if (le16_to_cpu(old->magic) == PFS_MAGIC_INODE) {
		pfs_err("inode %llu: allocated but in use on disk", (unsigned long long)ino);
		buf_put(b);
		err = -EUCLEAN;
		goto out_free_ino;
	}
	uint64_t gen = le64_to_cpu(old->generation) + 1;          /* I3 */
	buf_put(b);

	struct inode *ip = calloc(1, sizeof(*ip));
	if (!ip) {
		err = -ENOMEM;
		goto out_free_ino;
	}
	if (dir && (dir->mode & S_ISGID)) {
		gid = dir->gid;
		if (is_dir)
			mode |= S_ISGID;
	}
	ip->ino = ino;
	ip->mode = mode;
	ip->uid = uid;
	ip->gid = gid;
	ip->nlink = is_dir ? 2 : 1;
	ip->rdev = rdev;
	ip->generation = gen;
	ip->parent = is_dir && dir ? dir->ino : 0;
	inode_touch(ip, true, true, true);
	ip->btime = ip->ctime;
	/* A peer deleted the inode this number last named while our kernel
	 * still referred to it (gone): the kernel's references to the old
	 * node id carry over, as its forgets will come under the same id.
	 * An open one cannot have been deleted (I5). */
	struct inode *prev = itab_find(fs, ino);
	if (prev) {
		if (prev->nopen || prev->ref) {
			pfs_err("inode %llu: allocated while still in use here",
				(unsigned long long)ino);
			err = -EUCLEAN;
			goto out_free_ip;
		}
		ip->nlookup = prev->nlookup;
		inode_drop(fs, prev);
	}
	err = itab_insert(fs, ip);
	if (err)
		goto out_free_ip;
	ip->ref = 1;
	err = inode_write(fs, ip);
	if (err) {
		ip->nlink = 0;
		inode_put(fs, ip);
		return err;
	}
	*out = ip;
	return 0;

out_free_ip:
	free(ip);
out_free_ino:
	alloc_free_inode(fs, ino, is_dir);
	return err;
}

void inode_tree_init(struct pfs_fs *fs, struct inode *ip, uint16_t type,
		     struct inode_tree *it)
{
	memset(it, 0, sizeof(*it));
	it->fs = fs;
	it->ip = ip;
	it->t.bc = fs->bc;
	it->t.ops = &alloc_bt_ops;
	it->t.arg = it;
	it->t.owner = ip->ino;
	it->t.type = type;
	it->t.root = ip->tree_root;
}

int inode_tree_sync(struct inode_tree *it)
{
	it->ip->tree_root = it->t.root;
	return inode_write(it->fs, it->ip);
}

/* Zero bytes [from, PFS_BLOCK_SIZE) of the block holding byte `from`, if
 * that block is mapped and written (I4). */
static int zero_block_tail(struct pfs_fs *fs, struct inode *ip, uint64_t from)
{
	uint32_t off = (uint32_t)(from & (PFS_BLOCK_SIZE - 1));
	if (off == 0)
		return 0;
	struct pfs_extent e;
	uint64_t lblk = from >> PFS_BLOCK_SHIFT;
	int r = extent_lookup(fs, ip, lblk, &e);
	if (r <= 0)
		return r;
	if (le32_to_cpu(e.flags) & PFS_EXT_UNWRITTEN)
		return 0;
	uint64_t pblk = le64_to_cpu(e.pblk) + (lblk - le64_to_cpu(e.lblk));
	return file_zero_range(fs, ip, pblk, off, PFS_BLOCK_SIZE - off);
}

int inode_truncate(struct pfs_fs *fs, struct inode *ip, uint64_t newsize)
{
	int err;
	if (newsize < ip->size) {
		uint64_t first = PFS_DIV_ROUND_UP(newsize, PFS_BLOCK_SIZE);
		err = extent_punch(fs, ip, first, UINT64_MAX - first);
		if (err)
			return err;
		err = zero_block_tail(fs, ip, newsize);
		if (err)
			return err;
	}
	ip->size = newsize;
	return inode_write(fs, ip);
}

static uint64_t slot_block(const struct pfs_fs *fs)
{
	return le64_to_cpu(fs->sb.slot_table_start) + 2ull * fs->slot + 1;
}

static int slot_set_orphan_head(struct pfs_fs *fs, uint64_t head)
{
	struct buf *b;
	int err = bcache_read(fs->bc, slot_block(fs), BUF_META, PFS_MAGIC_SLOT, &b);
	if (err)
		return err;
	err = tx_dirty(fs, b);
	if (!err) {
		struct pfs_slot *s = buf_data(b);
		s->orphan_head = cpu_to_le64(head);
		fs->orphan_head = head;
	}
	buf_put(b);
	return err;
}

int orphan_add(struct pfs_fs *fs, struct inode *ip)
{
	if (ip->flags & PFS_IF_ORPHAN)
		return 0;
	ip->orphan_next = fs->orphan_head;
	ip->orphan_slot = fs->slot;                             /* I5 */
	ip->flags |= PFS_IF_ORPHAN;
	int err = inode_write(fs, ip);
	if (err)
		return err;
	return slot_set_orphan_head(fs, ip->ino);
}

int orphan_remove(struct pfs_fs *fs, struct inode *ip)
{
	if (!(ip->flags & PFS_IF_ORPHAN))
		return 0;
	int err;
	if (fs->orphan_head == ip->ino) {
		err = slot_set_orphan_head(fs, ip->orphan_next);
	} else {
		uint64_t cur = fs->orphan_head;
		unsigned guard = 0;
		err = -EUCLEAN;
		while (cur && guard++ < 10000000) {
			struct inode *p;
			int e = inode_get_ex(fs, cur, &p);      /* G1: written */
			if (e) {
				err = e;
				break;
			}
			if (p->orphan_next == ip->ino) {
				p->orphan_next = ip->orphan_next;
				err = inode_write(fs, p);
				inode_put(fs, p);
				break;
			}
			cur = p->orphan_next;
			inode_put(fs, p);
		}
		if (err == -EUCLEAN)
			pfs_err("inode %llu: not found on the orphan list",
				(unsigned long long)ip->ino);
	}
	if (err)
		return err;
	ip->flags &= ~PFS_IF_ORPHAN;
	ip->orphan_next = 0;
	ip->orphan_slot = 0;
	return inode_write(fs, ip);
}

static int inode_wipe(struct pfs_fs *fs, struct inode *ip);

int inode_open_ref(struct pfs_fs *fs, struct inode *ip)
{
	if (ip->nopen == 0) {
		int err = gl_open_hold(fs, ip->ino);            /* I5 */
		if (err)
			return err;
	}
	ip->nopen++;
	return 0;
}

void inode_open_unref(struct pfs_fs *fs, struct inode *ip)
{
	PFS_BUG_ON(ip->nopen == 0);
	if (--ip->nopen == 0)
		gl_open_drop(fs, ip->ino);                      /* I5 */
}

/* Free everything of an unlinked inode with no users left (I2, I3, I5). */
int inode_evict_if_dead(struct pfs_fs *fs, struct inode *ip)
{
	if (ip->nlink > 0 || ip->nlookup > 0 || ip->nopen > 0 || ip->ref > 1)
		return 0;
	if ((ip->flags & PFS_IF_ORPHAN) && ip->orphan_slot != fs->slot)
		return 0;                       /* I5: that slot deletes it */
	int err = gl_open_excl(fs, ip->ino);
	if (err == -EBUSY) {
		/* I5: open on a peer; ours to delete once it closed. */
		err = orphan_add(fs, ip);
		if (!err)
			orphan_wait_add(fs, ip->ino);
		return err;
	}
	if (err)
		return err;
	err = inode_wipe(fs, ip);
	gl_open_drop(fs, ip->ino);                      /* the EX goes */
	if (!err)
		orphan_wait_del(fs, ip->ino);
	return err;
}

/* Free the blocks, xattrs, number and list entry of an unlinked inode
 * nobody uses (I2, I3), under OPEN(ino) EX (I5). */
static int inode_wipe(struct pfs_fs *fs, struct inode *ip)
{
	int err;
	if (S_ISDIR(ip->mode))
		err = dir_destroy(fs, ip);
	else if (ip->flags & PFS_IF_INLINE_DATA)
		err = 0;
	else
		err = extent_destroy(fs, ip);
	if (err)
		return err;
	err = xattr_destroy(fs, ip);
	if (err)
		return err;
	err = orphan_remove(fs, ip);
	if (err)
		return err;

	uint32_t slot;
	struct buf *b;
	err = bcache_read(fs->bc, inode_table_block(fs, ip->ino, &slot), BUF_INODE, 0, &b);
	if (err)
		return err;
	err = tx_dirty(fs, b);
	if (!err) {
		struct pfs_inode *di = (struct pfs_inode *)buf_data(b) + slot;
		memset(di, 0, sizeof(*di));
		di->generation = cpu_to_le64(ip->generation);
	}
	buf_put(b);
	if (err)
		return err;
	return alloc_free_inode(fs, ip->ino, S_ISDIR(ip->mode));
}

/* Finish deletions interrupted by a crash or an unmount with open
 * unlinked files (I2); an orphan a peer still has open stays listed and
 * is retried (I5).  Runs at mount, before any request. */
int orphan_recover(struct pfs_fs *fs)
{
	uint64_t n = 0, kept = 0, limit = (uint64_t)fs->ngroups * fs->ipg;
	uint64_t cur = fs->orphan_head;
	while (cur) {
		struct inode *ip;
		int err = inode_get_ex(fs, cur, &ip);
		if (err) {
			pfs_err("orphan list: inode %llu unreadable (%d)",
				(unsigned long long)cur, err);
			return err;
		}
		if (!(ip->flags & PFS_IF_ORPHAN) || ++n > limit) {
			/* A list that does not hold together: drop it rather
			 * than guess; fsck reclaims what it held. */
			pfs_err("orphan list: inode %llu is not an orphan (or the list loops); "
				"list dropped, run fsck.peerfs", (unsigned long long)cur);
			inode_put(fs, ip);
			return slot_set_orphan_head(fs, 0);
		}
		uint64_t next = ip->orphan_next;
		ip->orphan_slot = fs->slot;     /* on our list: ours (I5) */
		if (ip->nlink > 0) {
			err = orphan_remove(fs, ip);   /* linked again: not an orphan */
			inode_put(fs, ip);
			if (err)
				return err;
		} else {
			size_t waiting = fs->nowait;
			inode_put(fs, ip);      /* nlink 0: the last ref deletes it (I2) */
			kept += fs->nowait > waiting;
		}
		cur = next;
	}
	if (n)
		pfs_info("orphan list: %llu inodes reclaimed, %llu still open on peers",
			 (unsigned long long)(n - kept), (unsigned long long)kept);
	return 0;
}

/* ---- orphans open on peers (I5) ---- */

#define OWAIT_FIRST_MS  500
#define OWAIT_MAX_MS    30000

void orphan_wait_add(struct pfs_fs *fs, uint64_t ino)
{
	for (size_t i = 0; i < fs->nowait; i++)
		if (fs->owait[i].ino == ino)
			return;
	if (fs->nowait == fs->owait_cap) {
		size_t cap = fs->owait_cap ? 2 * fs->owait_cap : 16;
		struct orphan_wait *v = realloc(fs->owait, cap * sizeof(*v));
		if (!v) {
			pfs_warn("inode %llu: open on a peer and no memory to retry; "
				 "it stays an orphan until the next mount",
				 (unsigned long long)ino);
			return;
		}
		fs->owait = v;
		fs->owait_cap = cap;
	}
	fs->owait[fs->nowait++] = (struct orphan_wait){
		.ino = ino,
		.due_ns = pfs_now_mono_ns() + OWAIT_FIRST_MS * 1000000ull,
		.backoff_ms = OWAIT_FIRST_MS,
	};
}

void orphan_wait_del(struct pfs_fs *fs, uint64_t ino)
{
	for (size_t i = 0; i < fs->nowait; i++) {
		if (fs->owait[i].ino == ino) {
			fs->owait[i] = fs->owait[--fs->nowait];
			return;
		}
	}
}

/* One retry of an orphan a peer had open; under fs->lock. */
static void orphan_retry_one_locked(struct pfs_fs *fs, uint64_t ino)
{
	struct inode *ip;
	fs->op_changed = false;
	tx_op_begin(fs);
	int err = inode_get_ex(fs, ino, &ip);
	if (!err) {
		if (ip->nlink != 0 || !(ip->flags & PFS_IF_ORPHAN) || ip->orphan_slot != fs->slot)
			orphan_wait_del(fs, ino);       /* not ours to delete any more */
		inode_put(fs, ip);                      /* retries the deletion */
	} else if (err == -ESTALE) {
		orphan_wait_del(fs, ino);
	}
	tx_op_end(fs);
}

void orphan_retry_remote(struct pfs_fs *fs)
{
	uint64_t due[8];
	size_t n = 0;
	uint64_t now = pfs_now_mono_ns();

	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < fs->nowait && n < 8 && !fs->fenced; i++) {
		struct orphan_wait *w = &fs->owait[i];
		if (w->due_ns > now)
			continue;
		due[n++] = w->ino;
		w->due_ns = now + (uint64_t)w->backoff_ms * 1000000ull;
		w->backoff_ms = PFS_MIN(2 * w->backoff_ms, (uint32_t)OWAIT_MAX_MS);
	}
	pthread_mutex_unlock(&fs->lock);
	for (size_t i = 0; i < n; i++) {
		/* Ask for the inode's lock without fs->lock (glock.c G3). */
		gl_acquire(fs, gl_res_inode(due[i]), COORD_EX, 200);
		pthread_mutex_lock(&fs->lock);
		if (!fs->fenced)
			orphan_retry_one_locked(fs, due[i]);
		pthread_mutex_unlock(&fs->lock);
		gl_op_done(fs);
	}
}

