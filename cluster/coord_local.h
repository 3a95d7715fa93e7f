/*
 * coord_local.h -- what the local coordination backend (coord_local.c)
 * exposes beyond struct coord_ops: the segment name, an invariant check,
 * and step points where tests stop a process that holds the segment
 * mutex.  Only tests and tools include this header.
 */
#ifndef PFS_COORD_LOCAL_H
#define PFS_COORD_LOCAL_H

#include <stddef.h>
#include <stdint.h>

struct coord;

/* Step points of multi-store updates made under the segment mutex.  At
 * each one the segment is in a state that the repair after the holder's
 * death (EOWNERDEAD) must bring back to the invariants of coord_local.c. */
enum coord_local_point {
	COORD_LP_JOIN = 1,      /* node record filled, state not yet LIVE */
	COORD_LP_INSERT,        /* lock entry body written, its res not yet */
	COORD_LP_WAIT,          /* wait record taken, waiter bits not yet set */
	COORD_LP_UPGRADE,       /* EX holder set, the SH bit still set */
	COORD_LP_DOWNGRADE,     /* SH bit set, the EX holder still set */
	COORD_LP_SHIFT_HOLE,    /* delete: a hole interrupts a probe chain */
	COORD_LP_SHIFT_DUP,     /* delete: one entry stored in two slots */
	COORD_LP_LEAVE,         /* leaving: locks released, node still LIVE */
	COORD_LP_DECLARE,       /* node DEAD, its waits and posts not cleared */
	COORD_LP_REGISTER,      /* registration filled, status not yet ACTIVE */
	COORD_LP_PLOCK_ADD,     /* advisory lock update: an owner's ranges
				 * removed or shrunk, the new ones not added */
};

/* Called at every step point with the mutex held (NULL: none).  The hook
 * must not call the coord API.  Process-wide. */
void coord_local_set_step_hook(void (*hook)(enum coord_local_point pt));

/* "/peerfs-<32 hex digits>" for the volume uuid; 0 or -ENAMETOOLONG. */
int coord_local_segment_name(const uint8_t uuid[16], char *buf, size_t len);

/* Home slot of a resource in the lock table (tests build collisions). */
uint32_t coord_local_home(uint64_t res);

/* Check every invariant of the segment under its mutex (repairing first
 * if a holder died): 0, or -EUCLEAN after logging the first violation. */
int coord_local_check(struct coord *c);

#endif /* PFS_COORD_LOCAL_H */
