/* lf_topic.c: a topic's partitions, watermarks and offsets for a time,
 * a consumer group's members, and reading a topic up to the end it had. */
#include "lf_topic.h"

#include "lf_fetchwake.h"
#include "lf_log.h"
#include "lf_time.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the consumer handle -------------------------------------------- */

rd_kafka_t *lf_topic_consumer_new(const lf_conf_t *conf, char *errstr,
                                  size_t errstr_size)
{
    /* Forced: replay must never join or commit for the projector group
     * (-g names that group, and lands in group.id). */
    static const char *forced[][2] = {
        {"group.id", "leadflow-replay"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},
    };
    /* Defaults the user may override (the prefetch bound is the caller's
     * setting: leadflow-replay's defaults(), where -X dump shows it). */
    static const char *defaults[][2] = {
        {"auto.offset.reset", "earliest"},
        {"fetch.wait.max.ms", "100"},
    };
    rd_kafka_conf_t *rkc = lf_conf_to_rdkafka(conf, errstr, errstr_size);
    rd_kafka_t *rk;
    char e[512];

    if (!rkc)
        return NULL;
    for (size_t i = 0; i < sizeof(forced) / sizeof(forced[0]); i++)
        if (rd_kafka_conf_set(rkc, forced[i][0], forced[i][1], e, sizeof(e)) !=
            RD_KAFKA_CONF_OK) {
            lf_seterr(LF_ERR_KAFKA, errstr, errstr_size, "%s", e);
            rd_kafka_conf_destroy(rkc);
            return NULL;
        }
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (!lf_conf_get(conf, defaults[i][0]) &&
            rd_kafka_conf_set(rkc, defaults[i][0], defaults[i][1], e,
                              sizeof(e)) != RD_KAFKA_CONF_OK) {
            lf_seterr(LF_ERR_KAFKA, errstr, errstr_size, "%s", e);
            rd_kafka_conf_destroy(rkc);
            return NULL;
        }
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, rkc, errstr, errstr_size))) {
        rd_kafka_conf_destroy(rkc);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* ---- partitions, watermarks, times ---------------------------------- */

static int by_partition(const void *a, const void *b)
{
    const lf_topic_part_t *x = a, *y = b;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

lf_err_t lf_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms,
                             lf_topic_part_t **parts, int *count, char *errstr,
                             size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int64_t deadline = lf_now_mono_ms() + timeout_ms;
    lf_err_t err = LF_OK;

    *parts = NULL;
    *count = 0;
    if (!rkt)
        return lf_seterr(LF_ERR_KAFKA, errstr, errstr_size, "topic \"%s\": %s",
                         topic, rd_kafka_err2str(rd_kafka_last_error()));
    /* Leaders may be unknown for a moment after a broker restart: ask
     * again until every partition has one or the time is up. */
    for (;;) {
        int left = (int)(deadline - lf_now_mono_ms());
        rd_kafka_resp_err_t e =
            rd_kafka_metadata(rk, 0, rkt, &md, left > 100 ? left : 100);
        if (e) {
            err = lf_seterr(LF_ERR_KAFKA, errstr, errstr_size,
                            "metadata of topic \"%s\": %s", topic,
                            rd_kafka_err2str(e));
            goto out;
        }
        const struct rd_kafka_metadata_topic *mt = &md->topics[0];
        if (mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                            "topic \"%s\" does not exist", topic);
            goto out;
        }
        bool ok = !mt->err && mt->partition_cnt > 0;
        for (int i = 0; ok && i < mt->partition_cnt; i++)
            if (mt->partitions[i].err || mt->partitions[i].leader < 0)
                ok = false;
        if (ok)
            break;
        if (lf_now_mono_ms() >= deadline) {
            err = lf_seterr(LF_ERR_KAFKA, errstr, errstr_size,
                            "topic \"%s\": partitions without a leader (%s)",
                            topic, rd_kafka_err2str(mt->err));
            goto out;
        }
        rd_kafka_metadata_destroy(md);
        md = NULL;
        rd_kafka_poll(rk, 200);
    }
    const struct rd_kafka_metadata_topic *mt = &md->topics[0];
    *parts = calloc((size_t)mt->partition_cnt, sizeof(**parts));
    if (!*parts) {
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int i = 0; i < mt->partition_cnt; i++) {
        lf_topic_part_t *p = &(*parts)[i];
        int left = (int)(deadline - lf_now_mono_ms());
        rd_kafka_resp_err_t e;
        p->partition = mt->partitions[i].id;
        e = rd_kafka_query_watermark_offsets(rk, topic, p->partition, &p->low,
                                             &p->high,
                                             left > 1000 ? left : 1000);
        if (e) {
            err = lf_seterr(LF_ERR_KAFKA, errstr, errstr_size,
                            "watermarks of %s [%d]: %s", topic,
                            (int)p->partition, rd_kafka_err2str(e));
            free(*parts);
            *parts = NULL;
            goto out;
        }
    }
    *count = mt->partition_cnt;
    qsort(*parts, (size_t)*count, sizeof(**parts), by_partition);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return err;
}

/* The first message at or after @p offset in one partition: its offset
 * and timestamp (*off = -1: none before the end). Assigns the partition
 * alone, so nothing else may be consuming through rk. */
static lf_err_t read_at(rd_kafka_t *rk, const char *topic, int32_t partition,
                        int64_t offset, int timeout_ms, int64_t *off,
                        int64_t *ts, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    int64_t deadline = lf_now_mono_ms() + timeout_ms;
    lf_err_t err = LF_ERR_KAFKA;

    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    *off = -1;
    while (lf_now_mono_ms() < deadline) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 100);
        if (!rkm)
            continue;
        /* Anything from an earlier assignment or below the offset is
         * stale. */
        bool ours = rkm->partition == partition && rkm->rkt &&
                    !strcmp(rd_kafka_topic_name(rkm->rkt), topic);
        if (ours && rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF &&
            rkm->offset >= offset) {
            rd_kafka_message_destroy(rkm);
            err = LF_OK;
            break;
        }
        if (ours && !rkm->err && rkm->offset >= offset) {
            *off = rkm->offset;
            *ts = rd_kafka_message_timestamp(rkm, NULL);
            rd_kafka_message_destroy(rkm);
            err = LF_OK;
            break;
        }
        if (rkm->err && rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            char q[600];
            LF_LOG(LF_LOG_WARNING, "msg=\"consumer error\" error=%s",
                   lf_log_quote(rd_kafka_message_errstr(rkm), q, sizeof(q)));
        }
        rd_kafka_message_destroy(rkm);
    }
    rd_kafka_assign(rk, NULL);
    if (err)
        lf_seterr(err, errstr, errstr_size,
                  "%s [%d]: no answer reading offset %" PRId64 " within %d ms",
                  topic, (int)partition, offset, timeout_ms);
    return err;
}

/* First offset in [p->low, last] whose timestamp is >= ts_ms, knowing the
 * message at @p last has one. Invariant: no message in [lo, hi) we know
 * of is a candidate except through probing; ans is the best found. */
static lf_err_t search_time(rd_kafka_t *rk, const char *topic,
                            const lf_topic_part_t *p, int64_t last,
                            int64_t ts_ms, int timeout_ms, int64_t *ans,
                            char *errstr, size_t errstr_size)
{
    int64_t lo = p->low, hi = last;
    lf_err_t err;

    *ans = last;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2, off, ts = -1;
        if ((err = read_at(rk, topic, p->partition, mid, timeout_ms, &off, &ts,
                           errstr, errstr_size)))
            return err;
        if (off < 0 || off >= hi) {
            hi = mid; /* no message in [mid, hi) */
        } else if (ts >= ts_ms) {
            *ans = off; /* [mid, off) holds no message */
            hi = mid;
        } else {
            lo = off + 1;
        }
    }
    return LF_OK;
}

lf_err_t lf_topic_offsets_for_time(rd_kafka_t *rk, const char *topic,
                                   const lf_topic_part_t *parts, int count,
                                   int64_t ts_ms, int timeout_ms, int64_t *out,
                                   bool *searched, char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(count);
    rd_kafka_resp_err_t e;
    lf_err_t err = LF_OK;

    for (int i = 0; i < count; i++)
        rd_kafka_topic_partition_list_add(l, topic, parts[i].partition)
            ->offset = ts_ms;
    e = rd_kafka_offsets_for_times(rk, l, timeout_ms);
    if (e) {
        rd_kafka_topic_partition_list_destroy(l);
        return lf_seterr(LF_ERR_KAFKA, errstr, errstr_size,
                         "offsets for time on %s: %s", topic,
                         rd_kafka_err2str(e));
    }
    for (int i = 0; i < count && !err; i++) {
        const lf_topic_part_t *p = &parts[i];
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, topic, p->partition);
        int64_t last_off, last_ts = -1;

        if (searched)
            searched[i] = false;
        if (!tp || tp->err) {
            err = lf_seterr(
                LF_ERR_KAFKA, errstr, errstr_size,
                "offsets for time on %s [%d]: %s", topic, (int)p->partition,
                rd_kafka_err2str(tp ? tp->err : RD_KAFKA_RESP_ERR__FAIL));
            break;
        }
        if (tp->offset >= 0) {
            out[i] = tp->offset;
            continue;
        }
        /* "No message that recent": check it against the last message,
         * since some brokers (librdkafka's mock) answer that to every
         * time they are asked. */
        out[i] = p->high;
        if (p->high <= p->low)
            continue;
        err = read_at(rk, topic, p->partition, p->high - 1, timeout_ms,
                      &last_off, &last_ts, errstr, errstr_size);
        if (err || last_off < 0 || last_ts < ts_ms)
            continue;
        LF_LOG(LF_LOG_NOTICE,
               "msg=\"broker found no offset for the time but the last "
               "message is that recent: searching by message timestamps\" "
               "topic=%s partition=%d last_offset=%" PRId64
               " last_timestamp=%" PRId64,
               topic, (int)p->partition, last_off, last_ts);
        err = search_time(rk, topic, p, last_off, ts_ms, timeout_ms, &out[i],
                          errstr, errstr_size);
        if (searched)
            searched[i] = true;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return err;
}

lf_err_t lf_topic_group_members(rd_kafka_t *rk, const char *group,
                                int timeout_ms, int *members, char *state,
                                size_t state_size, char *errstr,
                                size_t errstr_size)
{
    const struct rd_kafka_group_list *gl = NULL;
    rd_kafka_resp_err_t e = rd_kafka_list_groups(rk, group, &gl, timeout_ms);

    *members = 0;
    if (state && state_size)
        state[0] = '\0';
    if (e)
        return lf_seterr(LF_ERR_KAFKA, errstr, errstr_size,
                         "cannot list the members of group \"%s\": %s", group,
                         rd_kafka_err2str(e));
    for (int i = 0; i < gl->group_cnt; i++) {
        const struct rd_kafka_group_info *gi = &gl->groups[i];
        if (strcmp(gi->group, group))
            continue;
        if (gi->err && gi->err != RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
            e = gi->err;
            break;
        }
        *members = gi->member_cnt;
        if (state && state_size)
            snprintf(state, state_size, "%s", gi->state ? gi->state : "");
    }
    rd_kafka_group_list_destroy(gl);
    if (e)
        return lf_seterr(LF_ERR_KAFKA, errstr, errstr_size,
                         "cannot describe group \"%s\": %s", group,
                         rd_kafka_err2str(e));
    return LF_OK;
}

/* ---- reading a topic up to its end ---------------------------------- */

typedef struct reader_part_s {
    int32_t partition;
    int64_t high;
    bool done;
} reader_part_t;

struct lf_topic_reader_s {
    rd_kafka_t *rk;
    lf_fetchwake_t *wake; /* NULL if it could not start: reads slower */
    char *topic;
    reader_part_t *parts;
    int count, remaining;
    uint64_t total;
};

lf_topic_reader_t *lf_topic_reader_new(rd_kafka_t *rk, const char *topic,
                                       const lf_topic_part_t *parts, int count,
                                       char *errstr, size_t errstr_size)
{
    lf_topic_reader_t *r = calloc(1, sizeof(*r));
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t e;

    if (!r || !(r->topic = strdup(topic)) ||
        !(r->parts = calloc((size_t)count + 1, sizeof(*r->parts)))) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        lf_topic_reader_destroy(r);
        return NULL;
    }
    r->rk = rk;
    r->count = count;
    l = rd_kafka_topic_partition_list_new(count);
    for (int i = 0; i < count; i++) {
        r->parts[i].partition = parts[i].partition;
        r->parts[i].high = parts[i].high;
        r->parts[i].done = parts[i].high <= parts[i].low;
        if (r->parts[i].done)
            continue;
        r->remaining++;
        r->total += (uint64_t)(parts[i].high - parts[i].low);
        rd_kafka_topic_partition_list_add(l, topic, parts[i].partition)
            ->offset = parts[i].low;
    }
    e = l->cnt ? rd_kafka_assign(rk, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        lf_seterr(LF_ERR_KAFKA, errstr, errstr_size, "assign %s: %s", topic,
                  rd_kafka_err2str(e));
        r->rk = NULL;
        lf_topic_reader_destroy(r);
        return NULL;
    }
    /* With a bounded prefetch (queued.min.messages), a reader that empties
     * it would wait up to a second each time without this. */
    r->wake = lf_fetchwake_new(rk);
    return r;
}

static void part_done(lf_topic_reader_t *r, reader_part_t *p)
{
    rd_kafka_topic_partition_list_t *l;

    if (p->done)
        return;
    p->done = true;
    r->remaining--;
    /* Stop fetching what was produced after we looked. */
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, r->topic, p->partition);
    rd_kafka_pause_partitions(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

rd_kafka_message_t *lf_topic_reader_next(lf_topic_reader_t *r, int timeout_ms)
{
    int64_t deadline = lf_now_mono_ms() + timeout_ms;

    while (r->remaining > 0) {
        int left = (int)(deadline - lf_now_mono_ms());
        rd_kafka_message_t *rkm =
            rd_kafka_consumer_poll(r->rk, left > 0 ? left : 0);
        reader_part_t *p = NULL;

        lf_fetchwake_check(r->wake);
        if (!rkm)
            return NULL;
        if (rkm->rkt && !strcmp(rd_kafka_topic_name(rkm->rkt), r->topic))
            for (int i = 0; i < r->count; i++)
                if (r->parts[i].partition == rkm->partition)
                    p = &r->parts[i];
        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (p && rkm->offset >= p->high)
                part_done(r, p);
        } else if (rkm->err) {
            char q[600];
            LF_LOG(LF_LOG_WARNING, "msg=\"consumer error\" error=%s",
                   lf_log_quote(rd_kafka_message_errstr(rkm), q, sizeof(q)));
        } else if (p && !p->done && rkm->offset < p->high) {
            if (rkm->offset == p->high - 1)
                part_done(r, p);
            return rkm;
        } else if (p && rkm->offset >= p->high) {
            part_done(r, p);
        }
        rd_kafka_message_destroy(rkm);
        if (left <= 0)
            return NULL;
    }
    return NULL;
}

bool lf_topic_reader_done(const lf_topic_reader_t *r)
{
    return r->remaining == 0;
}

uint64_t lf_topic_reader_total(const lf_topic_reader_t *r)
{
    return r->total;
}

void lf_topic_reader_destroy(lf_topic_reader_t *r)
{
    if (!r)
        return;
    lf_fetchwake_destroy(r->wake);
    if (r->rk)
        rd_kafka_assign(r->rk, NULL);
    free(r->parts);
    free(r->topic);
    free(r);
}
