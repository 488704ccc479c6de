/* lf_defstore.h: the funnel definition a schema's tables were built with
 * (SCHEMA.definition, schemas/sql/007_definition.sql): record it, check a
 * projector's against it, read it for the report. */
#ifndef LF_DEFSTORE_H
#define LF_DEFSTORE_H

#include "lf_common.h"
#include "lf_definition.h"

#include <libpq-fe.h>
#include <stdbool.h>

/** A recorded definition, as funnel.definition holds it. */
typedef struct lf_defstore_row_s {
    bool found; /**< false: nothing recorded yet */
    char name[128];
    long long version;
    char sha256[65]; /**< hex */
    char adopted_at[40];
} lf_defstore_row_t;

/**
 * Read the definition recorded in @p schema (a name checked by the
 * caller: lf_catalog_check_name() or a fixed "funnel") into @p row.
 * @returns LF_OK (row->found false when none), or LF_ERR_PG.
 */
lf_err_t lf_defstore_read(PGconn *conn, const char *schema,
                          lf_defstore_row_t *row, char *errstr,
                          size_t errstr_size);

/**
 * Make sure @p schema's tables are built under @p def: record it when
 * nothing is recorded (first start; concurrent starts agree), or compare
 * it with the recorded one. Tables that hold events but no recorded
 * definition were built under the embedded default. @p file names where
 * @p def came from in the message (NULL: the embedded default).
 * @returns LF_OK; LF_ERR_INVALID with *differs set when another definition
 * is recorded (errstr says which, and how to adopt the new one);
 * LF_ERR_PG or LF_ERR_NOMEM otherwise (*differs false).
 */
lf_err_t lf_defstore_check(PGconn *conn, const char *schema,
                           const lf_definition_t *def, const char *file,
                           bool *differs, char *errstr, size_t errstr_size);

/**
 * Record @p def as the definition of @p schema, replacing any: a rebuild
 * into a what-if schema does this. Runs in the caller's transaction if
 * any. @returns LF_OK, LF_ERR_PG or LF_ERR_NOMEM.
 */
lf_err_t lf_defstore_record(PGconn *conn, const char *schema,
                            const lf_definition_t *def, char *errstr,
                            size_t errstr_size);

/**
 * The definition recorded in @p schema, parsed, into *def (NULL when none
 * is recorded). @returns LF_OK (*def to free with lf_definition_destroy()),
 * LF_ERR_PG, or LF_ERR_INVALID if the recorded JSON no longer parses.
 */
lf_err_t lf_defstore_load(PGconn *conn, const char *schema,
                          lf_definition_t **def, char *errstr,
                          size_t errstr_size);

#endif
