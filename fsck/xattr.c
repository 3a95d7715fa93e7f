/*
 * xattr.c -- the xattr block of an inode in pass 3.
 *
 * The block must lie in a data area, pass its header checks (magic
 * PFS_MAGIC_XATTR, checksum, block number), belong to the inode, and hold
 * well-formed entries (fs/xattr.c A2, A3): `count` packed entries filling
 * exactly `used` <= PFS_XATTR_SPACE bytes, zeros after them, each name
 * 1..255 bytes without NUL, in an accepted namespace, unique.  A block
 * that breaks any rule is dropped by the repair (the inode loses its
 * extended attributes); a good one is claimed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsck.h"
#include "pfs_util.h"

#define ENT_HDR sizeof(struct pfs_xattr_ent)

static bool name_accepted(const uint8_t *name, size_t len)
{
	static const char *const prefixes[] = { "user.", "trusted.", "security." };
	static const char *const whole[] = {
		"system.posix_acl_access", "system.posix_acl_default",
	};

	for (size_t i = 0; i < PFS_ARRAY_SIZE(prefixes); i++) {
		size_t pl = strlen(prefixes[i]);
		if (len > pl && memcmp(name, prefixes[i], pl) == 0)
			return true;
	}
	for (size_t i = 0; i < PFS_ARRAY_SIZE(whole); i++)
		if (len == strlen(whole[i]) && memcmp(name, whole[i], len) == 0)
			return true;
	return false;
}

static uint16_t ent_vlen(const uint8_t *ent)
{
	le16 v;

	memcpy(&v, ent + 1, sizeof(v));
	return le16_to_cpu(v);
}

/* Why the entries of a checked block are malformed, or NULL. */
static const char *entries_problem(const uint8_t *blk, char *buf, size_t n)
{
	const struct pfs_xattr_blk *h = (const struct pfs_xattr_blk *)blk;
	const uint8_t *data = blk + sizeof(*h);
	uint32_t count = le32_to_cpu(h->count);
	uint32_t used = le32_to_cpu(h->used);
	uint32_t off = 0;

	if (used > PFS_XATTR_SPACE) {
		snprintf(buf, n, "%u bytes used", used);
		return buf;
	}
	for (uint32_t i = 0; i < count; i++) {
		if (off + ENT_HDR > used)
			return "entries overflow the used bytes";
		const uint8_t *ent = data + off;
		uint32_t size = (uint32_t)ENT_HDR + ent[0] + ent_vlen(ent);
		if (ent[0] == 0)
			return "empty name";
		if (size > used - off)
			return "entries overflow the used bytes";
		if (memchr(ent + ENT_HDR, '\0', ent[0]))
			return "name with a NUL byte";
		if (!name_accepted(ent + ENT_HDR, ent[0]))
			return "name in an unknown namespace";
		for (uint32_t o2 = 0; o2 < off;) {
			const uint8_t *e2 = data + o2;
			if (e2[0] == ent[0] && memcmp(e2 + ENT_HDR, ent + ENT_HDR, ent[0]) == 0)
				return "duplicate name";
			o2 += (uint32_t)ENT_HDR + e2[0] + ent_vlen(e2);
		}
		off += size;
	}
	if (off != used)
		return "entries do not fill the used bytes";
	for (uint32_t i = used; i < PFS_XATTR_SPACE; i++)
		if (data[i])
			return "garbage after the entries";
	return NULL;
}

int fsck_xattr_check(struct fsck *f, uint64_t ino, struct pfs_inode *di,
		     uint64_t *counted, bool *changed)
{
	uint64_t blk = le64_to_cpu(di->xattr_blk);
	const char *why = NULL;
	char buf[64];
	uint8_t *data = NULL;
	int err = 0;

	*counted = 0;
	if (blk == 0)
		return 0;
	if (!fsck_block_valid(f, blk)) {
		why = "outside the data area";
	} else {
		data = aligned_alloc(PFS_BLOCK_SIZE, PFS_BLOCK_SIZE);
		if (!data)
			return fsck_fail(f, -ENOMEM, "checking xattr block %llu",
					 (unsigned long long)blk);
		err = fsck_dev_read(f, blk, data);
		if (err)
			goto out_free;
		why = pfs_meta_problem(data, blk, PFS_MAGIC_XATTR, f->g.seed);
		if (!why) {
			const struct pfs_xattr_blk *h = (const struct pfs_xattr_blk *)data;
			if (le64_to_cpu(h->hdr.owner) != ino) {
				snprintf(buf, sizeof(buf), "owned by inode %llu",
					 (unsigned long long)le64_to_cpu(h->hdr.owner));
				why = buf;
			} else {
				why = entries_problem(data, buf, sizeof(buf));
			}
		}
	}
	if (why) {
		if (fsck_problem(f, FSCK_FIX_ASK, "inode %llu: xattr block %llu: %s",
				 (unsigned long long)ino, (unsigned long long)blk, why)) {
			di->xattr_blk = 0;
			*changed = true;
			goto out_free;
		}
		*counted = 1;
		if (!fsck_block_valid(f, blk))
			goto out_free;
	}
	err = fsck_claim(f, ino, blk, 1);
	if (err == 1) {
		di->xattr_blk = 0;
		*changed = true;
		err = 0;
	} else if (err == 0) {
		*counted = 1;
	}
out_free:
	free(data);
	return err;
}
