/* lf_embedded.h: the published Avro schemas (v1, v2) and SQL migrations,
 * compiled in. */
#ifndef LF_EMBEDDED_H
#define LF_EMBEDDED_H

/** The text of schemas/avro/lead_event.v1.avsc (schema id 1). Static. */
extern const char *lf_embedded_avsc_v1;
/** The text of schemas/avro/lead_event.v2.avsc (schema id 2). Static. */
extern const char *lf_embedded_avsc_v2;

typedef struct lf_migration_s {
    const char *name; /**< file name, e.g. "001_funnel.sql"; NULL ends */
    const char *sql;
} lf_migration_t;

/** The files schemas/sql/NNN_*.sql in name order, terminated by {NULL, NULL}.
 * Static. */
extern const lf_migration_t lf_embedded_migrations[];

#endif
