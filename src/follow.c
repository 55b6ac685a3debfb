/* Follow mode without sampling: the shift a FOLLOW session detects between
 * two frames' condition tokens, for computing content origins ahead of a
 * render cut into parts (tools/vqgan-farm, docs/farm.md). The detection is
 * temporal.c's own (vq_detect_shift, radius w/2), so the origins agree with
 * those a session reaches by sampling every frame. */
#include "error.h"
#include "model.h"
#include "vqgan.h"
#include "grid.h"
#include "temporal.h"

int vqgan_follow_shift(const struct vqgan_model *model, const int32_t *cond, const int32_t *prev_cond,
                       int gw, int gh, int *shift_x, int *shift_y)
{
    int dy = 0, dx = 0;
    vq_clear_error();
    if (!model || !cond || !shift_x || !shift_y)
        return vq_error(VQGAN_ERR_INVALID, "vqgan_follow_shift: NULL argument");
    *shift_x = *shift_y = 0;
    const int kind = model->info.cond_kind;
    const int w = model->gpt.present ? vq_window_side(model->gpt.block) : 0;
    if (!model->gpt.present ||
        (kind != VQGAN_COND_SEGMENTATION && kind != VQGAN_COND_DEPTH && kind != VQGAN_COND_COORD) || !w)
        return vq_error(VQGAN_ERR_UNSUPPORTED, "%s: follow needs a sliding-window transformer with a spatial "
                        "condition", model->path ? model->path : model->info.name);
    const int r = vq_check_grid("vqgan_follow_shift: token grid", gw, gh);
    if (r) return r;
    if (prev_cond)
        vq_detect_shift(cond, prev_cond, gw, gh, w / 2, &dy, &dx);
    *shift_x = dx;
    *shift_y = dy;
    return 0;
}
