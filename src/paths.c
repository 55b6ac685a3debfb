/* Where the installed library finds its data: the datadir comes from
 * ./configure (config.mk) as VQ_DATADIR, so that no path into the source
 * or build tree is compiled into the library. */
#include "vqgan.h"

#ifndef VQ_DATADIR
#error "VQ_DATADIR must be defined by the build (./configure --datadir)"
#endif

const char *vqgan_default_model_path(void)
{
    return VQ_DATADIR "/libvqgan/models/default.gguf";
}
