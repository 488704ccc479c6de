/* adapter.c: the smallest leadflow adapter. A web form (or a CRM webhook)
 * reports a new lead; we turn it into a LeadEvent of type "captured" and
 * publish it with leadflow's C API, then wait until the broker has
 * acknowledged it (acks=all), so the caller may answer its own client.
 *
 * Build it against an installed leadflow:
 *
 *     cc -o adapter adapter.c $(pkg-config --cflags --libs leadflow)
 *
 * Run it:
 *
 *     ./adapter -b localhost:9092 L-42 webinar
 *     delivered lead_id=L-42 partition=2 offset=17 event_id=...
 *
 * Every setting of leadflow-emit works here too: -X key=value (any
 * librdkafka property, or "topic"), and LEADFLOW_BROKERS, LEADFLOW_TOPIC,
 * LEADFLOW_* in the environment. */
#define _POSIX_C_SOURCE 200809L /* strdup, getopt under -std=c11 */

#include <lf_conf.h>
#include <lf_event.h>
#include <lf_producer.h>
#include <lf_uuid.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the delivery callback learns, for main() to report. */
typedef struct result_s {
    int done;
    rd_kafka_resp_err_t err;
    char reason[512];
    int32_t partition;
    int64_t offset;
} result_t;

/* Called once for the event, from inside lf_producer_flush() below (never
 * from librdkafka's threads): no locking needed. */
static void on_delivery(const lf_delivery_t *dr, void *opaque)
{
    result_t *r = opaque;

    r->done = 1;
    r->err = dr->err;
    r->partition = dr->partition;
    r->offset = dr->offset;
    if (dr->reason)
        snprintf(r->reason, sizeof(r->reason), "%s", dr->reason);
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: adapter [-b BROKERS] [-t TOPIC] [-X key=value]... "
                "LEAD_ID [CHANNEL]\n"
                "Publish one \"captured\" LeadEvent and wait for the "
                "broker's acknowledgement.\n"
                "exit: 0 delivered, 64 usage, 65 invalid event, "
                "69 not delivered, 78 bad configuration\n");
}

/*
 * Fill @p ev with a "captured" event. Every string of an lf_event_t is
 * owned by the event (lf_event_clear() frees them), hence the strdup()s.
 * The event_id is derived from what identifies the form submission, so
 * that sending the same submission twice yields the same id, which the
 * projector stores once.
 */
static int make_event(lf_event_t *ev, const char *lead_id, const char *channel)
{
    char id[37], name[512];
    int64_t now = lf_now_ms();

    snprintf(name, sizeof(name), "example-crm/%s/captured/%lld", lead_id,
             (long long)now);
    lf_uuid_v5(name, strlen(name), id);

    lf_event_init(ev);
    ev->type = LF_EV_CAPTURED;
    ev->occurred_at = now;
    ev->event_id = strdup(id);
    ev->lead_id = strdup(lead_id);
    ev->source = strdup("example-crm");
    ev->u.captured.channel = strdup(channel);
    ev->u.captured.campaign = strdup("spring-webinar");
    /* Free-form attributes: keys unique (lf_event_sort_attrs checks). */
    ev->u.captured.attrs = calloc(2, sizeof(lf_attr_t));
    if (!ev->event_id || !ev->lead_id || !ev->source ||
        !ev->u.captured.channel || !ev->u.captured.campaign ||
        !ev->u.captured.attrs)
        return -1;
    ev->u.captured.attr_count = 2;
    ev->u.captured.attrs[0].key = strdup("country");
    ev->u.captured.attrs[0].value = strdup("FR");
    ev->u.captured.attrs[1].key = strdup("company");
    ev->u.captured.attrs[1].value = strdup("Acme SA");
    for (size_t i = 0; i < ev->u.captured.attr_count; i++)
        if (!ev->u.captured.attrs[i].key || !ev->u.captured.attrs[i].value)
            return -1;
    return lf_event_sort_attrs(ev) ? 0 : -1;
}

/* The command line into @p conf (the environment is already in it).
 * @returns -1 to go on, else the exit code. */
static int parse_args(lf_conf_t *conf, int argc, char **argv)
{
    char errstr[512];
    int opt;

    while ((opt = getopt(argc, argv, "b:t:X:h")) != -1) {
        lf_err_t err = LF_OK;
        switch (opt) {
        case 'b':
            err = lf_conf_set(conf, "bootstrap.servers", optarg, errstr,
                              sizeof(errstr));
            break;
        case 't':
            err = lf_conf_set(conf, LF_CONF_TOPIC, optarg, errstr,
                              sizeof(errstr));
            break;
        case 'X':
            err = lf_conf_set_kv(conf, optarg, errstr, sizeof(errstr));
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 64;
        }
        if (err) {
            fprintf(stderr, "adapter: %s\n", errstr);
            return 64;
        }
    }
    if (optind >= argc || argc - optind > 2) {
        usage(stderr);
        return 64;
    }
    return -1;
}

/* Send @p ev and wait for its delivery report. @returns the exit code. */
static int send_event(lf_conf_t *conf, lf_event_t *ev)
{
    result_t result = {0};
    char errstr[512];
    lf_producer_t *p;
    lf_err_t err;
    int rc = 0;

    /* The producer applies leadflow's defaults (idempotence, acks=all,
     * lz4, the murmur2_random partitioner that keeps a lead's events on
     * one partition whatever the client language). */
    if (!(p = lf_producer_new(conf, errstr, sizeof(errstr)))) {
        fprintf(stderr, "adapter: %s\n", errstr);
        return 78;
    }
    lf_producer_set_delivery_cb(p, on_delivery, &result);

    /* Validates the contract (lead_id length, UTF-8, ...), encodes Avro
     * with the schema id framing, adds the CloudEvents headers. */
    if ((err = lf_producer_emit(p, ev, errstr, sizeof(errstr)))) {
        fprintf(stderr, "adapter: %s\n", errstr);
        lf_producer_destroy(p);
        return err == LF_ERR_INVALID ? 65 : 69;
    }

    /* librdkafka retries on its own until message.timeout.ms; we wait for
     * the one delivery report, whichever way it goes. */
    while (!result.done && lf_producer_flush(p, 1000) == LF_ERR_TEMPORARY)
        fprintf(stderr, "adapter: waiting for the broker...\n");

    if (result.err) {
        fprintf(stderr, "adapter: not delivered: %s\n", result.reason);
        rc = 69;
    } else {
        printf("delivered lead_id=%s partition=%d offset=%lld event_id=%s\n",
               ev->lead_id, (int)result.partition, (long long)result.offset,
               ev->event_id);
    }
    lf_producer_destroy(p);
    return rc;
}

int main(int argc, char **argv)
{
    lf_conf_t *conf = lf_conf_new();
    lf_event_t ev;
    int rc;

    lf_event_init(&ev);
    if (!conf)
        return 70;
    /* Lowest precedence first: environment, then the command line. */
    lf_conf_load_env(conf);
    if ((rc = parse_args(conf, argc, argv)) < 0) {
        if (make_event(&ev, argv[optind],
                       optind + 1 < argc ? argv[optind + 1] : "web")) {
            fprintf(stderr, "adapter: out of memory\n");
            rc = 70;
        } else {
            rc = send_event(conf, &ev);
        }
    }
    lf_event_clear(&ev);
    lf_conf_destroy(conf);
    return rc;
}
