/* Output-buffer cache for the Python extension (not part of the C library).
 *
 * A fresh multi-megabyte NumPy array costs a page fault and a kernel
 * zeroing per 4 KiB page: for a large normalization that is as much time
 * as the kernel itself.  Outputs of at least CNORM_OUTBUF_MIN bytes are
 * therefore allocated through this NumPy memory handler, which keeps up to
 * CNORM_OUTBUF_SLOTS freed buffers for reuse, as inference runtimes' arenas
 * do.  What it holds is bounded by outbuf_limit bytes (of block capacity;
 * CNORM_OUTBUF_DEFAULT_LIMIT unless cnorm_outbuf_set_limit() changes it;
 * 0 turns caching off: every free then goes straight to free()).
 * cnorm_outbuf_release() frees what is held.  Arrays remember their
 * handler, so frees always come back here.
 */
#ifndef CNORM_OUTBUF_H
#define CNORM_OUTBUF_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define CNORM_OUTBUF_MIN ((size_t)1 << 20)
/* Room for a freed 256 MiB result (the largest benchmark cases) and a few
 * smaller ones: a block's capacity is a little more than its size, so a
 * 256 MiB bound would keep none of those, and their calls take 1.6x longer
 * in page faults. */
#define CNORM_OUTBUF_DEFAULT_LIMIT ((size_t)1 << 30)
#define CNORM_OUTBUF_SLOTS 4
/* Header before each block: its capacity, padded to keep 64-byte alignment. */
#define CNORM_OUTBUF_HDR 64
#define CNORM_OUTBUF_HUGE ((size_t)2 << 20)

static pthread_mutex_t outbuf_lock = PTHREAD_MUTEX_INITIALIZER;
static void *outbuf_slot[CNORM_OUTBUF_SLOTS];
static size_t outbuf_cap[CNORM_OUTBUF_SLOTS];
static size_t outbuf_limit = CNORM_OUTBUF_DEFAULT_LIMIT; /* under outbuf_lock */

static size_t outbuf_capacity(void *ptr) { return *(size_t *)((char *)ptr - CNORM_OUTBUF_HDR); }

static void *outbuf_malloc(void *ctx, size_t size) {
    (void)ctx;
    if (size == 0) size = 1;
    if (size >= CNORM_OUTBUF_MIN) { /* best fit, wasting at most a quarter */
        void *hit = NULL;
        int best = -1;
        pthread_mutex_lock(&outbuf_lock);
        for (int i = 0; i < CNORM_OUTBUF_SLOTS; ++i)
            if (outbuf_slot[i] && outbuf_cap[i] >= size && outbuf_cap[i] - size <= size / 4 &&
                (best < 0 || outbuf_cap[i] < outbuf_cap[best]))
                best = i;
        if (best >= 0) {
            hit = outbuf_slot[best];
            outbuf_slot[best] = NULL;
        }
        pthread_mutex_unlock(&outbuf_lock);
        if (hit) return hit;
    }
    if (size > (size_t)-1 - CNORM_OUTBUF_HUGE) return NULL;
    /* Big blocks on 2 MiB boundaries, with transparent huge pages asked for
     * (as NumPy's own allocator does from 4 MiB): 4 KiB pages would cost a
     * TLB miss every 4 KiB of a streaming kernel. */
    const int huge = size >= 2 * CNORM_OUTBUF_HUGE;
    void *base = NULL;
    if (posix_memalign(&base, huge ? CNORM_OUTBUF_HUGE : 64, size + CNORM_OUTBUF_HDR) != 0) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge) madvise(base, (size + CNORM_OUTBUF_HDR) & ~(CNORM_OUTBUF_HUGE - 1), MADV_HUGEPAGE);
#endif
    *(size_t *)base = size;
    return (char *)base + CNORM_OUTBUF_HDR;
}

static void outbuf_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    (void)size;
    if (!ptr) return;
    const size_t cap = outbuf_capacity(ptr);
    void *evict = ptr;
    if (cap >= CNORM_OUTBUF_MIN) {
        /* keep the newest block: in an empty slot, else instead of the
         * smallest, if the cache then holds at most outbuf_limit bytes */
        pthread_mutex_lock(&outbuf_lock);
        size_t held = 0;
        int slot = -1;
        for (int i = 0; i < CNORM_OUTBUF_SLOTS; ++i) {
            if (outbuf_slot[i])
                held += outbuf_cap[i];
            else if (slot < 0)
                slot = i;
        }
        if (slot < 0)
            for (int i = 0; i < CNORM_OUTBUF_SLOTS; ++i)
                if (slot < 0 || outbuf_cap[i] < outbuf_cap[slot]) slot = i;
        const size_t dropped = outbuf_slot[slot] ? outbuf_cap[slot] : 0;
        if (cap <= outbuf_limit && held - dropped <= outbuf_limit - cap) {
            evict = outbuf_slot[slot];
            outbuf_slot[slot] = ptr;
            outbuf_cap[slot] = cap;
        }
        pthread_mutex_unlock(&outbuf_lock);
    }
    if (evict) free((char *)evict - CNORM_OUTBUF_HDR);
}

static void *outbuf_calloc(void *ctx, size_t nelem, size_t elsize) {
    if (elsize && nelem > (size_t)-1 / elsize) return NULL;
    void *p = outbuf_malloc(ctx, nelem * elsize);
    if (p) memset(p, 0, nelem * elsize);
    return p;
}

static void *outbuf_realloc(void *ctx, void *ptr, size_t new_size) {
    if (!ptr) return outbuf_malloc(ctx, new_size);
    const size_t cap = outbuf_capacity(ptr);
    if (new_size <= cap && new_size > cap / 2) return ptr;
    void *p = outbuf_malloc(ctx, new_size);
    if (!p) return NULL;
    memcpy(p, ptr, cap < new_size ? cap : new_size);
    outbuf_free(ctx, ptr, cap);
    return p;
}

/* Free every cached block. */
static void cnorm_outbuf_release(void) {
    void *blocks[CNORM_OUTBUF_SLOTS];
    pthread_mutex_lock(&outbuf_lock);
    for (int i = 0; i < CNORM_OUTBUF_SLOTS; ++i) blocks[i] = outbuf_slot[i], outbuf_slot[i] = NULL;
    pthread_mutex_unlock(&outbuf_lock);
    for (int i = 0; i < CNORM_OUTBUF_SLOTS; ++i)
        if (blocks[i]) free((char *)blocks[i] - CNORM_OUTBUF_HDR);
}

/* Bound what the cache holds to `limit` bytes (0: cache nothing).  A bound
 * below what is held now frees every held block. */
static void cnorm_outbuf_set_limit(size_t limit) {
    size_t held = 0;
    pthread_mutex_lock(&outbuf_lock);
    outbuf_limit = limit;
    for (int i = 0; i < CNORM_OUTBUF_SLOTS; ++i)
        if (outbuf_slot[i]) held += outbuf_cap[i];
    pthread_mutex_unlock(&outbuf_lock);
    if (held > limit) cnorm_outbuf_release();
}

static size_t cnorm_outbuf_limit(void) {
    pthread_mutex_lock(&outbuf_lock);
    const size_t limit = outbuf_limit;
    pthread_mutex_unlock(&outbuf_lock);
    return limit;
}

/* Bytes held in the cache. */
static size_t cnorm_outbuf_held(void) {
    size_t held = 0;
    pthread_mutex_lock(&outbuf_lock);
    for (int i = 0; i < CNORM_OUTBUF_SLOTS; ++i)
        if (outbuf_slot[i]) held += outbuf_cap[i];
    pthread_mutex_unlock(&outbuf_lock);
    return held;
}

static PyDataMem_Handler cnorm_outbuf_handler = {
    "cnorm_outbuf",
    1,
    {NULL, outbuf_malloc, outbuf_calloc, outbuf_realloc, outbuf_free},
};

#endif
