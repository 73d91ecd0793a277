/*
 * tasks.c - task accuracy: task files, lm-evaluation-harness's (context, continuation) split,
 * endings scored over one pass of the context, greedy generation, task-file builders.
 *
 * Scoring an item with k endings (shrink_eval_choices): the context runs once from position 0
 * and the logits of its last token are kept (they give the first token of every ending); then
 * each ending e runs from position n_context over e[0..len-1), which overwrites only the cache
 * positions past the context, so the context's keys and values are computed once per item, not
 * once per ending. log p(e_j | ...) = l[e_j] - logsumexp(l), in double.
 */
#include "tasks.h"

#include "../core/json.h"
#include "../core/out.h"
#include "../model/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

uint64_t sk_task_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const char *kind_names[] = {"lambada", "choice", "generate"};

const char *shrink_task_kind_name(shrink_task_kind kind) {
    return (unsigned)kind < 3 ? kind_names[kind] : "?";
}

shrink_status shrink_task_kind_parse(const char *name, shrink_task_kind *out) {
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, kind_names[i])) {
            *out = (shrink_task_kind)i;
            return SHRINK_OK;
        }
    return sk_error(SHRINK_ERR_ARG, "unknown task '%s' (lambada, choice, generate)",
                    name ? name : "(null)");
}

/* ==== task files ========================================================================== */

static void item_free(shrink_task_item *it) {
    sk_free(it->context);
    for (int32_t k = 0; k < it->n_choices; k++) sk_free(it->choices[k]);
    sk_free(it->choices);
}

void shrink_task_free(shrink_task *task) {
    if (!task) return;
    for (int64_t i = 0; i < task->n_items; i++) item_free(&task->items[i]);
    sk_free(task->items);
    sk_free(task);
}

/* The string field `key` of object j: SHRINK_ERR_FORMAT naming path:line and the field when
 * it is missing, not a string, or (non_empty) empty. */
static shrink_status str_field(const sk_json *j, const char *key, const char *path, int64_t line,
                               bool non_empty, const char **out) {
    const sk_json *v = sk_json_get(j, key);
    if (!v)
        return sk_error(SHRINK_ERR_FORMAT, "%s:%lld: missing field \"%s\"", path,
                        (long long)line, key);
    if (v->type != SK_JSON_STRING)
        return sk_error(SHRINK_ERR_FORMAT, "%s:%lld: field \"%s\" is not a string", path,
                        (long long)line, key);
    if (strlen(v->str) != v->len)
        return sk_error(SHRINK_ERR_FORMAT, "%s:%lld: field \"%s\" holds a NUL character", path,
                        (long long)line, key);
    if (non_empty && v->len == 0)
        return sk_error(SHRINK_ERR_FORMAT, "%s:%lld: field \"%s\" is empty", path,
                        (long long)line, key);
    *out = v->str;
    return SHRINK_OK;
}

static shrink_status parse_item(const sk_json *j, shrink_task_kind kind, const char *path,
                                int64_t line, shrink_task_item *it) {
    shrink_status st;
    const char   *s = NULL, *a = NULL;
    it->line = line;
    if (j->type != SK_JSON_OBJECT)
        return sk_error(SHRINK_ERR_FORMAT, "%s:%lld: not a JSON object", path, (long long)line);
    if (kind == SHRINK_TASK_LAMBADA) {
        if ((st = str_field(j, "text", path, line, true, &s)) != SHRINK_OK) return st;
        const char *sp = strrchr(s, ' ');
        if (!sp || sp == s || sp[1] == '\0')
            return sk_error(SHRINK_ERR_FORMAT,
                            "%s:%lld: field \"text\" needs a context, a space and a last word",
                            path, (long long)line);
        it->context = sk_strndup(s, (size_t)(sp - s));
        it->choices = sk_calloc(1, sizeof *it->choices);
        if (!it->context || !it->choices) return sk_error(SHRINK_ERR_NOMEM, "out of memory");
        it->n_choices = 1;
        if (!(it->choices[0] = sk_strdup(sp))) return sk_error(SHRINK_ERR_NOMEM, "out of memory");
        return SHRINK_OK;
    }
    if (kind == SHRINK_TASK_GENERATE) {
        if ((st = str_field(j, "prompt", path, line, true, &s)) != SHRINK_OK) return st;
        if ((st = str_field(j, "answer", path, line, true, &a)) != SHRINK_OK) return st;
        it->context = sk_strdup(s);
        it->choices = sk_calloc(1, sizeof *it->choices);
        if (!it->context || !it->choices) return sk_error(SHRINK_ERR_NOMEM, "out of memory");
        it->n_choices = 1;
        if (!(it->choices[0] = sk_strdup(a))) return sk_error(SHRINK_ERR_NOMEM, "out of memory");
        return SHRINK_OK;
    }
    if ((st = str_field(j, "context", path, line, true, &s)) != SHRINK_OK) return st;
    const sk_json *c = sk_json_get(j, "choices");
    if (!c)
        return sk_error(SHRINK_ERR_FORMAT, "%s:%lld: missing field \"choices\"", path,
                        (long long)line);
    if (c->type != SK_JSON_ARRAY || c->len < 2 || c->len > 64)
        return sk_error(SHRINK_ERR_FORMAT,
                        "%s:%lld: field \"choices\" must be an array of 2 to 64 strings", path,
                        (long long)line);
    const sk_json *l = sk_json_get(j, "label");
    if (!l)
        return sk_error(SHRINK_ERR_FORMAT, "%s:%lld: missing field \"label\"", path,
                        (long long)line);
    if (l->type != SK_JSON_NUMBER || !l->is_int)
        return sk_error(SHRINK_ERR_FORMAT, "%s:%lld: field \"label\" is not an integer", path,
                        (long long)line);
    if (l->integer < 0 || l->integer >= (int64_t)c->len)
        return sk_error(SHRINK_ERR_FORMAT,
                        "%s:%lld: field \"label\" is %lld, outside the %zu choices (0..%zu)",
                        path, (long long)line, (long long)l->integer, c->len, c->len - 1);
    it->context = sk_strdup(s);
    it->choices = sk_calloc(c->len, sizeof *it->choices);
    if (!it->context || !it->choices) return sk_error(SHRINK_ERR_NOMEM, "out of memory");
    it->label = (int32_t)l->integer;
    for (size_t k = 0; k < c->len; k++) {
        const sk_json *v = &c->items[k];
        if (v->type != SK_JSON_STRING || v->len == 0 || strlen(v->str) != v->len)
            return sk_error(SHRINK_ERR_FORMAT,
                            "%s:%lld: field \"choices\"[%zu] is not a non-empty string", path,
                            (long long)line, k);
        if (!(it->choices[k] = sk_strdup(v->str)))
            return sk_error(SHRINK_ERR_NOMEM, "out of memory");
        it->n_choices = (int32_t)k + 1;
    }
    return SHRINK_OK;
}

shrink_status shrink_task_load(shrink_task **out, const char *path, shrink_task_kind kind,
                               int64_t limit) {
    if (!out || !path || (unsigned)kind > 2)
        return sk_error(SHRINK_ERR_ARG, "loading a task: no path or result given");
    *out = NULL;
    char  *text = NULL;
    size_t len  = 0;
    shrink_status st = sk_read_file(path, (size_t)1 << 31, &text, &len);
    if (st != SHRINK_OK) return st;
    shrink_task *t = sk_calloc(1, sizeof *t);
    if (!t) {
        sk_free(text);
        return sk_error(SHRINK_ERR_NOMEM, "out of memory");
    }
    t->kind       = kind;
    int64_t cap   = 0;
    int64_t line  = 0;
    size_t  at    = 0;
    while (at < len && (limit <= 0 || t->n_items < limit)) {
        size_t e = at;
        while (e < len && text[e] != '\n') e++;
        line++;
        size_t b = at, z = e;
        at = e + 1;
        while (b < z && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r')) b++;
        while (z > b && (text[z - 1] == ' ' || text[z - 1] == '\t' || text[z - 1] == '\r')) z--;
        if (b == z) continue;
        char what[1200];
        snprintf(what, sizeof what, "%s:%lld", path, (long long)line);
        sk_json *j = NULL;
        if ((st = sk_json_parse(text + b, z - b, what, &j)) != SHRINK_OK) break;
        if (t->n_items == cap) {
            int64_t           nc = cap ? 2 * cap : 64;
            shrink_task_item *ni = sk_realloc(t->items, (size_t)nc * sizeof *ni);
            if (!ni) {
                sk_json_free(j);
                st = sk_error(SHRINK_ERR_NOMEM, "out of memory");
                break;
            }
            t->items = ni;
            cap      = nc;
        }
        shrink_task_item *it = &t->items[t->n_items++];
        memset(it, 0, sizeof *it);
        st = parse_item(j, kind, path, line, it);
        sk_json_free(j);
        if (st != SHRINK_OK) break;
    }
    sk_free(text);
    if (st == SHRINK_OK && t->n_items == 0)
        st = sk_error(SHRINK_ERR_FORMAT, "%s: no items (one JSON object per line)", path);
    if (st != SHRINK_OK) {
        shrink_task_free(t);
        return st;
    }
    *out = t;
    return SHRINK_OK;
}

/* ==== scoring ============================================================================= */

/* log p(target) and whether target is the first argmax, from one row of float logits. */
static double logprob(const float *l, int32_t V, int32_t target, bool *is_max) {
    float   mx = l[0];
    int32_t am = 0;
    for (int32_t v = 1; v < V; v++)
        if (l[v] > mx) {
            mx = l[v];
            am = v;
        }
    double z = 0.0;
    for (int32_t v = 0; v < V; v++) z += exp((double)l[v] - (double)mx);
    *is_max = am == target;
    return (double)l[target] - (double)mx - log(z);
}

static int32_t argmax_f(const float *l, int32_t V) {
    int32_t am = 0;
    for (int32_t v = 1; v < V; v++)
        if (l[v] > l[am]) am = v;
    return am;
}

shrink_status shrink_eval_choices(shrink_context *ctx, const int32_t *context, int32_t n_context,
                                  const int32_t *const *endings, const int32_t *n_ending,
                                  int32_t n_choices, shrink_choice_score *out) {
    if (!ctx || !context || n_context < 1 || !endings || !n_ending || n_choices < 1 || !out)
        return sk_error(SHRINK_ERR_ARG, "scoring choices: no context, choices or model given");
    int32_t maxm = 0;
    for (int32_t k = 0; k < n_choices; k++) {
        if (n_ending[k] < 1 || !endings[k])
            return sk_error(SHRINK_ERR_ARG, "scoring choices: ending %d is empty", k);
        if (n_ending[k] > maxm) maxm = n_ending[k];
    }
    int32_t n_ctx = shrink_context_n_ctx(ctx);
    if ((int64_t)n_context + maxm - 1 > n_ctx)
        return sk_error(SHRINK_ERR_RANGE,
                        "scoring choices: %d context + %d ending tokens exceed the context "
                        "of %d", n_context, maxm, n_ctx);
    shrink_model_info mi;
    shrink_model_get_info(sk_context_model(ctx), &mi);
    int32_t V = mi.vocab_size;
    float  *last = sk_malloc((size_t)V * sizeof *last);
    float  *rows = maxm > 1 ? sk_malloc((size_t)(maxm - 1) * V * sizeof *rows) : NULL;
    if (!last || (maxm > 1 && !rows)) {
        sk_free(last);
        sk_free(rows);
        return sk_error(SHRINK_ERR_NOMEM, "scoring choices: out of memory");
    }
    shrink_status st = shrink_context_eval(ctx, context, n_context, 0, last, 1);
    for (int32_t k = 0; k < n_choices && st == SHRINK_OK; k++) {
        const int32_t *e = endings[k];
        int32_t        m = n_ending[k];
        bool           g = true, is_max;
        double         ll = logprob(last, V, e[0], &is_max);
        g = g && is_max;
        if (m > 1) {
            st = shrink_context_eval(ctx, e, m - 1, n_context, rows, m - 1);
            if (st != SHRINK_OK) break;
            for (int32_t j = 1; j < m; j++) {
                ll += logprob(rows + (size_t)(j - 1) * V, V, e[j], &is_max);
                g = g && is_max;
            }
        }
        out[k].loglik   = ll;
        out[k].n_tokens = m;
        out[k].greedy   = g;
    }
    sk_free(last);
    sk_free(rows);
    return st;
}

shrink_status shrink_task_encode_pair(const shrink_tokenizer *tok, bool add_bos,
                                      const char *context, const char *continuation,
                                      int32_t **ctx_ids, int32_t *n_ctx_ids, int32_t **cont_ids,
                                      int32_t *n_cont_ids) {
    if (!tok || !context || !continuation || !ctx_ids || !n_ctx_ids || !cont_ids || !n_cont_ids)
        return sk_error(SHRINK_ERR_ARG, "encoding a task item: no tokenizer, text or result given");
    *ctx_ids  = NULL;
    *cont_ids = NULL;
    size_t cl = strlen(context), ml = strlen(continuation);
    size_t sp = cl;
    while (sp > 0 && (context[sp - 1] == ' ' || context[sp - 1] == '\t' ||
                      context[sp - 1] == '\n' || context[sp - 1] == '\r'))
        sp--;
    char *whole = sk_malloc(cl + ml + 1);
    if (!whole) return sk_error(SHRINK_ERR_NOMEM, "out of memory");
    memcpy(whole, context, cl);
    memcpy(whole + cl, continuation, ml);
    whole[cl + ml] = '\0';
    int32_t *c = NULL, *w = NULL;
    size_t   nc = 0, nw = 0;
    shrink_status st = shrink_tokenizer_encode(tok, whole, sp, add_bos, &c, &nc);
    if (st == SHRINK_OK) st = shrink_tokenizer_encode(tok, whole, cl + ml, add_bos, &w, &nw);
    sk_free(whole);
    if (st == SHRINK_OK && nw <= nc)
        st = sk_error(SHRINK_ERR_ARG, "the continuation \"%.40s\" adds no token to its context",
                      continuation);
    if (st == SHRINK_OK && nw > (size_t)INT32_MAX)
        st = sk_error(SHRINK_ERR_RANGE, "item of %zu tokens is too long", nw);
    if (st != SHRINK_OK) {
        shrink_free(c);
        shrink_free(w);
        return st;
    }
    memmove(w, w + nc, (nw - nc) * sizeof *w);
    *ctx_ids    = c;
    *n_ctx_ids  = (int32_t)nc;
    *cont_ids   = w;
    *n_cont_ids = (int32_t)(nw - nc);
    return SHRINK_OK;
}

shrink_task_params shrink_task_params_default(void) {
    shrink_task_params p = {.max_new = 32, .stop = "\n", .progress = NULL, .user = NULL};
    return p;
}

static uint64_t fnv(uint64_t h, const int32_t *ids, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xff;
            h *= 0x100000001b3ull;
        }
    }
    h ^= 0xff;   /* separator between arrays */
    h *= 0x100000001b3ull;
    return h;
}

/* s without leading and trailing whitespace: [*b, *b + *n). */
static void strip(const char *s, const char **b, size_t *n) {
    size_t e = strlen(s), a = 0;
    while (a < e && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r')) a++;
    while (e > a && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\n' || s[e - 1] == '\r'))
        e--;
    *b = s + a;
    *n = e - a;
}

static shrink_status score_choice_item(const shrink_model_info *mi, shrink_context *ctx,
                                       const shrink_tokenizer *tok, const shrink_task_item *it,
                                       shrink_task_item_result *r, int64_t *evaluated) {
    int32_t              nk   = it->n_choices;
    int32_t            **ends = sk_calloc((size_t)nk, sizeof *ends);
    int32_t             *ne   = sk_calloc((size_t)nk, sizeof *ne);
    shrink_choice_score *sc   = sk_calloc((size_t)nk, sizeof *sc);
    int32_t             *cids = NULL, nc = 0;
    shrink_status        st   = SHRINK_OK;
    if (!ends || !ne || !sc) st = sk_error(SHRINK_ERR_NOMEM, "out of memory");
    int32_t maxm = 0;
    for (int32_t k = 0; k < nk && st == SHRINK_OK; k++) {
        int32_t *c = NULL, n = 0;
        st = shrink_task_encode_pair(tok, mi->add_bos, it->context, it->choices[k], &c, &n,
                                     &ends[k], &ne[k]);
        if (st != SHRINK_OK) break;
        if (k == 0) {
            cids = c;
            nc   = n;
        } else {
            if (n != nc || memcmp(c, cids, (size_t)n * sizeof *c))
                st = sk_error(SHRINK_ERR_ARG, "the context tokenizes differently per choice");
            shrink_free(c);
        }
        if (ne[k] > maxm) maxm = ne[k];
    }
    if (st != SHRINK_OK) {
        const char *e = shrink_last_error();
        char        msg[512];
        snprintf(msg, sizeof msg, "%s", e);
        st = sk_error(st, "line %lld: %s", (long long)it->line, msg);
    }
    int32_t L = shrink_context_n_ctx(ctx);
    if (st == SHRINK_OK && maxm > L - 1)
        st = sk_error(SHRINK_ERR_RANGE,
                      "line %lld: an ending of %d tokens does not fit the context of %d",
                      (long long)it->line, maxm, L);
    if (st == SHRINK_OK && nc < 1)
        st = sk_error(SHRINK_ERR_ARG, "line %lld: the context has no tokens (and the model no "
                      "BOS)", (long long)it->line);
    if (st == SHRINK_OK) {
        int32_t drop = nc + maxm - 1 - L;
        if (drop < 0) drop = 0;
        r->truncated = drop;
        uint64_t h = fnv(0xcbf29ce484222325ull, cids, nc);
        for (int32_t k = 0; k < nk; k++) h = fnv(h, ends[k], ne[k]);
        r->ids_hash = h;
        st = shrink_eval_choices(ctx, cids + drop, nc - drop, (const int32_t *const *)ends, ne,
                                 nk, sc);
        *evaluated += nc - drop;
        for (int32_t k = 0; k < nk; k++) *evaluated += ne[k] - 1;
    }
    if (st == SHRINK_OK) {
        int32_t p = 0, pn = 0;
        for (int32_t k = 1; k < nk; k++) {
            if (sc[k].loglik > sc[p].loglik) p = k;
            if (sc[k].loglik / (double)strlen(it->choices[k]) >
                sc[pn].loglik / (double)strlen(it->choices[pn]))
                pn = k;
        }
        r->loglik = sc[it->label].loglik;
        if (nk == 1) {   /* lambada */
            r->pred = r->pred_norm = 0;
            r->correct = r->correct_norm = sc[0].greedy;
        } else {
            r->pred         = p;
            r->pred_norm    = pn;
            r->correct      = p == it->label;
            r->correct_norm = pn == it->label;
        }
    }
    shrink_free(cids);
    for (int32_t k = 0; ends && k < nk; k++) shrink_free(ends[k]);
    sk_free(ends);
    sk_free(ne);
    sk_free(sc);
    return st;
}

static shrink_status generate_item(const shrink_model_info *mi, shrink_context *ctx,
                                   const shrink_tokenizer *tok, const shrink_task_item *it,
                                   const shrink_task_params *p, shrink_task_item_result *r,
                                   int64_t *evaluated) {
    int32_t *ids = NULL;
    size_t   n   = 0;
    shrink_status st = shrink_tokenizer_encode(tok, it->context, strlen(it->context), mi->add_bos,
                                               &ids, &n);
    if (st != SHRINK_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", shrink_last_error());
        return sk_error(st, "line %lld: %s", (long long)it->line, msg);
    }
    int32_t L = shrink_context_n_ctx(ctx), room = L - p->max_new;
    if (room < 1 || n < 1) {
        shrink_free(ids);
        return sk_error(SHRINK_ERR_RANGE, "line %lld: %d new tokens leave no room for the "
                        "prompt in a context of %d", (long long)it->line, p->max_new, L);
    }
    int32_t drop = (int64_t)n > room ? (int32_t)n - room : 0;
    int32_t np   = (int32_t)n - drop;
    r->truncated = drop;
    r->ids_hash  = fnv(0xcbf29ce484222325ull, ids, (int32_t)n);
    int32_t  V   = mi->vocab_size;
    float   *l   = sk_malloc((size_t)V * sizeof *l);
    int32_t *gen = sk_malloc((size_t)(p->max_new + 1) * sizeof *gen);
    char    *txt = NULL;
    size_t   tl  = 0;
    int32_t  ng  = 0;
    if (!l || !gen) st = sk_error(SHRINK_ERR_NOMEM, "out of memory");
    if (st == SHRINK_OK) st = shrink_context_eval(ctx, ids + drop, np, 0, l, 1);
    *evaluated += np;
    const char *stop = p->stop && p->stop[0] ? p->stop : NULL;
    while (st == SHRINK_OK && ng < p->max_new) {
        int32_t t = argmax_f(l, V);
        if (t == mi->eos_id) break;
        gen[ng++] = t;
        shrink_free(txt);
        txt = NULL;
        if ((st = shrink_tokenizer_decode(tok, gen, (size_t)ng, &txt, &tl)) != SHRINK_OK) break;
        if (stop && strstr(txt, stop)) break;
        if (ng == p->max_new) break;
        st = shrink_context_eval(ctx, &t, 1, np + ng - 1, l, 1);
        *evaluated += 1;
    }
    if (st == SHRINK_OK && !txt) {
        txt = sk_strdup("");
        if (!txt) st = sk_error(SHRINK_ERR_NOMEM, "out of memory");
    }
    if (st == SHRINK_OK) {
        char *cut = stop ? strstr(txt, stop) : NULL;
        if (cut) *cut = '\0';
        const char *gb, *ab;
        size_t      gn, an;
        strip(txt, &gb, &gn);
        strip(it->choices[0], &ab, &an);
        r->correct = gn == an && !memcmp(gb, ab, an);
        r->correct_norm = false;
        if (an == 0) r->correct_norm = true;
        for (size_t i = 0; an > 0 && i + an <= gn && !r->correct_norm; i++)
            r->correct_norm = !memcmp(gb + i, ab, an);
        r->generation = sk_strdup(txt);
        if (!r->generation) st = sk_error(SHRINK_ERR_NOMEM, "out of memory");
    }
    shrink_free(txt);
    shrink_free(ids);
    sk_free(l);
    sk_free(gen);
    return st;
}

void shrink_task_result_free(shrink_task_result *result) {
    if (!result) return;
    for (int64_t i = 0; result->items && i < result->n_items; i++)
        sk_free(result->items[i].generation);
    sk_free(result->items);
    result->items = NULL;
}

static double mean_se(double sum, double sum2, int64_t n, double *se) {
    double m = n > 0 ? sum / (double)n : 0.0;
    if (n > 1) {
        double var = (sum2 - (double)n * m * m) / (double)(n - 1);
        *se        = var > 0 ? sqrt(var / (double)n) : 0.0;
    } else {
        *se = 0.0;
    }
    return m;
}

shrink_status shrink_eval_task(const shrink_model *model, shrink_context *ctx,
                               const shrink_task *task, const shrink_task_params *params,
                               shrink_task_result *result) {
    if (!model || !ctx || !task || !result || task->n_items < 1)
        return sk_error(SHRINK_ERR_ARG, "task evaluation: no model, task or result given");
    shrink_task_params p = params ? *params : shrink_task_params_default();
    if (p.max_new < 1) p.max_new = 32;
    memset(result, 0, sizeof *result);
    const shrink_tokenizer *tok = shrink_model_tokenizer(model);
    if (!tok) return sk_error(SHRINK_ERR_ARG, "task evaluation: the model has no tokenizer");
    shrink_model_info mi;
    shrink_model_get_info(model, &mi);
    result->items = sk_calloc((size_t)task->n_items, sizeof *result->items);
    if (!result->items) return sk_error(SHRINK_ERR_NOMEM, "task evaluation: out of memory");
    result->n_items = task->n_items;
    double        t0 = shrink_time();
    shrink_status st = SHRINK_OK;
    double        s[3] = {0}, ll = 0, ll2 = 0;
    for (int64_t i = 0; i < task->n_items && st == SHRINK_OK; i++) {
        shrink_task_item_result *r = &result->items[i];
        if (task->kind == SHRINK_TASK_GENERATE)
            st = generate_item(&mi, ctx, tok, &task->items[i], &p, r, &result->tokens_evaluated);
        else
            st = score_choice_item(&mi, ctx, tok, &task->items[i], r, &result->tokens_evaluated);
        if (st != SHRINK_OK) break;
        s[0] += r->correct;
        s[1] += r->correct_norm;
        ll += r->loglik;
        ll2 += r->loglik * r->loglik;
        result->n_truncated += r->truncated > 0;
        if (p.progress) p.progress(p.user, i + 1, task->n_items);
    }
    if (st != SHRINK_OK) {
        shrink_task_result_free(result);
        return st;
    }
    double n = (double)task->n_items;
    result->acc      = s[0] / n;
    result->acc_norm = s[1] / n;
    result->acc_se   = n > 1 ? sqrt(result->acc * (1 - result->acc) / (n - 1)) : 0.0;
    result->acc_norm_se =
        n > 1 ? sqrt(result->acc_norm * (1 - result->acc_norm) / (n - 1)) : 0.0;
    result->mean_loglik = mean_se(ll, ll2, task->n_items, &result->mean_loglik_se);
    result->ppl         = task->kind == SHRINK_TASK_LAMBADA ? exp(-result->mean_loglik) : 0.0;
    result->seconds     = shrink_time() - t0;
    return SHRINK_OK;
}

/* ==== building task files from text ======================================================= */

typedef struct span {
    size_t b, e;   /* [b, e) */
} span;

typedef struct para {
    span  p;       /* the paragraph */
    span *s;       /* its sentences */
    int   n;
} para;

static bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Sentences of t[p.b, p.e): each ends at '.', '!' or '?' (with a closing '"' if one follows)
 * followed by whitespace or the end; the next one starts after the whitespace. */
static int split_sentences(const char *t, span p, span **out) {
    int   n = 0, cap = 0;
    span *s = NULL;
    size_t b = p.b;
    for (size_t i = p.b; i < p.e; i++) {
        char c = t[i];
        if (c != '.' && c != '!' && c != '?') continue;
        size_t e = i + 1;
        if (e < p.e && t[e] == '"') e++;
        if (e < p.e && t[e] != ' ' && t[e] != '\n') continue;
        if (n == cap) {
            cap       = cap ? 2 * cap : 16;
            span *ns  = sk_realloc(s, (size_t)cap * sizeof *ns);
            if (!ns) {
                sk_free(s);
                return -1;
            }
            s = ns;
        }
        s[n++] = (span){b, e};
        while (e < p.e && (t[e] == ' ' || t[e] == '\n')) e++;
        b = e;
        i = e - 1;
    }
    *out = s;
    return n;
}

static void paras_free(para *ps, int n) {
    for (int i = 0; ps && i < n; i++) sk_free(ps[i].s);
    sk_free(ps);
}

/* Paragraphs (blank-line separated, at least one sentence) of t[0..len). */
static shrink_status split_paras(const char *t, size_t len, para **out, int *n_out) {
    int   n = 0, cap = 0;
    para *ps = NULL;
    size_t i = 0;
    while (i < len) {
        while (i < len && (t[i] == '\n' || t[i] == ' ' || t[i] == '\r' || t[i] == '\t')) i++;
        size_t b = i;
        while (i < len && !(t[i] == '\n' && i + 1 < len &&
                            (t[i + 1] == '\n' || (t[i + 1] == '\r' && i + 2 < len &&
                                                  t[i + 2] == '\n'))))
            i++;
        size_t e = i;
        while (e > b && (t[e - 1] == ' ' || t[e - 1] == '\n' || t[e - 1] == '\r')) e--;
        if (e <= b) continue;
        if (n == cap) {
            cap      = cap ? 2 * cap : 256;
            para *np = sk_realloc(ps, (size_t)cap * sizeof *np);
            if (!np) {
                paras_free(ps, n);
                return sk_error(SHRINK_ERR_NOMEM, "out of memory");
            }
            ps = np;
        }
        para *p = &ps[n];
        p->p    = (span){b, e};
        p->s    = NULL;
        p->n    = split_sentences(t, p->p, &p->s);
        if (p->n < 0) {
            paras_free(ps, n);
            return sk_error(SHRINK_ERR_NOMEM, "out of memory");
        }
        n++;
    }
    *out   = ps;
    *n_out = n;
    return SHRINK_OK;
}

/* The task file being made, in memory (written atomically once complete). */
typedef struct sbuf {
    char  *p;
    size_t n, cap;
    int    oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        char *q = sk_realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* JSON string of t[b, e) (newlines and tabs as escapes). */
static void json_str(sbuf *f, const char *prefix, const char *t, size_t b, size_t e) {
    sb_puts(f, "\"");
    sb_puts(f, prefix);
    for (size_t i = b; i < e; i++) {
        unsigned char c = (unsigned char)t[i];
        char esc[8];
        if (c == '"' || c == '\\') snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n') snprintf(esc, sizeof esc, "\\n");
        else if (c == '\t') snprintf(esc, sizeof esc, "\\t");
        else if (c == '\r') snprintf(esc, sizeof esc, "\\r");
        else if (c < 0x20) snprintf(esc, sizeof esc, "\\u%04x", c);
        else {
            sb_put(f, (const char *)&t[i], 1);
            continue;
        }
        sb_puts(f, esc);
    }
    sb_puts(f, "\"");
}

/* Whether the word t[wb, we) occurs as a whole word (ASCII case-insensitive) in t[b, e). */
static bool word_in(const char *t, size_t wb, size_t we, size_t b, size_t e) {
    size_t wl = we - wb;
    for (size_t i = b; i + wl <= e; i++) {
        if (i > b && is_letter(t[i - 1])) continue;
        if (i + wl < e && is_letter(t[i + wl])) continue;
        size_t k = 0;
        while (k < wl && (t[i + k] | 0x20) == (t[wb + k] | 0x20)) k++;
        if (k == wl) return true;
    }
    return false;
}

/* Lambada candidates of paragraph p: sentence k >= 2 ending "<space>word." (or ! ?) with a
 * word of >= 3 ASCII letters that occurs in the paragraph before sentence k. Writes the end
 * of the word of each candidate into ends[]; returns the count. */
static int lambada_candidates(const char *t, const para *p, size_t *ends) {
    int n = 0;
    for (int k = 2; k < p->n; k++) {
        span   s = p->s[k];
        size_t e = s.e - 1;                   /* the '.', '!' or '?' */
        if (t[e] == '"') continue;            /* a quote ends it: skip */
        size_t we = e, wb = e;
        while (wb > s.b && is_letter(t[wb - 1])) wb--;
        if (we - wb < 3 || wb == s.b || t[wb - 1] != ' ') continue;
        if (!word_in(t, wb, we, p->p.b, s.b)) continue;
        ends[n++] = we;
    }
    return n;
}

shrink_status shrink_task_make(shrink_task_kind kind, const char *text_path, const char *out_path,
                               uint64_t seed, int64_t limit, int64_t *n_items) {
    if (!text_path || !out_path || (kind != SHRINK_TASK_LAMBADA && kind != SHRINK_TASK_CHOICE))
        return sk_error(SHRINK_ERR_ARG, "making a task: lambada or choice, a text and an "
                        "output are needed");
    char  *t   = NULL;
    size_t len = 0;
    shrink_status st = sk_read_file(text_path, (size_t)1 << 31, &t, &len);
    if (st != SHRINK_OK) return st;
    size_t bad = 0;
    if (!sk_utf8_valid(t, len, &bad)) {
        sk_free(t);
        return sk_error(SHRINK_ERR_FORMAT, "%s: invalid UTF-8 at byte %zu", text_path, bad);
    }
    para *ps = NULL;
    int   np = 0;
    if ((st = split_paras(t, len, &ps, &np)) != SHRINK_OK) {
        sk_free(t);
        return st;
    }
    sbuf f = {0};
    uint64_t rng   = seed;
    int64_t  count = 0;
    size_t  *ends  = NULL;
    for (int i = 0; i < np && (limit <= 0 || count < limit); i++) {
        const para *p = &ps[i];
        if (kind == SHRINK_TASK_LAMBADA) {
            ends = sk_realloc(ends, (size_t)(p->n + 1) * sizeof *ends);
            if (!ends) {
                st = sk_error(SHRINK_ERR_NOMEM, "out of memory");
                break;
            }
            int nc = lambada_candidates(t, p, ends);
            if (nc == 0) continue;
            size_t we = ends[sk_task_rand(&rng) % (uint64_t)nc];
            sb_puts(&f, "{\"text\": ");
            json_str(&f, "", t, p->p.b, we);
            sb_puts(&f, "}\n");
            count++;
            continue;
        }
        /* choice: context = sentences [0, k), the true ending sentence k, 3 others */
        if (p->n < 3) continue;
        int  k = 2 + (int)(sk_task_rand(&rng) % (uint64_t)(p->n - 2));
        span truth = p->s[k];
        span dis[3];
        int  nd = 0;
        for (int tries = 0; tries < 200 && nd < 3; tries++) {
            int j = (int)(sk_task_rand(&rng) % (uint64_t)np);
            if (j - i < 5 && i - j < 5) continue;   /* far from this paragraph */
            if (ps[j].n < 2) continue;
            span c = ps[j].s[1 + (int)(sk_task_rand(&rng) % (uint64_t)(ps[j].n - 1))];
            bool same = c.e - c.b == truth.e - truth.b && !memcmp(t + c.b, t + truth.b, c.e - c.b);
            for (int d = 0; d < nd && !same; d++)
                same = c.e - c.b == dis[d].e - dis[d].b && !memcmp(t + c.b, t + dis[d].b, c.e - c.b);
            if (!same) dis[nd++] = c;
        }
        if (nd < 3) continue;
        int label = (int)(sk_task_rand(&rng) % 4);
        sb_puts(&f, "{\"context\": ");
        json_str(&f, "", t, p->p.b, p->s[k - 1].e);
        sb_puts(&f, ", \"choices\": [");
        for (int c = 0, d = 0; c < 4; c++) {
            span sc = c == label ? truth : dis[d++];
            if (c) sb_puts(&f, ", ");
            json_str(&f, " ", t, sc.b, sc.e);   /* the ending starts with its space */
        }
        char end[48];
        snprintf(end, sizeof end, "], \"label\": %d}\n", label);
        sb_puts(&f, end);
        count++;
    }
    sk_free(ends);
    paras_free(ps, np);
    sk_free(t);
    if (st == SHRINK_OK && f.oom) st = sk_error(SHRINK_ERR_NOMEM, "out of memory");
    if (st == SHRINK_OK && count == 0)
        st = sk_error(SHRINK_ERR_FORMAT, "%s: no paragraph gives a %s item (docs/eval.md)",
                      text_path, shrink_task_kind_name(kind));
    if (st == SHRINK_OK) {
        /* temp file + fsync + rename; refused if out_path is the text itself */
        const char *inputs[] = {text_path};
        sk_out o;
        st = sk_out_open(&o, out_path, inputs, 1);
        if (!st) st = sk_out_write(&o, f.p, f.n);
        if (!st) st = sk_out_commit(&o);
    }
    sk_free(f.p);
    if (st == SHRINK_OK && n_items) *n_items = count;
    return st;
}
