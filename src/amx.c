/* AMX tiles: detection, the process's permission, the tile configuration
 * (amx.h). */
#include <string.h>

#include "amx.h"

#ifdef VQ_AMX_BUILD
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int ready, ready_int8;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    const int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1, amx_int8 = (d >> 25) & 1;
    /* Linux gives a process the tiles' state only when asked */
    const int perm = amx_tile && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    ready = perm && amx_bf16;
    ready_int8 = perm && amx_int8;
}

int vq_amx_bf16_ready(void)
{
    pthread_once(&once, detect);
    return ready;
}

int vq_amx_int8_ready(void)
{
    pthread_once(&once, detect);
    return ready_int8;
}

struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

__attribute__((target("amx-tile")))
void vq_amx_configure(const uint8_t rows[8])
{
    struct tile_config c;
    memset(&c, 0, sizeof(c));
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = rows[i];
    }
    /* the whole 64 bytes as the operand (GCC's _tile_loadconfig names only
     * their first 8, and the stores before it were dropped) */
    __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

__attribute__((target("amx-tile")))
void vq_amx_release(void) { _tile_release(); }

void vq_amx_configure_pass(int m)
{
    const uint8_t r = (uint8_t)m, rows[8] = { r, r, r, r, r, 16, 16, 16 };
    vq_amx_configure(rows);
}

#else

int vq_amx_bf16_ready(void) { return 0; }
int vq_amx_int8_ready(void) { return 0; }
void vq_amx_configure(const uint8_t rows[8]) { (void)rows; }
void vq_amx_release(void) {}
void vq_amx_configure_pass(int m) { (void)m; }

#endif
