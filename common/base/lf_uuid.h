/* lf_uuid.h: event ids. Random (v4) for new events, name-based (v5, SHA-1)
 * for events whose producer gave none, so re-sending a file re-sends the
 * same ids. */
#ifndef LF_UUID_H
#define LF_UUID_H

#include <stddef.h>
#include <stdint.h>

#define LF_UUID_STRLEN 36 /**< without the NUL */

/** SHA-1 of data[0..len) into out[20]. */
void lf_sha1(const void *data, size_t len, uint8_t out[20]);

/** RFC 4122 version 5 UUID of @p name in leadflow's namespace, as
 *  lower-case text into out[37]. */
void lf_uuid_v5(const void *name, size_t len, char out[37]);

/** Random RFC 4122 version 4 UUID into out[37] (getrandom(2)). */
void lf_uuid_v4(char out[37]);

#endif
