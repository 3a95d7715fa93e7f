/*
 * main.c -- the peerfs mount daemon.
 *
 *   peerfs DEVICE MOUNTPOINT [-f] [-d] [-s] [-o option[,option...]]
 *
 * Start-up order matters:
 *   1. parse options (a bad one: exit 1, nothing touched);
 *   2. unless -f, fork: the parent waits on a pipe for the child's verdict
 *      and exits with it, so errors (wrong key, busy slot, corrupt volume)
 *      reach the caller's terminal and exit status; the child detaches
 *      before it opens the volume or starts any thread;
 *   3. mount the volume (fs_mount), create the FUSE session, mount it;
 *   4. report success to the parent, serve requests until unmounted;
 *   5. unmount the volume cleanly (commit, release the slot).
 * Exit status: 0 success, 1 bad usage, 32 mount failure (as mount(8)).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pfs_backout.h"
#include "ops.h"
#include "pfs_util.h"

#define EXIT_USAGE 1
#define EXIT_MOUNT 32

struct cli {
	char *device;
	char *keyfile;
	char *data;
	char *cache_size;
	int node;
	int commit_ms;
	int heartbeat_ms;
	int dead_ms;
	int fence_ms;
	char *coord;
	char *recovery;
	char *recovery_parallelism;
	char *restart_wait;
	double attr_timeout;
	int ro;
	int verbose;
	int nonopt;
};

#define CLI_OPT(t, p) { t, offsetof(struct cli, p), 1 }
enum { KEY_RO, KEY_DISCARD, KEY_HELP, KEY_VERSION };

static const struct fuse_opt cli_spec[] = {
	{ "keyfile=%s", offsetof(struct cli, keyfile), 0 },
	{ "node=%d", offsetof(struct cli, node), 0 },
	{ "commit_ms=%d", offsetof(struct cli, commit_ms), 0 },
	{ "data=%s", offsetof(struct cli, data), 0 },
	{ "cache_size=%s", offsetof(struct cli, cache_size), 0 },
	{ "heartbeat_ms=%d", offsetof(struct cli, heartbeat_ms), 0 },
	{ "dead_ms=%d", offsetof(struct cli, dead_ms), 0 },
	{ "fence_ms=%d", offsetof(struct cli, fence_ms), 0 },
	{ "coord=%s", offsetof(struct cli, coord), 0 },
	{ "recovery=%s", offsetof(struct cli, recovery), 0 },
	{ "recovery_parallelism=%s", offsetof(struct cli, recovery_parallelism), 0 },
	{ "restart_wait=%s", offsetof(struct cli, restart_wait), 0 },
	{ "attr_timeout=%lf", offsetof(struct cli, attr_timeout), 0 },
	{ "verbose", offsetof(struct cli, verbose), 1 },
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("_netdev", KEY_DISCARD),
	FUSE_OPT_KEY("defaults", KEY_DISCARD),
	FUSE_OPT_KEY("nofail", KEY_DISCARD),
	FUSE_OPT_KEY("auto", KEY_DISCARD),
	FUSE_OPT_KEY("noauto", KEY_DISCARD),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: peerfs DEVICE MOUNTPOINT [-f] [-d] [-s] [-o option[,...]]\n"
		"options:\n"
		"  keyfile=FILE        cluster key (default: /etc/peerfs/UUID.key)\n"
		"  node=N              node slot (default: the first free slot)\n"
		"  commit_ms=N         group commit interval (default 1000)\n"
		"  data=undo|ordered   log file overwrites too, or metadata only (undo)\n"
		"  cache_size=SIZE     block cache size (default 256M)\n"
		"  heartbeat_ms=N      heartbeat period (default 500)\n"
		"  dead_ms=N           silence before a node is dead (default 3000)\n"
		"  fence_ms=N          a node that cannot beat this long stops writing\n"
		"                      (default 2000, less than dead_ms)\n"
		"  coord=local|none    coordination of the nodes (default local: the\n"
		"                      nodes of this host; none: a single node)\n"
		"  recovery=auto|manual  recover dead peers at once (default), or\n"
		"                      leave it to peerfsctl recover\n"
		"  recovery_parallelism=N  backout workers at most, 1..64 (default\n"
		"                      2 x CPUs; 1: serial)\n"
		"  restart_wait=SEC    a node declared dead that mounts again waits this\n"
		"                      long for its recovery to end (default 300; 0: refuse)\n"
		"  attr_timeout=SEC    kernel attribute/entry cache (default 1)\n"
		"  ro                  read-only\n"
		"  verbose             debug logging\n"
		"and the FUSE options: -f (foreground), -d (debug), -s (single thread),\n"
		"allow_other, default_permissions, ... See peerfs(8).\n");
}

static int cli_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cli *c = data;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!c->device) {
			c->device = strdup(arg);
			return 0;
		}
		return 1;                         /* the mountpoint: keep */
	case KEY_RO:
		c->ro = 1;
		return 1;                         /* also a kernel option */
	case KEY_DISCARD:
		return 0;
	case KEY_HELP:
		usage(stdout);
		exit(0);
	case KEY_VERSION:
		printf("peerfs %d (on-disk format %d), libfuse %s\n", 1, PFS_FORMAT_VERSION,
		       fuse_pkgversion());
		exit(0);
	default:
		return 1;
	}
}

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	struct pfs_fs *fs = userdata;
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	if (conn->capable & FUSE_CAP_DONT_MASK)
		conn->want |= FUSE_CAP_DONT_MASK;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO)
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;   /* always plus */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want &= ~FUSE_CAP_SPLICE_WRITE;
	/* Advisory locks are cluster-wide through the coordinator
	 * (ops_lock.c); without one (coord=none, a single node) the
	 * kernel keeps them, which is exact for one node. */
	if (gl_coord(fs)) {
		conn->want |= conn->capable & (FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
		if (!(conn->capable & FUSE_CAP_POSIX_LOCKS) || !(conn->capable & FUSE_CAP_FLOCK_LOCKS))
			pfs_warn("the kernel cannot pass %s locks to the filesystem: they stay local to this node",
				 conn->capable & FUSE_CAP_POSIX_LOCKS ? "flock" : "fcntl");
	} else {
		conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	}
	conn->max_write = fs->max_write;
	conn->max_readahead = 1u << 20;
}

const struct fuse_lowlevel_ops pfs_ll_ops = {
	.init = ll_init,
	.lookup = ops_lookup,
	.forget = ops_forget,
	.forget_multi = ops_forget_multi,
	.getattr = ops_getattr,
	.setattr = ops_setattr,
	.readlink = ops_readlink,
	.mknod = ops_mknod,
	.mkdir = ops_mkdir,
	.unlink = ops_unlink,
	.rmdir = ops_rmdir,
	.symlink = ops_symlink,
	.rename = ops_rename,
	.link = ops_link,
	.open = ops_open,
	.read = ops_read,
	.write = ops_write,
	.flush = ops_flush,
	.getlk = ops_getlk,
	.setlk = ops_setlk,
	.flock = ops_flock,
	.release = ops_release,
	.fsync = ops_fsync,
	.opendir = ops_opendir,
	.readdir = ops_readdir,
	.readdirplus = ops_readdirplus,
	.releasedir = ops_releasedir,
	.fsyncdir = ops_fsyncdir,
	.statfs = ops_statfs,
	.setxattr = ops_setxattr,
	.getxattr = ops_getxattr,
	.listxattr = ops_listxattr,
	.removexattr = ops_removexattr,
	.create = ops_create,
	.fallocate = ops_fallocate,
	.lseek = ops_lseek,
	.copy_file_range = ops_copy_file_range,
};

static int to_opts(const struct cli *c, struct pfs_opts *o)
{
	pfs_opts_defaults(o);
	o->device = c->device;
	o->keyfile = c->keyfile;
	o->node = c->node;
	o->ro = c->ro;
	if (c->commit_ms) {
		if (c->commit_ms < 1 || c->commit_ms > 600000) {
			fprintf(stderr, "peerfs: commit_ms must be 1..600000\n");
			return -EINVAL;
		}
		o->commit_ms = c->commit_ms;
	}
	if (c->heartbeat_ms)
		o->heartbeat_ms = c->heartbeat_ms;
	if (c->dead_ms)
		o->dead_ms = c->dead_ms;
	if (o->heartbeat_ms < 10 || o->dead_ms < 2 * o->heartbeat_ms) {
		fprintf(stderr, "peerfs: need heartbeat_ms >= 10 and dead_ms >= 2 * heartbeat_ms\n");
		return -EINVAL;
	}
	if (c->fence_ms)
		o->fence_ms = c->fence_ms;
	else if (o->fence_ms <= o->heartbeat_ms || o->fence_ms >= o->dead_ms)
		o->fence_ms = o->heartbeat_ms + (o->dead_ms - o->heartbeat_ms) / 2;
	if (o->fence_ms <= o->heartbeat_ms || o->fence_ms >= o->dead_ms) {
		fprintf(stderr, "peerfs: need heartbeat_ms < fence_ms < dead_ms\n");
		return -EINVAL;
	}
	if (c->coord) {
		if (strcmp(c->coord, "local") != 0 && strcmp(c->coord, "none") != 0) {
			fprintf(stderr, "peerfs: coord=%s: expected local or none%s\n", c->coord,
				strncmp(c->coord, "zk://", 5) == 0 ?
				" (the ZooKeeper backend is not built in yet)" : "");
			return -EINVAL;
		}
		o->coord = c->coord;
	}
	if (c->recovery) {
		if (strcmp(c->recovery, "manual") == 0)
			o->recovery_manual = true;
		else if (strcmp(c->recovery, "auto") != 0) {
			fprintf(stderr, "peerfs: recovery=%s: expected auto or manual\n", c->recovery);
			return -EINVAL;
		}
	}
	if (c->recovery_parallelism &&
	    bo_parse_parallelism(c->recovery_parallelism, &o->recovery_parallelism)) {
		fprintf(stderr, "peerfs: recovery_parallelism=%s: expected 1..%u\n",
			c->recovery_parallelism, BO_MAX_WORKERS);
		return -EINVAL;
	}
	if (c->restart_wait) {
		char *end;
		long v = strtol(c->restart_wait, &end, 10);
		if (end == c->restart_wait || *end || v < 0 || v > 86400) {
			fprintf(stderr, "peerfs: restart_wait=%s: expected 0..86400 seconds\n",
				c->restart_wait);
			return -EINVAL;
		}
		o->restart_wait_s = (int)v;
	}
	if (c->attr_timeout < 0) {
		fprintf(stderr, "peerfs: attr_timeout must be >= 0\n");
		return -EINVAL;
	}
	if (c->attr_timeout > 0)
		o->attr_timeout = c->attr_timeout;
	if (c->data) {
		if (strcmp(c->data, "undo") == 0)
			o->data_mode = PFS_DATA_UNDO;
		else if (strcmp(c->data, "ordered") == 0)
			o->data_mode = PFS_DATA_ORDERED;
		else {
			fprintf(stderr, "peerfs: data=%s: expected undo or ordered\n", c->data);
			return -EINVAL;
		}
	}
	if (c->cache_size) {
		uint64_t v;
		if (pfs_parse_size(c->cache_size, &v) || v < (1u << 20)) {
			fprintf(stderr, "peerfs: cache_size=%s: expected a size of at least 1M\n",
				c->cache_size);
			return -EINVAL;
		}
		o->cache_bytes = v;
	}
	if (c->node < -1 || c->node >= (int)PFS_MAX_SLOTS) {
		fprintf(stderr, "peerfs: node=%d: expected 0..%u\n", c->node, PFS_MAX_SLOTS - 1);
		return -EINVAL;
	}
	return 0;
}

/* Step 2: fork; the parent returns only to exit with the child's status. */
static int detach(int *status_fd)
{
	int p[2];
	if (pipe(p) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		int status = EXIT_MOUNT;
		if (read(p[0], &status, sizeof(status)) != sizeof(status))
			status = EXIT_MOUNT;
		_exit(status);
	}
	close(p[0]);
	setsid();
	*status_fd = p[1];
	return 0;
}

static void report(int *status_fd, int status)
{
	if (*status_fd < 0)
		return;
	if (write(*status_fd, &status, sizeof(status)) != sizeof(status))
		pfs_warn("could not report start-up status");
	close(*status_fd);
	*status_fd = -1;
	if (status == 0) {
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
		pfs_log_use_syslog(true);
	}
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts fo = { 0 };
	struct cli c = { .node = -1 };
	struct pfs_opts o;
	struct pfs_fs *fs = NULL;
	struct fuse_session *se = NULL;
	int status_fd = -1, ret = EXIT_MOUNT, err;

	ret = EXIT_USAGE;
	if (fuse_opt_parse(&args, &c, cli_spec, cli_proc) != 0)
		goto out_free_cli;
	if (fuse_parse_cmdline(&args, &fo) != 0)
		goto out_free_cli;
	if (!c.device || !fo.mountpoint) {
		usage(stderr);
		goto out_free_cli;
	}
	if (to_opts(&c, &o) != 0)
		goto out_free_cli;
	if (c.verbose || fo.debug)
		pfs_log_set_level(PFS_LOG_DEBUG);
	/* Reject options the kernel or libfuse would refuse, before anything
	 * else: a throwaway session parses them. */
	struct fuse_args probe = FUSE_ARGS_INIT(0, NULL);
	for (int i = 0; i < args.argc; i++)
		fuse_opt_add_arg(&probe, args.argv[i]);
	se = fuse_session_new(&probe, &pfs_ll_ops, sizeof(pfs_ll_ops), NULL);
	fuse_opt_free_args(&probe);
	if (!se)
		goto out_free_cli;
	fuse_session_destroy(se);
	se = NULL;
	ret = EXIT_MOUNT;

	if (!fo.foreground) {
		err = detach(&status_fd);
		if (err) {
			fprintf(stderr, "peerfs: cannot fork: %s\n", strerror(-err));
			goto out_free_cli;
		}
	}
	err = fs_mount(&o, &fs);
	if (err)
		goto out_report;
	se = fuse_session_new(&args, &pfs_ll_ops, sizeof(pfs_ll_ops), fs);
	if (!se)
		goto out_unmount_fs;
	gl_set_session(fs, se);
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy_session;
	if (fuse_session_mount(se, fo.mountpoint) != 0)
		goto out_remove_handlers;
	report(&status_fd, 0);
	if (fo.singlethread) {
		err = fuse_session_loop(se);
	} else {
		struct fuse_loop_config lc = {
			.clone_fd = fo.clone_fd,
			.max_idle_threads = fo.max_idle_threads > 64 ? 10 : fo.max_idle_threads,
		};
		err = fuse_session_loop_mt(se, &lc);
	}
	ret = err ? EXIT_MOUNT : 0;
	fuse_session_unmount(se);
out_remove_handlers:
	fuse_remove_signal_handlers(se);
out_destroy_session:
	gl_set_session(fs, NULL);
	fuse_session_destroy(se);
out_unmount_fs:
	err = fs_unmount(fs);
	if (err && ret == 0) {
		pfs_err("unmount: %s", strerror(-err));
		ret = EXIT_MOUNT;
	}
out_report:
	report(&status_fd, ret == 0 && se ? 0 : EXIT_MOUNT);
out_free_cli:
	free(fo.mountpoint);
	fuse_opt_free_args(&args);
	free(c.device);
	free(c.keyfile);
	free(c.data);
	free(c.cache_size);
	free(c.coord);
	free(c.recovery);
	free(c.recovery_parallelism);
	free(c.restart_wait);
	return ret;
}
