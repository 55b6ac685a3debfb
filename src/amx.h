/* AMX tiles (Intel Xeon since Sapphire Rapids): whether this process may use
 * them, and the tile configuration the kernels load (amx.c). Used by the
 * bf16 attention (attention_amx.c), the bf16 products (linear_amx.c) and
 * the int8 products' sums (int8_amx.c); oneDNN configures the tiles for its
 * own kernels. */
#ifndef VQ_AMX_H
#define VQ_AMX_H

#include <stdint.h>

/* Whether this compiler builds the AMX kernels (GCC 11 or later, clang); the
 * files that hold them compile their fallbacks otherwise. */
#if defined(__x86_64__) && defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 11)
#define VQ_AMX_BUILD 1
#endif

/* 1 when the CPU has AMX-TILE and AMX-BF16 and the kernel let this process
 * use the tiles (arch_prctl ARCH_REQ_XCOMP_PERM, asked once); 0 otherwise. */
int vq_amx_bf16_ready(void);
/* The same for AMX-TILE and AMX-INT8 (the int8 products: int8_amx.c). */
int vq_amx_int8_ready(void);

/* Loads on this thread a configuration of tiles 0..7, each 64 bytes a row
 * and rows[i] rows (1..16), and releases it (vq_amx_release) when done.
 * Only where vq_amx_bf16_ready or vq_amx_int8_ready. */
void vq_amx_configure(const uint8_t rows[8]);
void vq_amx_release(void);
/* The products' configuration (linear_amx.c, int8_amx.c): tiles 0..3 (a
 * pass's sums) and 4 (its rows) of m rows, 5..7 (the weights) of 16. */
void vq_amx_configure_pass(int m);

#ifdef VQ_AMX_BUILD
#include <immintrin.h>

/* The products' weights tile (tile 5: 16 rows 256 bytes apart, as the
 * packings' blocks lie) from w, by TILELOADDT1 when stream (kept out of L1,
 * for passes whose rows should stay there; stream a constant where it is
 * inlined). */
__attribute__((target("amx-tile"), always_inline))
static inline void vq_amx_load_weights(const void *w, const int stream)
{
    if (stream) _tile_stream_loadd(5, w, 256);
    else _tile_loadd(5, w, 256);
}
#endif

#endif
