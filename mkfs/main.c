/*
 * mkfs.peerfs -- create a peerfs volume on a block device or an image file.
 *
 * Every check (options, size, existing signatures, key file) runs before
 * anything is written.  The key file is written under a temporary name
 * before the volume and renamed into place once the volume is complete, so
 * a failed or interrupted run leaves neither a key nor an image it created.
 *
 * Exit status: 0 success, 1 usage error or refusal, 8 operational error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <blkid.h>
#include <sodium.h>

#include "pfs_format.h"
#include "pfs_key.h"
#include "pfs_mkfs.h"
#include "pfs_util.h"

#define PROG "mkfs.peerfs"

enum {
	EXIT_OK = 0,
	EXIT_USAGE = 1,         /* bad usage or refusal: nothing written */
	EXIT_OPERATIONAL = 8,   /* an operation failed */
};

struct mkfs_opts {
	const char *device;
	const char *keyfile;
	uint64_t size;
	bool have_size;
	bool force;
	bool quiet;
	struct pfs_format_params fp;
};

/* What the target is before anything is written. */
struct target {
	bool exists;
	bool is_blkdev;
	uint64_t cur_bytes;     /* current size of an existing target */
	uint64_t bytes;         /* size of the volume to create */
};

/* Files to remove if a signal ends the run (async-signal-safe unlink). */
static char cleanup_key_tmp[PATH_MAX + 16];
static char cleanup_image[PATH_MAX];
static volatile sig_atomic_t have_key_tmp;
static volatile sig_atomic_t have_image;

static void on_fatal_signal(int sig)
{
	if (have_key_tmp)
		unlink(cleanup_key_tmp);
	if (have_image)
		unlink(cleanup_image);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_signal_cleanup(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < PFS_ARRAY_SIZE(sigs); i++)
		sigaddset(&sa.sa_mask, sigs[i]);
	for (size_t i = 0; i < PFS_ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
}

static void remember_cleanup(char *dst, size_t len,
			     volatile sig_atomic_t *flag, const char *path)
{
	*flag = 0;
	/* A truncated name could be another file: then remember nothing. */
	if ((size_t)snprintf(dst, len, "%s", path) < len)
		*flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: " PROG " [options] DEVICE\n"
"Create a peerfs volume on DEVICE (a block device or an image file).\n"
"\n"
"Options:\n"
"  -s SIZE            create or extend the image file DEVICE to SIZE bytes\n"
"                     (suffixes K, M, G, T: powers of 1024)\n"
"  -n SLOTS           node slots, 1..%u (default %u)\n"
"  -J SIZE            journal size per slot (default 16M, less on small\n"
"                     devices; at least 1M)\n"
"  -L LABEL           volume label, at most %u bytes\n"
"  -k KEYFILE         where to write the cluster key\n"
"                     (default $PEERFS_KEYDIR/UUID.key or " PFS_KEYDIR_DEFAULT "/UUID.key)\n"
"  -g BLOCKS          blocks per allocation group, 64..%u (default %u)\n"
"  -i BYTES           bytes per inode, 1K..64M (default 16K)\n"
"  -E root_owner[=UID:GID]\n"
"                     owner of the root directory (default 0:0; without\n"
"                     a value: the user running " PROG ")\n"
"  -f                 overwrite an existing filesystem or key file\n"
"  -q                 quiet: print nothing on success\n"
"  -h                 show this help\n"
"  -V                 show the version\n"
"\n"
"Exit status: 0 success, 1 usage error or refusal, 8 operational error.\n",
		PFS_MAX_SLOTS, PFS_DEFAULT_SLOTS, PFS_LABEL_MAX - 1,
		(unsigned)PFS_BITMAP_BITS, (unsigned)PFS_BITMAP_BITS);
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" PROG " -h' for more information.\n");
	return EXIT_USAGE;
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* -E: comma-separated extended options. */
static int parse_extended(char *arg, struct mkfs_opts *o)
{
	char *save = NULL;

	for (char *tok = strtok_r(arg, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *val = strchr(tok, '=');
		if (val)
			*val++ = '\0';
		if (strcmp(tok, "root_owner") != 0)
			return usage_error("unknown extended option '%s'", tok);
		if (!val) {
			o->fp.root_uid = (uint32_t)getuid();
			o->fp.root_gid = (uint32_t)getgid();
			continue;
		}
		char *colon = strchr(val, ':');
		if (!colon)
			return usage_error("root_owner needs UID:GID, not '%s'", val);
		*colon = '\0';
		if (!parse_u32(val, 0, UINT32_MAX - 1, &o->fp.root_uid) ||
		    !parse_u32(colon + 1, 0, UINT32_MAX - 1, &o->fp.root_gid)) {
			*colon = ':';
			return usage_error("bad root_owner '%s': numeric UID:GID expected",
					   val);
		}
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct mkfs_opts *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c, ret;

	memset(o, 0, sizeof(*o));
	while ((c = getopt_long(argc, argv, "s:n:J:L:k:g:i:E:fqhV", longopts,
				NULL)) != -1) {
		switch (c) {
		case 's':
			if (pfs_parse_size(optarg, &o->size) < 0)
				return usage_error("bad size '%s'", optarg);
			o->have_size = true;
			break;
		case 'n':
			if (!parse_u32(optarg, 1, PFS_MAX_SLOTS, &o->fp.slots))
				return usage_error("bad slot count '%s' (1..256)", optarg);
			break;
		case 'J':
			if (pfs_parse_size(optarg, &v) < 0 || v == 0)
				return usage_error("bad journal size '%s'", optarg);
			o->fp.journal_bytes = v;
			break;
		case 'L':
			if (strlen(optarg) >= PFS_LABEL_MAX)
				return usage_error("label '%s' is longer than 63 bytes",
						   optarg);
			memset(o->fp.label, 0, sizeof(o->fp.label));
			memcpy(o->fp.label, optarg, strlen(optarg));
			break;
		case 'k':
			if (!*optarg)
				return usage_error("empty key file name");
			o->keyfile = optarg;
			break;
		case 'g':
			if (!parse_u32(optarg, 64, PFS_BITMAP_BITS,
				       &o->fp.blocks_per_group))
				return usage_error("bad blocks per group '%s' "
						   "(64..32512)", optarg);
			break;
		case 'i':
			if (pfs_parse_size(optarg, &v) < 0 || v < 1024 ||
			    v > (64u << 20))
				return usage_error("bad bytes per inode '%s' "
						   "(1K..64M)", optarg);
			o->fp.bytes_per_inode = (uint32_t)v;
			break;
		case 'E':
			ret = parse_extended(optarg, o);
			if (ret)
				return ret;
			break;
		case 'f':
			o->force = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		case 'V':
			printf(PROG ": peerfs on-disk format version %d "
			       "(libsodium %s, libblkid %s)\n", PFS_FORMAT_VERSION,
			       sodium_version_string(), BLKID_VERSION);
			exit(EXIT_OK);
		default:
			fprintf(stderr, "Try '" PROG " -h' for more information.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("no device given");
	if (optind + 1 < argc)
		return usage_error("unexpected argument '%s'", argv[optind + 1]);
	o->device = argv[optind];
	return 0;
}

static void fmt_bytes(uint64_t b, char *out, size_t len)
{
	static const char *units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned u = 0;
	uint64_t unit = 1;

	while (u + 1 < PFS_ARRAY_SIZE(units) && b / unit >= 1024) {
		unit <<= 10;
		u++;
	}
	if (b % unit == 0)
		snprintf(out, len, "%" PRIu64 " %s", b / unit, units[u]);
	else
		snprintf(out, len, "%.1f %s", (double)b / (double)unit, units[u]);
}

/* Inspect DEVICE without changing it. */
static int examine_target(const struct mkfs_opts *o, struct target *t)
{
	struct stat st;

	memset(t, 0, sizeof(*t));
	if (stat(o->device, &st) < 0) {
		if (errno != ENOENT) {
			fprintf(stderr, PROG ": %s: %s\n", o->device, strerror(errno));
			return EXIT_OPERATIONAL;
		}
		if (!o->have_size) {
			fprintf(stderr, PROG ": %s does not exist (use -s SIZE to "
				"create an image file)\n", o->device);
			return EXIT_USAGE;
		}
		t->bytes = o->size;
		return 0;
	}
	t->exists = true;
	if (S_ISBLK(st.st_mode)) {
		t->is_blkdev = true;
		if (o->have_size) {
			fprintf(stderr, PROG ": %s is a block device; -s applies "
				"only to image files\n", o->device);
			return EXIT_USAGE;
		}
		int fd = open(o->device, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, PROG ": cannot open %s: %s\n", o->device,
				strerror(errno));
			return EXIT_OPERATIONAL;
		}
		if (ioctl(fd, BLKGETSIZE64, &t->cur_bytes) < 0) {
			fprintf(stderr, PROG ": cannot get the size of %s: %s\n",
				o->device, strerror(errno));
			close(fd);
			return EXIT_OPERATIONAL;
		}
		close(fd);
		t->bytes = t->cur_bytes;
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, PROG ": %s is not a block device or a regular "
			"file\n", o->device);
		return EXIT_USAGE;
	}
	t->cur_bytes = (uint64_t)st.st_size;
	t->bytes = t->cur_bytes;
	if (o->have_size) {
		if (o->size < t->cur_bytes && !o->force) {
			char cur[32], want[32];
			fmt_bytes(t->cur_bytes, cur, sizeof(cur));
			fmt_bytes(o->size, want, sizeof(want));
			fprintf(stderr, PROG ": %s is already %s, larger than -s %s; "
				"use -f to shrink it\n", o->device, cur, want);
			return EXIT_USAGE;
		}
		t->bytes = o->size;
	}
	return 0;
}

/* Count slots of an existing volume that are not free (best effort). */
static uint32_t busy_slots(int fd, const struct pfs_super *sb)
{
	uint32_t n = le32_to_cpu(sb->max_slots), busy = 0;
	uint64_t start = le64_to_cpu(sb->slot_table_start);
	struct pfs_slot sl;

	for (uint32_t s = 0; s < n && s < PFS_MAX_SLOTS; s++) {
		off_t off = (off_t)((start + 2 * (uint64_t)s + 1) * PFS_BLOCK_SIZE);
		if (pread(fd, &sl, sizeof(sl), off) != (ssize_t)sizeof(sl))
			break;
		if (le32_to_cpu(sl.hdr.magic) == PFS_MAGIC_SLOT &&
		    le32_to_cpu(sl.state) != PFS_SLOT_FREE)
			busy++;
	}
	return busy;
}

/* Refuse (or, with -f, announce) a peerfs volume already on the target. */
static int check_peerfs(const struct mkfs_opts *o)
{
	struct pfs_super sb;
	char u[37], label[PFS_LABEL_MAX + 1], desc[160];
	int ret;

	int fd = open(o->device, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, PROG ": cannot open %s: %s\n", o->device,
			strerror(errno));
		return EXIT_OPERATIONAL;
	}
	ret = format_read_super(fd, &sb);
	if (ret == -ENOENT) {
		close(fd);
		return 0;
	}
	if (ret < 0) {
		fprintf(stderr, PROG ": cannot read %s: %s\n", o->device,
			strerror(-ret));
		close(fd);
		return EXIT_OPERATIONAL;
	}
	uint32_t busy = busy_slots(fd, &sb);
	close(fd);

	uuid_format(sb.uuid, u);
	memcpy(label, sb.label, PFS_LABEL_MAX);
	label[PFS_LABEL_MAX] = '\0';
	if (label[0])
		snprintf(desc, sizeof(desc), "UUID %s, label \"%s\"", u, label);
	else
		snprintf(desc, sizeof(desc), "UUID %s, no label", u);
	if (!o->force) {
		fprintf(stderr, PROG ": %s already holds a peerfs volume (%s)",
			o->device, desc);
		if (busy)
			fprintf(stderr, "; %u node slot%s marked mounted", busy,
				busy == 1 ? " is" : "s are");
		fprintf(stderr, "\nUse -f to overwrite it.\n");
		return EXIT_USAGE;
	}
	if (!o->quiet)
		fprintf(stderr, PROG ": overwriting the peerfs volume (%s) on "
			"%s%s\n", desc, o->device,
			busy ? "; some node slots are still marked mounted" : "");
	return 0;
}

/* Refuse (or, with -f, announce) another filesystem or a partition table
 * on the target, as libblkid sees it. */
static int check_blkid(const struct mkfs_opts *o)
{
	const char *type = NULL, *label = NULL;
	char what[128];
	int ret = 0;

	blkid_probe pr = blkid_new_probe_from_filename(o->device);
	if (!pr) {
		fprintf(stderr, PROG ": cannot probe %s for existing "
			"filesystems: %s\n", o->device, strerror(errno ? errno : EIO));
		return o->force ? 0 : EXIT_OPERATIONAL;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL);
	blkid_probe_enable_partitions(pr, 1);

	int rc = blkid_do_safeprobe(pr);
	if (rc == 1)
		goto out_free_probe;
	if (rc == 0) {
		if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0) {
			blkid_probe_lookup_value(pr, "LABEL", &label, NULL);
			if (label && *label)
				snprintf(what, sizeof(what), "a filesystem of type "
					 "%s (label \"%s\")", type, label);
			else
				snprintf(what, sizeof(what), "a filesystem of type %s",
					 type);
		} else if (blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL) == 0) {
			snprintf(what, sizeof(what), "a partition table of type %s",
				 type);
		} else {
			snprintf(what, sizeof(what), "an unknown signature");
		}
	} else if (rc == -2) {
		snprintf(what, sizeof(what), "several conflicting filesystem "
			 "signatures");
	} else {
		fprintf(stderr, PROG ": cannot probe %s for existing "
			"filesystems\n", o->device);
		ret = o->force ? 0 : EXIT_OPERATIONAL;
		goto out_free_probe;
	}
	if (!o->force) {
		fprintf(stderr, PROG ": %s already holds %s\nUse -f to overwrite it.\n",
			o->device, what);
		ret = EXIT_USAGE;
	} else if (!o->quiet) {
		fprintf(stderr, PROG ": overwriting %s on %s\n", what, o->device);
	}
out_free_probe:
	blkid_free_probe(pr);
	return ret;
}

/* Open the target for writing and give it its size. */
static int open_target(const struct mkfs_opts *o, const struct target *t,
		       int *fdp)
{
	int fd;

	if (t->is_blkdev) {
		fd = open(o->device, O_RDWR | O_EXCL | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, PROG ": cannot open %s: %s%s\n", o->device,
				strerror(errno), errno == EBUSY ?
				" (mounted or in use by another program)" : "");
			return errno == EBUSY ? EXIT_USAGE : EXIT_OPERATIONAL;
		}
		*fdp = fd;
		return 0;
	}
	if (t->exists) {
		fd = open(o->device, O_RDWR | O_CLOEXEC);
	} else {
		fd = open(o->device, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd >= 0)
			remember_cleanup(cleanup_image, sizeof(cleanup_image),
					 &have_image, o->device);
	}
	if (fd < 0) {
		fprintf(stderr, PROG ": cannot open %s: %s\n", o->device,
			strerror(errno));
		return EXIT_OPERATIONAL;
	}
	if (t->bytes != t->cur_bytes && ftruncate(fd, (off_t)t->bytes) < 0) {
		fprintf(stderr, PROG ": cannot set the size of %s: %s\n",
			o->device, strerror(errno));
		close(fd);
		return EXIT_OPERATIONAL;
	}
	*fdp = fd;
	return 0;
}

static void print_summary(const struct mkfs_opts *o, const struct pfs_super *sb,
			  const char *keypath)
{
	uint64_t n = le64_to_cpu(sb->block_count);
	uint32_t slots = le32_to_cpu(sb->max_slots);
	uint64_t jb = le64_to_cpu(sb->journal_blocks);
	uint32_t ngroups = le32_to_cpu(sb->group_count);
	uint32_t bpg = le32_to_cpu(sb->blocks_per_group);
	uint32_t ipg = le32_to_cpu(sb->inodes_per_group);
	uint64_t gs = le64_to_cpu(sb->group_start);
	uint64_t last_nb = PFS_MIN((uint64_t)bpg, n - 1 - (gs + (uint64_t)(ngroups - 1) * bpg));
	char u[37], size[32], jsize[32], jtotal[32];

	uuid_format(sb->uuid, u);
	fmt_bytes(n * PFS_BLOCK_SIZE, size, sizeof(size));
	fmt_bytes(jb * PFS_BLOCK_SIZE, jsize, sizeof(jsize));
	fmt_bytes(jb * slots * PFS_BLOCK_SIZE, jtotal, sizeof(jtotal));

	printf("Created a peerfs volume on %s\n", o->device);
	printf("  UUID:       %s\n", u);
	if (sb->label[0])
		printf("  label:      %.*s\n", (int)strnlen(sb->label, PFS_LABEL_MAX),
		       sb->label);
	else
		printf("  label:      (none)\n");
	printf("  size:       %s (%" PRIu64 " blocks of %u bytes)\n", size, n,
	       PFS_BLOCK_SIZE);
	printf("  node slots: %u, journal %s each (%s in all)\n", slots, jsize,
	       jtotal);
	if (last_nb < bpg)
		printf("  groups:     %u of %u blocks (the last one %" PRIu64 ")\n",
		       ngroups, bpg, last_nb);
	else
		printf("  groups:     %u of %u blocks\n", ngroups, bpg);
	printf("  inodes:     %" PRIu64 " (%u per group)\n",
	       (uint64_t)ngroups * ipg, ipg);
	printf("  key file:   %s\n", keypath);
	printf("Copy the key file to every node that mounts this volume; "
	       "without it the volume cannot be mounted.\n");
}

int main(int argc, char **argv)
{
	struct mkfs_opts o;
	struct target t;
	struct pfs_super sb;
	uint8_t uuid[PFS_UUID_SIZE];
	uint8_t key[PFS_KEY_BYTES];
	char keypath[PATH_MAX];
	char keytmp[PATH_MAX + 16];
	const char *why = NULL;
	struct stat st;
	int fd = -1;
	int ret;

	ret = parse_args(argc, argv, &o);
	if (ret)
		return ret;
	pfs_log_set_context(PROG ":");
	if (key_init() < 0) {
		fprintf(stderr, PROG ": cannot initialise libsodium\n");
		return EXIT_OPERATIONAL;
	}

	/* Checks: nothing is written until they all pass. */
	ret = examine_target(&o, &t);
	if (ret)
		return ret;
	uuid_generate_random16(uuid);
	o.fp.uuid = uuid;
	uint64_t nblocks = t.bytes / PFS_BLOCK_SIZE;
	int err = format_layout(nblocks, &o.fp, &sb, &why);
	if (err < 0) {
		fprintf(stderr, PROG ": %s: %s\n", o.device,
			why ? why : strerror(-err));
		return EXIT_USAGE;
	}
	if (t.exists && t.cur_bytes > 0) {
		ret = check_peerfs(&o);
		if (ret)
			return ret;
		ret = check_blkid(&o);
		if (ret)
			return ret;
	}
	if (o.keyfile) {
		if (snprintf(keypath, sizeof(keypath), "%s", o.keyfile) >=
		    (int)sizeof(keypath)) {
			fprintf(stderr, PROG ": key file name too long\n");
			return EXIT_USAGE;
		}
	} else {
		key_default_path(uuid, keypath, sizeof(keypath));
	}
	if (lstat(keypath, &st) == 0) {
		if (!o.force) {
			fprintf(stderr, PROG ": key file %s already exists\n"
				"Use -f to replace it, or -k to choose another "
				"file.\n", keypath);
			return EXIT_USAGE;
		}
		if (S_ISDIR(st.st_mode)) {
			fprintf(stderr, PROG ": key file %s is a directory\n",
				keypath);
			return EXIT_USAGE;
		}
	} else if (errno != ENOENT) {
		fprintf(stderr, PROG ": key file %s: %s\n", keypath, strerror(errno));
		return EXIT_OPERATIONAL;
	}

	/* Writing. */
	install_signal_cleanup();
	key_generate(key);
	err = key_file_stage(keypath, uuid, key, keytmp, sizeof(keytmp));
	if (err < 0) {
		fprintf(stderr, PROG ": cannot write key file %s: %s\n", keypath,
			strerror(-err));
		ret = EXIT_OPERATIONAL;
		goto out_wipe_key;
	}
	remember_cleanup(cleanup_key_tmp, sizeof(cleanup_key_tmp), &have_key_tmp,
			 keytmp);

	ret = open_target(&o, &t, &fd);
	if (ret)
		goto out_remove_image;
	err = format_write(fd, nblocks, &o.fp, key, &sb, &why);
	if (err < 0) {
		fprintf(stderr, PROG ": formatting %s failed%s%s: %s\n", o.device,
			why ? " while " : "", why ? why : "", strerror(-err));
		ret = EXIT_OPERATIONAL;
		goto out_close_target;
	}
	if (close(fd) < 0) {
		fd = -1;
		fprintf(stderr, PROG ": closing %s: %s\n", o.device, strerror(errno));
		ret = EXIT_OPERATIONAL;
		goto out_close_target;
	}
	fd = -1;

	err = key_file_commit(keytmp, keypath, o.force);
	if (err < 0) {
		/* The volume exists now: keep the key where it is. */
		fprintf(stderr, PROG ": the volume was created but its key could "
			"not be saved as %s: %s\nThe key is in %s; move it into "
			"place by hand.\n", keypath, strerror(-err), keytmp);
		have_key_tmp = 0;
		ret = EXIT_OPERATIONAL;
		goto out_wipe_key;
	}
	have_key_tmp = 0;
	have_image = 0;
	if (!o.quiet)
		print_summary(&o, &sb, keypath);
	ret = EXIT_OK;
	goto out_wipe_key;

out_close_target:
	if (fd >= 0)
		close(fd);
out_remove_image:
	if (have_image) {
		unlink(o.device);
		have_image = 0;
	}
	have_key_tmp = 0;
	key_file_discard(keytmp);
out_wipe_key:
	sodium_memzero(key, sizeof(key));
	return ret;
}
