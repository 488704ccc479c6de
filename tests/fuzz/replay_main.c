/* replay_main.c: a main() for the fuzz targets when libFuzzer is not
 * linked in (the gcc and sanitizer builds): runs LLVMFuzzerTestOneInput
 * once on every file named on the command line, or in a directory named
 * there, so the seed corpus and every input that once crashed a target
 * (tests/fuzz/regress/) are replayed by `make test`.
 *
 *   fuzz_codec [FILE|DIR]...   exit 0 if every input ran, 66 if one could
 *                              not be read; a bug aborts (or the sanitizers
 *                              report it) */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int runs;

/* Run the target on the contents of @p path. @returns 0, or 66 if it could
 * not be read. */
static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t size = 0, cap = 0, n;

    if (!fp) {
        perror(path);
        return 66;
    }
    do {
        if (size == cap) {
            uint8_t *p = realloc(data, cap = cap ? cap * 2 : 4096);
            if (!p) {
                free(data);
                fclose(fp);
                fprintf(stderr, "%s: out of memory\n", path);
                return 66;
            }
            data = p;
        }
        n = fread(data + size, 1, cap - size, fp);
        size += n;
    } while (n > 0);
    fclose(fp);
    /* An exact-size copy, so ASan sees a read past the end. */
    uint8_t *exact = malloc(size ? size : 1);
    if (!exact) {
        free(data);
        return 66;
    }
    memcpy(exact, data, size);
    free(data);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    runs++;
    return 0;
}

static int run_path(const char *path)
{
    struct stat st;
    struct dirent **names;
    int n, rc = 0;

    if (stat(path, &st) != 0) {
        perror(path);
        return 66;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    /* Sorted, so a failure names the same file every time. */
    if ((n = scandir(path, &names, NULL, alphasort)) < 0) {
        perror(path);
        return 66;
    }
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char full[4096];
            snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
            if (run_path(full))
                rc = 66;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;

    for (int i = 1; i < argc; i++)
        if (run_path(argv[i]))
            rc = 66;
    printf("%s: %d inputs replayed\n", argv[0], runs);
    return rc;
}
