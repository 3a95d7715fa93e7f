/*
 * chunkcheck ORIG FILE CHUNK -- after a crash during an overwrite of FILE
 * (a copy of ORIG) with zeros in CHUNK-byte write requests, check that
 * every chunk is either entirely the old content or entirely zeros: each
 * write request was all-or-nothing.  Exit 0 if so, 1 if a chunk is mixed,
 * 2 on usage or I/O errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: chunkcheck ORIG FILE CHUNK\n");
		return 2;
	}
	long chunk = atol(argv[3]);
	FILE *a = fopen(argv[1], "rb"), *b = fopen(argv[2], "rb");
	if (!a || !b || chunk <= 0) {
		perror("chunkcheck");
		return 2;
	}
	char *ba = malloc((size_t)chunk), *bb = malloc((size_t)chunk), *z = calloc(1, (size_t)chunk);
	if (!ba || !bb || !z)
		return 2;
	long n = 0, old = 0, zero = 0, mixed = 0;
	for (;;) {
		size_t ra = fread(ba, 1, (size_t)chunk, a), rb = fread(bb, 1, (size_t)chunk, b);
		if (ra == 0 && rb == 0)
			break;
		if (ra != rb) {
			printf("chunk %ld: lengths differ (%zu vs %zu)\n", n, ra, rb);
			mixed++;
			break;
		}
		if (memcmp(ba, bb, ra) == 0)
			old++;
		else if (memcmp(bb, z, rb) == 0)
			zero++;
		else {
			printf("chunk %ld: neither the old content nor the new\n", n);
			mixed++;
		}
		n++;
	}
	printf("%ld chunks of %ld bytes: %ld new, %ld old, %ld torn\n", n, chunk, zero, old, mixed);
	return mixed ? 1 : 0;
}
