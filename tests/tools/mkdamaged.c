/*
 * mkdamaged.c -- make a small peerfs image with one named kind of damage,
 * for the fsck.peerfs tests.
 *
 *   mkdamaged IMAGE KEYFILE DAMAGE
 *   mkdamaged -l                  list the damages
 *
 * The image (8192 blocks, 2 slots, 4 groups of 2048 blocks, fixed UUID) is
 * formatted with format_write, populated through fs_mount and the fs
 * module functions (the way fs/ops_name.c calls them: fs->lock held,
 * between tx_op_begin and tx_op_end), unmounted, and then damaged by
 * editing blocks of the image directly.  The population is always the
 * same, so inode and block numbers are the same from run to run:
 *
 *   /dir1/            directory
 *   /dir1/file1       3 blocks of data, xattr user.test
 *   /dir1/sub/deep    100 bytes
 *   /file2            6 one-block extents (an extent tree)
 *   /hard             hard link to /dir1/file1
 *   /sym              inline symlink, /longsym extent-mapped symlink
 *   /fifo             FIFO
 *   /victim           empty file
 *   /first, /dup      one block each
 *   /typed            100 bytes
 *
 * "none" leaves the image clean; "orphan-unlinked" unlinks a file that is
 * still referenced and exits without unmounting (a crash), leaving the
 * slot MOUNTED with the file on its orphan list.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "pfs_fs.h"
#include "pfs_mkfs.h"
#include "pfs_util.h"

#define IMG_BLOCKS      8192u
#define IMG_SLOTS       2u
#define IMG_BPG         2048u

static const uint8_t img_uuid[PFS_UUID_SIZE] = {
	0x70, 0x66, 0x73, 0x2d, 0x66, 0x73, 0x63, 0x6b,
	0x2d, 0x74, 0x65, 0x73, 0x74, 0x00, 0x00, 0x01,
};

static const char *const damages[] = {
	"none", "bad-inode-crc", "wrong-nlink", "dangling-entry",
	"bitmap-block-leak", "bitmap-missing", "double-claim", "bad-group-count",
	"corrupt-primary-super", "orphan-unlinked", "unreachable-inode",
	"bad-dirent-type", "bad-extent-bounds",
};

/* Inode numbers of the population. */
struct names {
	uint64_t dir1, file1, sub, deep, file2, sym, longsym, fifo;
	uint64_t victim, first, dup, typed, orphan;
};

static void die(const char *what, int err)
{
	fprintf(stderr, "mkdamaged: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* ---- population through the fs modules ---- */

static void lock(struct pfs_fs *fs)
{
	pthread_mutex_lock(&fs->lock);
	tx_op_begin(fs);
}

static void unlock(struct pfs_fs *fs)
{
	tx_op_end(fs);
	pthread_mutex_unlock(&fs->lock);
}

static uint64_t make(struct pfs_fs *fs, uint64_t parent, const char *name,
		     uint32_t mode, const char *link)
{
	struct inode *dp, *ip;
	uint64_t ino;
	int err;

	lock(fs);
	err = inode_get(fs, parent, &dp);
	if (err)
		die("inode_get", err);
	err = inode_new(fs, dp, mode, 0, 0, 0, &ip);
	if (err)
		die("inode_new", err);
	if (link) {
		size_t len = strlen(link);
		if (len <= PFS_INLINE_SIZE) {
			memcpy(ip->inline_area, link, len);
			ip->flags |= PFS_IF_INLINE_DATA;
			ip->size = len;
			err = inode_write(fs, ip);
		} else {
			ssize_t n = file_write(fs, ip, link, len, 0);
			err = n < 0 ? (int)n : 0;
		}
		if (err)
			die("symlink target", err);
	}
	err = dir_add(fs, dp, name, strlen(name), ip->ino, (uint8_t)IFTODT(mode));
	if (err)
		die("dir_add", err);
	if (S_ISDIR(mode))
		dp->nlink++;
	inode_touch(dp, false, true, true);
	err = inode_write(fs, dp);
	if (err)
		die("inode_write", err);
	ino = ip->ino;
	inode_put(fs, ip);
	inode_put(fs, dp);
	unlock(fs);
	return ino;
}

static void write_at(struct pfs_fs *fs, uint64_t ino, size_t len, uint64_t off)
{
	struct inode *ip;
	char *buf = malloc(len);
	int err;

	if (!buf)
		die("malloc", ENOMEM);
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + (i + off) % 26);
	lock(fs);
	err = inode_get(fs, ino, &ip);
	if (err)
		die("inode_get", err);
	ssize_t n = file_write(fs, ip, buf, len, (off_t)off);
	if (n != (ssize_t)len)
		die("file_write", n < 0 ? (int)n : EIO);
	inode_put(fs, ip);
	unlock(fs);
	free(buf);
}

static void hard_link(struct pfs_fs *fs, uint64_t ino, uint64_t parent, const char *name)
{
	struct inode *ip, *dp;
	int err;

	lock(fs);
	err = inode_get(fs, ino, &ip);
	if (!err)
		err = inode_get(fs, parent, &dp);
	if (err)
		die("inode_get", err);
	err = dir_add(fs, dp, name, strlen(name), ino, (uint8_t)IFTODT(ip->mode));
	if (err)
		die("dir_add", err);
	ip->nlink++;
	err = inode_write(fs, ip);
	if (!err)
		err = inode_write(fs, dp);
	if (err)
		die("inode_write", err);
	inode_put(fs, dp);
	inode_put(fs, ip);
	unlock(fs);
}

static void set_xattr(struct pfs_fs *fs, uint64_t ino)
{
	struct inode *ip;
	int err;

	lock(fs);
	err = inode_get(fs, ino, &ip);
	if (!err)
		err = xattr_set(fs, ip, "user.test", "hello", 5, 0);
	if (err)
		die("xattr_set", err);
	inode_put(fs, ip);
	unlock(fs);
}

static void populate(struct pfs_fs *fs, struct names *n)
{
	static const char longtarget[] =
		"a/very/long/symlink/target/that/does/not/fit/in/the/inline/area/"
		"of/an/inode/so/it/goes/to/a/data/block/instead/of/the/inode/"
		"itself/and/is/read/through/the/extent/map/like/file/data";

	n->dir1 = make(fs, PFS_ROOT_INO, "dir1", S_IFDIR | 0755, NULL);
	n->file1 = make(fs, n->dir1, "file1", S_IFREG | 0644, NULL);
	write_at(fs, n->file1, 10000, 0);
	set_xattr(fs, n->file1);
	n->sub = make(fs, n->dir1, "sub", S_IFDIR | 0755, NULL);
	n->deep = make(fs, n->sub, "deep", S_IFREG | 0644, NULL);
	write_at(fs, n->deep, 100, 0);
	n->file2 = make(fs, PFS_ROOT_INO, "file2", S_IFREG | 0644, NULL);
	for (uint64_t b = 0; b < 12; b += 2)
		write_at(fs, n->file2, PFS_BLOCK_SIZE, b * PFS_BLOCK_SIZE);
	hard_link(fs, n->file1, PFS_ROOT_INO, "hard");
	n->sym = make(fs, PFS_ROOT_INO, "sym", S_IFLNK | 0777, "dir1/file1");
	n->longsym = make(fs, PFS_ROOT_INO, "longsym", S_IFLNK | 0777, longtarget);
	n->fifo = make(fs, PFS_ROOT_INO, "fifo", S_IFIFO | 0644, NULL);
	n->victim = make(fs, PFS_ROOT_INO, "victim", S_IFREG | 0644, NULL);
	n->first = make(fs, PFS_ROOT_INO, "first", S_IFREG | 0644, NULL);
	write_at(fs, n->first, PFS_BLOCK_SIZE, 0);
	n->dup = make(fs, PFS_ROOT_INO, "dup", S_IFREG | 0644, NULL);
	write_at(fs, n->dup, PFS_BLOCK_SIZE, 0);
	n->typed = make(fs, PFS_ROOT_INO, "typed", S_IFREG | 0644, NULL);
	write_at(fs, n->typed, 100, 0);
}

/* Unlink a file the kernel still references, commit, and die. */
static void crash_with_orphan(struct pfs_fs *fs, struct names *n)
{
	static const char name[] = "orphan";
	struct inode *dp, *ip;
	int err;

	n->orphan = make(fs, PFS_ROOT_INO, name, S_IFREG | 0644, NULL);
	write_at(fs, n->orphan, 2 * PFS_BLOCK_SIZE, 0);
	lock(fs);
	err = inode_get(fs, PFS_ROOT_INO, &dp);
	if (!err)
		err = inode_get(fs, n->orphan, &ip);
	if (err)
		die("inode_get", err);
	ip->nlookup = 1;                /* an open file of a process */
	err = dir_remove(fs, dp, name, sizeof(name) - 1);
	if (err)
		die("dir_remove", err);
	ip->nlink = 0;
	err = orphan_add(fs, ip);
	if (!err)
		err = inode_write(fs, ip);
	if (!err)
		err = inode_write(fs, dp);
	if (err)
		die("orphan_add", err);
	inode_put(fs, ip);
	inode_put(fs, dp);
	unlock(fs);
	pthread_mutex_lock(&fs->lock);
	err = tx_commit(fs);
	pthread_mutex_unlock(&fs->lock);
	if (err)
		die("tx_commit", err);
	_exit(0);
}

static void unlink_keep_inode(struct pfs_fs *fs, const char *name)
{
	struct inode *dp;
	int err;

	lock(fs);
	err = inode_get(fs, PFS_ROOT_INO, &dp);
	if (!err)
		err = dir_remove(fs, dp, name, strlen(name));
	if (err)
		die("dir_remove", err);
	inode_put(fs, dp);
	unlock(fs);
}

static void retype_entry(struct pfs_fs *fs, const char *name, uint64_t ino, uint8_t type)
{
	struct inode *dp;
	int err;

	lock(fs);
	err = inode_get(fs, PFS_ROOT_INO, &dp);
	if (!err)
		err = dir_set(fs, dp, name, strlen(name), ino, type);
	if (err)
		die("dir_set", err);
	inode_put(fs, dp);
	unlock(fs);
}

/* ---- raw edits of the unmounted image ---- */

struct img {
	int fd;
	struct pfs_super sb;
	uint32_t seed, bpg, ipg;
	uint64_t gs;
};

static void rd(struct img *im, uint64_t blk, void *buf)
{
	if (pread(im->fd, buf, PFS_BLOCK_SIZE, (off_t)(blk * PFS_BLOCK_SIZE)) != PFS_BLOCK_SIZE)
		die("pread", errno ? errno : EIO);
}

static void wr(struct img *im, uint64_t blk, const void *buf)
{
	if (pwrite(im->fd, buf, PFS_BLOCK_SIZE, (off_t)(blk * PFS_BLOCK_SIZE)) != PFS_BLOCK_SIZE)
		die("pwrite", errno ? errno : EIO);
}

static uint64_t group_first(const struct img *im, uint32_t g)
{
	return im->gs + (uint64_t)g * im->bpg;
}

static uint64_t itable_block(const struct img *im, uint64_t ino, uint32_t *slot)
{
	uint64_t g = (ino - 1) / im->ipg, i = (ino - 1) % im->ipg;

	*slot = (uint32_t)(i % PFS_INODES_PER_BLOCK);
	return group_first(im, (uint32_t)g) + PFS_GROUP_META_BLOCKS + i / PFS_INODES_PER_BLOCK;
}

static void inode_seal(const struct img *im, struct pfs_inode *di)
{
	di->crc = 0;
	di->crc = cpu_to_le32(pfs_crc32c(im->seed, di, sizeof(*di)));
}

/* Read-modify-write inode ino: fn changes it; reseal if asked. */
static void edit_inode(struct img *im, uint64_t ino, void (*fn)(struct pfs_inode *),
		       bool reseal)
{
	uint8_t blk[PFS_BLOCK_SIZE];
	uint32_t slot;
	uint64_t b = itable_block(im, ino, &slot);
	struct pfs_inode *di = (struct pfs_inode *)blk + slot;

	rd(im, b, blk);
	fn(di);
	if (reseal)
		inode_seal(im, di);
	wr(im, b, blk);
}

static struct pfs_inode read_inode(struct img *im, uint64_t ino)
{
	uint8_t blk[PFS_BLOCK_SIZE];
	uint32_t slot;

	rd(im, itable_block(im, ino, &slot), blk);
	return ((struct pfs_inode *)blk)[slot];
}

static struct pfs_extent inline_extent(const struct pfs_inode *di, unsigned i)
{
	struct pfs_extent e;

	memcpy(&e, di->inline_area + i * sizeof(e), sizeof(e));
	return e;
}

/* Change a group's descriptor counts by the given amounts. */
static void adjust_desc(struct img *im, uint32_t g, int dblocks, int dinodes)
{
	uint8_t blk[PFS_BLOCK_SIZE];
	struct pfs_group_desc *d = (struct pfs_group_desc *)blk;
	uint64_t b = group_first(im, g);

	rd(im, b, blk);
	d->free_blocks = cpu_to_le32((uint32_t)((int)le32_to_cpu(d->free_blocks) + dblocks));
	d->free_inodes = cpu_to_le32((uint32_t)((int)le32_to_cpu(d->free_inodes) + dinodes));
	pfs_meta_seal(blk, b, im->seed);
	wr(im, b, blk);
}

/* Set bit i of a group bitmap block (1 block, 2 inode) to on. */
static void set_bitmap_bit(struct img *im, uint32_t g, unsigned which, uint32_t i, bool on)
{
	uint8_t blk[PFS_BLOCK_SIZE];
	uint64_t b = group_first(im, g) + which;
	uint8_t *bits = blk + PFS_BITMAP_OFFSET;

	rd(im, b, blk);
	if (on)
		bits[i / 8] |= (uint8_t)(1u << (i % 8));
	else
		bits[i / 8] &= (uint8_t)~(1u << (i % 8));
	pfs_meta_seal(blk, b, im->seed);
	wr(im, b, blk);
}

static bool bitmap_bit(struct img *im, uint32_t g, unsigned which, uint32_t i)
{
	uint8_t blk[PFS_BLOCK_SIZE];

	rd(im, group_first(im, g) + which, blk);
	return blk[PFS_BITMAP_OFFSET + i / 8] & (1u << (i % 8));
}

static uint32_t group_of(const struct img *im, uint64_t blk)
{
	return (uint32_t)((blk - im->gs) / im->bpg);
}

static void flip_mtime(struct pfs_inode *di)
{
	di->mtime_nsec ^= cpu_to_le32(1);
}

static void nlink_three(struct pfs_inode *di)
{
	di->nlink = cpu_to_le32(3);
}

static void zero_keep_gen(struct pfs_inode *di)
{
	le64 gen = di->generation;

	memset(di, 0, sizeof(*di));
	di->generation = gen;
}

static uint64_t redirect_target;

static void redirect_first_extent(struct pfs_inode *di)
{
	struct pfs_extent e = inline_extent(di, 0);

	e.pblk = cpu_to_le64(redirect_target);
	memcpy(di->inline_area, &e, sizeof(e));
}

static void damage(const char *what, const char *path, const struct names *n)
{
	struct img im;
	uint8_t blk[PFS_BLOCK_SIZE];

	im.fd = open(path, O_RDWR);
	if (im.fd < 0)
		die(path, errno);
	if (format_read_super(im.fd, &im.sb))
		die("reading the superblock", EUCLEAN);
	im.seed = (uint32_t)le64_to_cpu(im.sb.csum_seed);
	im.bpg = le32_to_cpu(im.sb.blocks_per_group);
	im.ipg = le32_to_cpu(im.sb.inodes_per_group);
	im.gs = le64_to_cpu(im.sb.group_start);

	if (!strcmp(what, "bad-inode-crc")) {
		edit_inode(&im, n->file1, flip_mtime, false);
	} else if (!strcmp(what, "wrong-nlink")) {
		edit_inode(&im, n->file2, nlink_three, true);
	} else if (!strcmp(what, "dangling-entry")) {
		uint32_t g = (uint32_t)((n->victim - 1) / im.ipg);
		edit_inode(&im, n->victim, zero_keep_gen, false);
		set_bitmap_bit(&im, g, 2, (uint32_t)((n->victim - 1) % im.ipg), false);
		adjust_desc(&im, g, 0, 1);
	} else if (!strcmp(what, "bitmap-block-leak")) {
		uint32_t meta = PFS_GROUP_META_BLOCKS + le32_to_cpu(im.sb.inode_table_blocks);
		uint32_t i = meta;
		while (bitmap_bit(&im, 0, 1, i))
			i++;
		set_bitmap_bit(&im, 0, 1, i, true);
		adjust_desc(&im, 0, -1, 0);
	} else if (!strcmp(what, "bitmap-missing")) {
		struct pfs_inode di = read_inode(&im, n->file1);
		uint64_t p = le64_to_cpu(inline_extent(&di, 0).pblk);
		uint32_t g = group_of(&im, p);
		set_bitmap_bit(&im, g, 1, (uint32_t)(p - group_first(&im, g)), false);
		adjust_desc(&im, g, 1, 0);
	} else if (!strcmp(what, "double-claim")) {
		struct pfs_inode di = read_inode(&im, n->first);
		redirect_target = le64_to_cpu(inline_extent(&di, 0).pblk);
		edit_inode(&im, n->dup, redirect_first_extent, true);
	} else if (!strcmp(what, "bad-group-count")) {
		adjust_desc(&im, 0, 5, 0);
	} else if (!strcmp(what, "corrupt-primary-super")) {
		rd(&im, 0, blk);
		((struct pfs_super *)blk)->label[0] ^= 0x20;
		wr(&im, 0, blk);
	} else if (!strcmp(what, "bad-extent-bounds")) {
		struct pfs_inode di = read_inode(&im, n->file1);
		uint64_t p = le64_to_cpu(inline_extent(&di, 0).pblk);
		/* The inode table of the extent's own group. */
		redirect_target = group_first(&im, group_of(&im, p)) + PFS_GROUP_META_BLOCKS;
		edit_inode(&im, n->file1, redirect_first_extent, true);
	}
	if (fsync(im.fd) < 0)
		die("fsync", errno);
	close(im.fd);
}

static bool known(const char *what)
{
	for (size_t i = 0; i < PFS_ARRAY_SIZE(damages); i++)
		if (!strcmp(what, damages[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	struct pfs_format_params p;
	struct pfs_opts o;
	struct pfs_fs *fs;
	struct names n = { 0 };
	uint8_t key[PFS_KEY_BYTES];
	const char *why = NULL;
	int fd, err;

	if (argc == 2 && !strcmp(argv[1], "-l")) {
		for (size_t i = 0; i < PFS_ARRAY_SIZE(damages); i++)
			puts(damages[i]);
		return 0;
	}
	if (argc != 4 || !known(argv[3])) {
		fprintf(stderr, "usage: mkdamaged IMAGE KEYFILE DAMAGE (mkdamaged -l lists them)\n");
		return 2;
	}
	pfs_log_set_level(PFS_LOG_WARN);
	if (key_init())
		die("key_init", EIO);

	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die(argv[1], errno);
	memset(&p, 0, sizeof(p));
	p.slots = IMG_SLOTS;
	p.journal_bytes = 256 * PFS_BLOCK_SIZE;
	p.blocks_per_group = IMG_BPG;
	p.uuid = img_uuid;
	snprintf(p.label, sizeof(p.label), "fsck-test");
	key_generate(key);
	err = format_write(fd, IMG_BLOCKS, &p, key, NULL, &why);
	if (err)
		die(why ? why : "format_write", err);
	close(fd);
	err = key_file_write(argv[2], img_uuid, key, 1);
	if (err)
		die("key_file_write", err);

	pfs_opts_defaults(&o);
	o.coord = "none";
	o.device = argv[1];
	o.keyfile = argv[2];
	o.node = 0;
	o.cache_bytes = 16u << 20;
	err = fs_mount(&o, &fs);
	if (err)
		die("fs_mount", err);
	populate(fs, &n);
	if (!strcmp(argv[3], "orphan-unlinked"))
		crash_with_orphan(fs, &n);
	if (!strcmp(argv[3], "unreachable-inode"))
		unlink_keep_inode(fs, "victim");
	if (!strcmp(argv[3], "bad-dirent-type"))
		retype_entry(fs, "typed", n.typed, (uint8_t)IFTODT(S_IFDIR));
	err = fs_unmount(fs);
	if (err)
		die("fs_unmount", err);
	damage(argv[3], argv[1], &n);
	return 0;
}
