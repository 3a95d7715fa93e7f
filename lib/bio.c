/*
 * bio.c -- block I/O on the shared device, with fault injection.
 *
 * Design notes
 *
 * A struct bio_dev wraps one open file descriptor on an image file or a
 * block device.  The device is opened without O_EXCL: every node of the
 * cluster (and fsck, and the tests) opens the same device.
 *
 * What protects what
 *   - fd, path, rw and nblocks are set in bio_open and never change until
 *     bio_close; they are read without a lock.
 *   - d->lock protects the I/O numbering, the statistics, the fault
 *     configuration and the crash bookkeeping (unsynced list, PRNG state,
 *     dead flag).  It is the innermost lock of the program (pfs_fs.h).
 *
 * Invariants
 *   1. Each bio_read, bio_write, bio_pread, bio_pwrite and bio_flush call
 *      that passes its argument checks on a live device takes the next I/O
 *      number (io_seq); writes and flushes also take the next write/flush
 *      number (wf_seq).  Both count from 1 after bio_open, whether the I/O
 *      then succeeds or fails.  Zero-length calls are no-ops and take no
 *      number.  The statistics count only I/O that completed.
 *   2. An injected failure (fail_io, or any I/O after it when sticky)
 *      returns -EIO without touching the device.  It does not kill the
 *      device: the next I/O proceeds unless sticky.
 *   3. While a crash point is armed (crash_io != 0 and the device alive),
 *      writes and flushes run with d->lock held: a write first reads the
 *      old content of its range, then writes, then appends {range, old
 *      content, new content} to the unsynced list; a flush that succeeds
 *      empties the list.  So the list holds exactly the writes issued since
 *      the last completed flush (or since the crash point was armed).
 *      Reads never take part and run without the lock.
 *   4. The write or flush numbered crash_io is not performed: it fails with
 *      -EIO.  Before returning, every write on the unsynced list is settled
 *      on the device -- kept, dropped (old content restored) or torn (a
 *      prefix of its 512-byte sectors kept, the rest restored) -- and the
 *      device is marked dead.
 *   5. Once dead, every I/O returns -EIO without touching the device and
 *      bio_crashed() is true; nothing revives the device but a new
 *      bio_open.
 *   6. Outside the armed window of invariant 3, d->lock is never held
 *      across device I/O.
 *
 * Settling a crash: the unsynced writes are undone newest first (which
 * leaves the device as it was at the last flush), then the kept part of
 * each write (all of it, none of it, or a sector prefix) is written again
 * oldest first.  Overlapping unsynced writes thus end up as a real device
 * would leave them: a later write that reached the media wins over an
 * earlier one, and a range no kept write covers holds the synced content.
 * The per-write choices come from a splitmix64 generator seeded with the
 * fault's seed, drawn oldest write first, so a seed reproduces a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pfs_bio.h"
#include "pfs_format.h"
#include "pfs_util.h"

enum bio_op { BIO_OP_READ, BIO_OP_WRITE, BIO_OP_FLUSH };

/* A write issued since the last completed flush while a crash point was
 * armed (invariant 3). */
struct bio_unsynced {
	struct bio_unsynced *prev, *next;
	uint64_t off, len;
	uint8_t *old_data;              /* the range before the write */
	uint8_t *new_data;              /* what the write put there */
	uint64_t keep_len;              /* settled: bytes of new_data kept */
};

struct bio_dev {
	int fd;
	bool rw;
	char *path;
	uint64_t nblocks;

	pthread_mutex_t lock;
	uint64_t io_seq;                /* protected by lock */
	uint64_t wf_seq;                /* protected by lock */
	struct bio_stats stats;         /* protected by lock */
	struct bio_fault fault;         /* protected by lock */
	uint64_t rng;                   /* protected by lock */
	bool dead;                      /* protected by lock */
	bool fenced;                    /* protected by lock: writes refused */
	struct bio_unsynced *us_head;   /* protected by lock */
	struct bio_unsynced *us_tail;   /* protected by lock */
	uint64_t us_count;              /* protected by lock */
};

static const char *const bio_mode_names[] = {
	[BIO_CRASH_RANDOM] = "random",
	[BIO_CRASH_KEEP] = "keep",
	[BIO_CRASH_DROP] = "drop",
	[BIO_CRASH_TEAR] = "tear",
};

static const char *bio_op_name(enum bio_op op)
{
	switch (op) {
	case BIO_OP_READ:
		return "read";
	case BIO_OP_WRITE:
		return "write";
	case BIO_OP_FLUSH:
		return "flush";
	}
	return "?";
}

/* ------------------------------------------------------------------ */
/* Raw I/O loops: 0, or -errno (-EIO for an unexpected end of file).    */
/* ------------------------------------------------------------------ */

static int bio_full_pread(int fd, void *buf, uint64_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int bio_full_pwrite(int fd, const void *buf, uint64_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int bio_sync_fd(int fd)
{
	while (fdatasync(fd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Crash simulation.                                                    */
/* ------------------------------------------------------------------ */

/* splitmix64 */
static uint64_t bio_rand(struct bio_dev *d)
{
	uint64_t z = (d->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void bio_unsynced_free(struct bio_unsynced *u)
{
	free(u->old_data);
	free(u->new_data);
	free(u);
}

/* Caller holds d->lock. */
static void bio_unsynced_clear(struct bio_dev *d)
{
	struct bio_unsynced *u = d->us_head;

	while (u) {
		struct bio_unsynced *next = u->next;
		bio_unsynced_free(u);
		u = next;
	}
	d->us_head = d->us_tail = NULL;
	d->us_count = 0;
}

/* Caller holds d->lock. */
static void bio_unsynced_append(struct bio_dev *d, struct bio_unsynced *u)
{
	u->next = NULL;
	u->prev = d->us_tail;
	if (d->us_tail)
		d->us_tail->next = u;
	else
		d->us_head = u;
	d->us_tail = u;
	d->us_count++;
}

/* Bytes of a torn write that reach the media: a prefix of its sectors
 * (at least one and not all of them when it spans two or more). */
static uint64_t bio_tear_len(struct bio_dev *d, const struct bio_unsynced *u)
{
	uint64_t first = u->off / PFS_SECTOR_SIZE;
	uint64_t end = PFS_DIV_ROUND_UP(u->off + u->len, PFS_SECTOR_SIZE);
	uint64_t nsect = end - first;
	uint64_t k;

	if (nsect >= 2)
		k = 1 + bio_rand(d) % (nsect - 1);
	else
		k = bio_rand(d) % 2;
	return PFS_MIN(u->off + u->len, (first + k) * PFS_SECTOR_SIZE) - u->off;
}

/*
 * Settle the unsynced writes on the device (invariant 4) and kill it.
 * Caller holds d->lock.  Errors writing the settled image are logged; the
 * device is dead whatever happens.
 */
static void bio_crash_locked(struct bio_dev *d, enum bio_op op, uint64_t wf)
{
	uint64_t nkeep = 0, ndrop = 0, ntear = 0;
	struct bio_unsynced *u;
	int err;

	for (u = d->us_head; u; u = u->next) {
		enum bio_crash_mode m = d->fault.mode;
		if (m == BIO_CRASH_RANDOM)
			m = (enum bio_crash_mode)(BIO_CRASH_KEEP + bio_rand(d) % 3);
		switch (m) {
		case BIO_CRASH_KEEP:
			u->keep_len = u->len;
			nkeep++;
			break;
		case BIO_CRASH_DROP:
			u->keep_len = 0;
			ndrop++;
			break;
		default:
			u->keep_len = bio_tear_len(d, u);
			ntear++;
			break;
		}
		pfs_debug("%s: crash: write at block %" PRIu64 " (+%" PRIu64
			  " bytes at offset %" PRIu64 "): %" PRIu64 " of %" PRIu64
			  " bytes kept", d->path, u->off >> PFS_BLOCK_SHIFT,
			  u->len, u->off, u->keep_len, u->len);
	}

	for (u = d->us_tail; u; u = u->prev) {
		err = bio_full_pwrite(d->fd, u->old_data, u->len, u->off);
		if (err)
			pfs_err("%s: crash: cannot restore block %" PRIu64 ": %s",
				d->path, u->off >> PFS_BLOCK_SHIFT, strerror(-err));
	}
	for (u = d->us_head; u; u = u->next) {
		if (!u->keep_len)
			continue;
		err = bio_full_pwrite(d->fd, u->new_data, u->keep_len, u->off);
		if (err)
			pfs_err("%s: crash: cannot rewrite block %" PRIu64 ": %s",
				d->path, u->off >> PFS_BLOCK_SHIFT, strerror(-err));
	}
	err = bio_sync_fd(d->fd);
	if (err)
		pfs_err("%s: crash: cannot sync the settled image: %s", d->path,
			strerror(-err));

	pfs_warn("%s: simulated crash at %s #%" PRIu64 " (mode %s, seed %" PRIu64
		 "): %" PRIu64 " unsynced writes, %" PRIu64 " kept, %" PRIu64
		 " dropped, %" PRIu64 " torn; device is dead", d->path,
		 bio_op_name(op), wf, bio_mode_names[d->fault.mode],
		 d->fault.seed, d->us_count, nkeep, ndrop, ntear);
	bio_unsynced_clear(d);
	d->dead = true;
}

/* ------------------------------------------------------------------ */
/* The I/O path.                                                        */
/* ------------------------------------------------------------------ */

static void bio_account(struct bio_dev *d, enum bio_op op, uint64_t len)
{
	switch (op) {
	case BIO_OP_READ:
		d->stats.reads++;
		d->stats.bytes_read += len;
		break;
	case BIO_OP_WRITE:
		d->stats.writes++;
		d->stats.bytes_written += len;
		break;
	case BIO_OP_FLUSH:
		d->stats.flushes++;
		break;
	}
}

/* Perform one operation on the device; -EIO (logged) on failure. */
static int bio_do_io(struct bio_dev *d, enum bio_op op, uint64_t off,
		     uint64_t len, void *rbuf, const void *wbuf)
{
	int err;

	switch (op) {
	case BIO_OP_READ:
		err = bio_full_pread(d->fd, rbuf, len, off);
		break;
	case BIO_OP_WRITE:
		err = bio_full_pwrite(d->fd, wbuf, len, off);
		break;
	default:
		err = bio_sync_fd(d->fd);
		break;
	}
	if (!err)
		return 0;
	if (op == BIO_OP_FLUSH)
		pfs_err("%s: flush failed: %s", d->path, strerror(-err));
	else
		pfs_err("%s: %s error at block %" PRIu64 " (%" PRIu64
			" bytes at offset %" PRIu64 "): %s", d->path,
			bio_op_name(op), off >> PFS_BLOCK_SHIFT, len, off,
			strerror(-err));
	return -EIO;
}

/* An armed write (invariant 3).  Caller holds d->lock. */
static int bio_write_armed(struct bio_dev *d, uint64_t off, uint64_t len,
			   const void *wbuf)
{
	struct bio_unsynced *u;
	int err = -ENOMEM;

	u = calloc(1, sizeof(*u));
	if (!u)
		return err;
	u->off = off;
	u->len = len;
	u->old_data = malloc(len);
	if (!u->old_data)
		goto out_free_u;
	u->new_data = malloc(len);
	if (!u->new_data)
		goto out_free_old;
	memcpy(u->new_data, wbuf, len);

	err = bio_do_io(d, BIO_OP_READ, off, len, u->old_data, NULL);
	if (err)
		goto out_free_new;
	/* Recorded even if the write fails: part of it may have landed. */
	err = bio_do_io(d, BIO_OP_WRITE, off, len, NULL, wbuf);
	bio_unsynced_append(d, u);
	return err;

out_free_new:
	free(u->new_data);
out_free_old:
	free(u->old_data);
out_free_u:
	free(u);
	return err;
}

static int bio_submit(struct bio_dev *d, enum bio_op op, uint64_t off,
		      uint64_t len, void *rbuf, const void *wbuf)
{
	uint64_t io, wf = 0;
	int err;

	pthread_mutex_lock(&d->lock);
	if (d->dead || (d->fenced && op != BIO_OP_READ)) {
		pthread_mutex_unlock(&d->lock);
		return -EIO;
	}
	io = ++d->io_seq;
	if (op != BIO_OP_READ)
		wf = ++d->wf_seq;
	uint64_t delay_us = op != BIO_OP_READ ? d->fault.delay_us : 0;

	if (d->fault.fail_io &&
	    (io == d->fault.fail_io || (d->fault.sticky && io > d->fault.fail_io))) {
		if (io == d->fault.fail_io && op == BIO_OP_FLUSH)
			pfs_warn("%s: injected I/O error at I/O #%" PRIu64
				 " (flush)%s", d->path, io,
				 d->fault.sticky ? ", sticky" : "");
		else if (io == d->fault.fail_io)
			pfs_warn("%s: injected I/O error at I/O #%" PRIu64
				 " (%s, block %" PRIu64 ")%s", d->path, io,
				 bio_op_name(op), off >> PFS_BLOCK_SHIFT,
				 d->fault.sticky ? ", sticky" : "");
		pthread_mutex_unlock(&d->lock);
		return -EIO;
	}

	if (op != BIO_OP_READ && d->fault.crash_io) {
		if (wf == d->fault.crash_io) {
			bio_crash_locked(d, op, wf);
			pthread_mutex_unlock(&d->lock);
			return -EIO;
		}
		if (op == BIO_OP_WRITE) {
			err = bio_write_armed(d, off, len, wbuf);
		} else {
			err = bio_do_io(d, op, off, len, rbuf, wbuf);
			if (!err)
				bio_unsynced_clear(d);
		}
		if (!err)
			bio_account(d, op, len);
		pthread_mutex_unlock(&d->lock);
		return err;
	}
	pthread_mutex_unlock(&d->lock);

	if (delay_us)
		usleep((useconds_t)delay_us);           /* a slow device */
	err = bio_do_io(d, op, off, len, rbuf, wbuf);
	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	bio_account(d, op, len);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* Check that [off, off+len) lies inside the device. */
static int bio_check_range(const struct bio_dev *d, enum bio_op op,
			   uint64_t off, uint64_t len)
{
	uint64_t size = d->nblocks << PFS_BLOCK_SHIFT;

	if (off > size || len > size - off) {
		pfs_err("%s: %s of %" PRIu64 " bytes at offset %" PRIu64
			" (block %" PRIu64 ") is beyond the end of the device (%"
			PRIu64 " blocks)", d->path, bio_op_name(op), len, off,
			off >> PFS_BLOCK_SHIFT, d->nblocks);
		return -EINVAL;
	}
	if (op == BIO_OP_WRITE && !d->rw) {
		pfs_err("%s: write at block %" PRIu64 " on a read-only device",
			d->path, off >> PFS_BLOCK_SHIFT);
		return -EROFS;
	}
	return 0;
}

int bio_pread(struct bio_dev *d, uint64_t off, uint64_t len, void *buf)
{
	int err = bio_check_range(d, BIO_OP_READ, off, len);

	if (err || !len)
		return err;
	return bio_submit(d, BIO_OP_READ, off, len, buf, NULL);
}

int bio_pwrite(struct bio_dev *d, uint64_t off, uint64_t len, const void *buf)
{
	int err = bio_check_range(d, BIO_OP_WRITE, off, len);

	if (err || !len)
		return err;
	return bio_submit(d, BIO_OP_WRITE, off, len, NULL, buf);
}

int bio_read(struct bio_dev *d, uint64_t blk, uint32_t nblk, void *buf)
{
	if (blk > d->nblocks) {
		pfs_err("%s: read at block %" PRIu64 " beyond the end of the "
			"device (%" PRIu64 " blocks)", d->path, blk, d->nblocks);
		return -EINVAL;
	}
	return bio_pread(d, blk << PFS_BLOCK_SHIFT,
			 (uint64_t)nblk << PFS_BLOCK_SHIFT, buf);
}

int bio_write(struct bio_dev *d, uint64_t blk, uint32_t nblk, const void *buf)
{
	if (blk > d->nblocks) {
		pfs_err("%s: write at block %" PRIu64 " beyond the end of the "
			"device (%" PRIu64 " blocks)", d->path, blk, d->nblocks);
		return -EINVAL;
	}
	return bio_pwrite(d, blk << PFS_BLOCK_SHIFT,
			  (uint64_t)nblk << PFS_BLOCK_SHIFT, buf);
}

int bio_flush(struct bio_dev *d)
{
	return bio_submit(d, BIO_OP_FLUSH, 0, 0, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Faults.                                                              */
/* ------------------------------------------------------------------ */

static int bio_check_fault(const struct bio_fault *f, const char **why)
{
	if ((unsigned)f->mode > BIO_CRASH_TEAR) {
		*why = "unknown crash mode";
		return -EINVAL;
	}
	if (f->sticky && !f->fail_io) {
		*why = "sticky needs fail_io";
		return -EINVAL;
	}
	return 0;
}

int bio_set_fault(struct bio_dev *d, const struct bio_fault *f)
{
	const char *why = NULL;
	int err = bio_check_fault(f, &why);

	if (err) {
		pfs_err("%s: bad fault configuration: %s", d->path, why);
		return err;
	}
	pthread_mutex_lock(&d->lock);
	if (f->fail_io && f->fail_io <= d->io_seq) {
		pfs_err("%s: fail_io=%" PRIu64 " is already past (%" PRIu64
			" I/Os so far)", d->path, f->fail_io, d->io_seq);
		err = -EINVAL;
		goto out_unlock;
	}
	if (f->crash_io && f->crash_io <= d->wf_seq) {
		pfs_err("%s: crash_io=%" PRIu64 " is already past (%" PRIu64
			" writes and flushes so far)", d->path, f->crash_io,
			d->wf_seq);
		err = -EINVAL;
		goto out_unlock;
	}
	d->fault = *f;
	d->rng = f->seed;
	bio_unsynced_clear(d);
	if (f->fail_io || f->crash_io)
		pfs_info("%s: fault injection: fail_io=%" PRIu64 "%s crash_io=%"
			 PRIu64 " mode=%s seed=%" PRIu64, d->path, f->fail_io,
			 f->sticky ? " (sticky)" : "", f->crash_io,
			 bio_mode_names[f->mode], f->seed);
out_unlock:
	pthread_mutex_unlock(&d->lock);
	return err;
}

/* Parse an unsigned decimal (or, with base 0, also 0x hex) number. */
static int bio_parse_u64(const char *s, int base, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

enum bio_fault_key {
	BIO_KEY_FAIL_IO, BIO_KEY_STICKY, BIO_KEY_CRASH_IO, BIO_KEY_MODE,
	BIO_KEY_SEED, BIO_KEY_DELAY_US,
};

/* Parse one key=value item into f; *seen collects the keys met (one bit
 * per enum bio_fault_key). */
static int bio_parse_item(char *item, struct bio_fault *f, unsigned *seen,
			  const char **why)
{
	static const char *const keys[] = {
		[BIO_KEY_FAIL_IO] = "fail_io",
		[BIO_KEY_STICKY] = "sticky",
		[BIO_KEY_CRASH_IO] = "crash_io",
		[BIO_KEY_MODE] = "mode",
		[BIO_KEY_SEED] = "seed",
		[BIO_KEY_DELAY_US] = "delay_us",
	};
	char *eq = strchr(item, '=');
	unsigned k;
	uint64_t v;

	if (!eq || eq == item) {
		*why = "expected key=value";
		return -EINVAL;
	}
	*eq = '\0';
	const char *val = eq + 1;
	for (k = 0; k < PFS_ARRAY_SIZE(keys); k++)
		if (!strcmp(item, keys[k]))
			break;
	if (k == PFS_ARRAY_SIZE(keys)) {
		*why = "unknown key (known: fail_io, sticky, crash_io, mode, seed, delay_us)";
		return -EINVAL;
	}
	if (*seen & (1u << k)) {
		*why = "key given twice";
		return -EINVAL;
	}
	*seen |= 1u << k;

	switch (k) {
	case BIO_KEY_FAIL_IO:
		if (bio_parse_u64(val, 10, &f->fail_io)) {
			*why = "fail_io must be a decimal I/O number";
			return -EINVAL;
		}
		return 0;
	case BIO_KEY_STICKY:
		if (bio_parse_u64(val, 10, &v) || v > 1) {
			*why = "sticky must be 0 or 1";
			return -EINVAL;
		}
		f->sticky = v;
		return 0;
	case BIO_KEY_CRASH_IO:
		if (bio_parse_u64(val, 10, &f->crash_io)) {
			*why = "crash_io must be a decimal write/flush number";
			return -EINVAL;
		}
		return 0;
	case BIO_KEY_MODE:
		for (unsigned m = 0; m < PFS_ARRAY_SIZE(bio_mode_names); m++) {
			if (!strcmp(val, bio_mode_names[m])) {
				f->mode = (enum bio_crash_mode)m;
				return 0;
			}
		}
		*why = "mode must be random, keep, drop or tear";
		return -EINVAL;
	case BIO_KEY_DELAY_US:
		if (bio_parse_u64(val, 10, &f->delay_us) || f->delay_us > 10000000) {
			*why = "delay_us must be 0..10000000 microseconds";
			return -EINVAL;
		}
		return 0;
	default:
		if (bio_parse_u64(val, 0, &f->seed)) {
			*why = "seed must be a number";
			return -EINVAL;
		}
		return 0;
	}
}

int bio_parse_fault(const char *s, struct bio_fault *f)
{
	const char *why = NULL;
	unsigned seen = 0;
	char *copy, *item, *save = NULL;
	int err = 0;

	memset(f, 0, sizeof(*f));
	if (!s || !*s)
		return 0;
	if (s[0] == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,")) {
		pfs_err("bad fault specification \"%s\": empty item", s);
		return -EINVAL;
	}
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	for (item = strtok_r(copy, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		err = bio_parse_item(item, f, &seen, &why);
		if (err) {
			pfs_err("bad fault specification \"%s\": at \"%s\": %s",
				s, item, why);
			goto out_free_copy;
		}
	}
	err = bio_check_fault(f, &why);
	if (!err && !f->crash_io && (seen & (1u << BIO_KEY_MODE | 1u << BIO_KEY_SEED))) {
		why = "mode and seed need crash_io";
		err = -EINVAL;
	}
	if (err)
		pfs_err("bad fault specification \"%s\": %s", s, why);
out_free_copy:
	free(copy);
	if (err)
		memset(f, 0, sizeof(*f));
	return err;
}

bool bio_crashed(struct bio_dev *d)
{
	bool dead;

	pthread_mutex_lock(&d->lock);
	dead = d->dead;
	pthread_mutex_unlock(&d->lock);
	return dead;
}

uint64_t bio_io_count(struct bio_dev *d)
{
	uint64_t n;

	pthread_mutex_lock(&d->lock);
	n = d->io_seq;
	pthread_mutex_unlock(&d->lock);
	return n;
}

uint64_t bio_wf_count(struct bio_dev *d)
{
	uint64_t n;

	pthread_mutex_lock(&d->lock);
	n = d->wf_seq;
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* ------------------------------------------------------------------ */
/* Open, close, accessors.                                              */
/* ------------------------------------------------------------------ */

static int bio_get_size(struct bio_dev *d, uint64_t *size)
{
	struct stat st;

	if (fstat(d->fd, &st) < 0) {
		int err = -errno;
		pfs_err("%s: fstat: %s", d->path, strerror(errno));
		return err;
	}
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		uint64_t bytes;
		if (ioctl(d->fd, BLKGETSIZE64, &bytes) < 0) {
			int err = -errno;
			pfs_err("%s: BLKGETSIZE64: %s", d->path, strerror(errno));
			return err;
		}
		*size = bytes;
		return 0;
	}
	pfs_err("%s: not a regular file or a block device", d->path);
	return -EINVAL;
}

int bio_open(const char *path, bool rw, struct bio_dev **out)
{
	const char *env = getenv("PEERFS_FAULT");
	struct bio_fault fault;
	struct bio_dev *d;
	uint64_t size = 0;
	int err;

	*out = NULL;
	err = bio_parse_fault(env, &fault);
	if (err) {
		pfs_err("%s: invalid PEERFS_FAULT=\"%s\"; not opening the device",
			path, env);
		return err;
	}

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->path = strdup(path);
	if (!d->path) {
		err = -ENOMEM;
		goto out_free_dev;
	}
	d->rw = rw;
	d->fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (d->fd < 0) {
		err = -errno;
		pfs_err("cannot open %s%s: %s", path, rw ? " read-write" : "",
			strerror(errno));
		goto out_free_path;
	}
	err = bio_get_size(d, &size);
	if (err)
		goto out_close_fd;
	d->nblocks = size >> PFS_BLOCK_SHIFT;
	err = pthread_mutex_init(&d->lock, NULL);
	if (err) {
		err = -err;
		goto out_close_fd;
	}
	if (fault.fail_io || fault.crash_io || fault.delay_us) {
		err = bio_set_fault(d, &fault);
		if (err)
			goto out_destroy_lock;
	}
	*out = d;
	return 0;

out_destroy_lock:
	pthread_mutex_destroy(&d->lock);
out_close_fd:
	close(d->fd);
out_free_path:
	free(d->path);
out_free_dev:
	free(d);
	return err;
}

/* PEERFS_IO_COUNT_FILE=PATH: bio_close writes the final counters to
 * PATH, for tests that place crash points (crash_io counts wf). */
static void bio_write_counts(struct bio_dev *d)
{
	const char *path = getenv("PEERFS_IO_COUNT_FILE");
	FILE *f;

	if (!path || !*path)
		return;
	f = fopen(path, "w");
	if (!f) {
		pfs_warn("PEERFS_IO_COUNT_FILE=%s: %s", path, strerror(errno));
		return;
	}
	fprintf(f, "io=%" PRIu64 " wf=%" PRIu64 " reads=%" PRIu64 " writes=%" PRIu64
		" flushes=%" PRIu64 "\n", d->io_seq, d->wf_seq, d->stats.reads,
		d->stats.writes, d->stats.flushes);
	if (fclose(f) != 0)
		pfs_warn("PEERFS_IO_COUNT_FILE=%s: %s", path, strerror(errno));
}

void bio_close(struct bio_dev *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	bio_unsynced_clear(d);
	bio_write_counts(d);
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_destroy(&d->lock);
	if (close(d->fd) < 0)
		pfs_warn("%s: close: %s", d->path, strerror(errno));
	free(d->path);
	free(d);
}

uint64_t bio_nblocks(const struct bio_dev *d)
{
	return d->nblocks;
}

const char *bio_path(const struct bio_dev *d)
{
	return d->path;
}

int bio_fd(const struct bio_dev *d)
{
	return d->fd;
}

void bio_get_stats(struct bio_dev *d, struct bio_stats *st)
{
	pthread_mutex_lock(&d->lock);
	*st = d->stats;
	pthread_mutex_unlock(&d->lock);
}

void bio_fence(struct bio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->fenced = true;
	pthread_mutex_unlock(&d->lock);
}
