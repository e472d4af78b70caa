/*
 * A bump allocator for the JSON trees of CloudKit answers.
 *
 * A listing page is ~0.5 MB of JSON that jansson turns into ~100 000 small
 * blocks (an object, a hashtable, a pair and a string per field), all freed
 * together a moment later.  Through glibc malloc that was ~20 % of a dry
 * run's instructions and, worse, the cache misses of consolidating the
 * fastbins between pages.  Here a decode takes its blocks from 256 KB chunks
 * by bumping a pointer; a chunk counts its live blocks and goes back to the
 * system (or is kept as a spare) when the last one is freed, so a
 * record kept past its page (a pair split over two pages) only pins its
 * chunk until it is freed too.
 *
 * jansson has one global pair of allocation functions.  Ours are installed
 * once and stay: outside a decode they are plain malloc/free, and free()
 * hands every pointer that is not inside one of our chunks to free(), so
 * blocks made before the install, or while the arena was off, are fine.
 * A decode that starts while other functions are installed (session.c's
 * wiping ones) runs without the arena and leaves them in place.
 * Chunks are aligned to their size: a pointer's chunk is found by masking,
 * then checked against the set of live chunks (no header per block).
 * Single-threaded, like everything that uses jansson here.
 */
#include <stdint.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cloudkit_p.h"
#include "icpd/util.h"
#include "icpd/banned.h"

#define CHUNK_SIZE ((size_t)256 * 1024)
#define CHUNK_BIG (CHUNK_SIZE / 8) /* larger requests go to malloc */
#define ALIGN 16
#define MAX_SPARE 24 /* 6 MB: a page's tree, so pages reuse them */

struct chunk {
	size_t used; /* bytes handed out, header included */
	size_t live; /* blocks not yet freed */
};

#define HEADER ((sizeof(struct chunk) + ALIGN - 1) & ~(size_t)(ALIGN - 1))

static struct {
	bool installed;
	int active;                     /* nesting depth of begin/end */
	int suspended;                  /* begin/end pairs run without the arena */
	struct chunk *cur;              /* the chunk being bumped; NULL when none */
	struct chunk *spare[MAX_SPARE]; /* empty chunks kept for the next decode */
	size_t nspare;
	uintptr_t *set; /* open addressing: bases of chunks in use */
	size_t nset, capset;
} A;

static size_t slot_of(uintptr_t base, size_t cap)
{
	return (size_t)((base / CHUNK_SIZE) * 0x9E3779B97F4A7C15ULL) & (cap - 1);
}

static bool set_has(uintptr_t base)
{
	if (!A.capset) {
		return false;
	}
	for (size_t i = slot_of(base, A.capset);; i = (i + 1) & (A.capset - 1)) {
		if (A.set[i] == base) {
			return true;
		}
		if (A.set[i] == 0) {
			return false;
		}
	}
}

static void set_put_raw(uintptr_t *set, size_t cap, uintptr_t base)
{
	size_t i = slot_of(base, cap);

	while (set[i]) {
		i = (i + 1) & (cap - 1);
	}
	set[i] = base;
}

static void set_add(uintptr_t base)
{
	if ((A.nset + 1) * 2 > A.capset) {
		size_t cap = A.capset ? A.capset * 2 : 64;
		uintptr_t *set = xcalloc(cap, sizeof(*set));

		for (size_t i = 0; i < A.capset; i++) {
			if (A.set[i]) {
				set_put_raw(set, cap, A.set[i]);
			}
		}
		free(A.set);
		A.set = set;
		A.capset = cap;
	}
	set_put_raw(A.set, A.capset, base);
	A.nset++;
}

static void set_del(uintptr_t base)
{
	size_t i = slot_of(base, A.capset), j;

	while (A.set[i] != base) {
		i = (i + 1) & (A.capset - 1);
	}
	A.set[i] = 0;
	A.nset--;
	/* re-insert the rest of the cluster (linear probing deletion) */
	for (j = (i + 1) & (A.capset - 1); A.set[j]; j = (j + 1) & (A.capset - 1)) {
		uintptr_t b = A.set[j];

		A.set[j] = 0;
		set_put_raw(A.set, A.capset, b);
	}
}

/* CHUNK_SIZE bytes aligned to CHUNK_SIZE, straight from the kernel, so
 * that a dropped chunk leaves no hole in malloc's heap. */
static struct chunk *chunk_map(void)
{
	size_t len = CHUNK_SIZE * 2;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t base;
	size_t head;

	if (p == MAP_FAILED) {
		return NULL;
	}
	base = ((uintptr_t)p + CHUNK_SIZE - 1) & ~(uintptr_t)(CHUNK_SIZE - 1);
	head = (size_t)(base - (uintptr_t)p);
	if (head) {
		munmap(p, head);
	}
	if (len - head > CHUNK_SIZE) {
		munmap((char *)base + CHUNK_SIZE, len - head - CHUNK_SIZE);
	}
	return (struct chunk *)base;
}

static struct chunk *chunk_new(void)
{
	struct chunk *c;

	if (A.nspare) {
		c = A.spare[--A.nspare];
	} else {
		c = chunk_map();
		if (!c) {
			return NULL;
		}
		set_add((uintptr_t)c);
	}
	c->used = HEADER;
	c->live = 0;
	return c;
}

/* c is empty and not current: keep it as a spare or give it back. */
static void chunk_drop(struct chunk *c)
{
	if (A.nspare < MAX_SPARE) {
		A.spare[A.nspare++] = c;
		return;
	}
	set_del((uintptr_t)c);
	munmap(c, CHUNK_SIZE);
}

static void *arena_malloc(size_t n)
{
	struct chunk *c = A.cur;
	void *p;

	if (!A.active || n > CHUNK_BIG) {
		return malloc(n);
	}
	n = n ? (n + ALIGN - 1) & ~(size_t)(ALIGN - 1) : ALIGN;
	if (!c || c->used + n > CHUNK_SIZE) {
		if (c && c->live == 0) {
			c->used = HEADER; /* everything in it was freed already: reuse */
		} else {
			c = chunk_new();
			if (!c) {
				return malloc(n);
			}
			A.cur = c;
		}
	}
	p = (char *)c + c->used;
	c->used += n;
	c->live++;
	return p;
}

static void arena_free(void *p)
{
	uintptr_t base = (uintptr_t)p & ~(uintptr_t)(CHUNK_SIZE - 1);
	struct chunk *c;

	if (!p) {
		return;
	}
	if (!set_has(base)) {
		free(p);
		return;
	}
	c = (struct chunk *)base;
	if (--c->live > 0) {
		return;
	}
	if (c == A.cur) {
		c->used = HEADER;
		if (!A.active) {
			A.cur = NULL;
			chunk_drop(c);
		}
		return;
	}
	chunk_drop(c);
}

void cloudkit_arena_begin(void)
{
	json_malloc_t m;
	json_free_t f;

	json_get_alloc_funcs(&m, &f);
	if (A.suspended ||
	        (A.installed ? m != arena_malloc || f != arena_free : m != malloc || f != free)) {
		/* someone else's functions are in place (session.c wipes
		 * secrets that way): leave them alone, decode with theirs */
		A.suspended++;
		return;
	}
	if (!A.installed) {
		json_set_alloc_funcs(arena_malloc, arena_free);
		A.installed = true;
	}
	A.active++;
}

void cloudkit_arena_end(void)
{
	if (A.suspended) {
		A.suspended--;
		return;
	}
	if (A.active > 0) {
		A.active--;
	}
	if (!A.active && A.cur) {
		struct chunk *c = A.cur;

		/* a chunk only holds blocks of decodes that are over; the next
		 * decode starts a fresh one (or a spare) */
		A.cur = NULL;
		if (c->live == 0) {
			chunk_drop(c);
		}
	}
}
