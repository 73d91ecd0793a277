/*
 * manifest.c - what the CLI records for the manifest of every model file it writes
 * (docs/manifest.md): argv as run, the inputs its commands open (registered by cli_check_io
 * and cli_load_model: every new command that checks its paths gets them for free), the seeds
 * of its options (cli_parse), the threads, the date (UTC; SOURCE_DATE_EPOCH when set, as
 * reproducible builds do) and measured quality a command reports with cli_manifest_quality.
 * The library asks for the text when it writes (shrink_set_manifest_source): inputs are
 * hashed then, each once. Also the printing of a manifest for `info` and `verify`.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { MF_MAX_INPUTS = 256, MF_MAX_VALUES = 32 };

typedef struct mf_input {
    char    *arg;
    char    *path;                 /* absolute */
    char     sha256[65];           /* "" until hashed */
    uint64_t bytes;
    bool     failed;               /* could not be hashed (left out) */
} mf_input;

/* A model input (a .gguf file or a folder) whose own manifest, if it has one, goes into this
 * one's "parents": the chain of steps that made the output. */
typedef struct mf_parent {
    char *arg, *path;
    char *text;                    /* its manifest, NULL if none */
    bool  read;
} mf_parent;

typedef struct mf_value {
    char    name[64];
    double   v;
    bool     is_u64;
    uint64_t u;
} mf_value;

static struct {
    bool     on;                   /* cli_manifest_begin ran and --no-manifest was not given */
    int      argc;
    char   **argv;
    mf_input in[MF_MAX_INPUTS];
    int      n_in;
    mf_parent parent[MF_MAX_VALUES];
    int      n_parent;
    mf_value seed[MF_MAX_VALUES], quality[MF_MAX_VALUES];
    int      n_seed, n_quality;
    char    *text;                 /* the last text given to the library */
} mf;

/* ==== registering ========================================================================= */

static void add_file(const char *arg, const char *abs) {
    for (int i = 0; i < mf.n_in; i++)
        if (!strcmp(mf.in[i].path, abs)) return;
    if (mf.n_in >= MF_MAX_INPUTS) return;
    mf_input *r = &mf.in[mf.n_in];
    memset(r, 0, sizeof *r);
    r->arg = strdup(arg);
    r->path = strdup(abs);
    if (!r->arg || !r->path) {
        free(r->arg);
        free(r->path);
        return;
    }
    mf.n_in++;
}

/* The files of a model or adapter folder that shrink reads: weights, JSON (config, index,
 * tokenizer, adapter config) and tokenizer files; not other weights (pytorch_model.bin),
 * hidden files or a manifest. Sorted, so the manifest does not depend on readdir's order. */
static bool folder_file_read(const char *name) {
    static const char *const suffix[] = {".safetensors", ".json", ".model", ".txt", ".gguf"};
    if (name[0] == '.' || !strcmp(name, SHRINK_MANIFEST_FILE)) return false;
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        size_t k = strlen(suffix[i]);
        if (n > k && !strcmp(name + n - k, suffix[i])) return true;
    }
    return false;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void cli_manifest_input(const char *arg, const char *path) {
    if (!path || !*path) return;
    char abs[PATH_MAX];
    struct stat sb;
    if (!realpath(path, abs) || stat(abs, &sb) != 0) return;
    size_t len = strlen(abs);
    bool model = S_ISDIR(sb.st_mode) || (len > 5 && !strcmp(abs + len - 5, ".gguf"));
    for (int i = 0; i < mf.n_parent && model; i++) model = strcmp(mf.parent[i].path, abs) != 0;
    if (model && mf.n_parent < MF_MAX_VALUES) {
        mf_parent *p = &mf.parent[mf.n_parent];
        memset(p, 0, sizeof *p);
        p->arg = strdup(arg);
        p->path = strdup(abs);
        if (p->arg && p->path) mf.n_parent++;
        else free(p->arg), free(p->path);
    }
    if (S_ISREG(sb.st_mode)) {
        add_file(arg, abs);
        return;
    }
    if (!S_ISDIR(sb.st_mode)) return;
    DIR *d = opendir(abs);
    if (!d) return;
    char *names[MF_MAX_INPUTS];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MF_MAX_INPUTS)
        if (folder_file_read(e->d_name) && (names[n] = strdup(e->d_name))) n++;
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char file[PATH_MAX];
        if ((size_t)snprintf(file, sizeof file, "%s/%s", abs, names[i]) < sizeof file &&
            stat(file, &sb) == 0 && S_ISREG(sb.st_mode))
            add_file(arg, file);
        free(names[i]);
    }
}

static void set_value(mf_value *t, int *n, const char *name, double v, bool is_u64, uint64_t u) {
    int i = 0;
    while (i < *n && strcmp(t[i].name, name)) i++;
    if (i == *n) {
        if (*n >= MF_MAX_VALUES) return;
        (*n)++;
    }
    snprintf(t[i].name, sizeof t[i].name, "%s", name);
    t[i].v = v;
    t[i].is_u64 = is_u64;
    t[i].u = u;
}

void cli_manifest_seed(const char *name, uint64_t v) {
    set_value(mf.seed, &mf.n_seed, name, (double)v, true, v);
}

void cli_manifest_quality(const char *name, double v) {
    set_value(mf.quality, &mf.n_quality, name, v, false, 0);
}

void cli_manifest_disable(void) {
    mf.on = false;
    shrink_set_manifest_source(NULL, NULL);
}

/* ==== the text the library writes ========================================================= */

/* "2026-12-07T15:04:05Z": now, or SOURCE_DATE_EPOCH (seconds since 1970) when it is set. */
static void utc_date(char *buf, size_t cap) {
    time_t t = time(NULL);
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) {
        char *end;
        errno = 0;
        long long v = strtoll(sde, &end, 10);
        if (!errno && !*end && v >= 0) t = (time_t)v;
    }
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, cap, "?");
}

/* The keys of one input, in an open object: arg, path, bytes, sha256. */
static void json_input(cli_json *j, const char *arg, const char *path, uint64_t bytes,
                       const char *sha256) {
    cli_json_key(j, "arg");
    cli_json_str(j, arg);
    cli_json_key(j, "path");
    cli_json_str(j, path);
    cli_json_key(j, "bytes");
    cli_json_u64(j, bytes);
    cli_json_key(j, "sha256");
    cli_json_str(j, sha256);
}

/* A JSON text as the value after a key, on one line (a newline outside a JSON string is
 * whitespace; inside one it cannot occur unescaped). */
static void json_raw(cli_json *j, const char *text) {
    for (const char *s = text; *s; s++) fputc(*s == '\n' || *s == '\r' ? ' ' : *s, j->f);
    j->first[j->depth] = false;
}

static void json_values(cli_json *j, const char *key, const mf_value *t, int n) {
    cli_json_key(j, key);
    cli_json_obj_begin(j);
    for (int i = 0; i < n; i++) {
        cli_json_key(j, t[i].name);
        if (t[i].is_u64) cli_json_u64(j, t[i].u);
        else cli_json_num(j, t[i].v);
    }
    cli_json_obj_end(j);
}

static const char *manifest_text(void *user) {
    (void)user;
    if (!mf.on) return NULL;
    for (int i = 0; i < mf.n_in; i++) {
        mf_input *r = &mf.in[i];
        if (r->sha256[0] || r->failed) continue;
        if (shrink_sha256_file(r->path, r->sha256, &r->bytes) != SHRINK_OK) {
            cli_warn("manifest: cannot hash the input %s: %s", r->path, shrink_last_error());
            r->sha256[0] = 0;
            r->failed = true;
        }
    }
    char  *buf = NULL;
    size_t len = 0;
    FILE  *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    cli_json j;
    char date[32];
    utc_date(date, sizeof date);
    cli_json_begin(&j, f);
    cli_json_key(&j, "manifest_version");
    cli_json_int(&j, 1);
    cli_json_key(&j, "version");
    cli_json_str(&j, SHRINK_VERSION);
    cli_json_key(&j, "command");
    cli_json_arr_begin(&j);
    for (int i = 0; i < mf.argc; i++) cli_json_str(&j, mf.argv[i]);
    cli_json_arr_end(&j);
    cli_json_key(&j, "date");
    cli_json_str(&j, date);
    cli_json_key(&j, "threads");
    cli_json_int(&j, shrink_get_threads());
    json_values(&j, "seeds", mf.seed, mf.n_seed);
    cli_json_key(&j, "inputs");
    cli_json_arr_begin(&j);
    for (int i = 0; i < mf.n_in; i++) {
        const mf_input *r = &mf.in[i];
        if (r->failed) continue;
        cli_json_obj_begin(&j);
        json_input(&j, r->arg, r->path, r->bytes, r->sha256);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    json_values(&j, "quality", mf.quality, mf.n_quality);
    cli_json_key(&j, "parents");
    cli_json_arr_begin(&j);
    for (int i = 0; i < mf.n_parent; i++) {
        mf_parent *p = &mf.parent[i];
        if (!p->read) {
            shrink_manifest *pm = NULL;
            if (shrink_manifest_read(p->path, &pm) == SHRINK_OK && pm) p->text = strdup(pm->json);
            shrink_manifest_free(pm);
            p->read = true;
        }
        if (!p->text) continue;
        cli_json_obj_begin(&j);
        cli_json_key(&j, "arg");
        cli_json_str(&j, p->arg);
        cli_json_key(&j, "path");
        cli_json_str(&j, p->path);
        cli_json_key(&j, "manifest");
        json_raw(&j, p->text);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_end(&j);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return NULL;
    }
    if (len && buf[len - 1] == '\n') buf[len - 1] = 0;
    free(mf.text);
    mf.text = buf;
    return mf.text;
}

void cli_manifest_restart(int argc, char **argv) {
    for (int i = 0; i < mf.n_in; i++) free(mf.in[i].arg), free(mf.in[i].path);
    for (int i = 0; i < mf.n_parent; i++)
        free(mf.parent[i].arg), free(mf.parent[i].path), free(mf.parent[i].text);
    mf.n_in = mf.n_parent = mf.n_seed = mf.n_quality = 0;
    cli_manifest_begin(argc, argv);
}

void cli_manifest_begin(int argc, char **argv) {
    mf.on = true;
    mf.argc = argc;
    mf.argv = argv;
    shrink_set_manifest_source(manifest_text, NULL);
}

/* ==== printing a manifest (info, verify) ================================================== */

void cli_manifest_print(const shrink_manifest *m, FILE *f) {
    fprintf(f, "manifest:      shrink %s, %s, %d thread%s\n", m->version, m->date, m->threads,
            cli_s(m->threads));
    fprintf(f, "command:      ");
    for (int32_t i = 0; i < m->n_command; i++) {
        const char *a = m->command[i];
        bool quote = !*a || strpbrk(a, " \t\n'\"$`\\*?;&|<>()") != NULL;
        fprintf(f, quote ? " '%s'" : " %s", a);
    }
    fputc('\n', f);
    for (int32_t i = 0; i < m->n_seeds; i++)
        fprintf(f, "seed:          %s %.17g\n", m->seeds[i].key, m->seeds[i].value);
    for (int32_t i = 0; i < m->n_quality; i++)
        fprintf(f, "quality:       %s %.6g\n", m->quality[i].key, m->quality[i].value);
    for (int32_t i = 0; i < m->n_inputs; i++) {
        const shrink_manifest_input *r = &m->inputs[i];
        char b[32];
        fprintf(f, "input:         %s %s (%s) sha256 %s", r->arg, r->path,
                cli_fmt_bytes(b, sizeof b, r->bytes), r->sha256);
        if (r->state != SHRINK_INPUT_UNCHECKED) fprintf(f, ": %s", shrink_input_state_name(r->state));
        fputc('\n', f);
    }
    if (!m->n_inputs) fprintf(f, "input:         none recorded\n");
    for (int32_t i = 0; i < m->n_parents; i++) {
        const shrink_manifest_parent *p = &m->parents[i];
        fprintf(f, "made from:     %s %s, written %s by shrink %s:", p->arg, p->path, p->date,
                p->version);
        for (int32_t k = 0; k < p->n_command; k++) fprintf(f, " %s", p->command[k]);
        fputc('\n', f);
    }
}

static void json_kv_table(cli_json *j, const char *key, const shrink_manifest_value *v, int32_t n) {
    cli_json_key(j, key);
    cli_json_obj_begin(j);
    for (int32_t i = 0; i < n; i++) {
        cli_json_key(j, v[i].key);
        cli_json_num(j, v[i].value);
    }
    cli_json_obj_end(j);
}

/* version, date and command of a manifest or of a parent's, in an open object. */
static void json_made(cli_json *j, const char *version, const char *date,
                      const char *const *command, int32_t n_command) {
    cli_json_key(j, "version");
    cli_json_str(j, version);
    cli_json_key(j, "date");
    cli_json_str(j, date);
    cli_json_key(j, "command");
    cli_json_arr_begin(j);
    for (int32_t i = 0; i < n_command; i++) cli_json_str(j, command[i]);
    cli_json_arr_end(j);
}

void cli_manifest_json(const shrink_manifest *m, cli_json *j) {
    cli_json_obj_begin(j);
    json_made(j, m->version, m->date, m->command, m->n_command);
    cli_json_key(j, "threads");
    cli_json_int(j, m->threads);
    json_kv_table(j, "seeds", m->seeds, m->n_seeds);
    json_kv_table(j, "quality", m->quality, m->n_quality);
    cli_json_key(j, "inputs");
    cli_json_arr_begin(j);
    for (int32_t i = 0; i < m->n_inputs; i++) {
        const shrink_manifest_input *r = &m->inputs[i];
        cli_json_obj_begin(j);
        json_input(j, r->arg, r->path, r->bytes, r->sha256);
        if (r->state != SHRINK_INPUT_UNCHECKED) {
            cli_json_key(j, "state");
            cli_json_str(j, shrink_input_state_name(r->state));
            cli_json_key(j, "now_bytes");
            if (r->state == SHRINK_INPUT_MISSING) cli_json_null(j);
            else cli_json_u64(j, r->now_bytes);
            cli_json_key(j, "now_sha256");
            if (r->state == SHRINK_INPUT_MISSING) cli_json_null(j);
            else cli_json_str(j, r->now_sha256);
        }
        cli_json_obj_end(j);
    }
    cli_json_arr_end(j);
    cli_json_key(j, "parents");
    cli_json_arr_begin(j);
    for (int32_t i = 0; i < m->n_parents; i++) {
        const shrink_manifest_parent *p = &m->parents[i];
        cli_json_obj_begin(j);
        cli_json_key(j, "arg");
        cli_json_str(j, p->arg);
        cli_json_key(j, "path");
        cli_json_str(j, p->path);
        json_made(j, p->version, p->date, p->command, p->n_command);
        cli_json_obj_end(j);
    }
    cli_json_arr_end(j);
    cli_json_obj_end(j);
}
