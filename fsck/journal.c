/*
 * journal.c -- the undo journal of a dead node's slot (pass 1).
 *
 * Design notes
 *
 * A node that died in the middle of a commit may have written part of a
 * transaction in place; its slot's undo log (pfs_jnl.h) holds the
 * before-images.  A mount of the slot backs them out (fs/volume.c), and
 * would do so over anything repaired meanwhile: so the checker backs them
 * out first, exactly as the mount would (jnl_scan, then the backout
 * engine of recovery/backout.c with its default parallelism), before
 * any other block is read.  These writes go to the device at once, not
 * through the block cache at the end; nothing else is cached yet, and
 * each restored block is dropped from the cache all the same.
 *
 * Only slots whose record says MOUNTED or RECOVERING and whose node is
 * gone are looked at: a FREE slot's log was closed by its unmount.
 *
 * Without the cluster key the log cannot be read.  Repairing then could be
 * undone by a later backout, so the repair modes refuse (exit 8); -n only
 * warns.  A log that fails to scan (damaged, or failing authentication) is
 * a problem that cannot be fixed here: the slot is left as it is (a mount
 * of it fails the same way before writing anything).  Declining the
 * backout in a repair mode stops the repair for the same reason as a
 * missing key.
 */
#include <errno.h>
#include <string.h>

#include "fsck.h"
#include "pfs_backout.h"
#include "pfs_jnl.h"

static const char *scan_error(int err)
{
	switch (err) {
	case -EBADMSG:
		return "fails authentication";
	case -EUCLEAN:
		return "damaged";
	default:
		return strerror(-err);
	}
}

int fsck_journal_slot(struct fsck *f, uint32_t s, uint64_t gen)
{
	struct jnl_scan js;
	int err;

	if (!f->have_key) {
		if (fsck_can_fix(f)) {
			fsck_fail(f, 0, "slot %u was not cleanly unmounted and its journal "
				  "cannot be read without the cluster key (give it with -k); "
				  "refusing to repair", s);
			return -ENOKEY;
		}
		fsck_warn(f, "slot %u: journal not checked: no cluster key", s);
		return 0;
	}
	err = jnl_scan(f->dev, &f->sb, f->key, s, gen, &js);
	if (err == -EIO || err == -ENOMEM)
		return fsck_fail(f, err, "reading the journal of slot %u", s);
	if (err) {
		fsck_problem(f, FSCK_FIX_NONE, "slot %u: journal %s", s, scan_error(err));
		f->slots[s].jnl_bad = true;
		return 0;
	}
	if (js.empty || js.clean || js.ndead == 0) {
		jnl_scan_free(&js);
		return 0;
	}
	if (!fsck_problem(f, FSCK_FIX_SAFE, "slot %u: journal holds %zu unfinished "
			  "transaction%s", s, js.ndead, js.ndead == 1 ? "" : "s")) {
		jnl_scan_free(&js);
		if (!fsck_can_fix(f))
			return 0;
		fsck_fail(f, 0, "the journal of slot %u must be backed out before the "
			  "volume can be repaired", s);
		return -ECANCELED;
	}
	struct bo_params bp = { .max_parallelism = 0 };
	struct bo_stats bs;
	err = bo_run(f->dev, &f->sb, f->key, &js, 1, &bp, &bs);
	for (size_t i = 0; i < js.ndead; i++)
		for (size_t k = 0; k < js.dead[i].nimages; k++)
			bcache_forget(f->bc, js.dead[i].blkno[k]);
	jnl_scan_free(&js);
	if (err == -EIO || err == -ENOMEM)
		return fsck_fail(f, err, "backing out the journal of slot %u", s);
	if (err) {
		fsck_problem(f, FSCK_FIX_NONE, "slot %u: journal backout refused (%s)", s,
			     scan_error(err));
		f->slots[s].jnl_bad = true;
	}
	return 0;
}
