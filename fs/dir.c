/*
 * fs/dir.c -- hash-indexed directories.
 *
 * Representation
 *   A directory's entries are the records of a B+tree of type PFS_BT_DIR
 *   rooted at dp->tree_root.  The key of an entry is dir_hash(name): the
 *   SipHash-2-4 (crypto_shorthash) of the name keyed with the volume's
 *   hash seed, its 8 output bytes read as a little-endian integer,
 *   shifted right by 2, plus 4.  Tools that check keys (fsck) call
 *   dir_hash() rather than recompute it.  The value is a struct pfs_dirent followed by the
 *   name (not NUL-terminated).  Names whose hashes collide are records
 *   with equal keys; a lookup compares the names of every record with the
 *   key.  "." and ".." are not stored: readdir synthesises them from
 *   dp->ino and dp->parent.
 *
 * Invariants
 *   D1. Every record's key is >= PFS_DIR_KEY_MIN (4); keys 0..3 are the
 *       readdir cookies of the start, ".", "..".  A record's key is
 *       dir_hash(name), except for records made through the keyed
 *       variants of dir_internal.h (tests).
 *   D2. A name appears at most once in a directory.
 *   D3. A record's value is a struct pfs_dirent with 1 <= name_len <=
 *       PFS_NAME_MAX, vlen == sizeof(struct pfs_dirent) + name_len,
 *       ino != 0, and a name without '/' or NUL that is not "." or "..".
 *       Records read are checked; a violation is -EUCLEAN.
 *   D4. A directory whose last entry is removed has its tree freed
 *       (tree_root 0).  dir_is_empty also accepts a root leaf without
 *       records.
 *   D5. dp->size is the byte size of the index: (dp->blocks, less the
 *       xattr block if there is one) * PFS_BLOCK_SIZE.  Tree node blocks
 *       are counted in dp->blocks by the inode tree's bt_ops.
 *
 * Readdir cookies
 *   0 is the start; "." has next cookie 1, ".." next cookie 2; an entry
 *   with key k has next cookie k + 1, and a call with cookie off resumes
 *   at the first record with key >= max(off, 4).  Limitation: when one
 *   call ends inside a run of records with equal keys, the next call
 *   resumes after the whole run, so the rest of the run is skipped (and
 *   an entry added to a run already passed is not seen).  With 62-bit
 *   keyed hashes a collision needs about 2^31 names in one directory, so
 *   this does not happen in practice.
 *
 * Every function that changes the directory stores the tree root, updates
 * dp->size (D5) and writes the inode before it returns.  Link counts,
 * times and permissions are the caller's.
 *
 * Locking: every function runs with fs->lock held by the caller and never
 * takes it.
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>

#include "pfs_fs.h"
#include "pfs_util.h"
#include "dir_internal.h"

_Static_assert(crypto_shorthash_KEYBYTES == PFS_HASH_SEED_SIZE,
	       "hash seed is a SipHash key");
_Static_assert(crypto_shorthash_BYTES == sizeof(uint64_t), "SipHash output");

#define DIRENT_HDR      sizeof(struct pfs_dirent)
#define DIRENT_MAX      (DIRENT_HDR + PFS_NAME_MAX)
_Static_assert(DIRENT_MAX <= BT_MAX_VALUE, "a directory entry fits a record");

/* A decoded record; name points into the node or a copy. */
struct dir_ent {
	uint64_t key;
	uint64_t ino;
	uint8_t type;
	uint8_t name_len;
	const char *name;
};

uint64_t dir_hash(const struct pfs_fs *fs, const char *name, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;

	crypto_shorthash(out, (const unsigned char *)name, len, fs->hash_seed);
	memcpy(&h, out, sizeof(h));
	h = le64_to_cpu(h);
	return (h >> 2) + PFS_DIR_KEY_MIN;                      /* D1 */
}

static bool dir_is_dot(const char *name, size_t len)
{
	return (len == 1 && name[0] == '.') ||
	       (len == 2 && name[0] == '.' && name[1] == '.');
}

/* 0: a name that may be stored; 1: "." or ".."; or -errno. */
static int dir_name_check(const char *name, size_t len)
{
	if (len == 0)
		return -EINVAL;
	if (len > PFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return -EINVAL;
	return dir_is_dot(name, len) ? 1 : 0;
}

static uint16_t dirent_encode(uint8_t *val, const char *name, size_t len,
			      uint64_t ino, uint8_t type)
{
	le64 lino = cpu_to_le64(ino);

	PFS_ASSERT(len >= 1 && len <= PFS_NAME_MAX);            /* D3 */
	memcpy(val + offsetof(struct pfs_dirent, ino), &lino, sizeof(lino));
	val[offsetof(struct pfs_dirent, type)] = type;
	val[offsetof(struct pfs_dirent, name_len)] = (uint8_t)len;
	memcpy(val + DIRENT_HDR, name, len);
	return (uint16_t)(DIRENT_HDR + len);
}

/* D1, D3 for a record read from the tree. */
static int dirent_decode(const struct inode *dp, uint64_t key, const void *val,
			 uint16_t vlen, struct dir_ent *d)
{
	const uint8_t *v = val;
	le64 lino;

	if (vlen < DIRENT_HDR + 1)
		goto bad;
	memcpy(&lino, v + offsetof(struct pfs_dirent, ino), sizeof(lino));
	d->key = key;
	d->ino = le64_to_cpu(lino);
	d->type = v[offsetof(struct pfs_dirent, type)];
	d->name_len = v[offsetof(struct pfs_dirent, name_len)];
	d->name = (const char *)v + DIRENT_HDR;
	if (key < PFS_DIR_KEY_MIN || d->ino == 0 || d->name_len == 0 ||
	    vlen != DIRENT_HDR + d->name_len ||
	    dir_name_check(d->name, d->name_len) != 0)
		goto bad;
	return 0;

bad:
	pfs_err("directory %llu: bad entry with key %llu (%u bytes)",
		(unsigned long long)dp->ino, (unsigned long long)key, vlen);
	return -EUCLEAN;
}

/* Store a changed root, keep D5, write the inode; returns err or the
 * first error met here. */
static int dir_sync(struct pfs_fs *fs, struct inode_tree *it, int err)
{
	struct inode *dp = it->ip;
	uint64_t index_blocks;
	int r;

	r = inode_tree_sync(it);
	if (r && !err)
		err = r;
	index_blocks = dp->blocks;
	if (dp->xattr_blk != 0 && index_blocks > 0)
		index_blocks--;
	dp->size = index_blocks * PFS_BLOCK_SIZE;               /* D5 */
	r = inode_write(fs, dp);
	if (r && !err)
		err = r;
	return err;
}

/*
 * Position c on the record of NAME, whose key is KEY: 1 (c holds the
 * record), 0 if there is none (c released), or -errno.
 */
static int dir_find(struct inode_tree *it, uint64_t key, const char *name,
		    size_t len, struct bt_cursor *c)
{
	struct dir_ent d;
	const void *val;
	uint64_t k;
	uint16_t vlen;
	int err;

	if (it->t.root == 0)
		return 0;
	err = bt_seek_ge(&it->t, key, c);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	for (;;) {
		bt_get(c, &k, &val, &vlen);
		if (k != key)
			break;
		err = dirent_decode(it->ip, k, val, vlen, &d);
		if (err)
			break;
		if (d.name_len == len && memcmp(d.name, name, len) == 0)
			return 1;
		err = bt_next(c);
		if (err) {
			if (err == -ENOENT)
				err = 0;
			break;
		}
	}
	bt_release(c);
	return err;
}

int dir_lookup_key(struct pfs_fs *fs, struct inode *dp, uint64_t key,
		   const char *name, size_t len, uint64_t *ino, uint8_t *type)
{
	struct inode_tree it;
	struct bt_cursor c;
	const void *val;
	struct dir_ent d;
	uint16_t vlen;
	uint64_t k;
	int err;

	PFS_ASSERT(S_ISDIR(dp->mode));
	PFS_BUG_ON(key < PFS_DIR_KEY_MIN);                      /* D1 */
	err = dir_name_check(name, len);
	if (err == -EINVAL)
		return -ENOENT;
	if (err < 0)
		return err;
	if (err == 1) {
		if (ino)
			*ino = len == 1 || dp->parent == 0 ? dp->ino : dp->parent;
		if (type)
			*type = DT_DIR;
		return 0;
	}
	inode_tree_init(fs, dp, PFS_BT_DIR, &it);
	err = dir_find(&it, key, name, len, &c);
	if (err < 0)
		return err;
	if (err == 0)
		return -ENOENT;
	bt_get(&c, &k, &val, &vlen);
	err = dirent_decode(dp, k, val, vlen, &d);
	if (!err) {
		if (ino)
			*ino = d.ino;
		if (type)
			*type = d.type;
	}
	bt_release(&c);
	return err;
}

int dir_add_key(struct pfs_fs *fs, struct inode *dp, uint64_t key,
		const char *name, size_t len, uint64_t ino, uint8_t type)
{
	uint8_t val[DIRENT_MAX];
	struct inode_tree it;
	struct bt_cursor c;
	uint16_t vlen;
	int err;

	PFS_ASSERT(S_ISDIR(dp->mode));
	PFS_BUG_ON(key < PFS_DIR_KEY_MIN);                      /* D1 */
	err = dir_name_check(name, len);
	if (err < 0)
		return err;
	if (err == 1)
		return -EEXIST;
	if (ino == 0)
		return -EINVAL;                                 /* D3 */
	inode_tree_init(fs, dp, PFS_BT_DIR, &it);
	err = dir_find(&it, key, name, len, &c);
	if (err < 0)
		return err;
	if (err == 1) {
		bt_release(&c);
		return -EEXIST;                                 /* D2 */
	}
	vlen = dirent_encode(val, name, len, ino, type);
	err = bt_insert(&it.t, key, val, vlen);
	return dir_sync(fs, &it, err);
}

/* D4: free the tree once it holds no record. */
static int dir_free_if_empty(struct inode_tree *it)
{
	struct bt_cursor c;
	int err;

	if (it->t.root == 0)
		return 0;
	err = bt_seek_ge(&it->t, 0, &c);
	if (err == 0) {
		bt_release(&c);
		return 0;
	}
	if (err != -ENOENT)
		return err;
	return bt_destroy(&it->t);
}

int dir_remove_key(struct pfs_fs *fs, struct inode *dp, uint64_t key,
		   const char *name, size_t len)
{
	struct inode_tree it;
	struct bt_cursor c;
	int err;

	PFS_ASSERT(S_ISDIR(dp->mode));
	PFS_BUG_ON(key < PFS_DIR_KEY_MIN);                      /* D1 */
	err = dir_name_check(name, len);
	if (err == -EINVAL)
		return -ENOENT;
	if (err < 0)
		return err;
	if (err == 1)
		return -EINVAL;         /* "." and ".." are not entries */
	inode_tree_init(fs, dp, PFS_BT_DIR, &it);
	err = dir_find(&it, key, name, len, &c);
	if (err < 0)
		return err;
	if (err == 0)
		return -ENOENT;
	err = bt_delete(&c);
	if (!err)
		err = dir_free_if_empty(&it);
	return dir_sync(fs, &it, err);
}

int dir_set_key(struct pfs_fs *fs, struct inode *dp, uint64_t key,
		const char *name, size_t len, uint64_t ino, uint8_t type)
{
	uint8_t val[DIRENT_MAX];
	struct inode_tree it;
	struct bt_cursor c;
	uint16_t vlen;
	int err;

	PFS_ASSERT(S_ISDIR(dp->mode));
	PFS_BUG_ON(key < PFS_DIR_KEY_MIN);                      /* D1 */
	err = dir_name_check(name, len);
	if (err == -EINVAL)
		return -ENOENT;
	if (err < 0)
		return err;
	if (err == 1)
		return -EINVAL;         /* "." and ".." are not entries */
	if (ino == 0)
		return -EINVAL;                                 /* D3 */
	inode_tree_init(fs, dp, PFS_BT_DIR, &it);
	err = dir_find(&it, key, name, len, &c);
	if (err < 0)
		return err;
	if (err == 0)
		return -ENOENT;
	vlen = dirent_encode(val, name, len, ino, type);
	err = bt_update(&c, val, vlen);
	bt_release(&c);
	return dir_sync(fs, &it, err);
}

int dir_lookup(struct pfs_fs *fs, struct inode *dp, const char *name,
	       size_t len, uint64_t *ino, uint8_t *type)
{
	return dir_lookup_key(fs, dp, dir_hash(fs, name, len), name, len,
			      ino, type);
}

int dir_add(struct pfs_fs *fs, struct inode *dp, const char *name, size_t len,
	    uint64_t ino, uint8_t type)
{
	return dir_add_key(fs, dp, dir_hash(fs, name, len), name, len,
			   ino, type);
}

int dir_remove(struct pfs_fs *fs, struct inode *dp, const char *name,
	       size_t len)
{
	return dir_remove_key(fs, dp, dir_hash(fs, name, len), name, len);
}

int dir_set(struct pfs_fs *fs, struct inode *dp, const char *name, size_t len,
	    uint64_t ino, uint8_t type)
{
	return dir_set_key(fs, dp, dir_hash(fs, name, len), name, len,
			   ino, type);
}

int dir_iterate(struct pfs_fs *fs, struct inode *dp, uint64_t off,
		dir_iter_cb cb, void *arg)
{
	char name[PFS_NAME_MAX + 1];
	struct inode_tree it;
	struct bt_cursor c;
	struct dir_ent d;
	const void *val;
	uint16_t vlen;
	uint64_t key;
	int err;

	PFS_ASSERT(S_ISDIR(dp->mode));
	if (off == 0) {
		if (cb(arg, ".", 1, dp->ino, DT_DIR, 1))
			return 0;
		off = 1;
	}
	if (off == 1) {
		if (cb(arg, "..", 2, dp->parent ? dp->parent : dp->ino,
		       DT_DIR, 2))
			return 0;
		off = 2;
	}
	if (off < PFS_DIR_KEY_MIN)
		off = PFS_DIR_KEY_MIN;
	inode_tree_init(fs, dp, PFS_BT_DIR, &it);
	if (it.t.root == 0)
		return 0;
	err = bt_seek_ge(&it.t, off, &c);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	for (;;) {
		bt_get(&c, &key, &val, &vlen);
		err = dirent_decode(dp, key, val, vlen, &d);
		if (err)
			break;
		/* The callback gets a copy: it may outlive the cursor. */
		memcpy(name, d.name, d.name_len);
		name[d.name_len] = '\0';
		if (cb(arg, name, d.name_len, d.ino, d.type, key + 1))
			break;
		err = bt_next(&c);
		if (err) {
			if (err == -ENOENT)
				err = 0;
			break;
		}
	}
	bt_release(&c);
	return err;
}

int dir_is_empty(struct pfs_fs *fs, struct inode *dp)
{
	struct inode_tree it;
	struct bt_cursor c;
	int err;

	PFS_ASSERT(S_ISDIR(dp->mode));
	if (dp->tree_root == 0)
		return 1;
	inode_tree_init(fs, dp, PFS_BT_DIR, &it);
	err = bt_seek_ge(&it.t, 0, &c);
	if (err == -ENOENT)
		return 1;
	if (err)
		return err;
	bt_release(&c);
	return 0;
}

int dir_destroy(struct pfs_fs *fs, struct inode *dp)
{
	struct inode_tree it;
	int err;

	PFS_ASSERT(S_ISDIR(dp->mode));
	if (dp->tree_root == 0)
		return 0;
	inode_tree_init(fs, dp, PFS_BT_DIR, &it);
	err = bt_destroy(&it.t);
	return dir_sync(fs, &it, err);
}
