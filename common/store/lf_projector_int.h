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

/**
 * The advisory locks a batch takes on the partitions it declares to have
 * no stored offset (LF_PROJECTOR_NO_ROW), before reading them: $1 the
 * group, $2 a text[] of "PARTITION/TOPIC". Here so that a test can take
 * them as another instance would.
 */
#define LF_PROJECTOR_PARTITION_LOCK_SQL                                        \
    "SELECT count(pg_advisory_xact_lock(hashtext($1 || '/' || t), p)) FROM "   \
    "(SELECT DISTINCT split_part(e, '/', 2) AS t, split_part(e, '/', "         \
    "1)::int AS p FROM unnest($2::text[]) AS e ORDER BY 1, 2) AS s"

#endif
