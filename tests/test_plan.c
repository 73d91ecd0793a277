/*
 * test_plan.c - shrink plan (src/quant/plan.c, docs/plan.md):
 *   - the knapsack shrink_plan_solve against a brute-force reference: every assignment of
 *     400 random instances (1..6 items of 1..4 options, some unavailable, budgets from below
 *     the smallest choice to above the largest) enumerated; the solver's summed KL must equal
 *     the least summed KL of the assignments that fit (it is exact below 2^18 bytes), its
 *     bytes fit, and an instance no choice fits is refused; budgets above 2^18 (rounded
 *     costs) still fit and are never worse than the all-cheapest choice;
 *   - shrink_plan on stories260K (in the repository): the written file is at most the budget
 *     (file size on disk), the predicted KL is the sum of the chosen candidates' and the
 *     chosen types are the file's; with measure_all every
 *     candidate is measured and the anchors' KL equals the default's (the same pass), whose
 *     other candidates are the anchor's KL scaled by their error; max_kl at that plan's KL
 *     gives a file no larger within it, a KL bound no plan reaches is refused; a budget below the smallest
 *     file is refused saying the smallest size; an unknown type, a type no matrix can take,
 *     no budget are refused with nothing written.
 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The least summed kl over every assignment with summed bytes <= budget (INFINITY: none). */
static double brute(int n, int k, const uint64_t *b, const double *kl, uint64_t budget) {
    int idx[8] = {0};
    double best = INFINITY;
    for (;;) {
        uint64_t s = 0;
        double v = 0.0;
        int ok = 1;
        for (int i = 0; i < n; i++) {
            if (b[i * k + idx[i]] == UINT64_MAX) ok = 0;
            else {
                s += b[i * k + idx[i]];
                v += kl[i * k + idx[i]];
            }
        }
        if (ok && s <= budget && v < best) best = v;
        int i = 0;
        while (i < n && ++idx[i] == k) idx[i++] = 0;
        if (i == n) break;
    }
    return best;
}

static void test_solve(void) {
    test_rng_seed(19);
    uint64_t b[6 * 4];
    double kl[6 * 4];
    int32_t ch[6];
    int cases = 0;
    for (int c = 0; c < 400; c++) {
        const int n = 1 + (int)(test_rng_u() * 6), k = 1 + (int)(test_rng_u() * 4);
        const int big = c % 10 == 9; /* sizes above the exact range */
        uint64_t lo = 0, hi = 0;
        for (int i = 0; i < n; i++) {
            uint64_t mn = UINT64_MAX, mx = 0;
            for (int j = 0; j < k; j++) {
                int none = j > 0 && test_rng_u() < 0.15;
                b[i * k + j] = none ? UINT64_MAX
                               : (uint64_t)(1 + test_rng_u() * 100) * (big ? 100000u : 1u);
                kl[i * k + j] = test_rng_u() < 0.1 ? 0.0 : test_rng_u();
                if (!none && b[i * k + j] < mn) mn = b[i * k + j];
                if (!none && b[i * k + j] > mx) mx = b[i * k + j];
            }
            lo += mn;
            hi += mx;
        }
        uint64_t budget = lo + (uint64_t)(test_rng_u() * (double)(hi - lo + 2));
        if (c % 7 == 0 && lo > 0) budget = lo - 1;
        const double want = brute(n, k, b, kl, budget);
        shrink_status st = shrink_plan_solve(n, k, b, kl, budget, ch);
        if (!isfinite(want)) {
            CHECK(st == SHRINK_ERR_ARG, "case %d: budget %llu below %llu accepted", c,
                  (unsigned long long)budget, (unsigned long long)lo);
            continue;
        }
        CHECK(st == SHRINK_OK, "case %d: %s", c, shrink_last_error());
        if (st) continue;
        uint64_t s = 0;
        double v = 0.0, cheap = 0.0;
        for (int i = 0; i < n; i++) {
            CHECK(ch[i] >= 0 && ch[i] < k && b[i * k + ch[i]] != UINT64_MAX,
                  "case %d: item %d option %d", c, i, ch[i]);
            s += b[i * k + ch[i]];
            v += kl[i * k + ch[i]];
            int m = 0;
            for (int j = 1; j < k; j++) if (b[i * k + j] < b[i * k + m]) m = j;
            cheap += kl[i * k + m];
        }
        CHECK(s <= budget, "case %d: %llu bytes over the budget %llu", c, (unsigned long long)s,
              (unsigned long long)budget);
        if (budget <= (1u << 18))
            CHECK(fabs(v - want) <= 1e-12, "case %d: KL %.15g, brute force %.15g", c, v, want);
        else
            CHECK(v <= cheap + 1e-12 && v >= want - 1e-12, "case %d: KL %g not within [%g, %g]",
                  c, v, want, cheap);
        cases++;
    }
    CHECK(cases > 200, "only %d feasible cases", cases);
    /* no item: nothing to choose, any budget */
    CHECK(shrink_plan_solve(0, 1, NULL, NULL, 0, NULL) == SHRINK_OK, "empty instance refused");
    /* NaN KL refused */
    uint64_t b1[2] = {1, 2};
    double k1[2] = {NAN, 0.0};
    CHECK(shrink_plan_solve(1, 2, b1, k1, 10, ch) == SHRINK_ERR_ARG, "NaN KL accepted");
}

static long file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

static void test_plan_model(void) {
    static char mbuf[4200];
    const char *model = test_need_model(mbuf, sizeof mbuf, "stories260K/stories260K.bin");
    if (!model) return;
    char dir[] = "/tmp/shrink-plan-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char calib[256], o1[256], o2[256], o3[256];
    snprintf(calib, sizeof calib, "%s/calib.txt", dir);
    snprintf(o1, sizeof o1, "%s/a.gguf", dir);
    snprintf(o2, sizeof o2, "%s/b.gguf", dir);
    snprintf(o3, sizeof o3, "%s/c.gguf", dir);
    FILE *f = fopen(calib, "w");
    for (int i = 0; f && i < 20; i++)
        fprintf(f, "Once upon a time, there was a little girl named Lily. She liked to play in "
                   "the park with her dog Max. One day %d birds sang a song.\n", i);
    if (f) fclose(f);

    shrink_plan_params p = shrink_plan_params_default();
    p.calib_path = calib;
    p.calib_tokens = 32;
    p.calib_ctx = 32;
    p.types = "q4_0,q8_0,f16";
    /* the smallest file: learned from a refusal of a 1-byte budget */
    p.budget_bytes = 1;
    shrink_plan_result r;
    shrink_status st = shrink_plan("", &p, &r);
    CHECK(st == SHRINK_ERR_ARG, "no input accepted");
    st = shrink_plan(model, &p, &r);
    CHECK(st == SHRINK_ERR_ARG && strstr(shrink_last_error(), "smallest"),
          "1-byte budget: %d %s", st, shrink_last_error());
    unsigned long long min = 0;
    const char *at = strstr(shrink_last_error(), "allow: ");
    if (at) min = strtoull(at + 7, NULL, 10);
    CHECK(min > 1000, "no smallest size in '%s'", shrink_last_error());
    p.budget_bytes = min - 1;
    p.out = o3;
    CHECK(shrink_plan(model, &p, &r) == SHRINK_ERR_ARG && file_size(o3) < 0,
          "budget of the smallest file - 1 accepted or wrote a file");

    /* a budget between the smallest and the largest file */
    p.budget_bytes = min + (min / 5);
    p.out = o1;
    st = shrink_plan(model, &p, &r);
    CHECK(st == SHRINK_OK, "plan: %s", shrink_last_error());
    if (st == SHRINK_OK) {
        const long sz = file_size(o1);
        CHECK(sz > 0 && (unsigned long long)sz <= p.budget_bytes, "file %ld bytes, budget %llu",
              sz, (unsigned long long)p.budget_bytes);
        CHECK((uint64_t)sz == r.file_bytes, "file %ld bytes, result says %llu", sz,
              (unsigned long long)r.file_bytes);
        CHECK(r.min_bytes == min, "min_bytes %llu, refusal said %llu",
              (unsigned long long)r.min_bytes, min);
        double sum = 0.0;
        int upgraded = 0;
        for (int64_t i = 0; i < r.n_tensors; i++) {
            const shrink_plan_tensor *t = &r.tensors[i];
            sum += t->cands[t->choice].kl;
            upgraded += t->choice > 0;
            CHECK(t->anchor >= 0 && t->cands[t->anchor].measured, "%s: anchor not measured",
                  t->name);
        }
        CHECK(fabs(sum - r.predicted_kl) <= 1e-12 * (1 + sum), "predicted %g, sum %g",
              r.predicted_kl, sum);
        CHECK(upgraded > 0, "nothing above the smallest type with 20%% more bytes");
        CHECK(isfinite(r.measured_kl) && r.measured_kl > 0, "measured KL %g", r.measured_kl);
        /* the file holds the chosen types */
        shrink_model *m = NULL;
        shrink_load_params lp = shrink_load_params_default();
        lp.no_tokenizer = true;
        if (shrink_model_load(&m, o1, &lp) == SHRINK_OK) {
            int bad = 0;
            for (int64_t i = 0; i < r.n_tensors; i++) {
                int found = 0;
                shrink_tensor_info ti;
                for (int64_t k = 0; shrink_model_tensor(m, k, &ti) == SHRINK_OK; k++) {
                    if (strcmp(ti.name, r.tensors[i].name) != 0) continue;
                    found = ti.dtype == r.tensors[i].cands[r.tensors[i].choice].dtype;
                }
                bad += !found;
            }
            CHECK(bad == 0, "%d tensors of the file are not the plan's type", bad);
            shrink_model_free(m);
        } else CHECK(0, "reload %s: %s", o1, shrink_last_error());
        /* --measure-all: every candidate measured; the anchors' KL the same passes give (a
         * second run of the same measurements: determinism; the CLI test compares files) */
        shrink_plan_params pa = p;
        pa.out = NULL;
        pa.measure_all = true;
        shrink_plan_result ra;
        st = shrink_plan(model, &pa, &ra);
        CHECK(st == SHRINK_OK && ra.n_tensors == r.n_tensors, "measure_all: %s",
              shrink_last_error());
        for (int64_t i = 0; st == SHRINK_OK && i < r.n_tensors; i++) {
            const shrink_plan_tensor *t = &r.tensors[i], *a = &ra.tensors[i];
            for (int32_t j = 0; j < t->n_cands; j++) {
                const shrink_plan_cand *c = &t->cands[j];
                if (j == t->anchor)
                    CHECK(a->cands[j].kl == c->kl, "%s %s: anchor KL %g, measured alone %g",
                          t->name, shrink_dtype_name(c->dtype), c->kl, a->cands[j].kl);
                else if (c->err > 0)
                    CHECK(fabs(c->kl - t->cands[t->anchor].kl * c->err / t->cands[t->anchor].err)
                              <= 1e-12 * (1 + c->kl) && !c->measured,
                          "%s %s: KL %g is not the anchor's scaled", t->name,
                          shrink_dtype_name(c->dtype), c->kl);
                CHECK(a->cands[j].measured || a->cands[j].err == 0.0, "%s %s: not measured",
                      t->name, shrink_dtype_name(c->dtype));
            }
        }
        if (st == SHRINK_OK) shrink_plan_result_free(&ra);
        /* max_kl = this plan's predicted KL: a file no larger (to the bisection's 1/10000 of
         * the largest file) within that KL; a bound below the f16 model's KL refused */
        shrink_plan_params pk = p;
        pk.out = NULL;
        pk.budget_bytes = 0;
        pk.max_kl = r.predicted_kl;
        st = shrink_plan(model, &pk, &ra);
        CHECK(st == SHRINK_OK, "max_kl: %s", shrink_last_error());
        if (st == SHRINK_OK) {
            CHECK(ra.predicted_kl <= r.predicted_kl && ra.file_bytes <= ra.budget_bytes &&
                  ra.file_bytes <= r.file_bytes + ra.budget_bytes / 5000,
                  "max_kl %g: KL %g in %llu bytes; the budget plan %llu bytes", r.predicted_kl,
                  ra.predicted_kl, (unsigned long long)ra.file_bytes,
                  (unsigned long long)r.file_bytes);
            shrink_plan_result_free(&ra);
        }
        pk.max_kl = 1e-30;
        CHECK(shrink_plan(model, &pk, &ra) == SHRINK_ERR_ARG &&
              strstr(shrink_last_error(), "no plan within"), "max_kl 1e-30: %s",
              shrink_last_error());
        shrink_plan_result_free(&r);
    }
    /* bad input, nothing written */
    p.out = o3;
    p.types = "q4_0,q9_9";
    CHECK(shrink_plan(model, &p, &r) == SHRINK_ERR_ARG && strstr(shrink_last_error(), "q9_9") &&
          file_size(o3) < 0, "unknown type: %s", shrink_last_error());
    p.types = "q4_K"; /* rows of 64: no matrix can take a 256-block type */
    CHECK(shrink_plan(model, &p, &r) == SHRINK_ERR_ARG && strstr(shrink_last_error(), "fits") &&
          file_size(o3) < 0, "q4_K on 64-wide rows: %s", shrink_last_error());
    p.types = NULL;
    p.budget_bytes = 0;
    CHECK(shrink_plan(model, &p, &r) == SHRINK_ERR_ARG && file_size(o3) < 0, "no budget accepted");
    remove(o1);
    remove(o2);
    remove(calib);
    rmdir(dir);
}

int main(void) {
    shrink_set_threads(1); /* small matrices: threads would only wait on each other */
    test_solve();
    test_plan_model();
    return test_summary("test_plan");
}
