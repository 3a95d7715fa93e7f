/*
 * pfs_bio.h -- block I/O on the shared device (a block device or an image
 * file), with fault injection.
 *
 * All device access goes through this layer: it counts reads, writes and
 * flushes for the benchmarks, and it is where faults are injected:
 *   - fail the Nth I/O (read, write or flush) with EIO, once or from then on;
 *   - crash at the Nth write or flush: every write since the last completed
 *     flush is kept, dropped or torn at 512-byte sectors (chosen per write
 *     by a seeded PRNG or forced by mode), the result is left on the device,
 *     and every later I/O fails with EIO, as if the host had died.
 *
 * Faults are configured with bio_set_fault() or, for whole-program tests,
 * with the PEERFS_FAULT environment variable, e.g.
 *   PEERFS_FAULT="fail_io=120"            fail the 120th I/O, once
 *   PEERFS_FAULT="fail_io=120,sticky=1"   ... and every I/O after it
 *   PEERFS_FAULT="crash_io=57,mode=tear,seed=9"
 *   PEERFS_FAULT="delay_us=2000"          every write and flush 2 ms slower
 * Counting starts at 1 when the device is opened.
 *
 * Thread safety: bio_read/bio_write/bio_flush may be called from several
 * threads at once; the counters and the fault state are protected by an
 * internal mutex.  Errors are negative errno values (-EIO for I/O errors).
 */
#ifndef PFS_BIO_H
#define PFS_BIO_H

#include <stdint.h>
#include <stdbool.h>

struct bio_dev;

struct bio_stats {
	uint64_t reads, writes, flushes;
	uint64_t bytes_read, bytes_written;
};

enum bio_crash_mode {
	BIO_CRASH_RANDOM = 0,   /* each unsynced write kept, dropped or torn */
	BIO_CRASH_KEEP,         /* every unsynced write reached the media */
	BIO_CRASH_DROP,         /* none did */
	BIO_CRASH_TEAR,         /* each one torn at a random sector */
};

struct bio_fault {
	uint64_t fail_io;       /* 1-based I/O number to fail, 0 = off */
	bool sticky;            /* fail every I/O from fail_io on */
	uint64_t crash_io;      /* 1-based write/flush number to crash at */
	enum bio_crash_mode mode;
	uint64_t seed;
	uint64_t delay_us;      /* every write and flush takes this much
				 * longer: a slow device, to widen the
				 * window of a test or benchmark */
};

/* Open PATH read-write (rw) or read-only.  Regular files and block devices
 * are accepted; the size is rounded down to whole 4 KiB blocks. */
int bio_open(const char *path, bool rw, struct bio_dev **out);
/* Close; does not flush (callers flush what must be durable). */
void bio_close(struct bio_dev *d);

uint64_t bio_nblocks(const struct bio_dev *d);
const char *bio_path(const struct bio_dev *d);
int bio_fd(const struct bio_dev *d);

int bio_read(struct bio_dev *d, uint64_t blk, uint32_t nblk, void *buf);
int bio_write(struct bio_dev *d, uint64_t blk, uint32_t nblk, const void *buf);
/* Byte-granular access inside the device, for data reads of partial
 * blocks; same fault accounting as the block calls. */
int bio_pread(struct bio_dev *d, uint64_t off, uint64_t len, void *buf);
int bio_pwrite(struct bio_dev *d, uint64_t off, uint64_t len, const void *buf);
/* Make every completed write durable (fdatasync / BLKFLSBUF semantics). */
int bio_flush(struct bio_dev *d);

void bio_get_stats(struct bio_dev *d, struct bio_stats *st);
int bio_set_fault(struct bio_dev *d, const struct bio_fault *f);
/* Parse a PEERFS_FAULT-style string; -EINVAL on a bad one. */
int bio_parse_fault(const char *s, struct bio_fault *f);
/* Refuse every later write and flush with -EIO (reads still work): the
 * sticky fence of a node, enforced where the writes go out. */
void bio_fence(struct bio_dev *d);
/* True once a simulated crash happened (the device is dead). */
bool bio_crashed(struct bio_dev *d);
/* Numbers of the I/Os, and of the writes and flushes, issued since open
 * (what fail_io and crash_io count), to place a fault relative to now. */
uint64_t bio_io_count(struct bio_dev *d);
uint64_t bio_wf_count(struct bio_dev *d);

#endif /* PFS_BIO_H */
