/*
 * bitmap.c -- bitmaps in memory (the computed block and inode usage) and
 * the bits of on-disk bitmap blocks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsck.h"

int fsck_bmap_init(struct fsck_bmap *m, uint64_t nbits)
{
	size_t words = (size_t)((nbits + 63) / 64);

	m->nbits = nbits;
	m->w = calloc(words ? words : 1, sizeof(uint64_t));
	return m->w ? 0 : -ENOMEM;
}

void fsck_bmap_free(struct fsck_bmap *m)
{
	free(m->w);
	m->w = NULL;
	m->nbits = 0;
}

bool fsck_bmap_test(const struct fsck_bmap *m, uint64_t i)
{
	if (i >= m->nbits)
		return false;
	return (m->w[i / 64] >> (i % 64)) & 1u;
}

void fsck_bmap_set(struct fsck_bmap *m, uint64_t i)
{
	if (i < m->nbits)
		m->w[i / 64] |= 1ull << (i % 64);
}

void fsck_bmap_clear(struct fsck_bmap *m, uint64_t i)
{
	if (i < m->nbits)
		m->w[i / 64] &= ~(1ull << (i % 64));
}

void fsck_bmap_set_range(struct fsck_bmap *m, uint64_t from, uint64_t len)
{
	uint64_t end = from + len;

	if (end > m->nbits || end < from)
		end = m->nbits;
	for (uint64_t i = from; i < end;) {
		if (i % 64 == 0 && i + 64 <= end) {
			m->w[i / 64] = UINT64_MAX;
			i += 64;
			continue;
		}
		m->w[i / 64] |= 1ull << (i % 64);
		i++;
	}
}

static uint64_t next_bit(const struct fsck_bmap *m, uint64_t from, uint64_t to,
			 bool want)
{
	if (to > m->nbits)
		to = m->nbits;
	uint64_t i = from;
	while (i < to) {
		uint64_t w = m->w[i / 64];
		if (!want)
			w = ~w;
		w &= UINT64_MAX << (i % 64);
		if (w) {
			uint64_t hit = (i & ~63ull) + (uint64_t)__builtin_ctzll(w);
			return hit < to ? hit : to;
		}
		i = (i & ~63ull) + 64;
	}
	return to;
}

uint64_t fsck_bmap_next_set(const struct fsck_bmap *m, uint64_t from, uint64_t to)
{
	return next_bit(m, from, to, true);
}

uint64_t fsck_bmap_next_clear(const struct fsck_bmap *m, uint64_t from, uint64_t to)
{
	return next_bit(m, from, to, false);
}

uint64_t fsck_bmap_count(const struct fsck_bmap *m, uint64_t from, uint64_t to)
{
	uint64_t n = 0;

	if (to > m->nbits)
		to = m->nbits;
	for (uint64_t i = from; i < to;) {
		if (i % 64 == 0 && i + 64 <= to) {
			n += (uint64_t)__builtin_popcountll(m->w[i / 64]);
			i += 64;
			continue;
		}
		n += (m->w[i / 64] >> (i % 64)) & 1u;
		i++;
	}
	return n;
}

bool fsck_disk_bit(const void *blk, uint32_t i)
{
	const uint8_t *bits = (const uint8_t *)blk + PFS_BITMAP_OFFSET;

	return bits[i / 8] & (1u << (i % 8));
}

void fsck_disk_bit_set(void *blk, uint32_t i, bool on)
{
	uint8_t *bits = (uint8_t *)blk + PFS_BITMAP_OFFSET;

	if (on)
		bits[i / 8] |= (uint8_t)(1u << (i % 8));
	else
		bits[i / 8] &= (uint8_t)~(1u << (i % 8));
}
