/* lf_registry.c: the Confluent Schema Registry REST calls leadflow makes
 * (register, look up, schema by id) through one libcurl handle, with an id
 * cache. Every answer is untrusted: parsed with jansson, size-capped, and
 * only a registry's own "schema not found" is taken as final by consumers. */
#include "lf_registry.h"

#include "lf_buf.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MAX  4096  /* schemas kept; past that, fetched each time */
#define NEG_SLOTS  16    /* recent "not found" answers remembered ... */
#define NEG_TTL_MS 60000 /* ... for this long */
#define WHERE_MAX  512

/* The registry's error_code for an id it does not know. */
#define SR_SCHEMA_NOT_FOUND 40403

typedef struct cached_s {
    int32_t id;
    char *schema;
} cached_t;

typedef struct neg_s {
    int32_t id;
    int64_t until; /* monotonic ms; 0: empty slot */
    char why[400];
} neg_t;

struct lf_registry_s {
    pthread_mutex_t lock; /* everything below */
    char **urls;          /* base URLs, no trailing '/' */
    int nurls, cur;       /* cur: the one that answered last */
    char *shown;          /* urls[0] with credentials masked */
    char *user, *password;
    char *ca, *cert, *key, *key_password;
    bool verify, auto_register;
    long timeout_ms;
    int64_t retry_timeout_ms;
    CURL *curl; /* reused: keeps the connection alive */
    lf_buf_t body;
    bool too_big;
    char curl_err[CURL_ERROR_SIZE];
    cached_t *cache;
    size_t ncache, capcache;
    neg_t neg[NEG_SLOTS];
    int neg_next;
};

/* ---- settings ------------------------------------------------------- */

bool lf_registry_configured(const lf_conf_t *conf)
{
    const char *url = lf_conf_get(conf, LF_CONF_SR_URL);
    return url && *url;
}

static lf_err_t parse_bool(const lf_conf_t *conf, const char *key, bool dflt,
                           bool *out, char *errstr, size_t errstr_size)
{
    const char *v = lf_conf_get(conf, key);

    *out = dflt;
    if (!v)
        return LF_OK;
    if (!strcmp(v, "true") || !strcmp(v, "1"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0"))
        *out = false;
    else
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "configuration \"%s\": \"%.32s\" is not true or "
                         "false",
                         key, v);
    return LF_OK;
}

static lf_err_t parse_ms(const lf_conf_t *conf, const char *key, long dflt,
                         long *out, char *errstr, size_t errstr_size)
{
    const char *v = lf_conf_get(conf, key);
    char *end;
    long n;

    *out = dflt;
    if (!v)
        return LF_OK;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > 86400000)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "configuration \"%s\": \"%.32s\" is not a number of "
                         "milliseconds (1 to 86400000)",
                         key, v);
    *out = n;
    return LF_OK;
}

static char *dup_opt(const lf_conf_t *conf, const char *key, bool *nomem)
{
    const char *v = lf_conf_get(conf, key);
    char *c;

    if (!v || !*v)
        return NULL;
    if (!(c = strdup(v)))
        *nomem = true;
    return c;
}

void lf_registry_redact_url(const char *url, char *buf, size_t size)
{
    const char *host = strstr(url, "://"), *at, *slash;

    if (host) {
        host += 3;
        slash = host + strcspn(host, "/?#");
        at = memchr(host, '@', (size_t)(slash - host));
        if (at) {
            /* a very long URL is cut short: this is only for messages */
            if (snprintf(buf, size, "%.*s***%s", (int)(host - url), url, at) >=
                    (int)size &&
                size > 3)
                memcpy(buf + size - 4, "...", 4);
            return;
        }
    }
    snprintf(buf, size, "%s", url);
}

/* Split schema.registry.url at commas into reg->urls. */
static lf_err_t parse_urls(lf_registry_t *reg, const char *list, char *errstr,
                           size_t errstr_size)
{
    const char *s = list;
    char shown[WHERE_MAX];

    while (*s) {
        size_t n;
        char *u, **grown;

        while (*s == ',' || isspace((unsigned char)*s))
            s++;
        if (!*s)
            break;
        n = strcspn(s, ",");
        while (n && isspace((unsigned char)s[n - 1]))
            n--;
        if (!(u = strndup(s, n)))
            return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size,
                             "out of memory");
        while (n > 1 && u[n - 1] == '/') /* we add the paths' own '/' */
            u[--n] = '\0';
        lf_registry_redact_url(u, shown, sizeof(shown));
        if (strncasecmp(u, "http://", 7) && strncasecmp(u, "https://", 8)) {
            free(u);
            return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                             "configuration \"%s\": \"%s\" is not an http:// "
                             "or https:// URL",
                             LF_CONF_SR_URL, shown);
        }
        if (!(grown = realloc(reg->urls,
                              (size_t)(reg->nurls + 1) * sizeof(*grown)))) {
            free(u);
            return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size,
                             "out of memory");
        }
        reg->urls = grown;
        reg->urls[reg->nurls++] = u;
        s += strcspn(s, ",");
    }
    if (!reg->nurls)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "configuration \"%s\": no URL", LF_CONF_SR_URL);
    lf_registry_redact_url(reg->urls[0], shown, sizeof(shown));
    if (!(reg->shown = strdup(shown)))
        return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    return LF_OK;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

lf_registry_t *lf_registry_new(const lf_conf_t *conf, char *errstr,
                               size_t errstr_size)
{
    lf_registry_t *reg;
    const char *ui = lf_conf_get(conf, LF_CONF_SR_USER_INFO);
    bool nomem = false;
    long retry;

    if (!lf_registry_configured(conf)) {
        lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                  "configuration \"%s\" is not set", LF_CONF_SR_URL);
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc) {
        lf_seterr(LF_ERR_IO, errstr, errstr_size, "libcurl: %s",
                  curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    if (!(reg = calloc(1, sizeof(*reg)))) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&reg->lock, NULL);
    if (parse_urls(reg, lf_conf_get(conf, LF_CONF_SR_URL), errstr,
                   errstr_size) ||
        parse_bool(conf, LF_CONF_SR_VERIFY, true, &reg->verify, errstr,
                   errstr_size) ||
        parse_bool(conf, LF_CONF_SR_AUTO_REG, true, &reg->auto_register, errstr,
                   errstr_size) ||
        parse_ms(conf, LF_CONF_SR_TIMEOUT, LF_REGISTRY_TIMEOUT_MS,
                 &reg->timeout_ms, errstr, errstr_size) ||
        parse_ms(conf, LF_CONF_SR_RETRY, LF_REGISTRY_RETRY_TIMEOUT_MS, &retry,
                 errstr, errstr_size))
        goto fail;
    reg->retry_timeout_ms = retry;
    if (ui && *ui) {
        const char *colon = strchr(ui, ':');
        if (!colon) {
            lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                      "configuration \"%s\": expected user:password",
                      LF_CONF_SR_USER_INFO);
            goto fail;
        }
        if (!(reg->user = strndup(ui, (size_t)(colon - ui))) ||
            !(reg->password = strdup(colon + 1)))
            nomem = true;
    }
    reg->ca = dup_opt(conf, LF_CONF_SR_CA, &nomem);
    reg->cert = dup_opt(conf, LF_CONF_SR_CERT, &nomem);
    reg->key = dup_opt(conf, LF_CONF_SR_KEY, &nomem);
    reg->key_password = dup_opt(conf, LF_CONF_SR_KEY_PASS, &nomem);
    if (nomem || !(reg->curl = curl_easy_init())) {
        lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto fail;
    }
    return reg;
fail:
    lf_registry_destroy(reg);
    return NULL;
}

void lf_registry_destroy(lf_registry_t *reg)
{
    if (!reg)
        return;
    if (reg->curl)
        curl_easy_cleanup(reg->curl);
    for (int i = 0; i < reg->nurls; i++)
        free(reg->urls[i]);
    free(reg->urls);
    free(reg->shown);
    free(reg->user);
    if (reg->password) /* do not leave it in freed memory */
        memset(reg->password, 0, strlen(reg->password));
    free(reg->password);
    free(reg->ca);
    free(reg->cert);
    free(reg->key);
    if (reg->key_password)
        memset(reg->key_password, 0, strlen(reg->key_password));
    free(reg->key_password);
    for (size_t i = 0; i < reg->ncache; i++)
        free(reg->cache[i].schema);
    free(reg->cache);
    lf_buf_free(&reg->body);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

const char *lf_registry_url(const lf_registry_t *reg)
{
    return reg->shown;
}

bool lf_registry_auto_register(const lf_registry_t *reg)
{
    return reg->auto_register;
}

int64_t lf_registry_retry_timeout_ms(const lf_registry_t *reg)
{
    return reg->retry_timeout_ms;
}

/* ---- parsing answers ------------------------------------------------ */

static json_t *load_object(const char *body, size_t len, char *errstr,
                           size_t errstr_size)
{
    json_error_t jerr;
    json_t *root;

    root = json_loadb(body ? body : "", body ? len : 0, JSON_REJECT_DUPLICATES,
                      &jerr);
    if (!root) {
        lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                  "the answer is not JSON (%s, at byte %d)", jerr.text,
                  jerr.position);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                  "the answer is not a JSON object");
        return NULL;
    }
    return root;
}

lf_err_t lf_registry_parse_id(const char *body, size_t len, int32_t *id,
                              char *errstr, size_t errstr_size)
{
    json_t *root = load_object(body, len, errstr, errstr_size), *v;
    json_int_t n;

    if (!root)
        return LF_ERR_INVALID;
    v = json_object_get(root, "id");
    n = json_is_integer(v) ? json_integer_value(v) : 0;
    json_decref(root);
    if (n < 1 || n > INT32_MAX)
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "field \"id\": expected a schema id (a positive "
                         "32-bit integer)");
    *id = (int32_t)n;
    return LF_OK;
}

static void printable(const char *s, size_t n, char *buf, size_t size);

lf_err_t lf_registry_parse_compat(const char *body, size_t len,
                                  bool *compatible, char *reason,
                                  size_t reason_size)
{
    json_t *root = load_object(body, len, reason, reason_size), *v, *m;
    size_t i, used = 0;

    if (!root)
        return LF_ERR_INVALID;
    v = json_object_get(root, "is_compatible");
    if (!json_is_boolean(v)) {
        json_decref(root);
        return lf_seterr(LF_ERR_INVALID, reason, reason_size,
                         "field \"is_compatible\": expected a boolean");
    }
    *compatible = json_is_true(v);
    reason[0] = '\0';
    /* Confluent's answer with ?verbose=true: the reasons, one a message. */
    json_array_foreach(json_object_get(root, "messages"), i, m)
    {
        char text[300];
        int n;
        if (!json_is_string(m))
            continue;
        printable(json_string_value(m), strlen(json_string_value(m)), text,
                  sizeof(text));
        n = snprintf(reason + used, reason_size - used, "%s%s",
                     used ? "; " : "", text);
        if (n < 0 || (size_t)n >= reason_size - used)
            break;
        used += (size_t)n;
    }
    json_decref(root);
    return LF_OK;
}

/* lf_registry_parse_schema(); *final tells a well-formed answer about a
 * schema we cannot use from an answer that is no registry's. */
static lf_err_t parse_schema(const char *body, size_t len, char **schema_json,
                             bool *final, char *errstr, size_t errstr_size)
{
    json_t *root = load_object(body, len, errstr, errstr_size), *v;
    lf_err_t err = LF_OK;

    *schema_json = NULL;
    *final = false;
    if (!root)
        return LF_ERR_INVALID;
    *final = true;
    v = json_object_get(root, "schemaType");
    if (v && !json_is_null(v) &&
        !(json_is_string(v) && !strcmp(json_string_value(v), "AVRO"))) {
        err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                        "schemaType %.32s: only Avro schemas can be read",
                        json_is_string(v) ? json_string_value(v)
                                          : "(not a string)");
        goto out;
    }
    v = json_object_get(root, "references");
    if (v && !json_is_null(v) && !(json_is_array(v) && !json_array_size(v))) {
        err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                        "the schema uses schema references, which leadflow "
                        "does not resolve");
        goto out;
    }
    v = json_object_get(root, "schema");
    if (!json_is_string(v) || !json_string_length(v)) {
        *final = false;
        err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                        "field \"schema\": expected the schema as a "
                        "non-empty string");
        goto out;
    }
    /* jansson refuses \u0000 unless asked, so this is the whole string. */
    if (!(*schema_json = strdup(json_string_value(v))))
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
out:
    json_decref(root);
    return err;
}

lf_err_t lf_registry_parse_schema(const char *body, size_t len,
                                  char **schema_json, char *errstr,
                                  size_t errstr_size)
{
    bool final;
    return parse_schema(body, len, schema_json, &final, errstr, errstr_size);
}

static void printable(const char *s, size_t n, char *buf, size_t size)
{
    size_t i;

    if (!size)
        return;
    for (i = 0; i < n && i + 1 < size; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    buf[i] = '\0';
}

void lf_registry_parse_error(const char *body, size_t len, char *buf,
                             size_t size)
{
    json_t *root = load_object(body, len, NULL, 0), *msg, *code;
    char text[300];

    if (!size)
        return;
    buf[0] = '\0';
    if (root && json_is_string(msg = json_object_get(root, "message"))) {
        printable(json_string_value(msg), json_string_length(msg), text,
                  sizeof(text));
        code = json_object_get(root, "error_code");
        if (json_is_integer(code))
            snprintf(buf, size, "error_code %lld: %s",
                     (long long)json_integer_value(code), text);
        else
            snprintf(buf, size, "%s", text);
    } else if (body && len) {
        printable(body, len > 200 ? 200 : len, text, sizeof(text));
        snprintf(buf, size, "%s%s", text, len > 200 ? "..." : "");
    }
    json_decref(root);
}

/* The registry's error_code in an error body, or 0. */
static long error_code(const char *body, size_t len)
{
    json_t *root = load_object(body, len, NULL, 0);
    json_t *code = root ? json_object_get(root, "error_code") : NULL;
    long n = json_is_integer(code) ? (long)json_integer_value(code) : 0;

    json_decref(root);
    return n;
}

/* ---- HTTP --------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *opaque)
{
    lf_registry_t *reg = opaque;
    size_t n = size * nmemb;

    /* An untrusted peer chooses the size: stop reading past the cap. */
    if (n > LF_REGISTRY_BODY_MAX - reg->body.len) {
        reg->too_big = true;
        return 0;
    }
    if (lf_buf_append(&reg->body, ptr, n))
        return 0;
    return n;
}

/* curl errors that repeat however often we ask: settings or certificates,
 * not the network. */
static bool curl_final(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_LOGIN_DENIED:
    case CURLE_TOO_MANY_REDIRECTS:
        return true;
    default:
        return false;
    }
}

/* One attempt at one URL. @returns the curl code; *status the HTTP status
 * (0 if none). The body is in reg->body. */
static CURLcode attempt(lf_registry_t *reg, const char *url, const char *post,
                        long *status)
{
    struct curl_slist *hdrs = NULL;
    CURL *h = reg->curl;
    CURLcode rc;

    curl_easy_reset(h);
    lf_buf_reset(&reg->body);
    reg->too_big = false;
    reg->curl_err[0] = '\0';
    *status = 0;
    hdrs = curl_slist_append(hdrs, "Accept: application/vnd.schemaregistry.v1"
                                   "+json, application/vnd.schemaregistry+"
                                   "json; q=0.9, application/json; q=0.5");
    if (post)
        hdrs = curl_slist_append(
            hdrs, "Content-Type: application/vnd.schemaregistry.v1+json");
    if (!hdrs)
        return CURLE_OUT_OF_MEMORY;
    curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
    /* No signals: we run in programs with threads and signal handlers. */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     reg->timeout_ms < 5000 ? reg->timeout_ms : 5000L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "leadflow/" LF_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, reg->curl_err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, reg);
    if (post) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
    }
    if (reg->user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, reg->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, reg->password);
    }
    if (reg->ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, reg->ca);
    if (reg->cert)
        curl_easy_setopt(h, CURLOPT_SSLCERT, reg->cert);
    if (reg->key)
        curl_easy_setopt(h, CURLOPT_SSLKEY, reg->key);
    if (reg->key_password)
        curl_easy_setopt(h, CURLOPT_KEYPASSWD, reg->key_password);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, reg->verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, reg->verify ? 2L : 0L);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdrs);
    return rc;
}

/*
 * Send GET (@p post NULL) or POST @p path to the registry, trying each URL
 * in turn from the one that answered last while the answer is a network
 * failure or a 5xx. @returns LF_OK when an HTTP answer came back (*status,
 * body in reg->body, the redacted URL in @p where); LF_ERR_TEMPORARY when
 * none did; LF_ERR_INVALID when the failure will repeat (TLS, settings).
 * Called with the lock held.
 */
static lf_err_t request(lf_registry_t *reg, const char *path, const char *post,
                        long *status, char *where, size_t where_size,
                        char *errstr, size_t errstr_size)
{
    char url[2048];
    lf_err_t err = LF_ERR_TEMPORARY;

    for (int n = 0; n < reg->nurls; n++) {
        int i = (reg->cur + n) % reg->nurls;
        CURLcode rc;

        snprintf(url, sizeof(url), "%s%s", reg->urls[i], path);
        lf_registry_redact_url(url, where, where_size);
        rc = attempt(reg, url, post, status);
        if (rc == CURLE_OK && *status < 500) {
            reg->cur = i;
            return LF_OK;
        }
        if (rc == CURLE_OK) {
            err = LF_OK; /* a 5xx answer: the caller reports it */
            continue;
        }
        if (reg->too_big)
            err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                            "schema registry %s: the answer is larger than "
                            "%d bytes",
                            where, LF_REGISTRY_BODY_MAX);
        else if (rc == CURLE_OUT_OF_MEMORY)
            return lf_seterr(LF_ERR_NOMEM, errstr, errstr_size,
                             "out of memory");
        else
            err = lf_seterr(curl_final(rc) ? LF_ERR_INVALID : LF_ERR_TEMPORARY,
                            errstr, errstr_size, "schema registry %s: %s%s%s",
                            where, curl_easy_strerror(rc),
                            reg->curl_err[0] ? ": " : "", reg->curl_err);
        if (err == LF_ERR_INVALID)
            return err;
    }
    return err;
}

/* Describe a non-2xx answer: "schema registry URL: HTTP 404 (...)". */
static void http_error(lf_registry_t *reg, const char *where, long status,
                       char *errstr, size_t errstr_size)
{
    char why[400];

    lf_registry_parse_error(reg->body.data, reg->body.len, why, sizeof(why));
    lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
              "schema registry %s: HTTP %ld%s%s%s", where, status,
              why[0] ? " (" : "", why, why[0] ? ")" : "");
}

static bool status_temporary(long status)
{
    return status >= 500 || status == 408 || status == 429;
}

/* ---- the calls ------------------------------------------------------- */

static cached_t *cache_find(lf_registry_t *reg, int32_t id)
{
    for (size_t i = 0; i < reg->ncache; i++)
        if (reg->cache[i].id == id)
            return &reg->cache[i];
    return NULL;
}

/* Called with the lock held. */
static lf_err_t cache_put(lf_registry_t *reg, int32_t id, const char *schema)
{
    char *copy;

    if (cache_find(reg, id) || reg->ncache >= CACHE_MAX)
        return LF_OK;
    if (reg->ncache == reg->capcache) {
        size_t cap = reg->capcache ? reg->capcache * 2 : 8;
        cached_t *n = realloc(reg->cache, cap * sizeof(*n));
        if (!n)
            return LF_ERR_NOMEM;
        reg->cache = n;
        reg->capcache = cap;
    }
    if (!(copy = strdup(schema)))
        return LF_ERR_NOMEM;
    reg->cache[reg->ncache++] = (cached_t){id, copy};
    return LF_OK;
}

lf_err_t lf_registry_cache_put(lf_registry_t *reg, int32_t id,
                               const char *schema_json)
{
    lf_err_t err;

    pthread_mutex_lock(&reg->lock);
    err = cache_put(reg, id, schema_json);
    pthread_mutex_unlock(&reg->lock);
    return err;
}

lf_err_t lf_registry_register(lf_registry_t *reg, const char *subject,
                              const char *schema_json, bool register_it,
                              int32_t *id, char *errstr, size_t errstr_size)
{
    char path[1024], where[WHERE_MAX], why[400];
    char *esc = NULL, *post = NULL;
    json_t *req = NULL;
    lf_err_t err;
    long status;

    pthread_mutex_lock(&reg->lock);
    if (!(esc = curl_easy_escape(reg->curl, subject, 0)) ||
        !(req = json_pack("{s:s}", "schema", schema_json)) ||
        !(post = json_dumps(req, JSON_COMPACT))) {
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    snprintf(path, sizeof(path),
             register_it ? "/subjects/%s/versions" : "/subjects/%s", esc);
    if ((err = request(reg, path, post, &status, where, sizeof(where), errstr,
                       errstr_size)))
        goto out;
    if (status < 200 || status > 299) {
        char msg[WHERE_MAX + 500];
        http_error(reg, where, status, msg, sizeof(msg));
        err = status_temporary(status) ? LF_ERR_TEMPORARY : LF_ERR_INVALID;
        if (!register_it && status == 404)
            lf_seterr(err, errstr, errstr_size,
                      "%s: the schema is not registered under subject "
                      "\"%s\" and %s=false",
                      msg, subject, LF_CONF_SR_AUTO_REG);
        else
            lf_seterr(err, errstr, errstr_size, "%s", msg);
        goto out;
    }
    if (lf_registry_parse_id(reg->body.data, reg->body.len, id, why,
                             sizeof(why))) {
        err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                        "schema registry %s: HTTP %ld but %s", where, status,
                        why);
        goto out;
    }
    if (cache_put(reg, *id, schema_json))
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
out:
    pthread_mutex_unlock(&reg->lock);
    curl_free(esc);
    json_decref(req);
    free(post);
    return err;
}

/* The answer to a compatibility question, under the lock: LF_OK when
 * compatible or when the subject has nothing registered yet. */
static lf_err_t compat_answer(lf_registry_t *reg, const char *subject,
                              const char *where, long status, char *errstr,
                              size_t errstr_size)
{
    char msg[WHERE_MAX + 500], why[600];
    bool ok = false;

    if (status == 404) {
        long code = error_code(reg->body.data, reg->body.len);
        /* 40401 subject, 40402 version not found: nothing to break. A
         * 404 without a code, empty or a JSON object, says no more (a
         * registry that does not give one); an HTML page is a wrong URL. */
        json_t *body =
            code ? NULL : load_object(reg->body.data, reg->body.len, NULL, 0);
        bool bare = !code && (body || !reg->body.len);
        json_decref(body);
        if (code == 40401 || code == 40402 || bare)
            return LF_OK;
    }
    if (status < 200 || status > 299) {
        http_error(reg, where, status, msg, sizeof(msg));
        return lf_seterr(status_temporary(status) ? LF_ERR_TEMPORARY
                                                  : LF_ERR_INVALID,
                         errstr, errstr_size, "%s", msg);
    }
    if (lf_registry_parse_compat(reg->body.data, reg->body.len, &ok, why,
                                 sizeof(why)))
        return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                         "schema registry %s: HTTP %ld but %s", where, status,
                         why);
    if (ok)
        return LF_OK;
    return lf_seterr(LF_ERR_INVALID, errstr, errstr_size,
                     "schema registry %s: subject \"%s\" does not accept "
                     "this schema: %s",
                     where, subject,
                     why[0] ? why : "not compatible (no reason given)");
}

lf_err_t lf_registry_check_compatible(lf_registry_t *reg, const char *subject,
                                      const char *schema_json, char *errstr,
                                      size_t errstr_size)
{
    char path[1024], where[WHERE_MAX];
    char *esc = NULL, *post = NULL;
    json_t *req = NULL;
    lf_err_t err;
    long status = 0;

    pthread_mutex_lock(&reg->lock);
    if (!(esc = curl_easy_escape(reg->curl, subject, 0)) ||
        !(req = json_pack("{s:s}", "schema", schema_json)) ||
        !(post = json_dumps(req, JSON_COMPACT))) {
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    /* Asked as the API documents it; only a "no" is asked again with
     * ?verbose=true, for the registry's reasons (an older registry, or one
     * that does not know the parameter, keeps its first answer). */
    snprintf(path, sizeof(path), "/compatibility/subjects/%s/versions/latest",
             esc);
    if (!(err = request(reg, path, post, &status, where, sizeof(where), errstr,
                        errstr_size)))
        err = compat_answer(reg, subject, where, status, errstr, errstr_size);
    if (err == LF_ERR_INVALID && status >= 200 && status <= 299) {
        char first[2048];
        long vstatus = 0;
        snprintf(first, sizeof(first), "%s", errstr);
        strncat(path, "?verbose=true", sizeof(path) - strlen(path) - 1);
        if (request(reg, path, post, &vstatus, where, sizeof(where), errstr,
                    errstr_size) ||
            compat_answer(reg, subject, where, vstatus, errstr, errstr_size) !=
                LF_ERR_INVALID ||
            vstatus < 200 || vstatus > 299)
            snprintf(errstr, errstr_size, "%s", first);
    }
out:
    pthread_mutex_unlock(&reg->lock);
    curl_free(esc);
    json_decref(req);
    free(post);
    return err;
}

/* Remember a final answer about @p id for a while (so a stream of such
 * messages is not a stream of requests) and return it as LF_ERR_INVALID. */
static lf_err_t remember_refusal(lf_registry_t *reg, int32_t id, int64_t now,
                                 char *errstr, size_t errstr_size,
                                 const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static lf_err_t remember_refusal(lf_registry_t *reg, int32_t id, int64_t now,
                                 char *errstr, size_t errstr_size,
                                 const char *fmt, ...)
{
    neg_t *slot = &reg->neg[reg->neg_next];
    va_list ap;

    reg->neg_next = (reg->neg_next + 1) % NEG_SLOTS;
    va_start(ap, fmt);
    vsnprintf(slot->why, sizeof(slot->why), fmt, ap);
    va_end(ap);
    slot->id = id;
    slot->until = now + NEG_TTL_MS;
    return lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "%s", slot->why);
}

lf_err_t lf_registry_schema_by_id(lf_registry_t *reg, int32_t id,
                                  char **schema_json, char *errstr,
                                  size_t errstr_size)
{
    char path[64], where[WHERE_MAX], why[400];
    cached_t *hit;
    lf_err_t err;
    long status;
    int64_t now = lf_now_mono_ms();

    *schema_json = NULL;
    pthread_mutex_lock(&reg->lock);
    if ((hit = cache_find(reg, id))) {
        err =
            (*schema_json = strdup(hit->schema))
                ? LF_OK
                : lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int i = 0; i < NEG_SLOTS; i++)
        if (reg->neg[i].id == id && reg->neg[i].until > now) {
            err = lf_seterr(LF_ERR_INVALID, errstr, errstr_size, "%s",
                            reg->neg[i].why);
            goto out;
        }
    snprintf(path, sizeof(path), "/schemas/ids/%ld", (long)id);
    if ((err = request(reg, path, NULL, &status, where, sizeof(where), errstr,
                       errstr_size))) {
        if (err == LF_ERR_INVALID) /* TLS or settings: fixable, not final */
            err = LF_ERR_TEMPORARY;
        goto out;
    }
    if (status == 404 &&
        error_code(reg->body.data, reg->body.len) == SR_SCHEMA_NOT_FOUND) {
        /* The registry's own answer about this id: final. */
        http_error(reg, where, status, why, sizeof(why));
        err = remember_refusal(reg, id, now, errstr, errstr_size,
                               "schema id %ld is unknown to the schema "
                               "registry: %s",
                               (long)id, why);
        goto out;
    }
    if (status < 200 || status > 299) {
        /* Anything else is about the registry or us, not the id; a 404
         * without the registry's error_code means a wrong URL. */
        http_error(reg, where, status, errstr, errstr_size);
        err = LF_ERR_TEMPORARY;
        goto out;
    }
    bool final;
    if ((err = parse_schema(reg->body.data, reg->body.len, schema_json, &final,
                            why, sizeof(why)))) {
        if (err == LF_ERR_NOMEM)
            goto out;
        /* A schema we cannot use is final; an answer that is no
         * registry's (a proxy's page, say) is not about the id. */
        if (final)
            err = remember_refusal(reg, id, now, errstr, errstr_size,
                                   "schema registry %s: schema id %ld: %s",
                                   where, (long)id, why);
        else
            err = lf_seterr(LF_ERR_TEMPORARY, errstr, errstr_size,
                            "schema registry %s: schema id %ld: %s", where,
                            (long)id, why);
        goto out;
    }
    if (cache_put(reg, id, *schema_json)) {
        free(*schema_json);
        *schema_json = NULL;
        err = lf_seterr(LF_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
out:
    pthread_mutex_unlock(&reg->lock);
    return err;
}
