/* A landscape label map for the benches (COCO-Stuff ids as in
 * samples/legend.txt): sky with clouds, a mountain ridge, sea on the left,
 * grass with trees on the right. phase moves the ridge, shore and trees
 * (0: the map bench_precision uses). */
#ifndef VQ_LANDSCAPE_H
#define VQ_LANDSCAPE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

static void landscape(uint8_t *ids, int W, int H, double phase)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const double u = (double)x / W, v = (double)y / H;
            const double ridge = 0.38 + 0.08 * sin(6.0 * u + phase) + 0.04 * sin(17.0 * u + 1.0);
            const double shore = 0.45 + 0.10 * sin(3.0 * v + 0.5 + phase);
            uint8_t c;
            if (v < ridge) {
                const double cl = sin(9.0 * u + 2.0 + phase) * sin(11.0 * v) ;
                c = v < 0.25 && cl > 0.55 ? 105 : 156;          /* clouds, sky-other */
            } else if (v < ridge + 0.12) {
                c = 134;                                        /* mountain */
            } else if (u < shore) {
                c = 154;                                        /* sea */
            } else {
                const double t = sin(23.0 * u + phase) * sin(19.0 * v + 1.0);
                c = t > 0.6 ? 168 : 123;                        /* tree, grass */
            }
            ids[(size_t)y * W + x] = c;
        }
}

#endif
