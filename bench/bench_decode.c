/* bench_decode.c: the projector's CPU path without Kafka or PostgreSQL, for
 * callgrind: decode N framed Avro values (lf_codec_decode, as
 * lf_projector_add_message does) and apply them, grouped by lead in
 * (occurred_at, event_id) order, to the funnel state machine
 * (lf_funnel_apply, as the projector's flush does).
 *
 *   bench_decode FILE.jsonl [REPEAT [CONTRACT]]
 *
 * FILE.jsonl is leadflow-gen output. CONTRACT is the version the bodies
 * are written in: 2 (the default, what producers write) or 1, to compare
 * the direct reader on both. For comparison it also times the
 * producer side first: parse_all() (the JSON mapping, as leadflow-emit)
 * and encode_all() (the Avro codec, as lf_producer), whose output feeds
 * decode_all(). Each is kept out of line so that callgrind can count it
 * alone:
 *   valgrind --tool=callgrind --toggle-collect=decode_all bench_decode F
 * Prints, on stdout, "events=N parse_ns=... encode_ns=... decode_ns=...
 * apply_ns=..." per event from the wall clock (indicative only: callgrind's
 * counts are the figure). */
#include "lf_codec.h"
#include "lf_definition.h"
#include "lf_funnel.h"
#include "lf_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct msg_s {
    char *data;
    size_t len;
} msg_t;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The producer side, for comparison: parse JSON lines into evs[] (as
 * leadflow-emit does) and encode them into msgs[] (as lf_producer does).
 * @returns the number of lines that failed. */
__attribute__((noinline)) static size_t
parse_all(char **lines, const size_t *lens, size_t n, lf_event_t *evs)
{
    char why[512];
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (lf_json_parse_event(lines[i], lens[i], &evs[i], why, sizeof(why)))
            bad++;
    return bad;
}

__attribute__((noinline)) static size_t encode_all(lf_codec_t *codec,
                                                   const lf_event_t *evs,
                                                   size_t n, msg_t *msgs,
                                                   lf_buf_t *buf)
{
    char why[512];
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id =
            lf_codec_contract(codec) == 1 ? LF_SCHEMA_ID_V1 : LF_SCHEMA_ID_V2;
        if (lf_codec_encode(codec, &evs[i], id, buf, why, sizeof(why))) {
            bad++;
            continue;
        }
        if (!(msgs[i].data = malloc(buf->len)))
            abort();
        memcpy(msgs[i].data, buf->data, buf->len);
        msgs[i].len = buf->len;
    }
    return bad;
}

/* Decode every message into evs[]; @returns the number that failed. */
__attribute__((noinline)) static size_t
decode_all(lf_codec_t *codec, const msg_t *msgs, size_t n, lf_event_t *evs)
{
    char why[512];
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (lf_codec_decode(codec, msgs[i].data, msgs[i].len, &evs[i], why,
                            sizeof(why)))
            bad++;
    return bad;
}

static const lf_event_t *sort_evs;

static int by_lead_then_order(const void *a, const void *b)
{
    const lf_event_t *x = &sort_evs[*(const size_t *)a];
    const lf_event_t *y = &sort_evs[*(const size_t *)b];
    int c = strcmp(x->lead_id, y->lead_id);
    if (c)
        return c;
    return lf_event_order(x->occurred_at, x->event_id, y->occurred_at,
                          y->event_id);
}

/* Group by lead, order, apply: the projector's derive() without SQL.
 * @returns the number of anomalies (so nothing is optimised away). */
__attribute__((noinline)) static size_t apply_all(const lf_event_t *evs,
                                                  size_t n, size_t *idx)
{
    lf_funnel_out_t out = {0};
    size_t anomalies = 0;

    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_evs = evs;
    qsort(idx, n, sizeof(*idx), by_lead_then_order);
    for (size_t k = 0; k < n;) {
        lf_lead_t lead;
        size_t j = k;
        lf_funnel_out_reset(&out);
        if (lf_lead_init(&lead, evs[idx[k]].lead_id))
            abort();
        for (; j < n && !strcmp(evs[idx[j]].lead_id, evs[idx[k]].lead_id); j++)
            if (lf_funnel_apply(&lead, &evs[idx[j]], &out))
                abort();
        anomalies += out.anomaly_count;
        lf_lead_clear(&lead);
        k = j;
    }
    lf_funnel_out_free(&out);
    return anomalies;
}

/* Every line of @p fp into *@p linesp (each strdup()ed) and their lengths
 * into *@p lensp. @returns the number of lines. */
static size_t read_lines(FILE *fp, char ***linesp, size_t **lensp)
{
    char *line = NULL, **lines = NULL;
    size_t cap = 0, n = 0, lcap = 0, *lens = NULL;
    ssize_t len;

    while ((len = getline(&line, &cap, fp)) > 0) {
        if (n == lcap) {
            lcap = lcap ? 2 * lcap : 4096;
            if (!(lines = realloc(lines, lcap * sizeof(*lines))) ||
                !(lens = realloc(lens, lcap * sizeof(*lens))))
                abort();
        }
        if (!(lines[n] = strdup(line)))
            abort();
        lens[n++] = (size_t)len;
    }
    free(line);
    *linesp = lines;
    *lensp = lens;
    return n;
}

/* The events of one run, and what the rounds measured. */
typedef struct work_s {
    char **lines;
    size_t *lens, n;
    lf_event_t *evs;
    msg_t *msgs;
    size_t *idx;
    lf_buf_t buf;
    double t[4]; /* parse, encode, decode, apply: ns in all */
    size_t bad, anomalies;
} work_t;

/* One round: parse the lines, encode them, decode them, apply them. */
static void run_round(lf_codec_t *codec, work_t *w)
{
    double t0 = now_ns();
    w->bad += parse_all(w->lines, w->lens, w->n, w->evs);
    double t1 = now_ns();
    w->bad += encode_all(codec, w->evs, w->n, w->msgs, &w->buf);
    double t2 = now_ns();
    for (size_t i = 0; i < w->n; i++)
        lf_event_clear(&w->evs[i]);
    double t3 = now_ns();
    w->bad += decode_all(codec, w->msgs, w->n, w->evs);
    double t4 = now_ns();
    w->anomalies += apply_all(w->evs, w->n, w->idx);
    double t5 = now_ns();
    w->t[0] += t1 - t0;
    w->t[1] += t2 - t1;
    w->t[2] += t4 - t3;
    w->t[3] += t5 - t4;
    for (size_t i = 0; i < w->n; i++) {
        lf_event_clear(&w->evs[i]);
        free(w->msgs[i].data);
    }
}

static void work_free(work_t *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->lines[i]);
    free(w->lines);
    free(w->lens);
    free(w->msgs);
    free(w->evs);
    free(w->idx);
    lf_buf_free(&w->buf);
}

int main(int argc, char **argv)
{
    char why[512];
    lf_codec_t *codec;
    work_t w = {0};
    FILE *fp;
    int repeat = argc > 2 ? atoi(argv[2]) : 1;
    int contract = argc > 3 ? atoi(argv[3]) : LF_CONTRACT_LATEST;

    if (argc < 2 || argc > 4 || repeat < 1) {
        fprintf(stderr, "usage: bench_decode FILE.jsonl [REPEAT [CONTRACT]]\n");
        return 64;
    }
    if (!(fp = fopen(argv[1], "r"))) {
        perror(argv[1]);
        return 66;
    }
    if (!(codec = lf_codec_new(why, sizeof(why))) ||
        lf_codec_set_contract(codec, contract, why, sizeof(why))) {
        fprintf(stderr, "bench_decode: %s\n", why);
        lf_codec_destroy(codec);
        fclose(fp);
        return 64;
    }
    w.n = read_lines(fp, &w.lines, &w.lens);
    fclose(fp);
    w.evs = calloc(w.n ? w.n : 1, sizeof(*w.evs));
    w.msgs = calloc(w.n ? w.n : 1, sizeof(*w.msgs));
    w.idx = calloc(w.n ? w.n : 1, sizeof(*w.idx));
    /* The funnel definition is parsed once at start, as the projector
     * does: not a cost per event. */
    if (!w.evs || !w.msgs || !w.idx || !lf_definition_default())
        abort();
    for (int r = 0; r < repeat; r++)
        run_round(codec, &w);
    double d = w.n ? (double)w.n * repeat : 1;
    printf("contract=%d events=%zu parse_ns=%.0f encode_ns=%.0f decode_ns=%.0f "
           "apply_ns=%.0f bad=%zu anomalies=%zu\n",
           contract, w.n, w.t[0] / d, w.t[1] / d, w.t[2] / d, w.t[3] / d, w.bad,
           w.anomalies);
    work_free(&w);
    lf_codec_destroy(codec);
    return w.bad ? 65 : 0;
}
