/*
 * ops_xattr.c -- FUSE entry points for extended attributes, and POSIX
 * ACLs.
 *
 * ACLs are stored as the xattrs system.posix_acl_access and
 * system.posix_acl_default in the Linux xattr ACL format (version 2,
 * entries { le16 tag; le16 perm; le32 id }).  The kernel enforces them
 * (FUSE_CAP_POSIX_ACL); the filesystem keeps them consistent:
 *   C1. The permission bits of the mode mirror the access ACL: owner =
 *       USER_OBJ, group = MASK if present else GROUP_OBJ, other = OTHER.
 *       Setting an ACL updates the mode; chmod updates the ACL.
 *   C2. An access ACL equivalent to the mode (three entries) is not
 *       stored: the mode alone says the same.
 *   C3. A new inode in a directory with a default ACL gets that ACL
 *       masked by its creation mode (and directories inherit the default
 *       ACL itself); the umask is not applied then.  Without a default
 *       ACL the umask is applied.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "ops.h"
#include "pfs_util.h"

#define ACL_XATTR_VERSION 2u
#define ACL_USER_OBJ  0x01u
#define ACL_USER      0x02u
#define ACL_GROUP_OBJ 0x04u
#define ACL_GROUP     0x08u
#define ACL_MASK      0x10u
#define ACL_OTHER     0x20u
#define ACL_MAX_BYTES 4096u

static const char acl_access[] = "system.posix_acl_access";
static const char acl_default[] = "system.posix_acl_default";

struct acl_ent {
	le16 tag;
	le16 perm;
	le32 id;
};
_Static_assert(sizeof(struct acl_ent) == 8, "acl entry size");

/* Validate an xattr ACL; return the number of entries or -EINVAL. */
static int acl_check(const void *val, size_t size)
{
	if (size < 4 || (size - 4) % sizeof(struct acl_ent) != 0)
		return -EINVAL;
	uint32_t ver;
	memcpy(&ver, val, 4);
	if (le32_to_cpu(ver) != ACL_XATTR_VERSION)
		return -EINVAL;
	size_t n = (size - 4) / sizeof(struct acl_ent);
	const struct acl_ent *e = (const struct acl_ent *)((const uint8_t *)val + 4);
	unsigned seen = 0, named = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned tag = le16_to_cpu(e[i].tag);
		if (le16_to_cpu(e[i].perm) & ~7u)
			return -EINVAL;
		switch (tag) {
		case ACL_USER_OBJ: case ACL_GROUP_OBJ: case ACL_MASK: case ACL_OTHER:
			if (seen & tag)
				return -EINVAL;
			seen |= tag;
			break;
		case ACL_USER: case ACL_GROUP:
			named++;
			break;
		default:
			return -EINVAL;
		}
	}
	if ((seen & (ACL_USER_OBJ | ACL_GROUP_OBJ | ACL_OTHER)) !=
	    (ACL_USER_OBJ | ACL_GROUP_OBJ | ACL_OTHER))
		return -EINVAL;
	if (named && !(seen & ACL_MASK))
		return -EINVAL;
	return (int)n;
}

/* Permission bits an ACL stands for (C1). */
static uint32_t acl_mode(const void *val, size_t n)
{
	const struct acl_ent *e = (const struct acl_ent *)((const uint8_t *)val + 4);
	uint32_t u = 0, g = 0, o = 0, m = 0;
	bool has_mask = false;
	for (size_t i = 0; i < n; i++) {
		uint32_t p = le16_to_cpu(e[i].perm);
		switch (le16_to_cpu(e[i].tag)) {
		case ACL_USER_OBJ: u = p; break;
		case ACL_GROUP_OBJ: g = p; break;
		case ACL_OTHER: o = p; break;
		case ACL_MASK: m = p; has_mask = true; break;
		default: break;
		}
	}
	return (u << 6) | ((has_mask ? m : g) << 3) | o;
}

/* Rewrite the base entries of an ACL from permission bits `mode`, with
 * AND semantics (create) or replace semantics (chmod). */
static void acl_apply_mode(void *val, size_t n, uint32_t mode, bool and_mask)
{
	struct acl_ent *e = (struct acl_ent *)((uint8_t *)val + 4);
	bool has_mask = false;
	for (size_t i = 0; i < n; i++)
		if (le16_to_cpu(e[i].tag) == ACL_MASK)
			has_mask = true;
	for (size_t i = 0; i < n; i++) {
		unsigned tag = le16_to_cpu(e[i].tag);
		uint32_t bits;
		if (tag == ACL_USER_OBJ)
			bits = (mode >> 6) & 7;
		else if (tag == ACL_OTHER)
			bits = mode & 7;
		else if ((tag == ACL_MASK) || (tag == ACL_GROUP_OBJ && !has_mask))
			bits = (mode >> 3) & 7;
		else
			continue;
		uint32_t p = and_mask ? (le16_to_cpu(e[i].perm) & bits) : bits;
		e[i].perm = cpu_to_le16((uint16_t)p);
	}
}

/* Store an access ACL (or drop it when equivalent to the mode, C2) and
 * set the mode's permission bits from it (C1). */
static int acl_store_access(struct pfs_fs *fs, struct inode *ip, const void *val,
			    size_t size, int n)
{
	ip->mode = (ip->mode & ~0777u) | acl_mode(val, (size_t)n);
	if (n == 3) {
		int err = xattr_remove(fs, ip, acl_access);
		if (err && err != -ENODATA)
			return err;
		return inode_write(fs, ip);
	}
	int err = xattr_set(fs, ip, acl_access, val, size, 0);
	if (err)
		return err;
	return inode_write(fs, ip);
}

int acl_chmod(struct pfs_fs *fs, struct inode *ip)
{
	uint8_t buf[ACL_MAX_BYTES] __attribute__((aligned(8)));
	int len = xattr_get(fs, ip, acl_access, buf, sizeof(buf));
	if (len == -ENODATA)
		return 0;
	if (len < 0)
		return len;
	int n = acl_check(buf, (size_t)len);
	if (n < 0) {
		pfs_err("inode %llu: stored access ACL is malformed", (unsigned long long)ip->ino);
		return -EUCLEAN;
	}
	acl_apply_mode(buf, (size_t)n, ip->mode, false);
	return xattr_set(fs, ip, acl_access, buf, (size_t)len, XATTR_REPLACE);
}

int acl_inherit(struct pfs_fs *fs, struct inode *dir, struct inode *ip, mode_t umask)
{
	uint8_t buf[ACL_MAX_BYTES] __attribute__((aligned(8)));
	int len = xattr_get(fs, dir, acl_default, buf, sizeof(buf));
	if (len == -ENODATA || len == 0) {
		ip->mode &= ~((uint32_t)umask & 0777u);               /* C3 */
		return inode_write(fs, ip);
	}
	if (len < 0)
		return len;
	int n = acl_check(buf, (size_t)len);
	if (n < 0) {
		pfs_err("inode %llu: stored default ACL is malformed", (unsigned long long)dir->ino);
		return -EUCLEAN;
	}
	int err = 0;
	if (S_ISDIR(ip->mode)) {
		err = xattr_set(fs, ip, acl_default, buf, (size_t)len, 0);
		if (err)
			return err;
	}
	acl_apply_mode(buf, (size_t)n, ip->mode, true);
	return acl_store_access(fs, ip, buf, (size_t)len, n);
}

void ops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		  size_t size, int flags)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	uint8_t aclbuf[ACL_MAX_BYTES] __attribute__((aligned(8)));
	int err = fs_check_fenced(fs);

	tx_op_begin(fs);
	if (!err)
		err = inode_get_ex(fs, ino, &ip);
	if (!err)
		err = alloc_reserve(fs, 2, 0);          /* an xattr block */
	if (err)
		goto out;
	if (strcmp(name, acl_access) == 0 || strcmp(name, acl_default) == 0) {
		bool is_default = name[sizeof("system.posix_acl_") - 1] == 'd';
		if (is_default && !S_ISDIR(ip->mode)) {
			err = size ? -EACCES : 0;
			goto out;
		}
		if (size == 0) {                         /* removal */
			err = xattr_remove(fs, ip, name);
			if (err == -ENODATA)
				err = 0;
			goto out;
		}
		/* Work on an aligned copy: the request buffer is not. */
		if (size > ACL_MAX_BYTES) {
			err = -E2BIG;
			goto out;
		}
		memcpy(aclbuf, value, size);
		value = (const char *)aclbuf;
		int n = acl_check(value, size);
		if (n < 0) {
			err = n;
			goto out;
		}
		if (flags & XATTR_CREATE) {
			uint8_t probe[1];
			if (xattr_get(fs, ip, name, probe, 0) >= 0) {
				err = -EEXIST;
				goto out;
			}
		}
		if (is_default) {
			err = xattr_set(fs, ip, name, value, size, 0);
		} else {
			err = acl_store_access(fs, ip, value, size, n);
			if (!err) {
				inode_touch(ip, false, false, true);
				err = inode_write(fs, ip);
			}
		}
		goto out;
	}
	err = xattr_set(fs, ip, name, value, size, flags);
out:
	inode_put(fs, ip);
	tx_op_end(fs);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	ops_reply_err(req, err);
}

void ops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	char *buf = NULL;
	int res = fs_check_fenced(fs);

	if (!res)
		res = inode_get(fs, ino, &ip);
	if (!res && size) {
		buf = malloc(size);
		if (!buf)
			res = -ENOMEM;
	}
	if (!res)
		res = xattr_get(fs, ip, name, buf, size);
	inode_put(fs, ip);
	if (res == -ERESTART) {
		free(buf);
		buf = NULL;
	}
	OPS_LEAVE_OR_RETRY(fs, res, again);
	if (res < 0)
		ops_reply_err(req, res);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)res);
	else
		fuse_reply_buf(req, buf, (size_t)res);
	free(buf);
}

void ops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	char *buf = NULL;
	int res = fs_check_fenced(fs);

	if (!res)
		res = inode_get(fs, ino, &ip);
	if (!res && size) {
		buf = malloc(size);
		if (!buf)
			res = -ENOMEM;
	}
	if (!res)
		res = xattr_list(fs, ip, buf, size);
	inode_put(fs, ip);
	if (res == -ERESTART) {
		free(buf);
		buf = NULL;
	}
	OPS_LEAVE_OR_RETRY(fs, res, again);
	if (res < 0)
		ops_reply_err(req, res);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)res);
	else
		fuse_reply_buf(req, buf, (size_t)res);
	free(buf);
}

void ops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
again:;
	struct pfs_fs *fs = ops_enter(req);
	struct inode *ip = NULL;
	int err = fs_check_fenced(fs);

	tx_op_begin(fs);
	if (!err)
		err = inode_get_ex(fs, ino, &ip);
	if (!err)
		err = xattr_remove(fs, ip, name);
	inode_put(fs, ip);
	tx_op_end(fs);
	OPS_LEAVE_OR_RETRY(fs, err, again);
	ops_reply_err(req, err);
}
