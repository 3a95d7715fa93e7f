/*
 * fs/xattr.c -- extended attributes, one block per inode.
 *
 * Representation
 *   ip->xattr_blk is 0 or the number of a metadata block (struct
 *   pfs_xattr_blk, magic PFS_MAGIC_XATTR, owner = the inode) allocated
 *   near the inode's table block.  After the header, `used` bytes hold
 *   `count` packed entries { u8 name_len; le16 value_len; name; value }
 *   with full names ("user.foo", "system.posix_acl_access").  A change
 *   removes the old entry (closing the gap) and appends the new one, so
 *   entries are in no particular order.  All of an inode's names and
 *   values, at 3 bytes of overhead each, share PFS_XATTR_SPACE (4056)
 *   bytes: at most about 4 KiB of xattrs per inode; a set that does not
 *   fit fails with -ENOSPC.
 *
 *   Accepted names: "user.", "trusted." and "security." followed by at
 *   least one byte, and exactly "system.posix_acl_access" and
 *   "system.posix_acl_default".  Another namespace is -EOPNOTSUPP; a
 *   prefix alone is -EINVAL; an empty name or one longer than
 *   XATTR_NAME_MAX (255) is -ERANGE, as setxattr(2) and getxattr(2) do on
 *   Linux.  A value longer than XATTR_SIZE_MAX is -E2BIG.  ACL values are
 *   opaque here; checking their format and the permission checks are the
 *   caller's.
 *
 * Invariants
 *   A1. ip->xattr_blk != 0 iff the inode has an xattr: the block is
 *       allocated by the first set and freed when its last entry is
 *       removed.  (A block read with count 0 is tolerated.)
 *   A2. Block structure: owner == ip->ino, used <= PFS_XATTR_SPACE, the
 *       count entries lie inside the first `used` bytes and fill them
 *       exactly; the bytes after `used` are zero.  A block read that
 *       breaks this is -EUCLEAN.
 *   A3. Every name is 1..XATTR_NAME_MAX bytes without NUL (checked on
 *       read), in an accepted namespace, and unique within the block.
 *   A4. The xattr block counts 1 in ip->blocks.
 *   A5. The block is passed to tx_dirty before it changes.
 *
 * xattr_set and xattr_remove update ctime and write the inode before they
 * return; xattr_destroy writes the inode (no ctime: the inode is going).
 *
 * Locking: every function runs with fs->lock held by the caller and never
 * takes it.
 */
#include <errno.h>
#include <linux/limits.h>
#include <string.h>
#include <sys/xattr.h>

#include "pfs_fs.h"
#include "pfs_util.h"

#define XATTR_ENT_HDR   sizeof(struct pfs_xattr_ent)
_Static_assert(XATTR_NAME_MAX <= UINT8_MAX, "name_len is one byte");
_Static_assert(PFS_XATTR_SPACE <= UINT16_MAX, "value_len is two bytes");

struct xattr_ns {
	const char *name;
	size_t len;
	bool prefix;            /* a namespace prefix, else a whole name */
};

static const struct xattr_ns xattr_namespaces[] = {
	{ "user.", sizeof("user.") - 1, true },
	{ "trusted.", sizeof("trusted.") - 1, true },
	{ "security.", sizeof("security.") - 1, true },
	{ "system.posix_acl_access", sizeof("system.posix_acl_access") - 1, false },
	{ "system.posix_acl_default", sizeof("system.posix_acl_default") - 1, false },
};

/* A loaded xattr block. */
struct xattr_view {
	struct buf *b;
	struct pfs_xattr_blk *h;
	uint8_t *data;                  /* the entry area */
	uint32_t count;
	uint32_t used;
};

/* An entry inside the view. */
struct xattr_loc {
	uint32_t off;                   /* from v->data */
	uint32_t size;                  /* header + name + value */
	uint16_t value_len;
};

static int xattr_name_check(const char *name, size_t *nlen)
{
	size_t len, i;

	len = strnlen(name, XATTR_NAME_MAX + 1);
	if (len == 0 || len > XATTR_NAME_MAX)
		return -ERANGE;
	for (i = 0; i < PFS_ARRAY_SIZE(xattr_namespaces); i++) {
		const struct xattr_ns *ns = &xattr_namespaces[i];

		if (ns->prefix) {
			if (strncmp(name, ns->name, ns->len) != 0)
				continue;
			if (len == ns->len)
				return -EINVAL;         /* prefix without a name */
		} else if (len != ns->len || memcmp(name, ns->name, len) != 0) {
			continue;
		}
		*nlen = len;
		return 0;
	}
	return -EOPNOTSUPP;
}

static uint16_t xattr_ent_vlen(const uint8_t *ent)
{
	le16 v;

	memcpy(&v, ent + offsetof(struct pfs_xattr_ent, value_len), sizeof(v));
	return le16_to_cpu(v);
}

static void xattr_view_init(struct xattr_view *v, struct buf *b)
{
	v->b = b;
	v->h = buf_data(b);
	v->data = (uint8_t *)buf_data(b) + sizeof(struct pfs_xattr_blk);
	v->count = le32_to_cpu(v->h->count);
	v->used = le32_to_cpu(v->h->used);
}

/* Read and check ip's block (A2, A3). */
static int xattr_load(struct pfs_fs *fs, struct inode *ip, struct xattr_view *v)
{
	uint64_t blk = ip->xattr_blk;
	uint32_t off = 0, i, size;
	const uint8_t *ent;
	struct buf *b;
	int err;

	if (!alloc_block_valid(fs, blk)) {
		pfs_err("inode %llu: xattr block %llu outside the data area",
			(unsigned long long)ip->ino, (unsigned long long)blk);
		return -EUCLEAN;
	}
	err = bcache_read(fs->bc, blk, BUF_META, PFS_MAGIC_XATTR, &b);
	if (err)
		return err;
	xattr_view_init(v, b);
	if (le64_to_cpu(v->h->hdr.owner) != ip->ino ||
	    v->used > PFS_XATTR_SPACE)
		goto bad;
	for (i = 0; i < v->count; i++) {
		if (off + XATTR_ENT_HDR > v->used)
			goto bad;
		ent = v->data + off;
		size = (uint32_t)XATTR_ENT_HDR + ent[0] + xattr_ent_vlen(ent);
		if (ent[0] == 0 || size > v->used - off ||
		    memchr(ent + XATTR_ENT_HDR, '\0', ent[0]))
			goto bad;
		off += size;
	}
	if (off != v->used)
		goto bad;
	return 0;

bad:
	pfs_err("inode %llu: xattr block %llu is damaged (count %u, used %u)",
		(unsigned long long)ip->ino, (unsigned long long)blk,
		v->count, v->used);
	buf_put(b);
	v->b = NULL;
	return -EUCLEAN;
}

/* Find NAME in a checked view: true with *loc filled, or false. */
static bool xattr_find(const struct xattr_view *v, const char *name,
		       size_t nlen, struct xattr_loc *loc)
{
	uint32_t off = 0, i;
	const uint8_t *ent;
	uint16_t vlen;

	for (i = 0; i < v->count; i++) {
		ent = v->data + off;
		vlen = xattr_ent_vlen(ent);
		if (ent[0] == nlen &&
		    memcmp(ent + XATTR_ENT_HDR, name, nlen) == 0) {
			loc->off = off;
			loc->size = (uint32_t)XATTR_ENT_HDR + ent[0] + vlen;
			loc->value_len = vlen;
			return true;
		}
		off += (uint32_t)XATTR_ENT_HDR + ent[0] + vlen;
	}
	return false;
}

/* Remove the entry at loc, keeping A2 (packed, zero after used). */
static void xattr_cut(struct xattr_view *v, const struct xattr_loc *loc)
{
	memmove(v->data + loc->off, v->data + loc->off + loc->size,
		v->used - loc->off - loc->size);
	v->used -= loc->size;
	v->count--;
	memset(v->data + v->used, 0, loc->size);
}

static void xattr_append(struct xattr_view *v, const char *name, size_t nlen,
			 const void *val, size_t size)
{
	uint8_t *ent = v->data + v->used;
	le16 vlen = cpu_to_le16((uint16_t)size);

	ent[0] = (uint8_t)nlen;
	memcpy(ent + offsetof(struct pfs_xattr_ent, value_len), &vlen, sizeof(vlen));
	memcpy(ent + XATTR_ENT_HDR, name, nlen);
	if (size)
		memcpy(ent + XATTR_ENT_HDR + nlen, val, size);
	v->used += (uint32_t)(XATTR_ENT_HDR + nlen + size);
	v->count++;
}

static void xattr_store_counts(struct xattr_view *v)
{
	PFS_ASSERT(v->used <= PFS_XATTR_SPACE);                 /* A2 */
	v->h->count = cpu_to_le32(v->count);
	v->h->used = cpu_to_le32(v->used);
}

static void xattr_blocks_dec(struct inode *ip)
{
	if (ip->blocks == 0) {
		pfs_warn("inode %llu: block count already 0 when freeing its xattr block",
			 (unsigned long long)ip->ino);
		return;
	}
	ip->blocks--;                                           /* A4 */
}

int xattr_get(struct pfs_fs *fs, struct inode *ip, const char *name,
	      void *buf, size_t size)
{
	struct xattr_view v;
	struct xattr_loc loc;
	size_t nlen;
	int err;

	err = xattr_name_check(name, &nlen);
	if (err)
		return err;
	if (ip->xattr_blk == 0)
		return -ENODATA;                                /* A1 */
	err = xattr_load(fs, ip, &v);
	if (err)
		return err;
	if (!xattr_find(&v, name, nlen, &loc)) {
		err = -ENODATA;
	} else if (size == 0) {
		err = loc.value_len;
	} else if (size < loc.value_len) {
		err = -ERANGE;
	} else {
		memcpy(buf, v.data + loc.off + XATTR_ENT_HDR + nlen,
		       loc.value_len);
		err = loc.value_len;
	}
	buf_put(v.b);
	return err;
}

int xattr_list(struct pfs_fs *fs, struct inode *ip, char *buf, size_t size)
{
	uint32_t off = 0, i, total = 0;
	struct xattr_view v;
	const uint8_t *ent;
	char *p = buf;
	int err;

	if (ip->xattr_blk == 0)
		return 0;                                       /* A1 */
	err = xattr_load(fs, ip, &v);
	if (err)
		return err;
	for (i = 0; i < v.count; i++) {
		ent = v.data + off;
		total += ent[0] + 1u;
		off += (uint32_t)XATTR_ENT_HDR + ent[0] + xattr_ent_vlen(ent);
	}
	if (size == 0) {
		err = (int)total;
		goto put_buf;
	}
	if (size < total) {
		err = -ERANGE;
		goto put_buf;
	}
	for (i = 0, off = 0; i < v.count; i++) {
		ent = v.data + off;
		memcpy(p, ent + XATTR_ENT_HDR, ent[0]);
		p[ent[0]] = '\0';
		p += ent[0] + 1u;
		off += (uint32_t)XATTR_ENT_HDR + ent[0] + xattr_ent_vlen(ent);
	}
	err = (int)total;
put_buf:
	buf_put(v.b);
	return err;
}

int xattr_set(struct pfs_fs *fs, struct inode *ip, const char *name,
	      const void *val, size_t size, int flags)
{
	struct xattr_view v = { 0 };
	struct xattr_loc loc = { 0 };
	struct pfs_xattr_blk *h;
	bool found = false;
	uint64_t blk = 0;
	size_t nlen, need;
	uint32_t got;
	int err, r;

	err = xattr_name_check(name, &nlen);
	if (err)
		return err;
	if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	if (size > XATTR_SIZE_MAX)
		return -E2BIG;
	if (size > 0 && !val)
		return -EINVAL;
	need = XATTR_ENT_HDR + nlen + size;

	if (ip->xattr_blk != 0) {
		err = xattr_load(fs, ip, &v);
		if (err)
			return err;
		found = xattr_find(&v, name, nlen, &loc);
	}
	if (found && (flags & XATTR_CREATE)) {
		err = -EEXIST;
		goto put_buf;
	}
	if (!found && (flags & XATTR_REPLACE)) {
		err = -ENODATA;
		goto put_buf;
	}
	if (v.used - loc.size + need > PFS_XATTR_SPACE) {
		err = -ENOSPC;
		goto put_buf;
	}

	if (v.b == NULL) {
		/* First xattr of the inode (A1): a block near its inode. */
		err = alloc_blocks(fs, inode_table_block(fs, ip->ino, NULL), 1,
				   &blk, &got);
		if (err)
			return err;
		err = bcache_get_new(fs->bc, blk, BUF_META, &v.b);
		if (err)
			goto free_blk;
		err = tx_dirty(fs, v.b);                        /* A5 */
		if (err)
			goto put_buf;
		h = buf_data(v.b);
		memset(h, 0, PFS_BLOCK_SIZE);
		h->hdr.magic = cpu_to_le32(PFS_MAGIC_XATTR);
		h->hdr.blkno = cpu_to_le64(blk);
		h->hdr.owner = cpu_to_le64(ip->ino);
		xattr_view_init(&v, v.b);
	} else {
		err = tx_dirty(fs, v.b);                        /* A5 */
		if (err)
			goto put_buf;
	}

	if (found)
		xattr_cut(&v, &loc);
	xattr_append(&v, name, nlen, val, size);
	xattr_store_counts(&v);
	buf_put(v.b);
	if (blk != 0) {
		ip->xattr_blk = blk;
		ip->blocks++;                                   /* A4 */
	}
	inode_touch(ip, false, false, true);
	return inode_write(fs, ip);

put_buf:
	if (v.b)
		buf_put(v.b);
free_blk:
	if (blk != 0) {
		r = alloc_free_blocks(fs, blk, 1);
		if (r)
			pfs_err("inode %llu: could not free unused xattr block %llu (%d)",
				(unsigned long long)ip->ino,
				(unsigned long long)blk, r);
	}
	return err;
}

int xattr_remove(struct pfs_fs *fs, struct inode *ip, const char *name)
{
	struct xattr_view v;
	struct xattr_loc loc;
	uint64_t blk;
	size_t nlen;
	int err;

	err = xattr_name_check(name, &nlen);
	if (err)
		return err;
	if (ip->xattr_blk == 0)
		return -ENODATA;                                /* A1 */
	err = xattr_load(fs, ip, &v);
	if (err)
		return err;
	if (!xattr_find(&v, name, nlen, &loc)) {
		buf_put(v.b);
		return -ENODATA;
	}
	if (v.count == 1) {
		/* A1: the last entry goes, and the block with it.  The inode
		 * lets go of the block before it is freed. */
		buf_put(v.b);
		blk = ip->xattr_blk;
		ip->xattr_blk = 0;
		xattr_blocks_dec(ip);
		inode_touch(ip, false, false, true);
		err = inode_write(fs, ip);
		if (err)
			return err;
		return alloc_free_blocks(fs, blk, 1);
	}
	err = tx_dirty(fs, v.b);                                /* A5 */
	if (err) {
		buf_put(v.b);
		return err;
	}
	xattr_cut(&v, &loc);
	xattr_store_counts(&v);
	buf_put(v.b);
	inode_touch(ip, false, false, true);
	return inode_write(fs, ip);
}

int xattr_destroy(struct pfs_fs *fs, struct inode *ip)
{
	uint64_t blk = ip->xattr_blk;
	int err;

	if (blk == 0)
		return 0;
	ip->xattr_blk = 0;
	xattr_blocks_dec(ip);
	err = inode_write(fs, ip);
	if (err)
		return err;
	return alloc_free_blocks(fs, blk, 1);
}
