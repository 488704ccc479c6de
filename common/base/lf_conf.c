/* lf_conf.c: the key=value namespace, as a small sorted array. */
#include "lf_conf.h"

#include "lf_log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern char **environ;

typedef struct kv_s {
    char *key;
    char *value;
    bool from_env; /* set by lf_conf_load_env() from a LEADFLOW_* name */
} kv_t;

struct lf_conf_s {
    kv_t *kv;
    size_t count, cap;
};

lf_conf_t *lf_conf_new(void)
{
    return calloc(1, sizeof(lf_conf_t));
}

void lf_conf_destroy(lf_conf_t *conf)
{
    if (!conf)
        return;
    for (size_t i = 0; i < conf->count; i++) {
        free(conf->kv[i].key);
        free(conf->kv[i].value);
    }
    free(conf->kv);
    free(conf);
}

static kv_t *find(const lf_conf_t *conf, const char *key)
{
    for (size_t i = 0; i < conf->count; i++)
        if (!strcmp(conf->kv[i].key, key))
            return &conf->kv[i];
    return NULL;
}

lf_err_t lf_conf_set(lf_conf_t *conf, const char *key, const char *value,
                     char *errstr, size_t errstr_size)
{
    kv_t *kv = find(conf, key);
    char *v;

    if (!*key)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "configuration: empty key");
    if (!(v = strdup(value)))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (kv) {
        free(kv->value);
        kv->value = v;
        kv->from_env = false;
        return LF_OK;
    }
    if (conf->count == conf->cap) {
        size_t cap = conf->cap ? conf->cap * 2 : 16;
        kv_t *n = realloc(conf->kv, cap * sizeof(*n));
        if (!n) {
            free(v);
            return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size,
                             "out of memory");
        }
        conf->kv = n;
        conf->cap = cap;
    }
    if (!(conf->kv[conf->count].key = strdup(key))) {
        free(v);
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    conf->kv[conf->count].from_env = false;
    conf->kv[conf->count++].value = v;
    return LF_OK;
}

lf_err_t lf_conf_set_kv(lf_conf_t *conf, const char *kv, char *errstr,
                        size_t errstr_size)
{
    const char *eq = strchr(kv, '=');
    char key[256];

    if (!eq || eq == kv)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "\"%.64s\": expected key=value", kv);
    if ((size_t)(eq - kv) >= sizeof(key))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "configuration key too long");
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = '\0';
    return lf_conf_set(conf, key, eq + 1, errstr, errstr_size);
}

lf_err_t lf_conf_default(lf_conf_t *conf, const char *key, const char *value)
{
    if (lf_conf_get(conf, key))
        return LF_OK;
    return lf_conf_set(conf, key, value, NULL, 0);
}

const char *lf_conf_get(const lf_conf_t *conf, const char *key)
{
    kv_t *kv = find(conf, key);
    return kv ? kv->value : NULL;
}

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

bool lf_conf_is_secret(const char *key)
{
    return strstr(key, "password") || strstr(key, "secret") ||
           strstr(key, "sasl.") || strstr(key, ".key") ||
           strstr(key, "user.info") || !strcmp(key, LF_CONF_DB);
}

/* The user information of the URL whose "://" is at @p scheme_end (the
 * text before its last '@' in the authority, from @p *from), or NULL. */
static const char *url_userinfo(const char *scheme_end, const char **from)
{
    const char *host = scheme_end + 3, *at = NULL;
    size_t n = strcspn(host, "/?#,");

    for (size_t i = 0; i < n; i++)
        if (host[i] == '@')
            at = host + i;
    *from = host;
    return at;
}

/* Does @p v hold a URL with credentials (scheme://user:password@host)? */
static bool has_url_password(const char *v)
{
    for (const char *s = strstr(v, "://"), *from; s; s = strstr(s + 3, "://")) {
        const char *at = url_userinfo(s, &from);
        if (at && memchr(from, ':', (size_t)(at - from)))
            return true;
    }
    return false;
}

bool lf_conf_holds_secret(const char *key, const char *val)
{
    if (has_url_password(val))
        return true;
    if (!strcmp(key, LF_CONF_DB))
        return strstr(val, "password") != NULL;
    return strstr(key, "password") || strstr(key, "secret") ||
           strstr(key, "user.info") || strstr(key, ".pem") ||
           strstr(key, "oauthbearer.config");
}

bool lf_conf_plain_key(const char *key)
{
    size_t n = strspn(key, "abcdefghijklmnopqrstuvwxyz"
                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
    return n && n <= 64 && !key[n];
}

/* @p v with the user information of every URL in it (the user:password
 * before the host's '@') as "***"; malloc'd, NULL when out of memory. */
static char *mask_urls(const char *v)
{
    char *out = malloc(2 * strlen(v) + 4), *o = out;
    const char *p = v;

    while (out && *p) {
        const char *s = strstr(p, "://"), *from, *at;
        if (!s) {
            o = stpcpy(o, p);
            break;
        }
        at = url_userinfo(s, &from);
        memcpy(o, p, (size_t)(from - p));
        o += from - p;
        if (at)
            o = stpcpy(o, "***");
        p = at ? at : from;
    }
    if (out)
        *o = '\0';
    return out;
}

lf_err_t lf_conf_check(const lf_conf_t *conf, const char *const *known,
                       char *errstr, size_t errstr_size)
{
    /* Empty, these would mean a default (the production topic), a
     * five-minute wait for no broker, or no consumer group ("Unknown
     * group", or offsets stored under ''): most likely -t "$UNSET". */
    static const char *const not_empty[] = {LF_CONF_TOPIC, "bootstrap.servers",
                                            "group.id"};

    for (size_t i = 0; i < sizeof(not_empty) / sizeof(*not_empty); i++) {
        const char *v = lf_conf_get(conf, not_empty[i]);
        if (v && !*v)
            return lf_seterr(LF_ERR_CONFIG, errstr, errstr_size,
                             "setting \"%s\" is empty (an unset variable?): "
                             "give a value, or leave it out for the default",
                             not_empty[i]);
    }
    /* librdkafka never sees leadflow's keys: a typo among them would be
     * ignored without a word. */
    for (size_t i = 0; i < conf->count; i++) {
        const char *k = conf->kv[i].key;
        size_t j = 0;
        if (!lf_conf_is_ours(k))
            continue;
        while (known[j] && strcmp(k, known[j]))
            j++;
        if (!known[j])
            return lf_seterr(LF_ERR_CONFIG, errstr, errstr_size,
                             "unknown setting \"%s\" (leadflow's own keys "
                             "are listed in leadflow(7))",
                             k);
    }
    return LF_OK;
}

/* Read one line of @p fp into @p line (LF_CONF_LINE_MAX + 1 bytes), its
 * newline dropped. @returns 0 at the end of the file, 1 for a line, -1
 * for one longer than LF_CONF_LINE_MAX, -2 for one holding a NUL byte
 * (the reading stops there: the file is refused). */
static int read_line(FILE *fp, char *line)
{
    size_t n = 0;
    int c;

    while ((c = getc(fp)) != EOF && c != '\n') {
        if (c == '\0')
            return -2;
        if (n == LF_CONF_LINE_MAX)
            return -1;
        line[n++] = (char)c;
    }
    line[n] = '\0';
    return c == EOF && !n ? 0 : 1;
}

lf_err_t lf_conf_load_file(lf_conf_t *conf, const char *path, char *errstr,
                           size_t errstr_size)
{
    FILE *fp = fopen(path, "r");
    char *line = malloc(LF_CONF_LINE_MAX + 1);
    int lineno = 0, got;
    bool secret = false;
    struct stat st;
    lf_err_t err = LF_OK;

    if (!fp || !line) {
        err =
            !fp ? lf_seterr(LF_ERR_IO, errstr, errstr_size, "%s: %s", path,
                            strerror(errno))
                : lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        if (fp)
            fclose(fp);
        free(line);
        return err;
    }
    while ((got = read_line(fp, line))) {
        lineno++;
        /* One line is one setting: one longer than the buffer is refused
         * whole (read in pieces, its tail would be a setting of its own),
         * as is a NUL in it (it would cut the value short). */
        if (got == -1) {
            err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                            "%s:%d: line longer than %d bytes", path, lineno,
                            LF_CONF_LINE_MAX);
            break;
        }
        if (got == -2) {
            err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                            "%s:%d: a NUL byte in the line", path, lineno);
            break;
        }
        char *s = trim(line), *eq;
        if (!*s || *s == '#')
            continue;
        if (!(eq = strchr(s, '='))) {
            err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                            "%s:%d: expected key=value", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        /* Any key -X dump masks counts here (db only with a password),
         * not only what a command line must not carry: sasl.username
         * too is worth a mode 600. */
        if (lf_conf_holds_secret(key, val) ||
            (strcmp(key, LF_CONF_DB) && lf_conf_is_secret(key)))
            secret = true;
        if ((err = lf_conf_set(conf, key, val, errstr, errstr_size)))
            break;
    }
    if (!err && ferror(fp)) /* a directory, an I/O error: not an empty file */
        err = lf_seterr(LF_ERR_IO, errstr, errstr_size, "%s: %s", path,
                        strerror(errno));
    if (secret && fstat(fileno(fp), &st) == 0 && (st.st_mode & 0044))
        LF_LOG(LF_LOG_WARNING,
               "msg=\"configuration file holds a secret and others can read "
               "it; chmod 600 it\" file=%s",
               path);
    fclose(fp);
    free(line);
    return err;
}

void lf_conf_load_env(lf_conf_t *conf)
{
    static const struct {
        const char *env, *key;
    } known[] = {{"LEADFLOW_BROKERS", "bootstrap.servers"},
                 {"LEADFLOW_TOPIC", LF_CONF_TOPIC},
                 {"LEADFLOW_GROUP", "group.id"},
                 {"LEADFLOW_DB", LF_CONF_DB}};

    for (char **e = environ; *e; e++) {
        char key[256];
        const char *eq = strchr(*e, '=');
        size_t i, n;

        if (strncmp(*e, "LEADFLOW_", 9) || !eq)
            continue;
        n = (size_t)(eq - *e);
        if (n >= sizeof(key))
            continue;
        memcpy(key, *e, n);
        key[n] = '\0';
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            if (!strcmp(key, known[i].env))
                break;
        if (i < sizeof(known) / sizeof(known[0])) {
            lf_conf_set(conf, known[i].key, eq + 1, NULL, 0);
            continue;
        }
        /* LEADFLOW_A_B -> a.b; our dev variables (LEADFLOW_BIN, ...) are
         * harmless leftovers only if they are ours: skip those. */
        if (!strcmp(key, "LEADFLOW_BIN") || !strcmp(key, "LEADFLOW_SRC") ||
            !strcmp(key, "LEADFLOW_TESTS") || !strcmp(key, "LEADFLOW_PGDATA") ||
            !strcmp(key, "LEADFLOW_BROKER_ARGS") ||
            !strncmp(key, "LEADFLOW_DEV", 12) ||
            !strncmp(key, "LEADFLOW_DEMO", 13))
            continue;
        for (i = 9; i < n; i++)
            key[i - 9] = key[i] == '_' ? '.' : (char)tolower(key[i]);
        key[n - 9] = '\0';
        if (!lf_conf_set(conf, key, eq + 1, NULL, 0))
            find(conf, key)->from_env = true; /* named if refused */
    }
}

bool lf_conf_is_ours(const char *key)
{
    return !strcmp(key, LF_CONF_TOPIC) || !strcmp(key, LF_CONF_DB) ||
           !strcmp(key, "contract.version") || !strcmp(key, LF_CONF_METRICS) ||
           !strcmp(key, LF_CONF_DEFINITION) || !strncmp(key, "leadflow.", 9) ||
           !strncmp(key, "pseudonym.", 10) ||
           !strncmp(key, "schema.registry.", 16);
}

rd_kafka_conf_t *lf_conf_to_rdkafka(const lf_conf_t *conf, char *errstr,
                                    size_t errstr_size)
{
    rd_kafka_conf_t *rkc = rd_kafka_conf_new();
    char why[512];

    rd_kafka_conf_set_log_cb(rkc, lf_log_rdkafka);
    for (size_t i = 0; i < conf->count; i++) {
        if (lf_conf_is_ours(conf->kv[i].key))
            continue;
        if (rd_kafka_conf_set(rkc, conf->kv[i].key, conf->kv[i].value, why,
                              sizeof(why)) != RD_KAFKA_CONF_OK) {
            char env[256] = "";
            if (conf->kv[i].from_env) { /* a stray LEADFLOW_* variable */
                size_t n = 0;
                for (const char *k = conf->kv[i].key; *k && n < 200; k++)
                    env[n++] = *k == '.' ? '_' : (char)toupper(*k);
                env[n] = '\0';
            }
            lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                      "configuration \"%s\"%s%s%s: %s", conf->kv[i].key,
                      *env ? " (from the environment variable LEADFLOW_" : "",
                      env, *env ? ")" : "", why);
            rd_kafka_conf_destroy(rkc);
            return NULL;
        }
    }
    return rkc;
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const kv_t *)a)->key, ((const kv_t *)b)->key);
}

void lf_conf_dump(const lf_conf_t *conf, FILE *fp)
{
    kv_t *sorted = malloc(conf->count * sizeof(kv_t) + 1);

    if (!sorted)
        return;
    memcpy(sorted, conf->kv, conf->count * sizeof(kv_t));
    qsort(sorted, conf->count, sizeof(kv_t), kv_cmp);
    for (size_t i = 0; i < conf->count; i++) {
        /* An empty secret is shown empty: not set is worth seeing. */
        char *shown = lf_conf_is_secret(sorted[i].key) && *sorted[i].value
                          ? NULL
                          : mask_urls(sorted[i].value);
        fprintf(fp, "%s=%s\n", sorted[i].key, shown ? shown : "***");
        free(shown);
    }
    free(sorted);
}
