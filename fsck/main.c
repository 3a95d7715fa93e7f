/*
 * main.c -- fsck.peerfs: check and repair a peerfs volume.
 *
 *   fsck.peerfs [-n|-p|-y] [-f] [-v] [-k KEYFILE] DEVICE
 *
 * Runs passes 0 to 5 (fsck.h) on the device, writes the accepted repairs
 * at the end, prints a summary and exits with e2fsck's codes: 0 clean,
 * 1 errors corrected, 4 errors left uncorrected, 8 operational error
 * (cannot open, not a peerfs volume, wrong key, mounted), 16 usage error.
 * Without -n, -p or -y the mode is to ask on a terminal, or -n when the
 * standard input is not a terminal.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "fsck.h"
#include "pfs_key.h"
#include "pfs_util.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " FSCK_PROG " [-n|-p|-y] [-f] [-v] [-k KEYFILE] DEVICE\n"
		"  -n          check only, open the device read-only\n"
		"  -p          repair what is safe without asking\n"
		"  -y          repair everything that can be repaired\n"
		"  -f          check even if the volume looks clean (always)\n"
		"  -v          verbose\n"
		"  -k KEYFILE  cluster key file (default $PEERFS_KEYDIR/UUID.key\n"
		"              or " PFS_KEYDIR_DEFAULT "/UUID.key)\n"
		"exit status: 0 clean, 1 errors corrected, 4 errors left,\n"
		"             8 operational error, 16 usage error\n");
}

static int parse_args(int argc, char **argv, struct fsck_opts *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, modes = 0;

	memset(o, 0, sizeof(*o));
	o->mode = isatty(STDIN_FILENO) ? FSCK_MODE_ASK : FSCK_MODE_CHECK;
	while ((c = getopt_long(argc, argv, "npyfvk:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->mode = FSCK_MODE_CHECK;
			modes++;
			break;
		case 'p':
			o->mode = FSCK_MODE_PREEN;
			modes++;
			break;
		case 'y':
			o->mode = FSCK_MODE_YES;
			modes++;
			break;
		case 'f':
			o->force = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'k':
			if (!*optarg) {
				fprintf(stderr, FSCK_PROG ": empty key file name\n");
				return -EINVAL;
			}
			o->keyfile = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(FSCK_EXIT_CLEAN);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (modes > 1) {
		fprintf(stderr, FSCK_PROG ": only one of -n, -p and -y may be given\n");
		return -EINVAL;
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return -EINVAL;
	}
	o->device = argv[optind];
	return 0;
}

static int run_passes(struct fsck *f)
{
	static int (*const passes[])(struct fsck *) = {
		fsck_pass1_slots, fsck_pass2_groups, fsck_pass3_inodes,
		fsck_pass4_dirs, fsck_pass5_usage,
	};
	int err = fsck_pass0_super(f);

	if (err)
		return err;
	f->progress = isatty(STDOUT_FILENO) &&
		      f->g.nblocks * PFS_BLOCK_SIZE > FSCK_PROGRESS_MIN_BYTES;
	err = fsck_key_check(f);
	for (size_t i = 0; i < PFS_ARRAY_SIZE(passes) && !err; i++) {
		fsck_verbose(f, "pass %zu", i + 1);
		err = passes[i](f);
	}
	if (!err && f->fixed)
		err = fsck_dev_commit(f);
	return err;
}

static void cleanup(struct fsck *f)
{
	sodium_memzero(f->key, sizeof(f->key));
	fsck_dev_close(f);
	fsck_claims_fini(f);
	fsck_bmap_free(&f->iused);
	free(f->itab.v);
	free(f->slots);
	free(f->groups);
	free(f->hash_ctx);
}

int main(int argc, char **argv)
{
	struct fsck f;
	int err, code;

	memset(&f, 0, sizeof(f));
	if (parse_args(argc, argv, &f.o))
		return FSCK_EXIT_USAGE;
	f.name = f.o.device;
	pfs_log_set_level(f.o.verbose ? PFS_LOG_INFO : -1);
	if (key_init()) {
		fprintf(stderr, FSCK_PROG ": cannot initialise libsodium\n");
		return FSCK_EXIT_OPERATIONAL;
	}
	err = fsck_dev_open(&f);
	if (!err)
		err = run_passes(&f);
	if (err) {
		cleanup(&f);
		return FSCK_EXIT_OPERATIONAL;
	}
	printf("%s: %llu inodes, %llu blocks used of %llu\n", f.name,
	       (unsigned long long)fsck_bmap_count(&f.iused, 0, f.g.ninodes),
	       (unsigned long long)fsck_bmap_count(&f.used, 0, f.g.nblocks),
	       (unsigned long long)f.g.nblocks);
	if (f.left) {
		printf("%s: errors left\n", f.name);
		code = FSCK_EXIT_UNCORRECTED;
	} else if (f.fixed) {
		printf("%s: errors corrected\n", f.name);
		code = FSCK_EXIT_CORRECTED;
	} else {
		printf("%s: clean\n", f.name);
		code = FSCK_EXIT_CLEAN;
	}
	cleanup(&f);
	return code;
}
