/* lf_rewind.c: the rewind of funnel.offsets: a rewind only ever moves a
 * stored offset back, under an ACCESS EXCLUSIVE lock on the table. */
#include "lf_rewind.h"

#include "lf_pg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lf_err_t lf_rewind_parse_offsets(const char *list, lf_rewind_t *rows, int count,
                                 char *errstr, size_t errstr_size)
{
    const char *s = list;

    if (!*s)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "--to-offset: empty list");
    while (*s) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        char item[64], *colon, *e1, *e2;
        long part;
        long long off;
        int i;

        if (n == 0 || n >= sizeof(item))
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--to-offset: bad item \"%.*s\": expected "
                             "PARTITION:OFFSET",
                             (int)(n > 40 ? 40 : n), s);
        memcpy(item, s, n);
        item[n] = '\0';
        colon = strchr(item, ':');
        if (!colon)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--to-offset: \"%s\": expected PARTITION:OFFSET",
                             item);
        *colon = '\0';
        errno = 0;
        part = strtol(item, &e1, 10);
        if (e1 == item || *e1 || part < 0 || part > INT32_MAX)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--to-offset: \"%s\" is not a partition number",
                             item);
        if (!strcmp(colon + 1, "beginning")) {
            off = -2;
        } else {
            errno = 0;
            off = strtoll(colon + 1, &e2, 10);
            if (e2 == colon + 1 || *e2 || off < 0 || errno)
                return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                                 "--to-offset: partition %ld: \"%s\" is not "
                                 "an offset (a number >= 0 or \"beginning\")",
                                 part, colon + 1);
        }
        if (!rows) { /* the syntax only */
            s += n;
            s += *s == ',';
            continue;
        }
        for (i = 0; i < count; i++)
            if (rows[i].partition == (int32_t)part)
                break;
        if (i == count)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--to-offset: the topic has no partition %ld",
                             part);
        if (rows[i].target != -1)
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "--to-offset: partition %ld given twice", part);
        rows[i].target = off == -2 ? rows[i].low : (int64_t)off;
        s += n;
        if (*s == ',')
            s++;
    }
    return LF_OK;
}

int lf_rewind_plan(lf_rewind_t *rows, int count)
{
    int changed = 0;

    for (int i = 0; i < count; i++) {
        lf_rewind_t *r = &rows[i];
        r->next = r->current;
        r->note = NULL;
        if (r->target < 0) {
            r->note = "not asked";
            continue;
        }
        if (r->target < r->low) {
            /* Older messages are gone from the log: the projector would
             * start at the low watermark anyway. */
            r->target = r->low;
            r->clamped = true;
        }
        if (r->current < 0) {
            r->note = "no stored offset: the projector reads it from the "
                      "beginning anyway";
            continue;
        }
        if (r->target >= r->current) {
            r->note = "already at or before that offset (a rewind never "
                      "moves forward)";
            continue;
        }
        r->next = r->target;
        changed++;
    }
    return changed;
}

/* Open the transaction and take funnel.offsets' lock, waiting at most
 * @p lock_timeout_ms (a signal ends the wait: lf_pg_set_stop()). On an
 * error the transaction is rolled back. */
static lf_err_t lock_offsets(PGconn *conn, int lock_timeout_ms, char *errstr,
                             size_t errstr_size)
{
    char sql[128];
    lf_err_t err;

    snprintf(sql, sizeof(sql), "SET LOCAL lock_timeout = %d", lock_timeout_ms);
    if ((err = lf_pg_query(conn, "BEGIN", 0, NULL, "BEGIN", NULL, errstr,
                           errstr_size)))
        return err;
    if (!(err = lf_pg_query(conn, sql, 0, NULL, "lock timeout", NULL, errstr,
                            errstr_size)))
        err = lf_pg_exec_stoppable(
            conn, "LOCK TABLE funnel.offsets IN ACCESS EXCLUSIVE MODE",
            "locking funnel.offsets", errstr, errstr_size);
    if (err == LF_ERR_TEMPORARY && PQstatus(conn) == CONNECTION_OK &&
        strstr(errstr, "lock timeout"))
        lf_seterr(err, errstr, errstr_size,
                  "locking funnel.offsets: another session held a lock on it "
                  "past the lock timeout of %g s (see pg_locks): nothing "
                  "changed; try again when it is done, or with a longer "
                  "--lock-timeout",
                  lock_timeout_ms / 1000.0);
    if (err && PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "ROLLBACK"));
    return err;
}

lf_err_t
lf_rewind_run(PGconn *conn, const char *group, const char *topic,
              lf_rewind_t *rows, int count, bool apply, int lock_timeout_ms,
              lf_err_t (*check)(void *arg, char *errstr, size_t errstr_size),
              void *arg, int *changed, char *errstr, size_t errstr_size)
{
    const char *params[4] = {group, topic, NULL, NULL};
    PGresult *res = NULL;
    bool in_doubt;
    lf_err_t err;

    *changed = 0;
    if (apply) {
        if ((err = lock_offsets(conn, lock_timeout_ms, errstr, errstr_size)))
            return err;
        if (check && (err = check(arg, errstr, errstr_size)))
            goto rollback;
    }
    if ((err = lf_pg_query(conn,
                           "SELECT partition, next_offset FROM funnel.offsets "
                           "WHERE group_id = $1 AND topic = $2",
                           2, params, "reading funnel.offsets", &res, errstr,
                           errstr_size)))
        goto rollback;
    for (int i = 0; i < count; i++)
        rows[i].current = -1;
    for (int r = 0; r < PQntuples(res); r++) {
        int32_t part = (int32_t)atol(PQgetvalue(res, r, 0));
        for (int i = 0; i < count; i++)
            if (rows[i].partition == part)
                rows[i].current = strtoll(PQgetvalue(res, r, 1), NULL, 10);
    }
    PQclear(res);
    res = NULL;
    *changed = lf_rewind_plan(rows, count);
    if (!apply)
        return LF_OK;
    for (int i = 0; i < count; i++) {
        char part[16], next[24];
        if (rows[i].next == rows[i].current)
            continue;
        snprintf(part, sizeof(part), "%d", (int)rows[i].partition);
        snprintf(next, sizeof(next), "%" PRId64, rows[i].next);
        params[2] = part;
        params[3] = next;
        if ((err = lf_pg_query(conn,
                               "UPDATE funnel.offsets SET next_offset = $4, "
                               "updated_at = now() WHERE group_id = $1 AND "
                               "topic = $2 AND partition = $3 AND "
                               "next_offset > $4",
                               4, params, "updating funnel.offsets", NULL,
                               errstr, errstr_size)))
            goto rollback;
    }
    if ((err = lf_pg_commit(conn, &in_doubt, errstr, errstr_size)) && in_doubt)
        *changed = -1;
    return err;

rollback:
    if (apply && PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "ROLLBACK"));
    return err;
}
