/* lf_projector_int.h: what only tests may call on a projector (not
 * installed). */
#ifndef LF_PROJECTOR_INT_H
#define LF_PROJECTOR_INT_H

#include "lf_codec.h"
#include "lf_projector.h"

/**
 * Decode messages with @p codec from now on (a reader of an older contract,
 * lf_codec_new_reader_v1(), to test what an upgrade changes). The projector
 * takes @p codec and frees it with its own.
 */
void lf_projector_use_codec(lf_projector_t *p, lf_codec_t *codec);

#endif
