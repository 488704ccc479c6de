/* lf_fetchwake.c: wakes librdkafka's sleeping fetchers (see the header). */
#include "lf_fetchwake.h"
#include "lf_log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

/* Longest the helper waits for the leaders' answers. The answer itself is
 * of no use: the request has done its work once a broker thread took it. */
#define WAKE_TIMEOUT_MS 1000

struct lf_fetchwake_s {
    rd_kafka_t *rk;
    rd_kafka_queue_t *rkq; /* the consumer queue, whose length we watch */
    size_t high;           /* 3/4 of queued.min.messages: arm */
    size_t low;            /* 1/2 of it: wake, if armed */
    bool armed;            /* polling thread only */
    pthread_t thread;
    pthread_mutex_t lock; /* guards wanted and quit */
    pthread_cond_t cond;
    bool wanted;
    bool quit;
    atomic_uint_fast64_t count;
};

/* One ListOffsets request per leader of the assignment: its arrival wakes
 * that broker's thread, which decides again whether to fetch. Asking for
 * the latest offsets reads nothing and changes nothing. */
static void wake(lf_fetchwake_t *fw)
{
    rd_kafka_topic_partition_list_t *parts = NULL;

    if (rd_kafka_assignment(fw->rk, &parts) || !parts)
        return;
    if (parts->cnt) {
        for (int i = 0; i < parts->cnt; i++)
            parts->elems[i].offset = RD_KAFKA_OFFSET_END; /* "latest" */
        rd_kafka_resp_err_t err =
            rd_kafka_offsets_for_times(fw->rk, parts, WAKE_TIMEOUT_MS);

        atomic_fetch_add(&fw->count, 1);
        if (err)
            LF_LOG(LF_LOG_DEBUG, "msg=\"fetch wake-up unanswered\" error=%s",
                   rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

static void *wake_main(void *arg)
{
    lf_fetchwake_t *fw = arg;

    pthread_setname_np(pthread_self(), "lf:fetchwake"); /* top -H, perf */
    pthread_mutex_lock(&fw->lock);
    for (;;) {
        while (!fw->wanted && !fw->quit)
            pthread_cond_wait(&fw->cond, &fw->lock);
        if (fw->quit)
            break;
        fw->wanted = false;
        pthread_mutex_unlock(&fw->lock);
        wake(fw);
        pthread_mutex_lock(&fw->lock);
    }
    pthread_mutex_unlock(&fw->lock);
    return NULL;
}

lf_fetchwake_t *lf_fetchwake_new(rd_kafka_t *rk)
{
    lf_fetchwake_t *fw = calloc(1, sizeof(*fw));
    char v[32];
    size_t vlen = sizeof(v);
    long long qmin = 100000; /* librdkafka's default */

    if (!fw)
        return NULL;
    fw->rk = rk;
    /* The threshold the broker threads stop at, as this handle has it. */
    if (rd_kafka_conf_get(rd_kafka_conf(rk), "queued.min.messages", v, &vlen) ==
        RD_KAFKA_CONF_OK)
        qmin = strtoll(v, NULL, 10);
    if (qmin < 4)
        qmin = 4;
    fw->high = (size_t)qmin / 4 * 3;
    fw->low = (size_t)qmin / 2;
    atomic_init(&fw->count, 0);
    if (!(fw->rkq = rd_kafka_queue_get_consumer(rk))) {
        free(fw);
        return NULL;
    }
    pthread_mutex_init(&fw->lock, NULL);
    pthread_cond_init(&fw->cond, NULL);
    if (pthread_create(&fw->thread, NULL, wake_main, fw)) {
        pthread_cond_destroy(&fw->cond);
        pthread_mutex_destroy(&fw->lock);
        rd_kafka_queue_destroy(fw->rkq);
        free(fw);
        return NULL;
    }
    return fw;
}

void lf_fetchwake_check(lf_fetchwake_t *fw)
{
    if (!fw)
        return;
    /* Fetching stops when a response leaves the queue at the threshold, a
     * moment the poller may not see (it may have taken one since). Near
     * it is enough: armed at 3/4, a wake-up once back at half. A fetcher
     * that keeps up keeps the queue above half; a queue never near the
     * threshold never stopped fetching: neither sends anything. */
    size_t len = rd_kafka_queue_length(fw->rkq);
    if (len >= fw->high) {
        fw->armed = true;
        return;
    }
    if (!fw->armed || len > fw->low)
        return;
    fw->armed = false;
    pthread_mutex_lock(&fw->lock);
    fw->wanted = true;
    pthread_cond_signal(&fw->cond);
    pthread_mutex_unlock(&fw->lock);
}

uint64_t lf_fetchwake_count(lf_fetchwake_t *fw)
{
    return fw ? (uint64_t)atomic_load(&fw->count) : 0;
}

void lf_fetchwake_destroy(lf_fetchwake_t *fw)
{
    if (!fw)
        return;
    pthread_mutex_lock(&fw->lock);
    fw->quit = true;
    pthread_cond_signal(&fw->cond);
    pthread_mutex_unlock(&fw->lock);
    pthread_join(fw->thread, NULL);
    pthread_cond_destroy(&fw->cond);
    pthread_mutex_destroy(&fw->lock);
    rd_kafka_queue_destroy(fw->rkq);
    free(fw);
}
