/* lf_deadletter.c: listing and retrying funnel.dead_letters. */
#include "lf_deadletter.h"

#include "lf_buf.h"
#include "lf_codec.h"
#include "lf_defstore.h"
#include "lf_event.h"
#include "lf_identity.h"
#include "lf_pg.h"
#include "lf_projector.h"
#include "lf_pseudonym.h"
#include "lf_time.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Letters per transaction in a retry. */
#define DL_BATCH 500

/* Length of the valid UTF-8 sequence at s[0..n) (a byte at or above
 * 0x80), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;

    return len <= n && lf_utf8_valid((const char *)s, len) ? len : 0;
}

/* A key or text for one TSV field: tabs, newlines, backslashes, other
 * control bytes and bytes that are not UTF-8 (a Kafka key is any bytes)
 * escaped, so one letter stays one line of text. */
static void put_escaped(FILE *out, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        size_t seq;
        if (c == '\\')
            fputs("\\\\", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else if (c < 0x80)
            fputc(c, out);
        else if (i + 1 < n && lf_utf8_is_c1((const char *)s + i)) {
            fprintf(out, "\\xc2\\x%02x", s[i + 1]);
            i++;
        } else if ((seq = utf8_seq(s + i, n - i))) {
            fwrite(s + i, 1, seq, out);
            i += seq - 1;
        } else
            fprintf(out, "\\x%02x", c);
    }
}

/* @p s escaped as put_escaped() has it, and a newline; NULL when out of
 * memory. */
static char *escaped_line(const char *s)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    if (!f)
        return NULL;
    put_escaped(f, (const unsigned char *)s, strlen(s));
    fputc('\n', f);
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    return buf;
}

lf_err_t lf_deadletter_list(PGconn *conn, int64_t since_ms, bool all, FILE *out,
                            uint64_t *shown, uint64_t *open, char *errstr,
                            size_t errstr_size)
{
    char since[40];
    const char *params[2] = {all ? "t" : "f", NULL};
    PGresult *res;
    lf_err_t err;
    uint64_t nopen = 0;

    if (since_ms != INT64_MIN)
        params[1] = lf_time_format(since_ms, since, sizeof(since));
    if ((err = lf_pg_query(
             conn,
             "SELECT id, to_char(received_at AT TIME ZONE 'UTC', "
             "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), topic, partition, "
             "\"offset\", resolved_at IS NOT NULL, retries, key, "
             "octet_length(value), error, resolution "
             "FROM funnel.dead_letters WHERE ($1::bool OR "
             "resolved_at IS NULL) AND ($2::timestamptz IS NULL OR "
             "received_at >= $2::timestamptz) ORDER BY id",
             2, params, "listing dead letters", &res, errstr, errstr_size)))
        return err;
    fputs("id\treceived_at\ttopic\tpartition\toffset\tstatus\tretries\tkey\t"
          "value_bytes\terror\tresolution\n",
          out);
    for (int r = 0; r < PQntuples(res); r++) {
        bool resolved = !strcmp(PQgetvalue(res, r, 5), "t");
        nopen += !resolved;
        fprintf(out, "%s\t%s\t", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
        put_escaped(out, (const unsigned char *)PQgetvalue(res, r, 2),
                    strlen(PQgetvalue(res, r, 2)));
        fprintf(out, "\t%s\t%s\t%s\t%s\t", PQgetvalue(res, r, 3),
                PQgetvalue(res, r, 4), resolved ? "resolved" : "open",
                PQgetvalue(res, r, 6));
        if (PQgetisnull(res, r, 7)) {
            fputs("(null)", out);
        } else {
            size_t n = 0;
            unsigned char *key = PQunescapeBytea(
                (const unsigned char *)PQgetvalue(res, r, 7), &n);
            if (key)
                put_escaped(out, key, n);
            PQfreemem(key);
        }
        fprintf(out, "\t%s\t",
                PQgetisnull(res, r, 8) ? "(null)" : PQgetvalue(res, r, 8));
        put_escaped(out, (const unsigned char *)PQgetvalue(res, r, 9),
                    strlen(PQgetvalue(res, r, 9)));
        fputc('\t', out);
        put_escaped(out, (const unsigned char *)PQgetvalue(res, r, 10),
                    strlen(PQgetvalue(res, r, 10)));
        fputc('\n', out);
    }
    if (shown)
        *shown = (uint64_t)PQntuples(res);
    if (open)
        *open = nopen;
    PQclear(res);
    return LF_OK;
}

/* Outcome of one letter in a batch. */
typedef struct outcome_s {
    char *id;
    char *text;     /* resolution (applied) or new error (failing) */
    char *line;     /* what the report says of it, once the batch is written */
    char *event_id; /* applied: the event it was applied as */
    char *lead_id;  /* applied: the lead its event named */
    bool applied;
} outcome_t;

static void outcomes_clear(outcome_t *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(o[i].id);
        free(o[i].text);
        free(o[i].line);
        free(o[i].event_id);
        free(o[i].lead_id);
    }
}

/* Is the event the letter became (u.event_id) a conflict: another copy of
 * that event_id stored with other content, the letter's position in the
 * anomaly's reason (record_conflicts() in lf_projector.c)? */
#define LETTER_CONFLICT                                                        \
    "EXISTS (SELECT 1 FROM funnel.anomalies a WHERE a.event_id = "             \
    "u.event_id AND a.kind = 'conflict' AND right(a.reason, length(' at ' "    \
    "|| d.topic || ' partition ' || d.partition || ' offset ' || "             \
    "d.\"offset\")) = ' at ' || d.topic || ' partition ' || d.partition || "   \
    "' offset ' || d.\"offset\")"

/* mark()'s statements, in one transaction: $1 letter ids, $2 texts (or
 * events, or pseudonyms and $3 lead ids). */
static const struct {
    const char *sql, *what;
    int nparams;
} mark_sql[4] = {
    {"UPDATE funnel.dead_letters d SET resolved_at = now(), "
     "resolution = u.txt, retried_at = now(), retries = "
     "d.retries + 1 FROM unnest($1::bigint[], $2::text[]) AS "
     "u(id, txt) WHERE d.id = u.id AND d.resolved_at IS NULL",
     "marking resolved dead letters", 2},
    {"UPDATE funnel.dead_letters d SET error = CASE WHEN "
     "strpos(d.error, '" LF_ERASED_NOTE "') > 0 THEN "
     "d.error ELSE u.txt END, "
     "retried_at = now(), retries = d.retries + 1 FROM "
     "unnest($1::bigint[], $2::text[]) AS u(id, txt) WHERE "
     "d.id = u.id AND d.resolved_at IS NULL",
     "updating failing dead letters", 2},
    /* An applied letter whose lead is an erased person's (its event was
     * erased on the way in, or conflicted with theirs) keeps no key or
     * value: they hold the person's data, which the resolution would tie
     * to the pseudonym. $2: the pseudonyms of the letter's own lead_id
     * under every key of the ring, as the projector checks erased_leads;
     * $3 that lead_id, which the error and the resolution (a --note) may
     * quote: replaced by the pseudonym, as an erasure does. */
    {"UPDATE funnel.dead_letters d SET key = NULL, value = NULL, "
     "error = regexp_replace(d.error, " LF_SQL_ID_AS_WORD ", u.ps, 'g') || "
     "'" LF_ERASED_NOTE
     "', resolution = regexp_replace(d.resolution, " LF_SQL_ID_AS_WORD
     ", u.ps, 'g') FROM unnest($1::bigint[], $2::text[], "
     "$3::text[]) AS u(id, ps, o) WHERE d.id = u.id "
     "AND u.ps IN (SELECT e.pseudonym FROM funnel.erased_leads e) AND "
     "(d.key IS NOT NULL OR d.value IS NOT NULL)",
     "erasing applied letters of erased people", 3},
    /* A letter that conflicted was not applied: its resolution says so
     * (it stays resolved: its copy is in funnel.anomalies, and a retry
     * would only record it again). */
    {"UPDATE funnel.dead_letters d SET resolution = regexp_replace("
     "d.resolution, '^applied as event ', 'not applied, a conflict with "
     "the stored event ') FROM unnest($1::bigint[], $2::text[]) AS u(id, "
     "event_id) WHERE d.id = u.id AND " LETTER_CONFLICT " RETURNING d.id",
     "marking conflicting letters", 2},
};

/* Run mark_sql with @p params: in the transaction open on @p conn when
 * @p in_tx, else in one of its own. *@p conflicted: the ids of the
 * letters that were conflicts, to PQclear() (NULL on an error). */
static lf_err_t mark_write(PGconn *conn, const char *params[4][3], bool in_tx,
                           PGresult **conflicted, char *errstr,
                           size_t errstr_size)
{
    lf_err_t err = LF_OK;

    *conflicted = NULL;

    if (!in_tx && (err = lf_pg_query(conn, "BEGIN", 0, NULL, "BEGIN", NULL,
                                     errstr, errstr_size)))
        return err;
    for (int k = 0; k < 4 && !err; k++)
        err = lf_pg_query(conn, mark_sql[k].sql, mark_sql[k].nparams, params[k],
                          mark_sql[k].what, k == 3 ? conflicted : NULL, errstr,
                          errstr_size);
    if (err) {
        PQclear(*conflicted);
        *conflicted = NULL;
    }
    if (in_tx)
        return err;
    if (err) {
        if (PQstatus(conn) == CONNECTION_OK)
            PQclear(PQexec(conn, "ROLLBACK"));
        return err;
    }
    return lf_pg_query(conn, "COMMIT", 0, NULL, "COMMIT", NULL, errstr,
                       errstr_size);
}

/* The applied letters' ids, each once per key of @p ps, the pseudonyms
 * of their leads under those keys and the leads (none without a key: no
 * one can have been erased then). */
static lf_err_t letter_pseudonyms(const outcome_t *o, size_t n,
                                  const lf_pseudonym_t *ps, lf_buf_t *ids,
                                  lf_buf_t *pss, lf_buf_t *leads)
{
    size_t keys = ps ? lf_pseudonym_keys(ps) : 0, m = 0;
    const char **idv = calloc(n * keys + 1, sizeof(*idv));
    char(*pv)[LF_PSEUDONYM_LEN + 1] = calloc(n * keys + 1, sizeof(*pv));
    const char **pp = calloc(n * keys + 1, sizeof(*pp));
    const char **lv = calloc(n * keys + 1, sizeof(*lv));
    lf_err_t err = LF_ERR_NOMEM;

    if (idv && pv && pp && lv) {
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; o[i].applied && k < keys; k++, m++) {
                idv[m] = o[i].id;
                lv[m] = o[i].lead_id;
                lf_pseudonym_of(ps, k, o[i].lead_id, strlen(o[i].lead_id),
                                pv[m]);
                pp[m] = pv[m];
            }
        if (!lf_pg_text_array(ids, idv, m) && !lf_pg_text_array(pss, pp, m) &&
            !lf_pg_text_array(leads, lv, m))
            err = LF_OK;
    }
    free(idv);
    free(pv);
    free(pp);
    free(lv);
    return err;
}

/* Mark the batch's outcomes: one statement for the applied, one for the
 * still failing (in the transaction open on @p conn when @p in_tx);
 * *@p conflicted as mark_write() has it. */
static lf_err_t mark(PGconn *conn, const outcome_t *o, size_t n,
                     const lf_pseudonym_t *ps, bool in_tx,
                     PGresult **conflicted, char *errstr, size_t errstr_size)
{
    lf_buf_t ids[2] = {{0}, {0}}, texts[2] = {{0}, {0}}, events = {0};
    lf_buf_t pids = {0}, pss = {0}, pleads = {0};
    const char **idv = calloc(n + 1, sizeof(*idv));
    const char **txv = calloc(n + 1, sizeof(*txv));
    lf_err_t err = LF_OK;

    if (!idv || !txv) {
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int k = 0; k < 2 && !err; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (o[i].applied == (k == 0)) {
                idv[m] = o[i].id;
                txv[m++] = o[i].text;
            }
        if (lf_pg_text_array(&ids[k], idv, m) ||
            lf_pg_text_array(&texts[k], txv, m))
            err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    if (err)
        goto out;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) /* the applied ones' events */
        if (o[i].applied)
            txv[m++] = o[i].event_id;
    if (lf_pg_text_array(&events, txv, m) ||
        letter_pseudonyms(o, n, ps, &pids, &pss, &pleads)) {
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    const char *params[4][3] = {{ids[0].data, texts[0].data},
                                {ids[1].data, texts[1].data},
                                {pids.data, pss.data, pleads.data},
                                {ids[0].data, events.data}};
    err = mark_write(conn, params, in_tx, conflicted, errstr, errstr_size);
out:
    for (int k = 0; k < 2; k++) {
        lf_buf_free(&ids[k]);
        lf_buf_free(&texts[k]);
    }
    lf_buf_free(&events);
    lf_buf_free(&pids);
    lf_buf_free(&pss);
    lf_buf_free(&pleads);
    free(idv);
    free(txv);
    return err;
}

/* Report the ids asked for that are missing or already resolved. */
static lf_err_t check_ids(PGconn *conn, const int64_t *ids, size_t nids,
                          FILE *out, lf_retry_counts_t *st, lf_buf_t *arr,
                          char *errstr, size_t errstr_size)
{
    PGresult *res;
    lf_err_t err;

    lf_buf_reset(arr);
    if (lf_buf_puts(arr, "{"))
        return LF_ERR_NOMEM;
    for (size_t i = 0; i < nids; i++)
        if (lf_buf_printf(arr, "%s%" PRId64, i ? "," : "", ids[i]))
            return LF_ERR_NOMEM;
    if (lf_buf_puts(arr, "}"))
        return LF_ERR_NOMEM;
    const char *params[1] = {arr->data};
    if ((err = lf_pg_query(
             conn,
             "SELECT u.id, d.id IS NULL, to_char(d.resolved_at AT "
             "TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
             "d.resolution FROM unnest($1::bigint[]) AS u(id) LEFT "
             "JOIN funnel.dead_letters d USING (id) WHERE d.id IS "
             "NULL OR d.resolved_at IS NOT NULL ORDER BY u.id",
             1, params, "looking up dead letters", &res, errstr, errstr_size)))
        return err;
    for (int r = 0; r < PQntuples(res); r++) {
        if (!strcmp(PQgetvalue(res, r, 1), "t")) {
            st->missing++;
            fprintf(out, "id=%s missing: no such dead letter\n",
                    PQgetvalue(res, r, 0));
        } else {
            st->already_resolved++;
            fprintf(out, "id=%s skipped: resolved at %s (%s)\n",
                    PQgetvalue(res, r, 0), PQgetvalue(res, r, 2),
                    PQgetvalue(res, r, 3));
        }
    }
    PQclear(res);
    return LF_OK;
}

/* One retry: what it writes with, and the outcomes of the batch at hand. */
typedef struct retry_s {
    PGconn *conn;
    lf_codec_t *codec;
    lf_projector_t *p;    /* schema funnel, no offsets */
    lf_definition_t *def; /* funnel.definition; NULL: the default */
    lf_pseudonym_t *ps;   /* pseudonym.key.file, or NULL */
    bool dry_run;
    const char *note;
    FILE *out;
    lf_retry_counts_t *st;
    outcome_t *o; /* DL_BATCH of them */
    size_t no;
    PGresult *conflicted; /* the batch's letters that were conflicts */
} retry_t;

/* Decode the value of row @p r again. @returns LF_OK with *@p ok saying
 * whether it passed (why says why not), LF_ERR_TEMPORARY when the schema
 * registry could not be asked (nothing is known: stop, retry later), or
 * LF_ERR_NOMEM. */
static lf_err_t redecode(retry_t *rt, const PGresult *res, int r,
                         lf_event_t *ev, bool *ok, char *why, size_t why_size)
{
    size_t vlen = 0;
    unsigned char *value;
    lf_err_t err;

    *ok = false;
    /* An erasure took its value: nothing left to decode, and the message
     * is read again (erased on the way in) from Kafka, not from here. */
    if (!strcmp(PQgetvalue(res, r, 6), "t")) {
        snprintf(why, why_size,
                 "its key and value were removed when its person was erased: "
                 "nothing is left here to retry; its message is at offset %s "
                 "of partition %s in Kafka, and read again from there (a "
                 "rewind, a rebuild) it is erased on the way in",
                 PQgetvalue(res, r, 3), PQgetvalue(res, r, 2));
        return LF_OK;
    }
    /* No value (a tombstone) is decoded too: the same reason as the
     * projector's, so a rebuild finds the same row. */
    if (PQgetisnull(res, r, 5))
        value = NULL;
    else if (!(value = PQunescapeBytea(
                   (const unsigned char *)PQgetvalue(res, r, 5), &vlen)))
        return lf_seterr(LF_ERR_NOMEM, why, why_size, "out of memory");
    err = lf_codec_decode(rt->codec, value, vlen, ev, why, why_size);
    PQfreemem(value);
    *ok = err == LF_OK;
    return err == LF_ERR_TEMPORARY ? err : LF_OK;
}

/* Apply (or, in a dry run, only report) the decoded event of row @p r,
 * writing its resolution into @p text. The batch takes @p ev's strings;
 * under a Kafka key other than its lead_id it gets the 'key' anomaly the
 * projector gives it (lf_projector_add_event_keyed()).
 * @returns LF_OK or LF_ERR_NOMEM. */
static lf_err_t apply_one(retry_t *rt, const PGresult *res, int r,
                          lf_event_t *ev, char *text, size_t text_size)
{
    size_t klen = 0;
    unsigned char *key = NULL;
    bool key_ok;
    lf_err_t err = LF_OK;

    if (!PQgetisnull(res, r, 4) &&
        !(key = PQunescapeBytea((const unsigned char *)PQgetvalue(res, r, 4),
                                &klen)))
        return LF_ERR_NOMEM;
    key_ok =
        key && klen == strlen(ev->lead_id) && !memcmp(key, ev->lead_id, klen);
    snprintf(text, text_size,
             "applied as event %s by leadflow-replay %s dead-letters "
             "retry%s%s%s",
             ev->event_id, LF_VERSION,
             key_ok ? "" : " (its Kafka key is not the lead_id)",
             rt->note ? ": " : "", rt->note ? rt->note : "");
    rt->st->applied++;
    if (!rt->dry_run)
        err = lf_projector_add_event_keyed(
            rt->p, ev, key, klen, PQgetvalue(res, r, 1),
            (int32_t)atol(PQgetvalue(res, r, 2)),
            strtoll(PQgetvalue(res, r, 3), NULL, 10));
    PQfreemem(key);
    return err;
}

/* Retry the letter in row @p r (id, topic, partition, offset, key, value,
 * erased) and keep its outcome for mark(). */
static lf_err_t retry_one(retry_t *rt, const PGresult *res, int r, char *errstr,
                          size_t errstr_size)
{
    char why[512], text[768], line[1400];
    outcome_t *o = &rt->o[rt->no];
    lf_event_t ev;
    lf_err_t err;
    bool ok;

    lf_event_init(&ev);
    if ((err = redecode(rt, res, r, &ev, &ok, why, sizeof(why)))) {
        lf_event_clear(&ev);
        return lf_seterr(err, errstr, errstr_size, "dead letter %s: %s",
                         PQgetvalue(res, r, 0), why);
    }
    if (ok) {
        if (!(o->event_id = strdup(ev.event_id)) ||
            !(o->lead_id = strdup(ev.lead_id)))
            err = LF_ERR_NOMEM;
        else
            err = apply_one(rt, res, r, &ev, text, sizeof(text));
    } else {
        snprintf(text, sizeof(text), "%s", why);
        rt->st->still_failing++;
    }
    lf_event_clear(&ev);
    o->applied = ok;
    o->id = strdup(PQgetvalue(res, r, 0));
    o->text = strdup(text);
    /* Said once the batch is written (retry_report()): a batch that fails
     * applied nothing. Escaped as the listing is: the reason and the event
     * quote what a producer sent (a newline, a terminal's escapes). */
    snprintf(
        line, sizeof(line), "id=%s %s [%s] offset %s: %s%s",
        PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
        PQgetvalue(res, r, 3),
        ok ? "" : "still failing: ", ok && rt->dry_run ? "would apply" : text);
    o->line = escaped_line(line);
    rt->no++;
    rt->st->selected++;
    if (err || !o->id || !o->text || !o->line)
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    return LF_OK;
}

/* The report's lines of the batch just written (or planned). */
static void retry_report(const retry_t *rt)
{
    for (size_t i = 0; i < rt->no; i++)
        fputs(rt->o[i].line, rt->out);
}

/* lf_projector_before_commit() hook: the letters' marks. */
static lf_err_t mark_in_batch(void *arg, PGconn *conn, char *errstr,
                              size_t errstr_size)
{
    retry_t *rt = arg;

    PQclear(rt->conflicted); /* (of an attempt that failed) */
    return mark(conn, rt->o, rt->no, rt->ps, true, &rt->conflicted, errstr,
                errstr_size);
}

/* The batch's conflicts, now written: not applied, as their resolution
 * says, and counted as conflicts only (not as applied, nor as duplicates,
 * which the projector counts them among). */
static void note_conflicts(retry_t *rt)
{
    static const char was[] = ": applied as event ",
                      now[] = ": not applied, a conflict with the stored "
                              "event ";

    for (int r = 0; rt->conflicted && r < PQntuples(rt->conflicted); r++)
        for (size_t i = 0; i < rt->no; i++) {
            outcome_t *o = &rt->o[i];
            char *at, *line;
            if (strcmp(o->id, PQgetvalue(rt->conflicted, r, 0)) ||
                !(at = strstr(o->line, was)))
                continue;
            if ((line = malloc(strlen(o->line) + sizeof(now)))) {
                snprintf(line, strlen(o->line) + sizeof(now), "%.*s%s%s",
                         (int)(at - o->line), o->line, now, at + strlen(was));
                free(o->line);
                o->line = line;
            }
            rt->st->applied--;
            rt->st->duplicates--;
        }
    PQclear(rt->conflicted);
    rt->conflicted = NULL;
}

/* Write the batch: its events and the marks of its letters, in one
 * transaction (a stop between two would leave applied letters open). */
static lf_err_t retry_write(retry_t *rt, char *errstr, size_t errstr_size)
{
    lf_projector_stats_t before = *lf_projector_stats(rt->p);
    lf_err_t err;

    if (rt->dry_run)
        return LF_OK;
    if (!lf_projector_pending(rt->p)) { /* nothing applied */
        err = mark(rt->conn, rt->o, rt->no, rt->ps, false, &rt->conflicted,
                   errstr, errstr_size);
        PQclear(rt->conflicted);
        rt->conflicted = NULL;
        return err;
    }
    lf_projector_before_commit(rt->p, mark_in_batch, rt);
    err = lf_projector_flush(rt->p, rt->conn, NULL, errstr, errstr_size);
    lf_projector_before_commit(rt->p, NULL, NULL);
    if (err) {
        PQclear(rt->conflicted);
        rt->conflicted = NULL;
        return err;
    }
    rt->st->events_new +=
        lf_projector_stats(rt->p)->events_new - before.events_new;
    rt->st->duplicates +=
        lf_projector_stats(rt->p)->duplicates - before.duplicates;
    rt->st->conflicts +=
        lf_projector_stats(rt->p)->conflicts - before.conflicts;
    note_conflicts(rt);
    return LF_OK;
}

/* The open letters a retry will look at, for the progress total. */
static lf_err_t count_open(PGconn *conn, const char *ids, uint64_t *n,
                           char *errstr, size_t errstr_size)
{
    const char *params[1] = {ids};
    PGresult *res;
    lf_err_t err;

    if ((err = lf_pg_query(conn,
                           "SELECT count(*) FROM funnel.dead_letters WHERE "
                           "resolved_at IS NULL AND ($1::bigint[] IS NULL OR "
                           "id = ANY($1::bigint[]))",
                           1, params, "counting dead letters", &res, errstr,
                           errstr_size)))
        return err;
    *n = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return LF_OK;
}

/* The open letters after id @p after (of @p ids, or all), one batch. */
static lf_err_t read_batch(PGconn *conn, const char *after, const char *ids,
                           PGresult **res, char *errstr, size_t errstr_size)
{
    char batch[16];
    snprintf(batch, sizeof(batch), "%d", DL_BATCH);
    const char *params[3] = {after, ids, batch};

    return lf_pg_query(conn,
                       "SELECT id, topic, partition, \"offset\", key, "
                       "value, value IS NULL AND strpos(error, '" LF_ERASED_NOTE
                       "') > 0 FROM funnel.dead_letters WHERE resolved_at "
                       "IS NULL AND id > $1::bigint AND ($2::bigint[] IS "
                       "NULL OR id = ANY($2::bigint[])) ORDER BY id "
                       "LIMIT $3::int",
                       3, params, "reading dead letters", res, errstr,
                       errstr_size);
}

/* The batches of a retry, in id order. */
static lf_err_t retry_all(retry_t *rt, const char *ids, lf_progress_t *pr,
                          char *errstr, size_t errstr_size)
{
    char after[24] = "0";
    PGresult *res;
    lf_err_t err = LF_OK;
    int rows;

    do {
        if ((err = read_batch(rt->conn, after, ids, &res, errstr, errstr_size)))
            return err;
        if (!(rows = PQntuples(res))) {
            PQclear(res);
            break;
        }
        for (int r = 0; r < rows && !err; r++)
            err = retry_one(rt, res, r, errstr, errstr_size);
        snprintf(after, sizeof(after), "%s", PQgetvalue(res, rows - 1, 0));
        PQclear(res);
        if (!err)
            err = retry_write(rt, errstr, errstr_size);
        if (!err)
            retry_report(rt);
        outcomes_clear(rt->o, rt->no);
        rt->no = 0;
        lf_progress_update(pr, rt->st->selected);
    } while (!err && rows == DL_BATCH);
    return err;
}

lf_err_t lf_deadletter_retry(PGconn *conn, const lf_conf_t *conf,
                             const int64_t *ids, size_t nids, bool dry_run,
                             const char *note, FILE *out, lf_progress_t *pr,
                             lf_retry_counts_t *st, char *errstr,
                             size_t errstr_size)
{
    retry_t rt = {
        .conn = conn, .dry_run = dry_run, .note = note, .out = out, .st = st};
    lf_buf_t arr = {0};
    uint64_t total = 0;
    lf_err_t err;

    memset(st, 0, sizeof(*st));
    if ((err = lf_codec_from_conf(conf, &rt.codec, errstr, errstr_size)))
        return err;
    if (!(rt.p = lf_projector_new("funnel", NULL, errstr, errstr_size)) ||
        !(rt.o = calloc(DL_BATCH, sizeof(*rt.o)))) {
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    /* A retried event joins tables built under funnel.definition's rules:
     * it is applied under them too. */
    if ((err = lf_defstore_load(conn, "funnel", &rt.def, errstr, errstr_size)))
        goto out;
    lf_projector_use_definition(rt.p, rt.def);
    if ((err = lf_pseudonym_from_conf(conf, &rt.ps, errstr, errstr_size)))
        goto out;
    lf_projector_use_pseudonyms(rt.p, rt.ps);
    if (nids &&
        (err = check_ids(conn, ids, nids, out, st, &arr, errstr, errstr_size)))
        goto out;
    if ((err = count_open(conn, nids ? arr.data : NULL, &total, errstr,
                          errstr_size)))
        goto out;
    lf_progress_set_total(pr, total);
    err = retry_all(&rt, nids ? arr.data : NULL, pr, errstr, errstr_size);
    if (!err && !dry_run)
        err = lf_projector_settle_all(rt.p, conn, errstr, errstr_size);
out:
    lf_pseudonym_destroy(rt.ps);
    free(rt.o);
    lf_buf_free(&arr);
    lf_codec_destroy(rt.codec);
    lf_projector_destroy(rt.p);
    lf_definition_destroy(rt.def);
    return err;
}
