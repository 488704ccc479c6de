/* leadflow-emit: JSON lines of lead events from files or stdin to Kafka;
 * every line ends delivered, rejected or failed, never lost. */

/*
 * The life of a line. A line is read (BOM and CR stripped), parsed and
 * validated against the contract (lf_json_parse_event). A line that breaks
 * the contract is written to the rejects file with the reason. A valid one
 * is handed to lf_producer with a small "ticket" (file, line number, the
 * original text) as its message opaque. librdkafka retries on its own until
 * message.timeout.ms; then exactly one delivery report comes back for the
 * ticket: delivered, or failed, and a failed line goes to the rejects file
 * too, so the rejects file holds every line that did not make it, with the
 * reason, ready to be fixed and re-sent. Re-sending is safe: lines without
 * an event_id get one derived from their content, so the same line gets the
 * same id and the projector sees a duplicate, not a new event.
 *
 * Single-threaded: delivery reports are served inside lf_producer calls on
 * this thread, so the counters and the rejects file need no locks.
 */

#include "lf_cli.h"
#include "lf_codec.h"
#include "lf_common.h"
#include "lf_conf.h"
#include "lf_event.h"
#include "lf_json.h"
#include "lf_log.h"
#include "lf_producer.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "leadflow-emit"

#define EX_NOINPUT 66 /* sysexits: an input file could not be opened */

/* The text of an over-long line kept in its reject: enough to recognise. */
#define SNIPPET_MAX 1024
/* How long a SIGINT/SIGTERM waits for in-flight events before giving up on
 * them (a second signal gives up at once). */
#define STOP_FLUSH_MS 10000
#define PROGRESS_MS   5000

/* ---------------------------------------------------------------------------
 * Counters and the rejects file.
 */

typedef struct emit_s {
    const char **files; /* input names, "-" for stdin */
    FILE *rejects;
    const char *rejects_name;
    bool rejects_failed; /* a write to it failed */
    lf_buf_t out;        /* one reject line */
    int64_t read, blank, rejected, delivered, failed_retriable,
        failed_permanent, unsent;
    int64_t last_report, last_progress; /* monotonic ms */
    /* Reports so far, and when progress() last saw the count: the clock
     * is read there, not once per report and line. */
    int64_t reports, reports_seen;
    unsigned lines_since_progress;
    int exit_io;       /* EX_NOINPUT or LF_EX_IOERR if an input failed */
    lf_codec_t *check; /* --dry-run: the contract version's checks */
} emit_t;

/** A line on its way to the broker: the message opaque. Freed when its
 *  delivery report is served. */
typedef struct ticket_s {
    int file;
    int64_t line;
    size_t len;
    char text[]; /* not NUL-terminated */
} ticket_t;

/* Append @p s[0..len) as a JSON string. Unlike lf_json_append_string() the
 * input may be anything a user sent, so invalid UTF-8 bytes become U+FFFD
 * (the rejects file must stay valid JSON). @returns whether one did: the
 * string is then not the input. */
static bool append_json_text(lf_buf_t *b, const char *s, size_t len)
{
    size_t i = 0;
    bool lossy = false;

    lf_buf_append(b, "\"", 1);
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80         ? 1
                   : (c >> 5) == 6  ? 2
                   : (c >> 4) == 14 ? 3
                   : (c >> 3) == 30 ? 4
                                    : 0;
        if (c < 0x80) {
            if (c == '"' || c == '\\')
                lf_buf_printf(b, "\\%c", c);
            else if (c == '\n')
                lf_buf_puts(b, "\\n");
            else if (c == '\r')
                lf_buf_puts(b, "\\r");
            else if (c == '\t')
                lf_buf_puts(b, "\\t");
            else if (c < 0x20 || c == 0x7f)
                lf_buf_printf(b, "\\u%04x", c);
            else
                lf_buf_append(b, s + i, 1);
            i++;
        } else if (n && i + n <= len && lf_utf8_valid(s + i, n)) {
            lf_buf_append(b, s + i, n);
            i += n;
        } else {
            lf_buf_puts(b, "\xef\xbf\xbd"); /* U+FFFD */
            lossy = true;
            i++;
        }
    }
    lf_buf_append(b, "\"", 1);
    return lossy;
}

/* One line of the rejects file:
 * {"file":…,"line":N,"reason":"…","text":"<the original line>"}, and
 * "lossy":true when the text is not the line (not UTF-8, or @p lossy: cut
 * short), which is not re-sent until fixed (unwrap_reject()). */
static void reject_as(emit_t *em, int file, int64_t line, const char *reason,
                      const char *text, size_t len, bool lossy)
{
    const char *name = em->files[file];
    char q[600];

    lf_buf_reset(&em->out);
    lf_buf_puts(&em->out, "{\"file\":");
    append_json_text(&em->out, name, strlen(name));
    lf_buf_printf(&em->out, ",\"line\":%lld,\"reason\":", (long long)line);
    append_json_text(&em->out, reason, strlen(reason));
    lf_buf_puts(&em->out, ",\"text\":");
    if (append_json_text(&em->out, text, len) || lossy)
        lf_buf_puts(&em->out, ",\"lossy\":true");
    lf_buf_puts(&em->out, "}\n");
    if (fwrite(em->out.data, 1, em->out.len, em->rejects) != em->out.len ||
        fflush(em->rejects)) {
        if (!em->rejects_failed)
            LF_LOG(LF_LOG_ERR,
                   "msg=\"cannot write the rejects file\" file=%s error=%s",
                   em->rejects_name,
                   lf_log_quote(strerror(errno), q, sizeof(q)));
        em->rejects_failed = true;
    }
    LF_LOG(LF_LOG_DEBUG, "msg=\"line not sent\" file=%s line=%lld reason=%s",
           name, (long long)line, lf_log_quote(reason, q, sizeof(q)));
}

static void reject(emit_t *em, int file, int64_t line, const char *reason,
                   const char *text, size_t len)
{
    reject_as(em, file, line, reason, text, len, false);
}

static void on_delivery(const lf_delivery_t *dr, void *opaque)
{
    emit_t *em = opaque;
    ticket_t *t = dr->msg_opaque;

    em->reports++;
    if (!dr->err) {
        em->delivered++;
    } else {
        if (lf_producer_err_retriable(dr->err))
            em->failed_retriable++;
        else
            em->failed_permanent++;
        reject(em, t->file, t->line, dr->reason, t->text, t->len);
    }
    free(t);
}

/* ---------------------------------------------------------------------------
 * Reading lines: read(2) into a buffer, so a signal interrupts a blocked
 * read of stdin, lines of any length are measured without being kept, and
 * NUL bytes do not end a line.
 */

typedef struct reader_s {
    int fd;
    char *buf;
    size_t cap, start, end;
    bool eof, first;
    int64_t lineno;
    /* Called about every IDLE_MS while no input arrives (a slow pipe), so
     * delivery reports are served and progress reported meanwhile. */
    void (*idle)(void *arg);
    void *idle_arg;
} reader_t;

#define IDLE_MS 500

enum { RD_LINE, RD_LONG, RD_EOF, RD_ERROR, RD_STOP };

/* The buffer holds a whole line plus its CR and LF. */
#define READ_MAX ((size_t)LF_JSON_LINE_MAX + 2)

static int fill(reader_t *r)
{
    ssize_t n;

    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        size_t cap = r->cap * 2 > READ_MAX ? READ_MAX : r->cap * 2;
        char *b = realloc(r->buf, cap);
        if (!b) {
            errno = ENOMEM;
            return RD_ERROR;
        }
        r->buf = b;
        r->cap = cap;
    }
    for (;;) {
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        int rc = r->idle ? poll(&pfd, 1, IDLE_MS) : 1;
        if (rc == 0) {
            r->idle(r->idle_arg);
            if (lf_cli_signals)
                return RD_STOP;
            continue;
        }
        if (rc < 0 && errno == EINTR) {
            if (lf_cli_signals)
                return RD_STOP;
            continue;
        }
        n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n >= 0)
            break;
        if (errno != EINTR)
            return RD_ERROR;
        if (lf_cli_signals)
            return RD_STOP;
    }
    if (n == 0)
        r->eof = true;
    r->end += (size_t)n;
    return RD_LINE;
}

/* Skip the rest of an over-long line; *total counts its bytes. */
static int skip_line(reader_t *r, size_t *total)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        int rc;
        if (nl) {
            *total += (size_t)(nl - (r->buf + r->start));
            r->start = (size_t)(nl - r->buf) + 1;
            return RD_LONG;
        }
        *total += r->end - r->start;
        r->start = r->end = 0;
        if (r->eof)
            return RD_LONG;
        if ((rc = fill(r)) != RD_LINE)
            return rc;
    }
}

/**
 * The next line, without its LF, CR or a leading UTF-8 BOM (first line).
 * RD_LINE: line and len point into the reader's buffer until the next
 * call. RD_LONG: longer than LF_JSON_LINE_MAX; line and len hold its first
 * SNIPPET_MAX bytes (in snippet) and total its length. RD_EOF, RD_ERROR
 * (errno), RD_STOP (a signal while waiting for input).
 */
static int read_line(reader_t *r, const char **line, size_t *len, size_t *total,
                     char *snippet)
{
    size_t scanned = 0;
    int rc;

    for (;;) {
        char *p = r->buf + r->start + scanned;
        char *nl = memchr(p, '\n', r->end - r->start - scanned);
        if (nl || (r->eof && r->end > r->start)) {
            char *s = r->buf + r->start;
            size_t n = nl ? (size_t)(nl - s) : r->end - r->start;
            r->start += n + (nl ? 1 : 0);
            r->lineno++;
            if (n && s[n - 1] == '\r')
                n--;
            if (r->first) {
                r->first = false;
                if (n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
                    s += 3, n -= 3;
            }
            if (n > LF_JSON_LINE_MAX) { /* exactly MAX+1 without CR */
                *total = n;
                memcpy(snippet, s, SNIPPET_MAX);
                *line = snippet;
                *len = SNIPPET_MAX;
                return RD_LONG;
            }
            *line = s;
            *len = n;
            return RD_LINE;
        }
        if (r->eof)
            return RD_EOF;
        scanned = r->end - r->start;
        if (scanned >= READ_MAX) {
            /* No newline in the largest line we accept: keep the start of
             * it for the reject and skip the rest. */
            char *s = r->buf + r->start;
            size_t skip = 0;
            if (r->first && !memcmp(s, "\xef\xbb\xbf", 3))
                s += 3;
            r->first = false;
            memcpy(snippet, s, SNIPPET_MAX);
            *total = scanned;
            r->start = r->end = 0;
            r->lineno++;
            rc = skip_line(r, &skip);
            *total += skip;
            *line = snippet;
            *len = SNIPPET_MAX;
            return rc == RD_LONG ? RD_LONG : rc;
        }
        if ((rc = fill(r)) != RD_LINE)
            return rc;
    }
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

/* ---------------------------------------------------------------------------
 * Main loop.
 */

/* While events are in flight, every PROGRESS_MS: a progress line, or a
 * warning when no report came for PROGRESS_MS (the broker is away). */
static void progress(emit_t *em, lf_producer_t *p)
{
    int64_t now = lf_now_mono_ms();

    if (em->reports != em->reports_seen) {
        em->reports_seen = em->reports;
        em->last_report = now;
    }
    if (!p || now - em->last_progress < PROGRESS_MS ||
        lf_producer_inflight(p) <= 0)
        return;
    if (now - em->last_report >= PROGRESS_MS)
        LF_LOG(LF_LOG_WARNING,
               "msg=\"waiting for the broker: nothing acknowledged for "
               "%lld s; librdkafka retries until message.timeout.ms\" "
               "in_flight=%lld delivered=%lld",
               (long long)((now - em->last_report) / 1000),
               (long long)lf_producer_inflight(p), (long long)em->delivered);
    else
        LF_LOG(LF_LOG_INFO,
               "msg=\"progress\" read=%lld delivered=%lld in_flight=%lld",
               (long long)em->read, (long long)em->delivered,
               (long long)lf_producer_inflight(p));
    em->last_progress = now;
}

typedef struct idle_ctx_s {
    emit_t *em;
    lf_producer_t *p;
} idle_ctx_t;

/* Waiting for input: serve delivery reports, report progress. */
static void on_idle(void *arg)
{
    idle_ctx_t *c = arg;
    lf_producer_poll(c->p, 0);
    progress(c->em, c->p);
}

/* One line: parse, then reject it or hand it to the producer. */
static void emit_text(emit_t *em, lf_producer_t *p, int file, int64_t lineno,
                      const char *s, size_t len)
{
    char errstr[512];
    lf_event_t ev;
    ticket_t *t;
    lf_err_t err;

    em->read++;
    if (lf_json_parse_event(s, len, &ev, errstr, sizeof(errstr))) {
        em->rejected++;
        reject(em, file, lineno, errstr, s, len);
        return;
    }
    if (!p) { /* --dry-run: what the producer would refuse, too */
        if (em->check &&
            lf_codec_can_carry(em->check, &ev, errstr, sizeof(errstr))) {
            em->rejected++;
            reject(em, file, lineno, errstr, s, len);
        }
        lf_event_clear(&ev);
        return;
    }
    if (!(t = malloc(sizeof(*t) + (len ? len : 1)))) {
        lf_event_clear(&ev);
        em->unsent++;
        reject(em, file, lineno, "not sent: out of memory", s, len);
        return;
    }
    t->file = file;
    t->line = lineno;
    t->len = len;
    memcpy(t->text, s, len);
    err = lf_producer_emit_opaque(p, &ev, t, errstr, sizeof(errstr));
    lf_event_clear(&ev);
    if (err) {
        /* No delivery report will come: account for the line here. */
        if (err == LF_ERR_INVALID)
            em->rejected++;
        else if (err == LF_ERR_TEMPORARY)
            em->unsent++;
        else
            em->failed_permanent++;
        reject(em, file, lineno, errstr, s, len);
        free(t);
    }
    if (!(++em->lines_since_progress & 255))
        progress(em, p); /* every 256 lines: well under PROGRESS_MS */
}

/* A line of a rejects file (reject()'s object: file, line, reason and
 * text, and lossy, nothing else) is the line it quotes: a rejects file is
 * re-sent as it is, after its lines were fixed. A NUL in a text is the
 * line's own (refused again for it). @returns the parsed object (the
 * caller's to json_decref()) with *s, *len set to its text and *lossy to
 * its mark, or NULL for any other line (left as it is). */
static json_t *unwrap_reject(const char **s, size_t *len, bool *lossy)
{
    json_t *o, *text, *mark;

    if (*len < 9 || memcmp(*s, "{\"file\":", 8) ||
        !(o = json_loadb(*s, *len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                         NULL)))
        return NULL;
    text = json_object_get(o, "text");
    mark = json_object_get(o, "lossy");
    if (json_object_size(o) != 4u + (mark != NULL) || !json_is_string(text) ||
        (mark && !json_is_boolean(mark)) ||
        !json_is_string(json_object_get(o, "file")) ||
        !json_is_integer(json_object_get(o, "line")) ||
        !json_is_string(json_object_get(o, "reason"))) {
        json_decref(o);
        return NULL;
    }
    *s = json_string_value(text);
    *len = json_string_length(text);
    *lossy = json_is_true(mark);
    return o;
}

static void emit_line(emit_t *em, lf_producer_t *p, int file, int64_t lineno,
                      const char *s, size_t len)
{
    bool lossy = false;
    json_t *wrapper = unwrap_reject(&s, &len, &lossy);

    /* Its U+FFFD stand for bytes the line had: sending it would send
     * what no one wrote. */
    if (lossy) {
        em->read++;
        em->rejected++;
        reject_as(em, file, lineno,
                  "a reject whose text is not its line (cut, or with U+FFFD "
                  "in place of bytes that were not UTF-8); fix the text and "
                  "remove \"lossy\" to send it",
                  s, len, true);
    } else {
        emit_text(em, p, file, lineno, s, len);
    }
    json_decref(wrapper);
}

/* Read one input to its end (or a signal). */
static void emit_file(emit_t *em, lf_producer_t *p, int file)
{
    const char *name = em->files[file];
    idle_ctx_t idle = {em, p};
    reader_t r = {.fd = STDIN_FILENO,
                  .first = true,
                  .idle = p ? on_idle : NULL,
                  .idle_arg = &idle};
    static char snippet[SNIPPET_MAX];
    char reason[160], q[600];
    const char *line = NULL;
    size_t len = 0, total = 0;
    int rc;

    if (strcmp(name, "-") && (r.fd = open(name, O_RDONLY | O_CLOEXEC)) < 0) {
        LF_LOG(LF_LOG_ERR, "msg=\"cannot open input\" file=%s error=%s", name,
               lf_log_quote(strerror(errno), q, sizeof(q)));
        if (!em->exit_io)
            em->exit_io = EX_NOINPUT;
        return;
    }
    r.cap = 1 << 16;
    if (!(r.buf = malloc(r.cap))) {
        LF_LOG(LF_LOG_ERR, "msg=\"out of memory\"");
        em->exit_io = LF_EX_IOERR;
        goto out;
    }
    while (!lf_cli_signals) {
        rc = read_line(&r, &line, &len, &total, snippet);
        if (rc == RD_LINE) {
            if (blank(line, len))
                em->blank++;
            else
                emit_line(em, p, file, r.lineno, line, len);
        } else if (rc == RD_LONG) {
            snprintf(reason, sizeof(reason),
                     "line of %zu bytes, more than the %d allowed (text holds "
                     "its first %d bytes)",
                     total, LF_JSON_LINE_MAX, SNIPPET_MAX);
            em->read++;
            em->rejected++;
            reject_as(em, file, r.lineno, reason, line, len, true);
        } else if (rc == RD_ERROR) {
            LF_LOG(LF_LOG_ERR,
                   "msg=\"cannot read input\" file=%s line=%lld error=%s", name,
                   (long long)r.lineno + 1,
                   lf_log_quote(strerror(errno), q, sizeof(q)));
            em->exit_io = LF_EX_IOERR;
            break;
        } else {
            break; /* RD_EOF, RD_STOP */
        }
    }
out:
    free(r.buf);
    if (r.fd != STDIN_FILENO)
        close(r.fd);
}

/* Wait for every report. On a signal, wait STOP_FLUSH_MS more at most (a
 * second signal: not at all), then purge: the rest are reported failed and
 * land in the rejects file. */
static void drain(emit_t *em, lf_producer_t *p)
{
    int64_t deadline = INT64_MAX;

    while (lf_producer_flush(p, 500) != LF_OK) {
        if (lf_cli_signals && deadline == INT64_MAX) {
            deadline = lf_now_mono_ms() + STOP_FLUSH_MS;
            LF_LOG(LF_LOG_NOTICE,
                   "msg=\"stopping: waiting for in-flight events\" "
                   "in_flight=%lld wait_s=%d",
                   (long long)lf_producer_inflight(p), STOP_FLUSH_MS / 1000);
        }
        if (lf_cli_signals > 1 || lf_now_mono_ms() >= deadline) {
            LF_LOG(LF_LOG_WARNING,
                   "msg=\"giving up on in-flight events; they are in the "
                   "rejects file\" in_flight=%lld",
                   (long long)lf_producer_inflight(p));
            lf_producer_purge(p, 5000);
            break;
        }
        progress(em, p);
    }
}

/* ---------------------------------------------------------------------------
 * Command line.
 */

/* What the command line asks for. */
typedef struct emit_cfg_s {
    const char *rejects; /* --rejects FILE, or NULL: stderr */
    bool dry_run;
    const char **files; /* the inputs, "-" for stdin */
    int nfiles;
} emit_cfg_t;

static lf_err_t own_opt(void *arg, int opt, const char *val, char *errstr,
                        size_t errstr_size)
{
    emit_cfg_t *cfg = arg;

    (void)errstr;
    (void)errstr_size;
    if (opt == 'r')
        cfg->rejects = val;
    else /* 'n' */
        cfg->dry_run = true;
    return LF_OK;
}

static const struct option longopts[] = {
    {"rejects", required_argument, NULL, 'r'},
    {"dry-run", no_argument, NULL, 'n'},
    {NULL, 0, NULL, 0}};

/* The notes take numbers from the code (line limit, waits): filled once by
 * notes_text() before the usage can be printed. */
static char notes[2048];

static lf_cli_spec_t spec = {
    .prog = PROG,
    .synopsis = PROG
    " [-b BROKERS] [-t TOPIC] [-X key=value]... [-c FILE]\n"
    "                     [--rejects FILE] [--dry-run] [-v|-q] [FILE...]\n"
    "       " PROG " -X dump | --help | --version\n"
    "\n"
    "Reads lead events as JSON lines (one object per line, the flat\n"
    "mapping of the LeadEvent schema) from the FILEs, or stdin if none\n"
    "or \"-\", and produces each to Kafka as framed Avro, keyed by\n"
    "lead_id, with CloudEvents headers.\n"
    "\n"
    "Values are written in contract v2 (schema id 2: account_id, and the\n"
    "merged, voided and erased events); -X contract.version=1 writes v1\n"
    "and rejects a line v1 cannot carry, saying so.\n"
    "\n"
    "Every non-blank line ends as exactly one of: delivered (the broker\n"
    "acknowledged it, acks=all); rejected (invalid JSON or contract);\n"
    "failed (not delivered after librdkafka's retries within\n"
    "message.timeout.ms, or given up on at a signal). Rejected and\n"
    "failed lines go to the rejects file, one JSON object per line:\n"
    "  {\"file\":...,\"line\":N,\"reason\":\"...\",\"text\":\"<the "
    "line>\"}\n"
    "Fix and re-send them: a line without event_id gets an id derived\n"
    "from its content, so re-sending never creates a second event.\n"
    "Line numbers count from 1 and include blank lines; blank lines\n"
    "(only spaces or tabs) are skipped and counted apart, not \"read\".\n"
    "A UTF-8 BOM at the start of a file and CR before LF are removed.",
    .shared = LF_CLI_BROKERS | LF_CLI_TOPIC | LF_CLI_CONF | LF_CLI_VERBOSE,
    .own_help =
        "  -r, --rejects FILE     write rejected and failed lines to FILE\n"
        "                         (truncated first); default: stderr\n"
        "  -n, --dry-run          parse and validate only; produce nothing\n",
    .notes = notes,
    .shortopts = "r:n",
    .longopts = longopts,
    .own = own_opt,
    .max_args = -1,
};

static void notes_text(void)
{
    snprintf(
        notes, sizeof(notes),
        "Lines longer than %d bytes are rejected (the reject holds the\n"
        "first %d bytes). Invalid UTF-8 in a reject's text shows as U+FFFD.\n"
        "Both are marked \"lossy\":true; such a reject is refused when\n"
        "re-sent until its text is fixed and the mark removed.\n"
        "A summary goes to stderr: read, delivered, rejected, failed,\n"
        "blank, elapsed, events/s (-qq hides it).\n"
        "\n"
        "Producer defaults set here (-X changes them):\n"
        "enable.idempotence=true "
        "acks=all compression.type=lz4 linger.ms=" LF_PRODUCER_LINGER_MS "\n"
        "partitioner=murmur2_random "
        "message.timeout.ms=" LF_PRODUCER_MESSAGE_TIMEOUT_MS "\n"
        "\n"
        "Secrets never go on the command line: put sasl.password,\n"
        "ssl.key.password and schema.registry.basic.auth.user.info in the -c\n"
        "file (chmod 600) or in LEADFLOW_* variables (LEADFLOW_SASL_PASSWORD\n"
        "is sasl.password); -X dump masks them.\n"
        "\n"
        "If the broker is down, events wait in librdkafka and are retried\n"
        "until message.timeout.ms; progress is logged every %d s.\n"
        "SIGINT or SIGTERM: stop reading, wait up to %d s for the events in\n"
        "flight (a second signal: no wait), write the rest to the rejects\n"
        "file as failed, print the summary, exit.\n"
        "\n"
        "Exit status (the first that applies):\n"
        "  74  the rejects file could not be written: it lacks lines, so\n"
        "      send the input again, not it\n"
        "  69  some lines failed for a reason that will repeat (e.g. topic\n"
        "      not authorized, message too large, fatal producer error)\n"
        "  75  some lines failed for a temporary reason (broker unreachable,\n"
        "      timed out) or were not read because of a signal; re-send\n"
        "      the rejects file or run again; or the schema registry\n"
        "      (schema.registry.url) stayed unreachable: nothing was read\n"
        "  74  an input could not be read\n"
        "  66  an input file could not be opened\n"
        "  65  some lines were rejected (invalid JSON or contract)\n"
        "  0   every line delivered (or, with --dry-run, valid)\n"
        "  64  usage error; 78 bad configuration; 70 internal error\n",
        LF_JSON_LINE_MAX, SNIPPET_MAX, PROGRESS_MS / 1000,
        STOP_FLUSH_MS / 1000);
}

static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Fill @p cfg and @p cli from argv. */
static lf_cli_next_t parse(int argc, char **argv, lf_cli_t *cli,
                           emit_cfg_t *cfg)
{
    static const char *stdin_only[] = {"-"};
    lf_cli_next_t next;

    notes_text();
    if ((next = lf_cli_parse(cli, &spec, cfg, argc, argv)) != LF_CLI_RUN)
        return next;
    cfg->files = cli->nargs ? (const char **)cli->args : stdin_only;
    cfg->nfiles = cli->nargs ? cli->nargs : 1;
    if (cfg->rejects)
        for (int i = 0; i < cfg->nfiles; i++)
            if (same_file(cfg->rejects, cfg->files[i]))
                return lf_cli_usage_error(
                    cli,
                    "--rejects \"%s\" is also an input; it would be "
                    "truncated before it is read",
                    cfg->rejects);
    return LF_CLI_RUN;
}

/* ---------------------------------------------------------------------------
 * The run.
 */

/* Open the rejects file (stderr without --rejects). @returns LF_OK, or
 * LF_ERR_IO with the reason in errstr. */
static lf_err_t rejects_open(emit_t *em, const emit_cfg_t *cfg, char *errstr,
                             size_t errstr_size)
{
    em->rejects = stderr;
    em->rejects_name = cfg->rejects ? cfg->rejects : "(stderr)";
    if (cfg->rejects && !(em->rejects = fopen(cfg->rejects, "w")))
        return lf_seterr(LF_ERR_IO, errstr, errstr_size, "--rejects %s: %s",
                         cfg->rejects, strerror(errno));
    return LF_OK;
}

static void summary(const emit_t *em, const emit_cfg_t *cfg, int64_t t0)
{
    double secs = (double)(lf_now_mono_ms() - t0) / 1000.0;
    int64_t failed = em->failed_retriable + em->failed_permanent + em->unsent;

    LF_LOG(LF_LOG_NOTICE,
           "msg=\"summary\" read=%lld delivered=%lld rejected=%lld "
           "failed=%lld blank=%lld elapsed_s=%.3f events_per_s=%.0f "
           "rejects=%s%s%s",
           (long long)em->read, (long long)em->delivered,
           (long long)em->rejected, (long long)failed, (long long)em->blank,
           secs, secs > 0 ? (double)em->delivered / secs : 0.0,
           em->rejects_name, cfg->dry_run ? " dry_run=true" : "",
           lf_cli_signals ? " interrupted=true" : "");
}

/* The exit status of a finished run: the first that applies (--help). */
static int exit_code(const emit_t *em)
{
    /* First: a 75 would say "re-send the rejects file", which lacks lines. */
    if (em->rejects_failed)
        return LF_EX_IOERR;
    if (em->failed_permanent)
        return LF_EX_UNAVAILABLE;
    if (em->failed_retriable || em->unsent || lf_cli_signals)
        return LF_EX_TEMPFAIL;
    if (em->exit_io == LF_EX_IOERR)
        return LF_EX_IOERR;
    if (em->exit_io)
        return em->exit_io;
    return em->rejected ? LF_EX_DATAERR : LF_EX_OK;
}

/* --dry-run: the settings a real run would refuse before sending (every
 * librdkafka key and value, the contract version, the registry's), and
 * the contract's checks into *check. */
static lf_err_t dry_run_check(const lf_conf_t *conf, lf_codec_t **check,
                              char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *rkc = lf_conf_to_rdkafka(conf, errstr, errstr_size);

    if (!rkc)
        return LF_ERR_CONFIG;
    rd_kafka_conf_destroy(rkc);
    return lf_codec_from_conf(conf, check, errstr, errstr_size);
}

/* Read every input, produce, drain, summarise. @returns an exit code (a
 * run's outcome is more than one lf_err_t: see exit_code()). */
static int run(const lf_conf_t *conf, const emit_cfg_t *cfg)
{
    emit_t em = {.files = cfg->files};
    lf_producer_t *p = NULL;
    char errstr[512];
    lf_err_t err;
    int64_t t0;
    int rc;

    /* First: a signal during the wait for a registry stops it too; and a
     * reader of the rejects (or of stderr) that goes away is a failed
     * write (74, summarised), not a death by SIGPIPE. A signal also
     * interrupts a read of stdin. */
    lf_cli_catch_signals(true);
    if (rejects_open(&em, cfg, errstr, sizeof(errstr))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return LF_EX_IOERR;
    }
    if (!cfg->dry_run) {
        if ((err = lf_producer_create_stoppable(conf, &lf_cli_signals, &p,
                                                errstr, sizeof(errstr)))) {
            fprintf(stderr, PROG ": %s\n", errstr);
            if (em.rejects != stderr)
                fclose(em.rejects);
            return err == LF_ERR_TEMPORARY ? LF_EX_TEMPFAIL : LF_EX_CONFIG;
        }
        lf_producer_set_delivery_cb(p, on_delivery, &em);
    } else if ((err = dry_run_check(conf, &em.check, errstr, sizeof(errstr)))) {
        fprintf(stderr, PROG ": %s\n", errstr);
        if (em.rejects != stderr)
            fclose(em.rejects);
        return err == LF_ERR_NOMEM ? LF_EX_SOFTWARE : LF_EX_CONFIG;
    }
    t0 = em.last_progress = em.last_report = lf_now_mono_ms();
    LF_LOG(LF_LOG_INFO, "msg=\"starting\" brokers=%s topic=%s inputs=%d%s",
           lf_conf_get(conf, "bootstrap.servers"),
           lf_conf_get(conf, LF_CONF_TOPIC), cfg->nfiles,
           cfg->dry_run ? " dry_run=true" : "");
    for (int i = 0; i < cfg->nfiles && !lf_cli_signals; i++)
        emit_file(&em, p, i);
    if (p) {
        drain(&em, p);
        lf_producer_destroy(p); /* serves any last report */
    }
    summary(&em, cfg, t0);
    if (em.rejects != stderr && fclose(em.rejects))
        em.rejects_failed = true;
    rc = exit_code(&em);
    lf_codec_destroy(em.check);
    lf_buf_free(&em.out);
    return rc;
}

int main(int argc, char **argv)
{
    emit_cfg_t cfg = {0};
    lf_conf_t *conf = NULL;
    char errstr[512];
    lf_cli_next_t next;
    lf_cli_t cli;
    lf_err_t err;
    int rc;

    lf_log_init("emit");
    /* environment < -c FILE < -X/-b/-t, then the producer defaults */
    if ((next = parse(argc, argv, &cli, &cfg)) != LF_CLI_RUN)
        rc = lf_cli_exit_code(next);
    else if ((err = lf_cli_producer_conf(&cli, &conf, errstr, sizeof(errstr))))
        rc = lf_cli_conf_failed(&cli, err, errstr);
    else if (cli.dump)
        rc = lf_cli_dump(&cli, conf);
    else
        rc = run(conf, &cfg);
    lf_conf_destroy(conf);
    lf_cli_free(&cli);
    return rc;
}
