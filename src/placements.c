/* The placement caches of the sliding window: the table, the LRU list of the
 * placements in use, eviction under the cap, and follow's move (placements.h). */
#include <stdlib.h>

#include "error.h"
#include "grid.h"
#include "placements.h"

static void lru_unlink(struct vq_placements *pc, struct vq_placement *P)
{
    if (P->newer) P->newer->older = P->older; else if (pc->newest == P) pc->newest = P->older;
    if (P->older) P->older->newer = P->newer; else if (pc->oldest == P) pc->oldest = P->newer;
    P->newer = P->older = NULL;
}

static void lru_touch(struct vq_placements *pc, struct vq_placement *P)
{
    lru_unlink(pc, P);
    P->older = pc->newest;
    if (pc->newest) pc->newest->newer = P;
    pc->newest = P;
    if (!pc->oldest) pc->oldest = P;
}

static void placement_free(struct vq_placement *P)
{
    if (!P) return;
    vq_kv_cache_free(&P->cache);
    free(P->toks);
    free(P);
}

/* Removes P from the table; with sharing on, a placement that holds the
 * condition positions stays as the donor (replacing the previous one). */
static void placement_drop(struct vq_placements *pc, struct vq_placement *P)
{
    lru_unlink(pc, P);
    if (P->kept) pc->n_kept--;
    pc->table[(size_t)P->r0 * pc->n_c0 + P->c0] = NULL;
    pc->bytes -= P->bytes;
    if (pc->share && P->cache.len >= pc->np) {
        placement_free(pc->donor);
        pc->donor = P;
    } else {
        placement_free(P);
    }
}

static size_t table_size(const struct vq_placements *pc)
{
    return (size_t)(pc->Hp - pc->w + 1) * pc->n_c0;
}

int vq_placements_begin(struct vq_placements *pc)
{
    pc->n_c0 = pc->Wp - pc->w + 1;
    pc->table = calloc(table_size(pc), sizeof(*pc->table));
    if (!pc->table) return vq_error(VQGAN_ERR_NOMEM, "window cache table: out of memory");
    pc->newest = pc->oldest = NULL;
    pc->n_kept = 0;
    pc->bytes = 0;
    return 0;
}

void vq_placements_clear(struct vq_placements *pc)
{
    const int share = pc->share;
    pc->share = 0;                       /* no donor out of these */
    if (pc->table)
        for (size_t k = 0; k < table_size(pc); k++)
            if (pc->table[k]) placement_drop(pc, pc->table[k]);
    free(pc->table);
    pc->table = NULL;
    pc->newest = pc->oldest = NULL;
    pc->n_kept = 0;
    pc->bytes = 0;
    placement_free(pc->donor);
    pc->donor = NULL;
    pc->share = share;
}

void vq_placements_end(struct vq_placements *pc)
{
    placement_free(pc->donor);
    pc->donor = NULL;
}

/* Order of placement P's first visit in a frame (raster index of the cell). */
static int64_t first_visit(const struct vq_placements *pc, const struct vq_placement *P)
{
    return (int64_t)P->row_lo * pc->Wp + P->col_lo;
}

/* Raster index of placement P's next visit after the cell being sampled
 * (INT64_MAX: none left in this frame). Its visits are the rectangle of cells
 * [row_lo, row_hi] x [col_lo, col_hi], taken in raster order. */
static int64_t next_visit(const struct vq_placements *pc, const struct vq_placement *P)
{
    int i = pc->cur_i, j = pc->cur_j + 1;
    if (i < P->row_lo) {
        i = P->row_lo;
        j = P->col_lo;
    } else if (j > P->col_hi) {
        i++;
        j = P->col_lo;
    } else if (j < P->col_lo) {
        j = P->col_lo;
    }
    return i > P->row_hi ? INT64_MAX : (int64_t)i * pc->Wp + j;
}

/* Evicts placements until `bytes` more fit under the cap (or none is left: the
 * placement in use is always allowed). Kept placements go first, the one
 * needed last first (they serve a later frame, or later in this one); then,
 * of the placements in use, the one the schedule visits last (Belady's rule:
 * the schedule is known, and the raster order revisits a band of placements
 * cyclically, where evicting the least recently used would evict each one
 * just before its next visit). */
static void make_room(struct vq_placements *pc, size_t bytes)
{
    while (pc->bytes + bytes > pc->cap_bytes) {
        struct vq_placement *victim = NULL;
        if (pc->n_kept) {
            for (size_t k = 0; k < table_size(pc); k++) {
                struct vq_placement *P = pc->table[k];
                if (P && P->kept && (!victim || P->next_use > victim->next_use)) victim = P;
            }
        } else {
            int64_t far = -1;
            for (struct vq_placement *P = pc->oldest; P; P = P->newer) {
                const int64_t v = next_visit(pc, P);
                if (v > far) {
                    far = v;
                    victim = P;
                }
            }
        }
        if (!victim) break;
        placement_drop(pc, victim);
        pc->evictions++;
    }
}

static void placement_ranges(const struct vq_placements *pc, struct vq_placement *P)
{
    vq_window_visits(P->r0, pc->Hp, pc->w, pc->step, &P->row_lo, &P->row_hi);
    vq_window_visits(P->c0, pc->Wp, pc->w, pc->step, &P->col_lo, &P->col_hi);
    if (P->row_hi > pc->Hs - 1) P->row_hi = pc->Hs - 1;  /* rows past the crop are not sampled */
}

int vq_placements_get(struct vq_placements *pc, int r0, int c0, struct vq_placement **out)
{
    struct vq_placement **slot = &pc->table[(size_t)r0 * pc->n_c0 + c0];
    struct vq_placement *P = *slot;
    int r;
    if (!P) {
        P = calloc(1, sizeof(*P));
        if (!P) return vq_error(VQGAN_ERR_NOMEM, "window cache: out of memory");
        P->r0 = r0;
        P->c0 = c0;
        placement_ranges(pc, P);
        const int cap = vq_prefix_len(pc, P, P->row_hi, P->col_hi);
        P->bytes = vq_kv_cache_bytes(pc->gpt, cap);
        make_room(pc, P->bytes);
        if (!(P->toks = malloc(sizeof(int32_t) * (size_t)cap))) {
            free(P);
            return vq_error(VQGAN_ERR_NOMEM, "window cache: out of memory");
        }
        if (pc->dry_run) {
            P->cache.cap = cap;
        } else if ((r = vq_kv_cache_init(&P->cache, pc->gpt, cap))) {
            free(P->toks);
            free(P);
            return r;
        }
        *slot = P;
        pc->bytes += P->bytes;
    } else if (P->kept) {
        P->kept = 0;
        pc->n_kept--;
    }
    lru_touch(pc, P);
    *out = P;
    return 0;
}

int vq_placements_fits(const struct vq_placements *pc, int r0, int c0)
{
    if (pc->table[(size_t)r0 * pc->n_c0 + c0]) return 1;
    struct vq_placement P = { 0 };
    P.r0 = r0;
    P.c0 = c0;
    placement_ranges(pc, &P);
    size_t kept = 0;
    for (size_t k = 0; pc->n_kept && k < table_size(pc); k++)
        if (pc->table[k] && pc->table[k]->kept) kept += pc->table[k]->bytes;
    return pc->bytes - kept + vq_kv_cache_bytes(pc->gpt, vq_prefix_len(pc, &P, P.row_hi, P.col_hi)) <= pc->cap_bytes;
}

void vq_placements_done(struct vq_placements *pc, int r0, int c0, int keep)
{
    struct vq_placement *P = pc->table[(size_t)r0 * pc->n_c0 + c0];
    if (!P) return;
    if (!keep) {
        placement_drop(pc, P);
        return;
    }
    lru_unlink(pc, P);
    if (!P->kept) pc->n_kept++;
    P->kept = 1;
    P->next_use = ((pc->frame + 1) << 32) + first_visit(pc, P);
}

void vq_placements_keep_all(struct vq_placements *pc)
{
    while (pc->newest) {
        struct vq_placement *P = pc->newest;
        lru_unlink(pc, P);
        P->kept = 1;
        pc->n_kept++;
        P->next_use = (pc->frame << 32) + first_visit(pc, P);
    }
    make_room(pc, 0);
}

int vq_placements_move(struct vq_placements *pc, int dy, int dx)
{
    const size_t n = table_size(pc);
    struct vq_placement **t = calloc(n, sizeof(*t));
    if (!t) return vq_error(VQGAN_ERR_NOMEM, "window cache table: out of memory");
    for (size_t k = 0; k < n; k++) {
        struct vq_placement *P = pc->table[k];
        if (!P) continue;
        struct vq_placement Q = *P;
        Q.r0 -= dy;
        Q.c0 -= dx;
        int ok = Q.r0 >= 0 && Q.r0 <= pc->Hp - pc->w && Q.c0 >= 0 && Q.c0 < pc->n_c0;
        if (ok) {
            placement_ranges(pc, &Q);
            ok = Q.row_lo - Q.r0 == P->row_lo - P->r0 && Q.row_hi - Q.r0 == P->row_hi - P->r0 &&
                 Q.col_lo - Q.c0 == P->col_lo - P->c0 && Q.col_hi - Q.c0 == P->col_hi - P->c0;
        }
        if (!ok) {
            placement_drop(pc, P);      /* clears pc->table[k] */
            continue;
        }
        pc->table[k] = NULL;
        P->r0 = Q.r0; P->c0 = Q.c0;
        P->row_lo = Q.row_lo; P->row_hi = Q.row_hi; P->col_lo = Q.col_lo; P->col_hi = Q.col_hi;
        P->next_use = (pc->frame << 32) + first_visit(pc, P);
        t[(size_t)P->r0 * pc->n_c0 + P->c0] = P;
    }
    free(pc->table);
    pc->table = t;
    return 0;
}
