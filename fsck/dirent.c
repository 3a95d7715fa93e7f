/*
 * dirent.c -- directory entries: the name hash, reading a directory's
 * entries out of its index, checking one, and the changes repairs make
 * (delete, update, insert) through B+tree cursors.
 *
 * Entries follow fs/dir.c: the record key is dir_hash(name) (SipHash-2-4
 * keyed with the superblock's hash seed, >> 2, + 4); the value is a
 * struct pfs_dirent followed by the name, vlen == 10 + name_len.  The hash
 * is computed by dir_hash itself, through a struct pfs_fs that carries
 * only the seed (f->hash_ctx), so both sides always agree.
 *
 * A directory's entries are copied out (fsck_dents_load) before they are
 * checked: a fix changes the tree, which would invalidate a cursor, so the
 * repairs seek the record again by key and exact value.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck.h"
#include "pfs_fs.h"
#include "pfs_util.h"

#define DENT_HDR sizeof(struct pfs_dirent)

uint64_t fsck_dir_hash(struct fsck *f, const char *name, size_t len)
{
	return dir_hash((const struct pfs_fs *)f->hash_ctx, name, len);
}

static int dents_add(struct fsck_dents *d, uint64_t key, const void *val,
		     uint16_t vlen)
{
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 64;
		struct fsck_dent *nv = realloc(d->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		d->v = nv;
		d->cap = ncap;
	}
	if (d->used + vlen > d->size) {
		size_t nsize = d->size ? d->size * 2 : 4096;
		while (nsize < d->used + vlen)
			nsize *= 2;
		uint8_t *na = realloc(d->arena, nsize);
		if (!na)
			return -ENOMEM;
		d->arena = na;
		d->size = nsize;
	}
	memcpy(d->arena + d->used, val, vlen);
	d->v[d->n++] = (struct fsck_dent){ .key = key, .off = d->used, .vlen = vlen };
	d->used += vlen;
	return 0;
}

void fsck_dents_free(struct fsck_dents *d)
{
	free(d->v);
	free(d->arena);
	memset(d, 0, sizeof(*d));
}

const uint8_t *fsck_dent_val(const struct fsck_dents *d, size_t i)
{
	return d->arena + d->v[i].off;
}

int fsck_dents_load(struct fsck *f, uint64_t dir, uint64_t root,
		    struct fsck_dents *d)
{
	struct fsck_tree ft;
	struct bt_cursor c;
	int err;

	memset(d, 0, sizeof(*d));
	if (root == 0)
		return 0;
	fsck_tree_init(f, &ft, dir, PFS_BT_DIR, root);
	err = bt_seek_ge(&ft.t, 0, &c);
	if (err == -ENOENT)
		return 0;
	while (!err) {
		const void *val;
		uint64_t key;
		uint16_t vlen;

		bt_get(&c, &key, &val, &vlen);
		err = dents_add(d, key, val, vlen);
		if (err)
			break;
		err = bt_next(&c);
		if (err == -ENOENT) {
			err = 0;
			break;
		}
	}
	bt_release(&c);
	if (err == -ENOMEM || err == -EIO)
		return fsck_fail(f, err, "reading directory %llu",
				 (unsigned long long)dir);
	return err ? -EUCLEAN : 0;
}

const char *fsck_dent_problem(const uint8_t *val, uint16_t vlen)
{
	uint8_t nl;
	const char *name;

	if (vlen < DENT_HDR + 1)
		return "short record";
	nl = fsck_dent_name_len(val);
	name = fsck_dent_name(val);
	if (nl == 0)
		return "empty name";
	if (vlen != DENT_HDR + nl)
		return "record length does not match the name";
	if (fsck_dent_ino(val) == 0)
		return "inode 0";
	if (memchr(name, '/', nl))
		return "name with a slash";
	if (memchr(name, '\0', nl))
		return "name with a NUL byte";
	if ((nl == 1 && name[0] == '.') || (nl == 2 && name[0] == '.' && name[1] == '.'))
		return "entry named . or ..";
	return NULL;
}

uint64_t fsck_dent_ino(const uint8_t *val)
{
	le64 ino;

	memcpy(&ino, val, sizeof(ino));
	return le64_to_cpu(ino);
}

uint8_t fsck_dent_type(const uint8_t *val)
{
	return val[8];
}

uint8_t fsck_dent_name_len(const uint8_t *val)
{
	return val[9];
}

const char *fsck_dent_name(const uint8_t *val)
{
	return (const char *)val + DENT_HDR;
}

/* Position c on the record (key, val); 0 or -errno (-EUCLEAN: gone). */
static int seek_record(struct fsck_tree *ft, uint64_t key, const uint8_t *val,
		       uint16_t vlen, struct bt_cursor *c)
{
	int err = bt_seek_ge(&ft->t, key, c);

	while (!err) {
		const void *v;
		uint64_t k;
		uint16_t l;

		bt_get(c, &k, &v, &l);
		if (k != key)
			break;
		if (l == vlen && memcmp(v, val, vlen) == 0)
			return 0;
		err = bt_next(c);
	}
	bt_release(c);
	if (err == 0 || err == -ENOENT)
		err = -EUCLEAN;
	return err;
}

int fsck_dir_delete(struct fsck_tree *ft, uint64_t key, const uint8_t *val,
		    uint16_t vlen)
{
	struct bt_cursor c;
	int err = seek_record(ft, key, val, vlen, &c);

	if (!err)
		err = bt_delete(&c);
	if (err)
		return fsck_fail(ft->f, err, "removing an entry of directory %llu",
				 (unsigned long long)ft->t.owner);
	return 0;
}

int fsck_dir_update(struct fsck_tree *ft, uint64_t key, const uint8_t *val,
		    const uint8_t *nval, uint16_t vlen)
{
	struct bt_cursor c;
	int err = seek_record(ft, key, val, vlen, &c);

	if (!err) {
		err = bt_update(&c, nval, vlen);
		bt_release(&c);
	}
	if (err)
		return fsck_fail(ft->f, err, "changing an entry of directory %llu",
				 (unsigned long long)ft->t.owner);
	return 0;
}

int fsck_dir_insert(struct fsck *f, struct fsck_tree *ft, const char *name,
		    size_t len, uint64_t ino, uint8_t type)
{
	uint8_t val[DENT_HDR + PFS_NAME_MAX];
	le64 lino = cpu_to_le64(ino);
	int err;

	memcpy(val, &lino, sizeof(lino));
	val[8] = type;
	val[9] = (uint8_t)len;
	memcpy(val + DENT_HDR, name, len);
	err = bt_insert(&ft->t, fsck_dir_hash(f, name, len), val,
			(uint16_t)(DENT_HDR + len));
	if (err)
		return fsck_fail(f, err, "adding an entry to directory %llu",
				 (unsigned long long)ft->t.owner);
	return 0;
}

int fsck_dir_sync(struct fsck *f, uint64_t dir, struct fsck_tree *ft)
{
	struct pfs_inode *di;
	struct buf *b;
	int err = fsck_ino_read(f, dir, &b, &di);

	if (err)
		return err;
	int64_t blocks = (int64_t)le64_to_cpu(di->blocks) + ft->dblocks;
	if (blocks < 0)
		blocks = 0;
	uint64_t index = (uint64_t)blocks;
	if (di->xattr_blk && index > 0)
		index--;
	di->tree_root = cpu_to_le64(ft->t.root);
	di->blocks = cpu_to_le64((uint64_t)blocks);
	di->size = cpu_to_le64(index * PFS_BLOCK_SIZE);         /* fs/dir.c D5 */
	fsck_ino_dirty(f, b, di);
	buf_put(b);
	ft->dblocks = 0;
	return 0;
}

int fsck_dir_add(struct fsck *f, uint64_t dir, const char *name, size_t len,
		 uint64_t ino, uint8_t type)
{
	struct fsck_tree ft;
	struct pfs_inode *di;
	struct buf *b;
	int err = fsck_ino_read(f, dir, &b, &di);

	if (err)
		return err;
	fsck_tree_init(f, &ft, dir, PFS_BT_DIR, le64_to_cpu(di->tree_root));
	buf_put(b);
	err = fsck_dir_insert(f, &ft, name, len, ino, type);
	if (err)
		return err;
	return fsck_dir_sync(f, dir, &ft);
}

int fsck_dir_has(struct fsck *f, uint64_t dir, const char *name, size_t len,
		 uint64_t *ino)
{
	uint64_t key = fsck_dir_hash(f, name, len);
	struct fsck_tree ft;
	struct pfs_inode *di;
	struct bt_cursor c;
	struct buf *b;
	uint64_t root;
	int err = fsck_ino_read(f, dir, &b, &di);

	if (err)
		return err;
	root = le64_to_cpu(di->tree_root);
	buf_put(b);
	if (root == 0)
		return 0;
	fsck_tree_init(f, &ft, dir, PFS_BT_DIR, root);
	err = bt_seek_ge(&ft.t, key, &c);
	while (!err) {
		const void *v;
		uint64_t k;
		uint16_t l;

		bt_get(&c, &k, &v, &l);
		if (k != key)
			break;
		if (!fsck_dent_problem(v, l) && fsck_dent_name_len(v) == len &&
		    memcmp(fsck_dent_name(v), name, len) == 0) {
			if (ino)
				*ino = fsck_dent_ino(v);
			bt_release(&c);
			return 1;
		}
		err = bt_next(&c);
	}
	bt_release(&c);
	if (err == 0 || err == -ENOENT)
		return 0;
	return fsck_fail(f, err, "looking up '%.*s' in directory %llu", (int)len,
			 name, (unsigned long long)dir);
}
