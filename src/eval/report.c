/*
 * report.c - shrink_report: one self-contained HTML page (inline CSS and SVG, no script, no
 * network) from the JSON objects `shrink compare --json` prints: the table of every variant,
 * the size-vs-KL plot with its Pareto front (no other variant is both smaller and closer to
 * its base), decode and prompt speed bars, and each model file's manifest when it has one.
 * Written atomically (src/core/out.h). Each plotted point is an SVG <circle class="point">
 * (class "point pareto" on the front) and each bar a <rect class="bar tg|pp">, so a test can
 * count them.
 */
#include "../core/json.h"
#include "../core/out.h"

#include <dirent.h>
#include <math.h>

typedef struct rp_model {
    const char *name, *path, *scheme, *source;  /* views into the parsed trees */
    int         is_base;
    double      bytes, bpw, ppl, dppl_pct, kl, kl_se, kl_p99, top1, tg, pp, rss;
    int         pareto;
} rp_model;

static double num_or_nan(const sk_json *o, const char *key) {
    double v;
    return sk_json_get_num(o, key, &v) ? v : NAN;
}

/* ---- HTML pieces ---------------------------------------------------------------------- */

static void esc(sk_bytes *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&':  sk_bytes_printf(b, "&amp;"); break;
        case '<':  sk_bytes_printf(b, "&lt;"); break;
        case '>':  sk_bytes_printf(b, "&gt;"); break;
        case 0x22: sk_bytes_printf(b, "&quot;"); break;   /* a double quote */
        case '\'': sk_bytes_printf(b, "&#39;"); break;
        default:   sk_bytes_put(b, s, 1);
        }
    }
}

static void cell_num(sk_bytes *b, double v, const char *fmt) {
    if (isfinite(v)) {
        sk_bytes_printf(b, "<td class=\"num\">");
        sk_bytes_printf(b, fmt, v);
        sk_bytes_printf(b, "</td>");
    } else {
        sk_bytes_printf(b, "<td class=\"num\">–</td>");
    }
}

static const char *fmt_size(char *buf, size_t cap, double bytes) {
    if (bytes >= 1024.0 * 1024 * 1024) snprintf(buf, cap, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    else if (bytes >= 1024.0 * 1024) snprintf(buf, cap, "%.2f MiB", bytes / (1024.0 * 1024));
    else if (bytes >= 1024.0) snprintf(buf, cap, "%.2f KiB", bytes / 1024.0);
    else snprintf(buf, cap, "%.0f B", bytes);
    return buf;
}

/* A tick step of 1, 2 or 5 x 10^k giving about `n` ticks over [0, hi]. */
static double nice_step(double hi, int n) {
    double raw = hi / n, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* The plots' style, inside each <svg> so that one cut out of the page looks the same. */
static const char svg_style[] =
    "<style>text{font-family:system-ui,sans-serif;font-size:12px}.frame{fill:none;stroke:#888}"
    ".grid{stroke:#eee}.tick{fill:#555}.axis{fill:#222;font-size:13px}.label{fill:#333;"
    "font-size:11px}.point{fill:#9aa;stroke:#455}.point.pareto{fill:#d62;stroke:#822}"
    ".point.base{fill:#26c}.front{fill:none;stroke:#d62;stroke-width:1.5;stroke-dasharray:4 3}"
    ".tg{fill:#2a7}.pp{fill:#69c}.membar{fill:#a7c}.errbar{fill:#c84}.cell{stroke:#fff}</style>\n";

enum { PW = 720, PH = 420, ML = 80, MR = 30, MT = 20, MB = 56 };

/* The KL axis: linear from 0, or, when the positive KLs span two decades or more, log10
 * over whole decades with KL = 0 (the base) on a band of its own below them. */
typedef struct kl_axis {
    int    log;
    double lo, hi;   /* linear: 0..hi; log: 10^lo..10^hi */
    double top, h;   /* pixels */
} kl_axis;

static double kl_y(const kl_axis *a, double v) {
    if (!a->log) return a->top + a->h - v / a->hi * a->h;
    double band = 28, hh = a->h - band;
    if (v <= 0) return a->top + a->h - band / 2;
    double t = (log10(v) - a->lo) / (a->hi - a->lo);
    return a->top + hh - (t < 0 ? 0 : t) * hh;
}

static void pareto_svg(sk_bytes *b, const rp_model *m, int n) {
    double xmax = 0, ymax = 0, ymin = INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(m[i].kl)) continue;
        if (m[i].bytes / 1048576.0 > xmax) xmax = m[i].bytes / 1048576.0;
        if (m[i].kl > ymax) ymax = m[i].kl;
        if (m[i].kl > 0 && m[i].kl < ymin) ymin = m[i].kl;
    }
    if (xmax <= 0) xmax = 1;
    if (ymax <= 0) ymax = 1;
    double xs = nice_step(xmax, 6), ys = nice_step(ymax, 5);
    xmax = ceil(xmax * 1.05 / xs) * xs;
    double w = PW - ML - MR, h = PH - MT - MB;
    kl_axis ya = {.log = isfinite(ymin) && ymax / ymin >= 100, .top = MT, .h = h};
    if (ya.log) {
        ya.lo = floor(log10(ymin));
        ya.hi = ceil(log10(ymax));
        if (ya.hi <= ya.lo) ya.hi = ya.lo + 1;
    } else {
        ya.hi = ceil(ymax * 1.08 / ys) * ys;
    }
#define X(v) (ML + (v) / xmax * w)
#define Y(v) kl_y(&ya, (v))
    sk_bytes_printf(b, "<svg id=\"pareto\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                    "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"size versus KL\">\n%s"
                    "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n", PW, PH, PW, PH, svg_style);
    sk_bytes_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" class=\"frame\"/>\n",
                    ML, MT, w, h);
    for (double t = 0; t <= xmax + xs / 2; t += xs)
        sk_bytes_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\"/>"
                        "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                        X(t), MT, X(t), MT + h, X(t), MT + h + 16, t);
    int n_ticks = ya.log ? (int)(ya.hi - ya.lo) + 2 : (int)floor(ya.hi / ys + 0.5) + 1;
    for (int k = 0; k < n_ticks; k++) {
        double t = !ya.log ? k * ys : k == 0 ? 0 : pow(10.0, ya.lo + k - 1);
        sk_bytes_printf(b, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                        "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                        ML, Y(t), ML + w, Y(t), ML - 6, Y(t) + 4, t);
    }
    sk_bytes_printf(b, "<text class=\"axis\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">file size "
                    "(MiB)</text>\n", ML + w / 2, PH - 12);
    sk_bytes_printf(b, "<text class=\"axis\" transform=\"translate(18 %.1f) rotate(-90)\" "
                    "text-anchor=\"middle\">KL from the base (nats/token%s)</text>\n", MT + h / 2,
                    ya.log ? ", log scale" : "");
    /* the front, left to right (points sorted by size: the caller sorted m) */
    sk_bytes_printf(b, "<polyline class=\"front\" points=\"");
    for (int i = 0; i < n; i++)
        if (m[i].pareto) sk_bytes_printf(b, "%.1f,%.1f ", X(m[i].bytes / 1048576.0), Y(m[i].kl));
    sk_bytes_printf(b, "\"/>\n");
    for (int i = 0; i < n; i++) {
        if (!isfinite(m[i].kl)) continue;
        char sz[32];
        double cx = X(m[i].bytes / 1048576.0), cy = Y(m[i].kl);
        sk_bytes_printf(b, "<circle class=\"point%s%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\" data-name=\"",
                        m[i].pareto ? " pareto" : "", m[i].is_base ? " base" : "", cx, cy);
        esc(b, m[i].name);
        sk_bytes_printf(b, "\" data-bytes=\"%.0f\" data-kl=\"%.9g\"><title>", m[i].bytes, m[i].kl);
        esc(b, m[i].name);
        sk_bytes_printf(b, ": %s, KL %.6g</title></circle>", fmt_size(sz, sizeof sz, m[i].bytes),
                        m[i].kl);
        sk_bytes_printf(b, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\">", cx + 7, cy - 7);
        esc(b, m[i].name);
        sk_bytes_printf(b, "</text>\n");
    }
    sk_bytes_printf(b, "</svg>\n");
#undef X
#undef Y
}

static void speed_svg(sk_bytes *b, const rp_model *m, int n) {
    double vmax = 0;
    int rows = 0;
    for (int i = 0; i < n; i++) {
        if (isfinite(m[i].tg) && m[i].tg > vmax) vmax = m[i].tg;
        if (isfinite(m[i].pp) && m[i].pp > vmax) vmax = m[i].pp;
        rows += isfinite(m[i].tg) || isfinite(m[i].pp);
    }
    if (!rows) {
        sk_bytes_printf(b, "<p>No speed measured (compare ran with <code>--no-speed</code>).</p>\n");
        return;
    }
    const int lw = 220, bh = 12, row = 2 * bh + 12, top = 24;
    int hgt = top + rows * row + 30;
    double w = PW - lw - 90, xs = nice_step(vmax, 5);
    vmax = ceil(vmax / xs) * xs;
    sk_bytes_printf(b, "<svg id=\"speed\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                    "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"speed\">\n%s"
                    "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n", PW, hgt, PW, hgt, svg_style);
    sk_bytes_printf(b, "<rect class=\"legend tg\" x=\"%d\" y=\"4\" width=\"12\" height=\"10\"/>"
                    "<text class=\"tick\" x=\"%d\" y=\"13\">decode (tg) tokens/s</text>"
                    "<rect class=\"legend pp\" x=\"%d\" y=\"4\" width=\"12\" height=\"10\"/>"
                    "<text class=\"tick\" x=\"%d\" y=\"13\">prompt (pp) tokens/s</text>\n",
                    lw, lw + 16, lw + 180, lw + 196);
    for (double t = 0; t <= vmax + xs / 2; t += xs)
        sk_bytes_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                        "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                        lw + t / vmax * w, top, lw + t / vmax * w, top + rows * row,
                        lw + t / vmax * w, top + rows * row + 16, t);
    int r = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(m[i].tg) && !isfinite(m[i].pp)) continue;
        int y = top + r * row + 4;
        sk_bytes_printf(b, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"end\">", lw - 8,
                        y + bh + 4);
        esc(b, m[i].name);
        sk_bytes_printf(b, "</text>\n");
        const double v[2] = {m[i].tg, m[i].pp};
        for (int k = 0; k < 2; k++) {
            if (!isfinite(v[k])) continue;
            sk_bytes_printf(b, "<rect class=\"bar %s\" x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                            "data-name=\"", k ? "pp" : "tg", lw, y + k * bh, v[k] / vmax * w, bh);
            esc(b, m[i].name);
            sk_bytes_printf(b, "\"><title>%.1f tokens/s</title></rect><text class=\"tick\" x=\"%.1f\" "
                            "y=\"%d\">%.1f</text>\n", v[k], lw + v[k] / vmax * w + 4,
                            y + k * bh + 10, v[k]);
        }
        r++;
    }
    sk_bytes_printf(b, "</svg>\n");
}

/* The manifest of each model file still at its path; a file without one (or gone, or not a
 * model) is skipped; only out of memory is an error. */
static shrink_status manifest_html(sk_bytes *b, const rp_model *m, int n) {
    int any = 0;
    for (int i = 0; i < n; i++) {
        shrink_manifest *mf = NULL;
        shrink_status st = m[i].path ? shrink_manifest_read(m[i].path, &mf) : SHRINK_OK;
        if (st == SHRINK_ERR_NOMEM) return st;
        if (st || !mf) {
            sk_clear_error();
            continue;
        }
        if (!any) sk_bytes_printf(b, "<h2>How the files were made</h2>\n");
        any = 1;
        sk_bytes_printf(b, "<details><summary>");
        esc(b, m[i].name);
        sk_bytes_printf(b, " — shrink ");
        esc(b, mf->version);
        sk_bytes_printf(b, ", ");
        esc(b, mf->date);
        sk_bytes_printf(b, "</summary><pre>");
        for (int32_t k = 0; k < mf->n_command; k++) {
            if (k) sk_bytes_printf(b, " ");
            esc(b, mf->command[k]);
        }
        sk_bytes_printf(b, "\n");
        for (int32_t k = 0; k < mf->n_inputs; k++) {
            sk_bytes_printf(b, "%s ", k ? "      " : "input:");
            esc(b, mf->inputs[k].arg);
            sk_bytes_printf(b, " ");
            esc(b, mf->inputs[k].path);
            sk_bytes_printf(b, " sha256 %s\n", mf->inputs[k].sha256);
        }
        sk_bytes_printf(b, "</pre></details>\n");
        shrink_manifest_free(mf);
    }
    return SHRINK_OK;
}

static int by_size(const void *a, const void *b) {
    const rp_model *x = a, *y = b;
    return (x->bytes > y->bytes) - (x->bytes < y->bytes);
}

/* ---- memory, per-tensor errors, the sensitivity heatmap ------------------------------ */

static void memory_svg(sk_bytes *b, const rp_model *m, int n) {
    double vmax = 0;
    int rows = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(m[i].rss) && m[i].rss > 0) {
            rows++;
            if (m[i].rss / 1048576.0 > vmax) vmax = m[i].rss / 1048576.0;
        }
    if (!rows) {
        sk_bytes_printf(b, "<p>No memory measured (compare measures the peak RSS of its speed "
                        "test; none ran with <code>--no-speed</code>).</p>\n");
        return;
    }
    const int lw = 220, bh = 14, row = bh + 8, top = 10;
    int hgt = top + rows * row + 34;
    double w = PW - lw - 90, xs = nice_step(vmax, 5);
    vmax = ceil(vmax / xs) * xs;
    sk_bytes_printf(b, "<svg id=\"memory\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                    "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"memory\">\n%s"
                    "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n", PW, hgt, PW, hgt,
                    svg_style);
    for (double t = 0; t <= vmax + xs / 2; t += xs)
        sk_bytes_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                        "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                        lw + t / vmax * w, top, lw + t / vmax * w, top + rows * row,
                        lw + t / vmax * w, top + rows * row + 16, t);
    sk_bytes_printf(b, "<text class=\"axis\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">peak RSS of "
                    "the speed test (MiB)</text>\n", lw + w / 2, hgt - 4);
    int r = 0;
    for (int i = 0; i < n; i++) {
        if (!(isfinite(m[i].rss) && m[i].rss > 0)) continue;
        int y = top + r * row + 4;
        double v = m[i].rss / 1048576.0;
        sk_bytes_printf(b, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"end\">", lw - 8,
                        y + bh - 3);
        esc(b, m[i].name);
        sk_bytes_printf(b, "</text><rect class=\"membar\" x=\"%d\" y=\"%d\" width=\"%.1f\" "
                        "height=\"%d\" data-name=\"", lw, y, v / vmax * w, bh);
        esc(b, m[i].name);
        sk_bytes_printf(b, "\" data-bytes=\"%.0f\"><title>%.1f MiB</title></rect><text "
                        "class=\"tick\" x=\"%.1f\" y=\"%d\">%.1f MiB</text>\n", m[i].rss, v,
                        lw + v / vmax * w + 4, y + bh - 3, v);
        r++;
    }
    sk_bytes_printf(b, "</svg>\n");
}

/* One matrix of a `shrink plan --json` or `shrink quantize --json --verbose` output. */
typedef struct rp_tensor {
    const char *name, *dtype;
    double      err;     /* relative RMS error of the type written (plan: importance-weighted) */
    double      kl;      /* plan: KL with this matrix alone quantized (its measured candidate) */
    int         layer;   /* blk.N: N, else -1 */
    char        role[24];
} rp_tensor;

typedef struct rp_tsrc {
    const char *path;
    int         is_plan;
    rp_tensor  *t;
    int         n;
} rp_tsrc;

/* The matrices of a plan or quantize JSON; 0 when the object is neither. */
static shrink_status read_tensors(const sk_json *root, const char *path, rp_tsrc *src, int *is) {
    *is = 0;
    const sk_json *ts = sk_json_get(root, "tensors");
    if (!ts || ts->type != SK_JSON_ARRAY) return SHRINK_OK;
    *is = 1;
    src->path = path;
    src->t = sk_calloc(ts->len + 1, sizeof *src->t);
    if (!src->t) return sk_error(SHRINK_ERR_NOMEM, "report: out of memory");
    for (size_t i = 0; i < ts->len; i++) {
        const sk_json *o = &ts->items[i], *sh = sk_json_get(o, "shape");
        const sk_json *cands = sk_json_get(o, "candidates");
        rp_tensor t = {.name = sk_json_get_str(o, "name"), .dtype = sk_json_get_str(o, "dtype"),
                       .err = NAN, .kl = NAN, .layer = -1};
        if (o->type != SK_JSON_OBJECT || !t.name || !t.dtype || !sh || sh->type != SK_JSON_ARRAY)
            return sk_error(SHRINK_ERR_FORMAT, "%s: tensors[%zu] lacks a name, dtype or shape: "
                            "not the output of shrink plan --json or shrink quantize --json "
                            "--verbose", path, i);
        if (sh->len != 2) continue;   /* vectors: not quantized */
        if (cands && cands->type == SK_JSON_ARRAY) {
            src->is_plan = 1;
            for (size_t k = 0; k < cands->len; k++) {
                const sk_json *c = &cands->items[k];
                const char *d = sk_json_get_str(c, "dtype");
                int measured = 0;
                sk_json_get_bool(c, "measured", &measured);
                if (d && !strcmp(d, t.dtype)) t.err = sqrt(num_or_nan(c, "err"));
                if (measured) t.kl = num_or_nan(c, "kl");
            }
            if (!isfinite(t.kl)) t.kl = num_or_nan(o, "kl");
        } else {
            t.err = num_or_nan(o, "rel_rms");
        }
        int L = -1, at = 0;
        if (sscanf(t.name, "blk.%d.%n", &L, &at) == 1 && at > 0) {
            t.layer = L;
            snprintf(t.role, sizeof t.role, "%s", t.name + at);
            char *dot = strrchr(t.role, '.');
            if (dot && !strcmp(dot, ".weight")) *dot = 0;
        }
        src->t[src->n++] = t;
    }
    return SHRINK_OK;
}

/* One bar per matrix: its relative RMS error in the type it was written in. */
static int tensors_svg(sk_bytes *b, const rp_tsrc *src, int idx) {
    double vmax = 0;
    int rows = 0;
    for (int i = 0; i < src->n; i++)
        if (isfinite(src->t[i].err)) {
            rows++;
            if (src->t[i].err > vmax) vmax = src->t[i].err;
        }
    if (!rows) return 0;
    if (vmax <= 0) vmax = 1;
    const int lw = 260, bh = 10, row = bh + 3, top = 10;
    int hgt = top + rows * row + 36;
    double w = PW - lw - 110, xs = nice_step(vmax, 5);
    vmax = ceil(vmax / xs) * xs;
    sk_bytes_printf(b, "<svg id=\"tensors-%d\" class=\"tensors\" xmlns=\"http://www.w3.org/2000/svg\" "
                    "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
                    "aria-label=\"per-tensor error\">\n%s<rect width=\"100%%\" height=\"100%%\" "
                    "fill=\"#fff\"/>\n", idx, PW, hgt, PW, hgt, svg_style);
    for (double t = 0; t <= vmax + xs / 2; t += xs)
        sk_bytes_printf(b, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                        "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                        lw + t / vmax * w, top, lw + t / vmax * w, top + rows * row,
                        lw + t / vmax * w, top + rows * row + 16, t);
    sk_bytes_printf(b, "<text class=\"axis\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">relative "
                    "RMS error of the type written%s</text>\n", lw + w / 2, hgt - 4,
                    src->is_plan ? " (weighted by the inputs' importance)" : "");
    int r = 0;
    for (int i = 0; i < src->n; i++) {
        const rp_tensor *t = &src->t[i];
        if (!isfinite(t->err)) continue;
        int y = top + r * row + 1;
        sk_bytes_printf(b, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"end\">", lw - 6,
                        y + bh - 1);
        esc(b, t->name);
        sk_bytes_printf(b, " ");
        esc(b, t->dtype);
        sk_bytes_printf(b, "</text><rect class=\"errbar\" x=\"%d\" y=\"%d\" width=\"%.2f\" "
                        "height=\"%d\" data-tensor=\"", lw, y, t->err / vmax * w, bh);
        esc(b, t->name);
        sk_bytes_printf(b, "\" data-err=\"%.9g\"><title>", t->err);
        esc(b, t->name);
        sk_bytes_printf(b, " (");
        esc(b, t->dtype);
        sk_bytes_printf(b, "): %.4g</title></rect>\n", t->err);
        r++;
    }
    sk_bytes_printf(b, "</svg>\n");
    return rows;
}

/* Layers down, matrix roles across: the KL of each matrix alone quantized (a plan's
 * measured table), on a log colour scale. Returns the cells drawn. */
static int heatmap_svg(sk_bytes *b, const rp_tsrc *src, int idx) {
    char roles[16][24];
    int n_roles = 0, n_layers = 0;
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < src->n; i++) {
        const rp_tensor *t = &src->t[i];
        if (t->layer < 0 || !isfinite(t->kl)) continue;
        int k = 0;
        while (k < n_roles && strcmp(roles[k], t->role)) k++;
        if (k == n_roles && n_roles < 16) snprintf(roles[n_roles++], sizeof roles[0], "%s", t->role);
        if (t->layer + 1 > n_layers) n_layers = t->layer + 1;
        if (t->kl > 0 && t->kl < lo) lo = t->kl;
        if (t->kl > hi) hi = t->kl;
    }
    if (!n_roles || n_layers > 4096) return 0;
    if (!isfinite(lo)) lo = hi > 0 ? hi : 1;
    if (hi <= lo) hi = lo * 10;
    const int lw = 70, top = 56, cw = (PW - lw - 20) / n_roles, ch = n_layers > 40 ? 8 : 18;
    int hgt = top + n_layers * ch + 40;
    sk_bytes_printf(b, "<svg id=\"heatmap-%d\" class=\"heatmap\" xmlns=\"http://www.w3.org/2000/svg\" "
                    "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
                    "aria-label=\"per-layer sensitivity\">\n%s<rect width=\"100%%\" height=\"100%%\" "
                    "fill=\"#fff\"/>\n", idx, PW, hgt, PW, hgt, svg_style);
    for (int k = 0; k < n_roles; k++) {
        sk_bytes_printf(b, "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">", lw +
                        k * cw + cw / 2, top - 8);
        esc(b, roles[k]);
        sk_bytes_printf(b, "</text>\n");
    }
    sk_bytes_printf(b, "<text class=\"axis\" x=\"%d\" y=\"18\">KL when the matrix alone is "
                    "quantized (log colour: %.3g .. %.3g nats/token)</text>\n", lw, lo, hi);
    int cells = 0;
    for (int L = 0; L < n_layers; L++) {
        if (ch >= 12 || L % 4 == 0)
            sk_bytes_printf(b, "<text class=\"tick\" x=\"%d\" y=\"%d\" text-anchor=\"end\">layer "
                            "%d</text>\n", lw - 6, top + L * ch + ch - 5, L);
        for (int i = 0; i < src->n; i++) {
            const rp_tensor *t = &src->t[i];
            if (t->layer != L || !isfinite(t->kl)) continue;
            int k = 0;
            while (k < n_roles && strcmp(roles[k], t->role)) k++;
            if (k == n_roles) continue;
            double f = t->kl <= 0 ? 0 : (log10(t->kl) - log10(lo)) / (log10(hi) - log10(lo));
            f = f < 0 ? 0 : f > 1 ? 1 : f;
            /* white-yellow to dark red */
            int R = (int)(255 - 128 * f), G = (int)(247 - 217 * f), B = (int)(236 - 206 * f);
            sk_bytes_printf(b, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                            "fill=\"rgb(%d,%d,%d)\" data-tensor=\"", lw + k * cw, top + L * ch,
                            cw, ch, R, G, B);
            esc(b, t->name);
            sk_bytes_printf(b, "\" data-layer=\"%d\" data-kl=\"%.9g\"><title>", L, t->kl);
            esc(b, t->name);
            sk_bytes_printf(b, ": KL %.4g</title></rect>\n", t->kl);
            cells++;
        }
    }
    sk_bytes_printf(b, "</svg>\n");
    return cells;
}

/* A recipe run's folder (docs/recipes.md): the recipe as written and each finished step's
 * record: its command, output size and gates. Missing pieces are skipped. */
static shrink_status recipe_html(sk_bytes *b, const char *dir) {
    char path[4096], *text = NULL;
    size_t len = 0;
    sk_json *run = NULL;
    snprintf(path, sizeof path, "%s/run.json", dir);
    if (sk_read_file(path, 1u << 20, &text, &len) || sk_json_parse(text, len, path, &run)) {
        sk_free(text);
        sk_clear_error();
        return SHRINK_OK;
    }
    sk_free(text);
    text = NULL;
    const char *rp = sk_json_get_str(run, "recipe");
    sk_bytes_printf(b, "<h2>The recipe</h2>\n<p><code>");
    esc(b, rp ? rp : "?");
    sk_bytes_printf(b, "</code> (sha256 ");
    esc(b, sk_json_get_str(run, "recipe_sha256"));
    sk_bytes_printf(b, ") on <code>");
    esc(b, sk_json_get_str(run, "input"));
    sk_bytes_printf(b, "</code>:</p>\n");
    if (rp && !sk_read_file(rp, 1u << 20, &text, &len)) {
        sk_bytes_printf(b, "<pre class=\"recipe\">");
        esc(b, text);
        sk_bytes_printf(b, "</pre>\n");
    } else {
        sk_clear_error();
        sk_bytes_printf(b, "<p>(the recipe file is no longer at that path)</p>\n");
    }
    sk_free(text);
    sk_json_free(run);
    sk_bytes_printf(b, "<table class=\"steps\">\n<tr><th>step</th><th>command</th><th>size</th>"
                    "<th>gates</th></tr>\n");
    for (int k = 1; k <= 64; k++) {
        DIR *d = opendir(dir);
        if (!d) break;
        struct dirent *e;
        char want[32], found[300] = "";
        snprintf(want, sizeof want, "step-%d-", k);
        while ((e = readdir(d)))
            if (!strncmp(e->d_name, want, strlen(want)) && strlen(e->d_name) < sizeof found)
                snprintf(found, sizeof found, "%s", e->d_name);
        closedir(d);
        if (!*found) break;
        sk_json *st = NULL;
        snprintf(path, sizeof path, "%s/%s/step.json", dir, found);
        if (sk_read_file(path, 1u << 20, &text, &len) || sk_json_parse(text, len, path, &st)) {
            sk_free(text);
            text = NULL;
            sk_clear_error();
            sk_bytes_printf(b, "<tr><td>%d</td><td>", k);
            esc(b, found);
            sk_bytes_printf(b, "</td><td></td><td>not finished</td></tr>\n");
            continue;
        }
        sk_free(text);
        text = NULL;
        char sz[32];
        sk_bytes_printf(b, "<tr><td>%d ", k);
        esc(b, sk_json_get_str(st, "name"));
        sk_bytes_printf(b, "</td><td><code>");
        const sk_json *cmd = sk_json_get(st, "command");
        for (size_t i = 0; cmd && cmd->type == SK_JSON_ARRAY && i < cmd->len; i++) {
            if (i) sk_bytes_printf(b, " ");
            if (cmd->items[i].type == SK_JSON_STRING) esc(b, cmd->items[i].str);
        }
        double by = num_or_nan(st, "bytes");
        sk_bytes_printf(b, "</code></td><td class=\"num\">%s</td><td>",
                        by > 0 ? fmt_size(sz, sizeof sz, by) : "–");
        const sk_json *gs = sk_json_get(st, "gates");
        for (size_t i = 0; gs && gs->type == SK_JSON_ARRAY && i < gs->len; i++) {
            const sk_json *g = &gs->items[i];
            int pass = 0;
            sk_json_get_bool(g, "pass", &pass);
            if (i) sk_bytes_printf(b, "; ");
            esc(b, sk_json_get_str(g, "gate"));
            sk_bytes_printf(b, ": %.6g (limit %.6g) %s", num_or_nan(g, "value"),
                            num_or_nan(g, "limit"), pass ? "pass" : "FAIL");
        }
        double ch = num_or_nan(st, "chosen");
        if (isfinite(ch)) sk_bytes_printf(b, "%salternative %.0f kept (sweep.json)",
                                          gs && gs->len ? "; " : "", ch);
        sk_bytes_printf(b, "</td></tr>\n");
        sk_json_free(st);
    }
    sk_bytes_printf(b, "</table>\n");
    return SHRINK_OK;
}

/* ---- the report ----------------------------------------------------------------------- */

shrink_status shrink_report(const char *const *json_paths, int32_t n_json, const char *out,
                            const shrink_report_params *params, shrink_report_result *result) {
    if (result) memset(result, 0, sizeof *result);
    if (!json_paths || n_json < 1 || !out || !*out)
        return sk_error(SHRINK_ERR_ARG, "report: no JSON input or no output path");
    const char *title = params ? params->title : NULL, *svg = params ? params->svg : NULL;
    const char *run_dir = params ? params->recipe_run : NULL;
    if (svg && strcmp(svg, "pareto") && strcmp(svg, "speed") && strcmp(svg, "memory") &&
        strcmp(svg, "tensors") && strcmp(svg, "heatmap"))
        return sk_error(SHRINK_ERR_ARG, "report: --svg '%s': the plots are pareto, speed, "
                        "memory, tensors and heatmap", svg);
    sk_json **trees = sk_calloc((size_t)n_json, sizeof *trees);
    if (!trees) return sk_error(SHRINK_ERR_NOMEM, "report: out of memory");
    shrink_status st = SHRINK_OK;
    rp_model *m = NULL;
    int n = 0, cap = 0, n_src = 0;
    rp_tsrc *srcs = sk_calloc((size_t)n_json, sizeof *srcs);
    if (!srcs) {
        sk_free(trees);
        return sk_error(SHRINK_ERR_NOMEM, "report: out of memory");
    }
    sk_bytes b = {0};
    for (int32_t f = 0; f < n_json && !st; f++) {
        char *text = NULL;
        size_t len;
        if ((st = sk_read_file(json_paths[f], 256u << 20, &text, &len))) break;
        st = sk_json_parse(text, len, json_paths[f], &trees[f]);
        sk_free(text);
        if (st) break;
        const sk_json *ms = sk_json_get(trees[f], "models");
        if (!ms || ms->type != SK_JSON_ARRAY) {
            int is = 0;
            if ((st = read_tensors(trees[f], json_paths[f], &srcs[n_src], &is))) break;
            if (is) {
                n_src++;
                continue;
            }
            st = sk_error(SHRINK_ERR_FORMAT, "%s: no \"models\" or \"tensors\" array: not the "
                          "output of shrink compare --json, shrink plan --json or shrink quantize "
                          "--json --verbose", json_paths[f]);
            break;
        }
        for (size_t i = 0; i < ms->len; i++) {
            const sk_json *o = &ms->items[i];
            int is_base = 0;
            sk_json_get_bool(o, "is_base", &is_base);
            rp_model r = {.name = sk_json_get_str(o, "name"), .path = sk_json_get_str(o, "path"),
                          .scheme = sk_json_get_str(o, "scheme"), .source = json_paths[f],
                          .is_base = is_base, .bytes = num_or_nan(o, "file_bytes"),
                          .bpw = num_or_nan(o, "bits_per_weight"), .ppl = num_or_nan(o, "ppl"),
                          .dppl_pct = num_or_nan(o, "delta_ppl_pct"), .kl = num_or_nan(o, "kl_mean"),
                          .kl_se = num_or_nan(o, "kl_mean_se"), .kl_p99 = num_or_nan(o, "kl_p99"),
                          .top1 = num_or_nan(o, "top1_same_pct"),
                          .tg = num_or_nan(o, "tg_tokens_per_s"), .pp = num_or_nan(o, "pp_tokens_per_s"),
                          .rss = num_or_nan(o, "peak_rss_bytes")};
            if (o->type != SK_JSON_OBJECT || !r.name || !isfinite(r.bytes) || r.bytes < 0 ||
                !isfinite(r.kl)) {
                st = sk_error(SHRINK_ERR_FORMAT, "%s: models[%zu] lacks a name, file_bytes or "
                              "kl_mean: not the output of shrink compare --json", json_paths[f], i);
                break;
            }
            /* a base shared by several files is one variant */
            int dup = 0;
            for (int k = 0; k < n && is_base; k++)
                dup |= m[k].is_base && r.path && m[k].path && !strcmp(m[k].path, r.path);
            if (dup) continue;
            if (n == cap) {
                int nc = cap ? 2 * cap : 16;
                rp_model *g = sk_realloc(m, (size_t)nc * sizeof *g);
                if (!g) {
                    st = sk_error(SHRINK_ERR_NOMEM, "report: out of memory");
                    break;
                }
                m = g;
                cap = nc;
            }
            m[n++] = r;
        }
    }
    if (!st && n == 0 && n_src == 0)
        st = sk_error(SHRINK_ERR_ARG, "%s: no models to report", json_paths[0]);
    if (!st && svg && n == 0 && (!strcmp(svg, "pareto") || !strcmp(svg, "speed") ||
                                 !strcmp(svg, "memory")))
        st = sk_error(SHRINK_ERR_ARG, "report: --svg %s plots shrink compare --json outputs: "
                      "none given", svg);
    if (!st && svg && n_src == 0 && (!strcmp(svg, "tensors") || !strcmp(svg, "heatmap")))
        st = sk_error(SHRINK_ERR_ARG, "report: --svg %s plots a shrink plan --json (or, for "
                      "tensors, shrink quantize --json --verbose) output: none given", svg);
    if (st) goto done;
    if (n > 0) qsort(m, (size_t)n, sizeof *m, by_size);
    int n_front = 0, n_bars = 0, n_mem = 0, n_err = 0, n_cells = 0;
    for (int i = 0; i < n; i++) {
        m[i].pareto = 1;
        for (int k = 0; k < n && m[i].pareto; k++)
            if (k != i && m[k].bytes <= m[i].bytes && m[k].kl <= m[i].kl &&
                (m[k].bytes < m[i].bytes || m[k].kl < m[i].kl))
                m[i].pareto = 0;
        n_front += m[i].pareto;
        n_bars += isfinite(m[i].tg) + isfinite(m[i].pp);
        n_mem += isfinite(m[i].rss) && m[i].rss > 0;
    }
    if (!title || !*title) title = "shrink report";
    if (svg) {   /* one plot alone */
        sk_bytes_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        if (!strcmp(svg, "pareto")) pareto_svg(&b, m, n);
        else if (!strcmp(svg, "speed")) speed_svg(&b, m, n);
        else if (!strcmp(svg, "memory")) memory_svg(&b, m, n);
        else if (!strcmp(svg, "tensors")) n_err = tensors_svg(&b, &srcs[0], 0);
        else n_cells = heatmap_svg(&b, &srcs[0], 0);
        if (b.n < 60)   /* nothing but the XML declaration */
            st = sk_error(SHRINK_ERR_ARG, "report: --svg %s: nothing to plot in the inputs", svg);
        if (st) goto done;
        goto write;
    }
    sk_bytes_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>");
    esc(&b, title);
    sk_bytes_printf(&b, "</title>\n<style>\n"
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}\n"
        "table{border-collapse:collapse;font-size:14px}td,th{padding:3px 8px;border-bottom:1px solid #ddd}\n"
        "td.num{text-align:right;font-variant-numeric:tabular-nums}tr.pareto td:first-child{font-weight:bold}\n"
        "pre{background:#f6f6f6;padding:6px;overflow-x:auto}\n"
        "</style>\n</head>\n<body>\n<h1>");
    esc(&b, title);
    sk_bytes_printf(&b, "</h1>\n");
    if (n == 0) goto tensors;
    sk_bytes_printf(&b, "<p>%d variant%s from", n, n == 1 ? "" : "s");
    for (int32_t f = 0; f < n_json; f++) {
        sk_bytes_printf(&b, " <code>");
        esc(&b, json_paths[f]);
        sk_bytes_printf(&b, "</code>%s", f + 1 < n_json ? "," : "");
    }
    sk_bytes_printf(&b, " (<code>shrink compare --json</code>); %d on the Pareto front: no other "
                    "variant is both smaller and closer to its base.</p>\n", n_front);
    sk_bytes_printf(&b, "<h2>Size and KL divergence</h2>\n");
    pareto_svg(&b, m, n);
    sk_bytes_printf(&b, "<h2>Speed</h2>\n");
    speed_svg(&b, m, n);
    sk_bytes_printf(&b, "<h2>Memory</h2>\n");
    memory_svg(&b, m, n);
    sk_bytes_printf(&b, "<h2>Variants</h2>\n<table>\n<tr><th>model</th><th>scheme</th><th>bpw</th>"
                    "<th>size</th><th>ppl</th><th>Δppl %%</th><th>KL mean</th><th>KL p99</th>"
                    "<th>same top-1 %%</th><th>tg t/s</th><th>pp t/s</th><th>from</th></tr>\n");
    for (int i = 0; i < n; i++) {
        char sz[32];
        sk_bytes_printf(&b, "<tr%s><td>", m[i].pareto ? " class=\"pareto\"" : "");
        esc(&b, m[i].name);
        sk_bytes_printf(&b, "%s%s</td><td>", m[i].is_base ? " (base)" : "", m[i].pareto ? " ★" : "");
        esc(&b, m[i].scheme ? m[i].scheme : "");
        sk_bytes_printf(&b, "</td>");
        cell_num(&b, m[i].bpw, "%.2f");
        sk_bytes_printf(&b, "<td class=\"num\">%s</td>", fmt_size(sz, sizeof sz, m[i].bytes));
        cell_num(&b, m[i].ppl, "%.4f");
        cell_num(&b, m[i].dppl_pct, "%+.3f");
        cell_num(&b, m[i].kl, "%.6f");
        cell_num(&b, m[i].kl_p99, "%.6f");
        cell_num(&b, m[i].top1, "%.2f");
        cell_num(&b, m[i].tg, "%.1f");
        cell_num(&b, m[i].pp, "%.1f");
        sk_bytes_printf(&b, "<td><code>");
        esc(&b, m[i].source);
        sk_bytes_printf(&b, "</code></td></tr>\n");
    }
    sk_bytes_printf(&b, "</table>\n<p>★: on the Pareto front. KL: KL(P_base ‖ P_model) in nats "
                    "per scored token, as <code>shrink compare</code> measures it.</p>\n");
tensors:
    for (int k = 0; k < n_src; k++) {
        sk_bytes_printf(&b, "<h2>Per-tensor error: <code>");
        esc(&b, srcs[k].path);
        sk_bytes_printf(&b, "</code></h2>\n");
        n_err += tensors_svg(&b, &srcs[k], k);
        if (!srcs[k].is_plan) continue;
        sk_bytes_printf(&b, "<h2>Per-layer sensitivity: <code>");
        esc(&b, srcs[k].path);
        sk_bytes_printf(&b, "</code></h2>\n");
        int c = heatmap_svg(&b, &srcs[k], k);
        if (!c) sk_bytes_printf(&b, "<p>No KL measured per matrix (a plan given its types with "
                                "--assign measures none).</p>\n");
        n_cells += c;
    }
    if (run_dir && (st = recipe_html(&b, run_dir))) goto done;
    if ((st = manifest_html(&b, m, n))) goto done;
    sk_bytes_printf(&b, "</body>\n</html>\n");
write:
    if (b.oom) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", out);
        goto done;
    }
    sk_out o;
    if (!(st = sk_out_open(&o, out, json_paths, n_json)) && !(st = sk_out_write(&o, b.p, b.n)))
        st = sk_out_commit(&o);
    if (!st && result) {
        result->n_points = n;
        result->n_pareto = n_front;
        result->n_bars = n_bars;
        result->n_mem_bars = n_mem;
        result->n_tensor_bars = n_err;
        result->n_cells = n_cells;
    }
done:
    for (int32_t f = 0; f < n_json; f++) sk_json_free(trees[f]);
    sk_free(trees);
    sk_free(m);
    for (int k = 0; k < n_json; k++) sk_free(srcs[k].t);
    sk_free(srcs);
    sk_free(b.p);
    return st;
}
