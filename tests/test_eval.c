/*
 * test_eval.c - task accuracy (src/eval/tasks.c) against the float64 reference:
 *
 *   - lambada, choice and generate on tests/fixtures/eval/{lambada,choice,generate}.jsonl with stories260K and
 *     mix-llama-14m: every item's log-likelihood (lambada: of the target; choice: of every
 *     choice, through the right choice and the prediction) equals the float64 PyTorch
 *     reference of tools/ref_check/eval_tasks_ref.py (which has no KV cache and tokenizes with
 *     sentencepiece) to 1e-5 + 1e-6 |ll|; the greedy flags, predictions, generations and the
 *     accuracies are identical;
 *   - shrink_eval_choices (one context pass, KV cache reused per ending) equals evaluating
 *     context + ending from position 0 for every ending;
 *   - truncation: a context shorter than the items drops tokens from the left and counts them;
 *   - shrink_task_make: the same (text, seed) gives the same bytes, a known text gives the
 *     expected items, another seed another file;
 *   - bad task files: malformed JSON, missing/mistyped fields, an empty context, a label outside
 *     the choices, a file without items: SHRINK_ERR_FORMAT naming the file, line and field.
 *
 * mix-llama-14m comes from ../shared (its absence there is a failure; without ../shared that
 * part is skipped); stories260K is the embedded model.
 */
#include "shrink.h"
#include "test_util.h"

#include "core/json.h"

#include <unistd.h>

static const char *FIX = "tests/fixtures/eval";

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static shrink_task *load_task(const char *name, shrink_task_kind kind) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.jsonl", FIX, name);
    shrink_task  *t  = NULL;
    shrink_status st = shrink_task_load(&t, path, kind, 0);
    CHECK(st == SHRINK_OK, "load %s: %s", path, shrink_last_error());
    return t;
}

static bool close_ll(double a, double b) { return fabs(a - b) <= 1e-5 + 1e-6 * fabs(b); }

static double max_diff;

static void check_model(const char *label, const char *model_path, const char *ref_name) {
    char path[512];
    snprintf(path, sizeof path, "%s/ref_%s.json", FIX, ref_name);
    size_t len = 0;
    char  *txt = slurp(path, &len);
    CHECK(txt != NULL, "%s: missing fixture %s", label, path);
    if (!txt) return;
    sk_json *ref = NULL;
    CHECK(sk_json_parse(txt, len, path, &ref) == SHRINK_OK, "%s", shrink_last_error());
    free(txt);
    if (!ref) return;

    shrink_model      *m  = NULL;
    shrink_load_params lp = shrink_load_params_default();
    CHECK(shrink_model_load(&m, model_path, &lp) == SHRINK_OK, "load %s: %s", model_path,
          shrink_last_error());
    if (!m) {
        sk_json_free(ref);
        return;
    }
    shrink_context *ctx = NULL;
    CHECK(shrink_context_create(&ctx, m, 0, 0) == SHRINK_OK, "context: %s", shrink_last_error());

    /* lambada */
    shrink_task       *t = load_task("lambada", SHRINK_TASK_LAMBADA);
    shrink_task_result r;
    const sk_json     *L = sk_json_get(ref, "lambada"), *li = sk_json_get(L, "items");
    if (t && li && shrink_eval_task(m, ctx, t, NULL, &r) == SHRINK_OK) {
        CHECK((int64_t)li->len == t->n_items, "%s lambada: %zu reference items", label, li->len);
        for (int64_t i = 0; i < t->n_items && i < (int64_t)li->len; i++) {
            double rl;
            int    g;
            sk_json_get_num(&li->items[i], "loglik", &rl);
            sk_json_get_bool(&li->items[i], "greedy", &g);
            double d = fabs(r.items[i].loglik - rl);
            if (d > max_diff) max_diff = d;
            CHECK(close_ll(r.items[i].loglik, rl), "%s lambada item %lld: loglik %.9f, ref %.9f",
                  label, (long long)i, r.items[i].loglik, rl);
            CHECK(r.items[i].correct == (g != 0), "%s lambada item %lld: greedy %d, ref %d",
                  label, (long long)i, r.items[i].correct, g);
        }
        double acc;
        sk_json_get_num(L, "acc", &acc);
        CHECK(fabs(r.acc - acc) < 1e-12, "%s lambada acc %.4f, ref %.4f", label, r.acc, acc);
        CHECK(r.n_truncated == 0, "%s lambada: nothing to truncate", label);
        shrink_task_result_free(&r);
    } else {
        CHECK(0, "%s lambada: %s", label, shrink_last_error());
    }
    shrink_task_free(t);

    /* choice */
    t = load_task("choice", SHRINK_TASK_CHOICE);
    const sk_json *C = sk_json_get(ref, "choice"), *ci = sk_json_get(C, "items");
    if (t && ci && shrink_eval_task(m, ctx, t, NULL, &r) == SHRINK_OK) {
        CHECK((int64_t)ci->len == t->n_items, "%s choice: %zu reference items", label, ci->len);
        for (int64_t i = 0; i < t->n_items && i < (int64_t)ci->len; i++) {
            const sk_json *it = &ci->items[i], *ll = sk_json_get(it, "loglik");
            int64_t        pred = -1, pn = -1;
            sk_json_get_int(it, "pred", &pred);
            sk_json_get_int(it, "pred_norm", &pn);
            double rl = ll->items[t->items[i].label].number;
            double d  = fabs(r.items[i].loglik - rl);
            if (d > max_diff) max_diff = d;
            CHECK(close_ll(r.items[i].loglik, rl), "%s choice item %lld: loglik %.9f, ref %.9f",
                  label, (long long)i, r.items[i].loglik, rl);
            CHECK(r.items[i].pred == pred && r.items[i].pred_norm == pn,
                  "%s choice item %lld: pred %d/%d, ref %lld/%lld", label, (long long)i,
                  r.items[i].pred, r.items[i].pred_norm, (long long)pred, (long long)pn);
        }
        double acc, accn;
        sk_json_get_num(C, "acc", &acc);
        sk_json_get_num(C, "acc_norm", &accn);
        CHECK(fabs(r.acc - acc) < 1e-12 && fabs(r.acc_norm - accn) < 1e-12,
              "%s choice acc %.4f/%.4f, ref %.4f/%.4f", label, r.acc, r.acc_norm, acc, accn);
        shrink_task_result_free(&r);

        /* every choice's loglik against the reference, through shrink_eval_choices directly,
         * and against context + ending evaluated from position 0 (no cache reuse) */
        const shrink_tokenizer *tok = shrink_model_tokenizer(m);
        shrink_model_info       mi;
        shrink_model_get_info(m, &mi);
        float *logits = malloc((size_t)512 * mi.vocab_size * sizeof *logits);
        for (int64_t i = 0; i < t->n_items && i < 4 && logits; i++) {
            const shrink_task_item *it = &t->items[i];
            int32_t *cids = NULL, nc = 0, *ends[8] = {NULL}, ne[8] = {0};
            for (int32_t k = 0; k < it->n_choices && k < 8; k++) {
                int32_t *c = NULL, n = 0;
                CHECK(shrink_task_encode_pair(tok, mi.add_bos, it->context, it->choices[k], &c,
                                              &n, &ends[k], &ne[k]) == SHRINK_OK,
                      "encode pair");
                if (k == 0) {
                    cids = c;
                    nc   = n;
                } else {
                    shrink_free(c);
                }
            }
            shrink_choice_score sc[8];
            CHECK(shrink_eval_choices(ctx, cids, nc, (const int32_t *const *)ends, ne,
                                      it->n_choices, sc) == SHRINK_OK,
                  "eval_choices: %s", shrink_last_error());
            const sk_json *ll = sk_json_get(&ci->items[i], "loglik");
            for (int32_t k = 0; k < it->n_choices; k++) {
                CHECK(close_ll(sc[k].loglik, ll->items[k].number),
                      "%s item %lld choice %d: %.9f, ref %.9f", label, (long long)i, k,
                      sc[k].loglik, ll->items[k].number);
                /* from scratch: [context, ending[0..n-1)] at position 0 */
                int32_t seq[512];
                int32_t n = nc + ne[k] - 1;
                memcpy(seq, cids, (size_t)nc * sizeof *seq);
                memcpy(seq + nc, ends[k], (size_t)(ne[k] - 1) * sizeof *seq);
                CHECK(shrink_context_eval(ctx, seq, n, 0, logits, ne[k]) == SHRINK_OK, "eval");
                double s = 0;
                for (int32_t j = 0; j < ne[k]; j++) {
                    const float *l  = logits + (size_t)j * mi.vocab_size;
                    double       mx = l[0], z = 0;
                    for (int32_t v = 1; v < mi.vocab_size; v++) mx = l[v] > mx ? l[v] : mx;
                    for (int32_t v = 0; v < mi.vocab_size; v++) z += exp(l[v] - mx);
                    s += l[ends[k][j]] - mx - log(z);
                }
                CHECK(fabs(s - sc[k].loglik) < 1e-4, "%s item %lld choice %d: cached %.9f, "
                      "from scratch %.9f", label, (long long)i, k, sc[k].loglik, s);
            }
            shrink_free(cids);
            for (int k = 0; k < 8; k++) shrink_free(ends[k]);
        }
        free(logits);
    } else {
        CHECK(0, "%s choice: %s", label, shrink_last_error());
    }
    shrink_task_free(t);

    /* generate */
    t = load_task("generate", SHRINK_TASK_GENERATE);
    const sk_json     *G  = sk_json_get(ref, "generate"), *gi = sk_json_get(G, "items");
    shrink_task_params tp = shrink_task_params_default();
    int64_t            mn = 0;
    sk_json_get_int(ref, "generate_max_new", &mn);
    tp.max_new = (int32_t)mn;
    tp.stop    = sk_json_get_str(ref, "generate_stop");
    if (t && gi && shrink_eval_task(m, ctx, t, &tp, &r) == SHRINK_OK) {
        for (int64_t i = 0; i < t->n_items && i < (int64_t)gi->len; i++) {
            const char *g = sk_json_get_str(&gi->items[i], "generation");
            int         ex = 0, co = 0;
            sk_json_get_bool(&gi->items[i], "exact", &ex);
            sk_json_get_bool(&gi->items[i], "contains", &co);
            CHECK(g && !strcmp(r.items[i].generation, g), "%s generate item %lld: '%s', ref '%s'",
                  label, (long long)i, r.items[i].generation, g ? g : "?");
            CHECK(r.items[i].correct == (ex != 0) && r.items[i].correct_norm == (co != 0),
                  "%s generate item %lld: exact/contains %d/%d, ref %d/%d", label, (long long)i,
                  r.items[i].correct, r.items[i].correct_norm, ex, co);
        }
        double em;
        sk_json_get_num(G, "exact_match", &em);
        CHECK(fabs(r.acc - em) < 1e-12, "%s exact match %.4f, ref %.4f", label, r.acc, em);
        shrink_task_result_free(&r);
    } else {
        CHECK(0, "%s generate: %s", label, shrink_last_error());
    }
    shrink_task_free(t);

    shrink_context_free(ctx);
    shrink_model_free(m);
    sk_json_free(ref);
}

static void test_truncation(const char *model_path) {
    shrink_model      *m  = NULL;
    shrink_load_params lp = shrink_load_params_default();
    if (shrink_model_load(&m, model_path, &lp) != SHRINK_OK) return;
    shrink_context *ctx = NULL;
    CHECK(shrink_context_create(&ctx, m, 24, 24) == SHRINK_OK, "context 24");
    shrink_task       *t = load_task("lambada", SHRINK_TASK_LAMBADA);
    shrink_task_result r;
    shrink_status      st = shrink_eval_task(m, ctx, t, NULL, &r);
    CHECK(st == SHRINK_OK, "truncated lambada: %s", shrink_last_error());
    if (st == SHRINK_OK) {
        CHECK(r.n_truncated > 0 && r.n_truncated <= r.n_items, "truncated items %lld",
              (long long)r.n_truncated);
        shrink_task_result_free(&r);
    }
    /* too long for shrink_eval_choices itself */
    int32_t        ids[30] = {1}, e[4] = {5, 6, 7, 8};
    const int32_t *ends[1] = {e};
    int32_t        ne[1]   = {4};
    shrink_choice_score sc;
    CHECK(shrink_eval_choices(ctx, ids, 22, ends, ne, 1, &sc) == SHRINK_ERR_RANGE,
          "22 + 4 - 1 positions in 24 must be refused");
    shrink_task_free(t);
    shrink_context_free(ctx);
    shrink_model_free(m);
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

static void expect_bad(const char *dir, shrink_task_kind kind, const char *content,
                       const char *want1, const char *want2) {
    char path[600];
    snprintf(path, sizeof path, "%s/bad.jsonl", dir);
    write_file(path, content);
    shrink_task  *t  = NULL;
    shrink_status st = shrink_task_load(&t, path, kind, 0);
    const char   *e  = shrink_last_error();
    CHECK(st == SHRINK_ERR_FORMAT && !t, "'%s' must be refused (got %d)", content, st);
    CHECK(strstr(e, path) && strstr(e, want1) && (!want2 || strstr(e, want2)),
          "message '%s' must name %s, '%s' and '%s'", e, path, want1, want2 ? want2 : "");
    shrink_task_free(t);
}

static void test_bad_input(const char *dir) {
    expect_bad(dir, SHRINK_TASK_CHOICE,
               "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"label\": 0}\n{\"context\": \n",
               ":2", NULL);
    expect_bad(dir, SHRINK_TASK_CHOICE,
               "\n{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"label\": 2}\n", ":2",
               "label");
    expect_bad(dir, SHRINK_TASK_CHOICE,
               "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"label\": -1}\n", ":1", "label");
    expect_bad(dir, SHRINK_TASK_CHOICE,
               "{\"context\": \"\", \"choices\": [\" b\", \" c\"], \"label\": 0}\n", ":1",
               "context");
    expect_bad(dir, SHRINK_TASK_CHOICE, "{\"context\": \"a\", \"label\": 0}\n", ":1", "choices");
    expect_bad(dir, SHRINK_TASK_CHOICE,
               "{\"context\": \"a\", \"choices\": [\" b\", 3], \"label\": 0}\n", ":1", "choices");
    expect_bad(dir, SHRINK_TASK_CHOICE,
               "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"label\": \"0\"}\n", ":1",
               "label");
    expect_bad(dir, SHRINK_TASK_LAMBADA, "{\"text\": \"oneword\"}\n", ":1", "text");
    expect_bad(dir, SHRINK_TASK_LAMBADA, "{\"txt\": \"two words\"}\n", ":1", "text");
    expect_bad(dir, SHRINK_TASK_LAMBADA, "[1, 2]\n", ":1", "object");
    expect_bad(dir, SHRINK_TASK_GENERATE, "{\"prompt\": \"2+2=\"}\n", ":1", "answer");
    expect_bad(dir, SHRINK_TASK_GENERATE, "\n\n", "no items", NULL);
    shrink_task *t = NULL;
    CHECK(shrink_task_load(&t, "/nonexistent/x.jsonl", SHRINK_TASK_LAMBADA, 0) != SHRINK_OK &&
          strstr(shrink_last_error(), "/nonexistent/x.jsonl"), "a missing file is named");
    /* --limit */
    char path[600];
    snprintf(path, sizeof path, "%s/ok.jsonl", dir);
    write_file(path, "{\"text\": \"a b\"}\n{\"text\": \"c d\"}\n{\"text\": \"e f\"}\n");
    CHECK(shrink_task_load(&t, path, SHRINK_TASK_LAMBADA, 2) == SHRINK_OK && t->n_items == 2 &&
          !strcmp(t->items[1].context, "c") && !strcmp(t->items[1].choices[0], " d"),
          "limit 2 and the lambada split");
    shrink_task_free(t);
}

static void test_make(const char *dir) {
    char text[600], a[600], b[600], c[600];
    snprintf(text, sizeof text, "%s/text.txt", dir);
    snprintf(a, sizeof a, "%s/a.jsonl", dir);
    snprintf(b, sizeof b, "%s/b.jsonl", dir);
    snprintf(c, sizeof c, "%s/c.jsonl", dir);
    /* one candidate only in the first paragraph ("ball": third sentence, seen before);
     * "dog" ends sentence 2 (index 1), too early; the second paragraph has no repeat */
    write_file(text, "Tom had a red ball. He liked his dog. The dog ran to the ball.\n\n"
                     "It was a sunny day. Birds sang songs. Everyone was happy.\n");
    int64_t n = 0;
    CHECK(shrink_task_make(SHRINK_TASK_LAMBADA, text, a, 1, 0, &n) == SHRINK_OK && n == 1,
          "make lambada: %s (%lld items)", shrink_last_error(), (long long)n);
    char *s = slurp(a, NULL);
    CHECK(s && !strcmp(s, "{\"text\": \"Tom had a red ball. He liked his dog. The dog ran to "
                          "the ball\"}\n"), "lambada item: %s", s ? s : "(none)");
    free(s);
    /* the real text: same seed, same bytes; another seed, another file */
    char corpus[600];
    if (test_need_shared(corpus, sizeof corpus, "data/corpus/tinystories_val_subset.txt")) {
        for (int kind = 0; kind < 2; kind++) {
            shrink_task_kind k = kind ? SHRINK_TASK_CHOICE : SHRINK_TASK_LAMBADA;
            CHECK(shrink_task_make(k, corpus, a, 7, 0, NULL) == SHRINK_OK, "make a");
            CHECK(shrink_task_make(k, corpus, b, 7, 0, NULL) == SHRINK_OK, "make b");
            CHECK(shrink_task_make(k, corpus, c, 8, 0, NULL) == SHRINK_OK, "make c");
            size_t la, lb, lc;
            char  *x = slurp(a, &la), *y = slurp(b, &lb), *z = slurp(c, &lc);
            CHECK(x && y && la == lb && !memcmp(x, y, la), "kind %d: same seed, same file", kind);
            CHECK(x && z && (la != lc || memcmp(x, z, la)), "kind %d: seed 8 differs", kind);
            /* the first items equal the committed fixture (made with --limit 24/16, seed 7) */
            char fx[600];
            snprintf(fx, sizeof fx, "%s/%s.jsonl", FIX, kind ? "choice" : "lambada");
            size_t lf;
            char  *w = slurp(fx, &lf);
            CHECK(w && x && lf <= la && !memcmp(w, x, lf), "kind %d: the fixture is a prefix",
                  kind);
            /* every item loads back */
            shrink_task *t = NULL;
            CHECK(shrink_task_load(&t, a, k, 0) == SHRINK_OK && t->n_items > 100,
                  "kind %d: made file loads: %s", kind, shrink_last_error());
            shrink_task_free(t);
            free(x);
            free(y);
            free(z);
            free(w);
        }
    }
    write_file(text, "No sentences here\n");
    CHECK(shrink_task_make(SHRINK_TASK_LAMBADA, text, a, 1, 0, NULL) == SHRINK_ERR_FORMAT,
          "a text without items is refused");
}

int main(void) {
    char buf[1024], dir[] = "/tmp/shrink-test-eval.XXXXXX";
    const char *s260 = test_need_model(buf, sizeof buf, "stories260K/stories260K.bin");
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return test_summary("test_eval");
    }
    test_bad_input(dir);
    test_make(dir);
    if (s260) {
        char p[1024];
        snprintf(p, sizeof p, "%s", s260);
        check_model("stories260K", p, "stories260K");
        test_truncation(p);
    }
    char mp[2048];
    if (test_need_model(mp, sizeof mp, "mix-llama-14m")) check_model("mix-llama-14m", mp, "mix-llama-14m");
    printf("test_eval: max |loglik - float64 reference| = %.3g nats\n", max_diff);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary("test_eval");
}
