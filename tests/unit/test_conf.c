/* test_conf.c: the key=value configuration namespace (lf_conf). */
#include "lf_conf.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static lf_conf_t *conf;

static void setup(void)
{
    conf = lf_conf_new();
    cr_assert_not_null(conf);
}

static void teardown(void)
{
    lf_conf_destroy(conf);
    conf = NULL;
}

TestSuite(conf, .init = setup, .fini = teardown);

Test(conf, set_get_override)
{
    char err[256] = "";

    cr_expect_null(lf_conf_get(conf, "topic"));
    cr_assert_eq(lf_conf_set(conf, "topic", "a", err, sizeof(err)), LF_OK);
    cr_expect_str_eq(lf_conf_get(conf, "topic"), "a");
    /* a later setting replaces an earlier one (-X over -c over env) */
    cr_assert_eq(lf_conf_set(conf, "topic", "b", err, sizeof(err)), LF_OK);
    cr_expect_str_eq(lf_conf_get(conf, "topic"), "b");
    /* a default never overrides */
    cr_assert_eq(lf_conf_default(conf, "topic", "c"), LF_OK);
    cr_expect_str_eq(lf_conf_get(conf, "topic"), "b");
    cr_assert_eq(lf_conf_default(conf, "group.id", "g"), LF_OK);
    cr_expect_str_eq(lf_conf_get(conf, "group.id"), "g");
    /* the value is copied */
    char v[] = "mutable";
    cr_assert_eq(lf_conf_set(conf, "k", v, err, sizeof(err)), LF_OK);
    v[0] = 'X';
    cr_expect_str_eq(lf_conf_get(conf, "k"), "mutable");
    cr_expect_eq(lf_conf_set(conf, "", "x", err, sizeof(err)), LF_ERR_INVALID);
    cr_expect(strstr(err, "empty key") != NULL, "%s", err);
}

Test(conf, many_keys)
{
    char key[32], val[32], err[256];

    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        cr_assert_eq(lf_conf_set(conf, key, val, err, sizeof(err)), LF_OK);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        cr_expect_str_eq(lf_conf_get(conf, key), val);
    }
}

Test(conf, set_kv)
{
    char err[256] = "";

    cr_assert_eq(
        lf_conf_set_kv(conf, "bootstrap.servers=h:9092", err, sizeof(err)),
        LF_OK);
    cr_expect_str_eq(lf_conf_get(conf, "bootstrap.servers"), "h:9092");
    /* only the first '=' splits: conninfo values hold '=' */
    cr_assert_eq(
        lf_conf_set_kv(conf, "db=host=/tmp port=5433", err, sizeof(err)),
        LF_OK);
    cr_expect_str_eq(lf_conf_get(conf, "db"), "host=/tmp port=5433");
    cr_assert_eq(lf_conf_set_kv(conf, "empty=", err, sizeof(err)), LF_OK);
    cr_expect_str_eq(lf_conf_get(conf, "empty"), "");
}

Test(conf, set_kv_errors)
{
    static const char *bad[] = {"novalue", "=value", "", "="};
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_expect_eq(lf_conf_set_kv(conf, bad[i], err, sizeof(err)),
                     LF_ERR_INVALID, "\"%s\" accepted", bad[i]);
        cr_expect(strstr(err, "key=value") != NULL, "\"%s\": %s", bad[i], err);
    }
    char longkey[400];
    memset(longkey, 'k', 300);
    strcpy(longkey + 300, "=v");
    cr_expect_eq(lf_conf_set_kv(conf, longkey, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect(strstr(err, "too long") != NULL, "%s", err);
}

/* Write @p text to a fresh temporary file; returns its path (static). */
static const char *write_tmp(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/lf_test_conf_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(conf, load_file)
{
    const char *path = write_tmp("# leadflow test configuration\n"
                                 "\n"
                                 "   # an indented comment\n"
                                 "bootstrap.servers = 127.0.0.1:9092 \n"
                                 "topic=lead-events-test\n"
                                 "\tgroup.id\t=\tprojector\t\n"
                                 "db=host=/tmp dbname=funnel\n");
    char err[256] = "";

    cr_assert_eq(lf_conf_load_file(conf, path, err, sizeof(err)), LF_OK, "%s",
                 err);
    cr_expect_str_eq(lf_conf_get(conf, "bootstrap.servers"), "127.0.0.1:9092");
    cr_expect_str_eq(lf_conf_get(conf, "topic"), "lead-events-test");
    cr_expect_str_eq(lf_conf_get(conf, "group.id"), "projector");
    cr_expect_str_eq(lf_conf_get(conf, "db"), "host=/tmp dbname=funnel");
    cr_expect_null(lf_conf_get(conf, "# leadflow test configuration"));
    unlink(path);
}

Test(conf, load_file_bad_line)
{
    const char *path = write_tmp("# comment\n"
                                 "topic=t\n"
                                 "\n"
                                 "this line has no equals sign\n"
                                 "group.id=never-read\n");
    char err[256] = "", want[128];

    cr_expect_eq(lf_conf_load_file(conf, path, err, sizeof(err)),
                 LF_ERR_INVALID);
    snprintf(want, sizeof(want), "%s:4:", path);
    cr_expect(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err,
              want);
    cr_expect(strstr(err, "key=value") != NULL, "%s", err);
    cr_expect_str_eq(lf_conf_get(conf, "topic"), "t");
    unlink(path);
}

/* One line is one setting: a line past LF_CONF_LINE_MAX is refused, not
 * read in pieces whose tail becomes a setting of its own; a NUL would cut
 * the value. A line of exactly the maximum is read whole. */
Test(conf, load_file_long_and_nul_lines)
{
    size_t n = LF_CONF_LINE_MAX + 100;
    char *text = malloc(n + 64), err[256] = "", want[128];
    const char *path;

    cr_assert_not_null(text);
    memcpy(text, "client.id=", 10);
    memset(text + 10, 'A', n - 10);
    strcpy(text + n - 20, "topic=injected\n");
    path = write_tmp(text);
    cr_expect_eq(lf_conf_load_file(conf, path, err, sizeof(err)),
                 LF_ERR_INVALID);
    snprintf(want, sizeof(want), "%s:1: line longer than", path);
    cr_expect(strstr(err, want), "%s", err);
    cr_expect_null(lf_conf_get(conf, "topic"));
    unlink(path);

    memset(text + 10, 'B', LF_CONF_LINE_MAX - 10);
    strcpy(text + LF_CONF_LINE_MAX, "\ntopic=t\n");
    path = write_tmp(text);
    cr_expect_eq(lf_conf_load_file(conf, path, err, sizeof(err)), LF_OK, "%s",
                 err);
    cr_expect_eq(strlen(lf_conf_get(conf, "client.id")), LF_CONF_LINE_MAX - 10);
    cr_expect_str_eq(lf_conf_get(conf, "topic"), "t");
    unlink(path);
    free(text);

    static const char nul[] = "topic=a\0b\ngroup.id=g\n";
    strcpy(want, "/tmp/lf_test_conf_XXXXXX");
    int fd = mkstemp(want);
    cr_assert_eq(write(fd, nul, sizeof(nul) - 1), (ssize_t)sizeof(nul) - 1);
    close(fd);
    cr_expect_eq(lf_conf_load_file(conf, want, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect(strstr(err, ":1: a NUL byte in the line"), "%s", err);
    unlink(want);
    /* ... on the last line too, with no newline after it */
    static const char nul_last[] = "topic=t\ngroup.id=a\0b";
    strcpy(want, "/tmp/lf_test_conf_XXXXXX");
    fd = mkstemp(want);
    cr_assert_eq(write(fd, nul_last, sizeof(nul_last) - 1),
                 (ssize_t)sizeof(nul_last) - 1);
    close(fd);
    cr_expect_eq(lf_conf_load_file(conf, want, err, sizeof(err)),
                 LF_ERR_INVALID);
    cr_expect(strstr(err, ":2: a NUL byte in the line"), "%s", err);
    unlink(want);
    /* a last line with no newline is read whole */
    path = write_tmp("topic=t\ngroup.id=g");
    cr_expect_eq(lf_conf_load_file(conf, path, err, sizeof(err)), LF_OK, "%s",
                 err);
    cr_expect_str_eq(lf_conf_get(conf, "group.id"), "g");
    unlink(path);
}

/* A directory is no settings file (it read as an empty one). */
Test(conf, load_file_directory)
{
    char err[256] = "";

    cr_expect_eq(lf_conf_load_file(conf, "/tmp", err, sizeof(err)), LF_ERR_IO);
    cr_expect(strstr(err, "/tmp: Is a directory"), "%s", err);
}

Test(conf, load_file_missing)
{
    char err[256] = "";

    cr_expect_eq(
        lf_conf_load_file(conf, "/nonexistent/leadflow.conf", err, sizeof(err)),
        LF_ERR_IO);
    cr_expect(strstr(err, "/nonexistent/leadflow.conf") != NULL, "%s", err);
}

Test(conf, load_env)
{
    setenv("LEADFLOW_BROKERS", "b1:9092", 1);
    setenv("LEADFLOW_TOPIC", "env-topic", 1);
    setenv("LEADFLOW_GROUP", "env-group", 1);
    setenv("LEADFLOW_DB", "dbname=env", 1);
    setenv("LEADFLOW_QUEUE_BUFFERING_MAX_MS", "7", 1);
    setenv("LEADFLOW_BIN", "/some/bin", 1);
    setenv("LEADFLOW_DEMO_LEADS", "50", 1); /* tools/demo.sh's knobs */
    lf_conf_load_env(conf);
    cr_expect_str_eq(lf_conf_get(conf, "bootstrap.servers"), "b1:9092");
    cr_expect_str_eq(lf_conf_get(conf, "topic"), "env-topic");
    cr_expect_str_eq(lf_conf_get(conf, "group.id"), "env-group");
    cr_expect_str_eq(lf_conf_get(conf, "db"), "dbname=env");
    cr_expect_str_eq(lf_conf_get(conf, "queue.buffering.max.ms"), "7");
    cr_expect_null(lf_conf_get(conf, "bin"));
    cr_expect_null(lf_conf_get(conf, "demo.leads"));
}

Test(conf, is_ours_and_secret)
{
    cr_expect(lf_conf_is_ours("topic"));
    cr_expect(lf_conf_is_ours("db"));
    cr_expect(lf_conf_is_ours("leadflow.batch.size"));
    cr_expect(lf_conf_is_ours("schema.registry.url"));
    cr_expect_not(lf_conf_is_ours("bootstrap.servers"));
    cr_expect_not(lf_conf_is_ours("group.id"));
    cr_expect_not(lf_conf_is_ours("topics"));
    cr_expect_not(lf_conf_is_ours("dbx"));

    cr_expect(lf_conf_is_secret("sasl.password"));
    cr_expect(lf_conf_is_secret("ssl.key.password"));
    cr_expect(lf_conf_is_secret("db"));
    cr_expect_not(lf_conf_is_secret("bootstrap.servers"));
    cr_expect_not(lf_conf_is_secret("topic"));
}

/* What must not be on a command line: the setting's value holds a secret. */
Test(conf, holds_secret)
{
    cr_expect(lf_conf_holds_secret("sasl.password", "p"));
    cr_expect(lf_conf_holds_secret("sasl.oauthbearer.client.secret", "s"));
    cr_expect(
        lf_conf_holds_secret("schema.registry.basic.auth.user.info", "u:p"));
    cr_expect(lf_conf_holds_secret("ssl.key.pem", "-----BEGIN"));
    cr_expect(lf_conf_holds_secret("schema.registry.url", "https://u:p@reg"));
    cr_expect(lf_conf_holds_secret("db", "host=h password=p"));
    cr_expect(lf_conf_holds_secret("db", "postgresql://u:p@h/d"));
    cr_expect(lf_conf_holds_secret("", "postgresql://u:p@h/d?sslmode=x"));
    cr_expect_not(lf_conf_holds_secret("db", "host=h dbname=d user=u"));
    cr_expect_not(lf_conf_holds_secret("db", "postgresql://u@h/d"));
    cr_expect_not(lf_conf_holds_secret("sasl.username", "u"));
    cr_expect_not(lf_conf_holds_secret("sasl.mechanism", "PLAIN"));
    cr_expect_not(lf_conf_holds_secret("ssl.key.location", "/etc/k.pem"));

    cr_expect(lf_conf_plain_key("schema.registry.url"));
    cr_expect(lf_conf_plain_key("a-b_c.9"));
    cr_expect_not(lf_conf_plain_key(""));
    cr_expect_not(lf_conf_plain_key("bad key"));
    cr_expect_not(lf_conf_plain_key("postgresql://u:p@h/d?sslmode"));
    cr_expect_not(lf_conf_plain_key("x\nlevel"));
}

Test(conf, to_rdkafka)
{
    char err[512] = "", val[256];
    size_t n = sizeof(val);

    lf_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", err, sizeof(err));
    lf_conf_set(conf, "topic", "t", err, sizeof(err));
    lf_conf_set(conf, "db", "dbname=x", err, sizeof(err));
    lf_conf_set(conf, "leadflow.anything", "1", err, sizeof(err));
    rd_kafka_conf_t *rkc = lf_conf_to_rdkafka(conf, err, sizeof(err));
    cr_assert_not_null(rkc, "%s", err);
    cr_expect_eq(rd_kafka_conf_get(rkc, "bootstrap.servers", val, &n),
                 RD_KAFKA_CONF_OK);
    cr_expect_str_eq(val, "127.0.0.1:1");
    rd_kafka_conf_destroy(rkc);
}

Test(conf, to_rdkafka_unknown_key)
{
    char err[512] = "";

    lf_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", err, sizeof(err));
    lf_conf_set(conf, "no.such.property", "1", err, sizeof(err));
    cr_expect_null(lf_conf_to_rdkafka(conf, err, sizeof(err)));
    cr_expect(strstr(err, "\"no.such.property\"") != NULL,
              "error \"%s\" does not name the key", err);
    /* one that came from a stray LEADFLOW_* variable is named by it */
    lf_conf_t *c2 = lf_conf_new();
    setenv("LEADFLOW_CONFIG", "/etc/leadflow.conf", 1);
    lf_conf_load_env(c2);
    unsetenv("LEADFLOW_CONFIG");
    cr_expect_null(lf_conf_to_rdkafka(c2, err, sizeof(err)));
    lf_conf_destroy(c2);
    cr_expect(strstr(err, "\"config\" (from the environment variable "
                          "LEADFLOW_CONFIG)"),
              "%s", err);
}

Test(conf, to_rdkafka_bad_value)
{
    char err[512] = "";

    lf_conf_set(conf, "acks", "banana", err, sizeof(err));
    cr_expect_null(lf_conf_to_rdkafka(conf, err, sizeof(err)));
    cr_expect(strstr(err, "\"acks\"") != NULL,
              "error \"%s\" does not name the key", err);
}

Test(conf, dump_masks_secrets)
{
    char *text = NULL;
    size_t size = 0;
    FILE *fp = open_memstream(&text, &size);
    char err[64];

    cr_assert_not_null(fp);
    lf_conf_set(conf, "topic", "t", err, sizeof(err));
    lf_conf_set(conf, "sasl.password", "hunter2", err, sizeof(err));
    lf_conf_set(conf, "db", "password=hunter3", err, sizeof(err));
    lf_conf_set(conf, "acks", "all", err, sizeof(err));
    lf_conf_dump(conf, fp);
    fclose(fp);
    cr_expect_str_eq(text, "acks=all\ndb=***\nsasl.password=***\ntopic=t\n");
    free(text);
}

/* A URL's user information is as secret as a password: masked in the
 * dump whatever the key, each URL of a list. */
Test(conf, dump_masks_url_credentials)
{
    char *text = NULL;
    size_t size = 0;
    FILE *fp = open_memstream(&text, &size);
    char err[64];

    cr_assert_not_null(fp);
    lf_conf_set(conf, "schema.registry.url",
                "http://user:p6@reg:8081,https://reg2/x?a=b@c,"
                "https://u@r3:1/",
                err, sizeof(err));
    lf_conf_set(conf, "bootstrap.servers", "b1:9092", err, sizeof(err));
    lf_conf_dump(conf, fp);
    fclose(fp);
    cr_expect_str_eq(text, "bootstrap.servers=b1:9092\n"
                           "schema.registry.url=http://***@reg:8081,"
                           "https://reg2/x?a=b@c,https://***@r3:1/\n");
    free(text);
}

/* A settings file with a password in a URL, readable by others, draws
 * the warning a password under its own key does. */
Test(conf, load_file_warns_of_url_password)
{
    const char *path =
        write_tmp("schema.registry.url=http://u:pw@registry:8081\n");
    char err[256] = "", log[1024] = "", tmpl[] = "/tmp/lf_conf_log.XXXXXX";
    int fd = mkstemp(tmpl), saved = dup(STDERR_FILENO);
    ssize_t n;

    cr_assert(fd >= 0 && saved >= 0);
    cr_assert_eq(chmod(path, 0644), 0);
    dup2(fd, STDERR_FILENO); /* lf_log writes to fd 2 */
    cr_expect_eq(lf_conf_load_file(conf, path, err, sizeof(err)), LF_OK, "%s",
                 err);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(fd, log, sizeof(log) - 1, 0);
    close(fd);
    unlink(tmpl);
    unlink(path);
    cr_assert(n > 0, "nothing logged");
    cr_expect(strstr(log, "holds a secret and others can read it"), "%s", log);
}

/* A key under leadflow's own prefixes that leadflow does not read is a
 * typo: refused, naming it. */
Test(conf, check_refuses_unknown_reserved_keys)
{
    static const char *const bad[] = {"schema.registry.urll",
                                      "pseudonym.key.fil", "leadflow.x"};
    static const char *const known[] = {"topic", "schema.registry.url",
                                        "pseudonym.key.file", NULL};
    char err[256] = "";

    lf_conf_set(conf, "schema.registry.url", "http://r", err, sizeof(err));
    lf_conf_set(conf, "pseudonym.key.file", "/k", err, sizeof(err));
    lf_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    cr_expect_eq(lf_conf_check(conf, known, err, sizeof(err)), LF_OK, "%s",
                 err);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        lf_conf_t *c = lf_conf_new();
        cr_assert_not_null(c);
        lf_conf_set(c, bad[i], "1", err, sizeof(err));
        cr_expect_eq(lf_conf_check(c, known, err, sizeof(err)), LF_ERR_CONFIG,
                     "%s", bad[i]);
        cr_expect(strstr(err, bad[i]), "%s", err);
        lf_conf_destroy(c);
    }
    /* An empty topic or broker list: a default in disguise. */
    lf_conf_set(conf, "topic", "", err, sizeof(err));
    cr_expect_eq(lf_conf_check(conf, known, err, sizeof(err)), LF_ERR_CONFIG);
    cr_expect(strstr(err, "\"topic\" is empty"), "%s", err);
    lf_conf_set(conf, "topic", "t", err, sizeof(err));
    lf_conf_set(conf, "bootstrap.servers", "", err, sizeof(err));
    cr_expect_eq(lf_conf_check(conf, known, err, sizeof(err)), LF_ERR_CONFIG);
    cr_expect(strstr(err, "\"bootstrap.servers\" is empty"), "%s", err);
    lf_conf_set(conf, "bootstrap.servers", "b:9092", err, sizeof(err));
    lf_conf_set(conf, "group.id", "", err, sizeof(err));
    cr_expect_eq(lf_conf_check(conf, known, err, sizeof(err)), LF_ERR_CONFIG);
    cr_expect(strstr(err, "\"group.id\" is empty"), "%s", err);
}
