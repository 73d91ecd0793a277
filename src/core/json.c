/*
 * json.c - a strict RFC 8259 JSON parser into a read-only tree (see json.h).
 *
 * What it does: recursive descent over untrusted bytes with a nesting limit (SK_JSON_MAX_DEPTH),
 * UTF-8 validation of every string, \uXXXX escapes with surrogate pairs, numbers that keep
 * exact int64/uint64 values when written as integers. Arrays and objects grow geometrically,
 * so a 50k-key vocab.json parses in linear time.
 * What it does not: no comments, no trailing commas, no NaN/Infinity, no BOM, no streaming.
 * Specification: RFC 8259 (https://www.rfc-editor.org/rfc/rfc8259).
 *
 * Errors read "WHAT: JSON error at byte N: expected ':'" where WHAT names the source.
 */
#include "json.h"

#include <errno.h>
#include <math.h>

#define SK_JSON_MAX_DEPTH 128

typedef struct jparser {
    const char *s;     /* text */
    size_t      n;     /* text length */
    size_t      i;     /* cursor */
    const char *what;  /* source name for messages */
    int         depth; /* containers currently open */
} jparser;

static shrink_status jerr(jparser *p, size_t at, const char *msg) {
    return sk_error(SHRINK_ERR_FORMAT, "%s: JSON error at byte %zu: %s", p->what, at, msg);
}

static shrink_status jerr_nomem(jparser *p) {
    return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory while parsing JSON at byte %zu", p->what,
                    p->i);
}

static void skip_ws(jparser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

/* ---- freeing -------------------------------------------------------------------------- */

/* Frees what a node owns (not the node itself). Recursion depth is bounded by the parser's
 * nesting limit. */
static void node_clear(sk_json *j) {
    switch (j->type) {
    case SK_JSON_STRING:
        sk_free(j->str);
        break;
    case SK_JSON_OBJECT:
        for (size_t k = 0; k < j->len; k++) sk_free(j->keys[k]);
        sk_free(j->keys);
        sk_free(j->key_lens);
        /* fall through */
    case SK_JSON_ARRAY:
        for (size_t k = 0; k < j->len; k++) node_clear(&j->items[k]);
        sk_free(j->items);
        break;
    default:
        break;
    }
    memset(j, 0, sizeof *j);
}

void sk_json_free(sk_json *j) {
    if (!j) return;
    node_clear(j);
    sk_free(j);
}

/* ---- strings -------------------------------------------------------------------------- */

static int hex4(const char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one escape starting at p->s[p->i] == '\\' into o; advances p->i. */
static shrink_status parse_escape(jparser *p, char *o, size_t *olen) {
    size_t at = p->i;
    if (p->n - p->i < 2) return jerr(p, at, "unterminated string");
    char c = p->s[p->i + 1];
    p->i += 2;
    switch (c) {
    case '"':  *o = '"';  *olen = 1; return SHRINK_OK;
    case '\\': *o = '\\'; *olen = 1; return SHRINK_OK;
    case '/':  *o = '/';  *olen = 1; return SHRINK_OK;
    case 'b':  *o = '\b'; *olen = 1; return SHRINK_OK;
    case 'f':  *o = '\f'; *olen = 1; return SHRINK_OK;
    case 'n':  *o = '\n'; *olen = 1; return SHRINK_OK;
    case 'r':  *o = '\r'; *olen = 1; return SHRINK_OK;
    case 't':  *o = '\t'; *olen = 1; return SHRINK_OK;
    case 'u':  break;
    default:   return jerr(p, at, "invalid escape character");
    }
    uint32_t cp, lo;
    if (p->n - p->i < 4 || !hex4(p->s + p->i, &cp)) return jerr(p, at, "bad \\u escape");
    p->i += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return jerr(p, at, "lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' ||
            !hex4(p->s + p->i + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return jerr(p, at, "high surrogate not followed by a low surrogate");
        p->i += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    *olen = put_utf8(o, cp);
    return SHRINK_OK;
}

/* Parses a string starting at the opening quote into a malloc'd NUL-terminated buffer. */
static shrink_status parse_string(jparser *p, char **out, size_t *out_len) {
    size_t start = ++p->i; /* after '"' */
    int has_escape = 0;
    size_t k = start;
    /* Find the end first: escapes never expand, so the raw length bounds the output. */
    while (k < p->n) {
        unsigned char c = (unsigned char)p->s[k];
        if (c == '"') break;
        if (c == '\\') {
            has_escape = 1;
            k += 2;
            continue;
        }
        if (c < 0x20) return jerr(p, k, "control character in string");
        k++;
    }
    if (k >= p->n) return jerr(p, start - 1, "unterminated string");
    size_t raw = k - start;
    size_t bad;
    if (!sk_utf8_valid(p->s + start, raw, &bad)) return jerr(p, start + bad, "invalid UTF-8");
    char *buf = sk_malloc(raw + 1);
    if (!buf) return jerr_nomem(p);
    size_t o = 0;
    if (!has_escape) {
        memcpy(buf, p->s + start, raw);
        o = raw;
        p->i = k + 1;
    } else {
        while (p->i < k) {
            const char *q = memchr(p->s + p->i, '\\', k - p->i);
            size_t run = q ? (size_t)(q - (p->s + p->i)) : k - p->i;
            memcpy(buf + o, p->s + p->i, run);
            o += run;
            p->i += run;
            if (p->i >= k) break;
            size_t el = 0;
            shrink_status st = parse_escape(p, buf + o, &el);
            if (st) {
                sk_free(buf);
                return st;
            }
            o += el;
        }
        p->i = k + 1;
    }
    buf[o] = 0;
    *out = buf;
    *out_len = o;
    return SHRINK_OK;
}

/* ---- numbers -------------------------------------------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static shrink_status parse_number(jparser *p, sk_json *j) {
    size_t at = p->i, k = p->i;
    int neg = 0, integral = 1;
    if (k < p->n && p->s[k] == '-') {
        neg = 1;
        k++;
    }
    if (k >= p->n || !is_digit(p->s[k])) return jerr(p, at, "invalid number");
    if (p->s[k] == '0') {
        k++;
        if (k < p->n && is_digit(p->s[k])) return jerr(p, at, "leading zero in number");
    } else {
        while (k < p->n && is_digit(p->s[k])) k++;
    }
    size_t int_end = k;
    if (k < p->n && p->s[k] == '.') {
        integral = 0;
        k++;
        if (k >= p->n || !is_digit(p->s[k])) return jerr(p, at, "digit expected after '.'");
        while (k < p->n && is_digit(p->s[k])) k++;
    }
    if (k < p->n && (p->s[k] == 'e' || p->s[k] == 'E')) {
        integral = 0;
        k++;
        if (k < p->n && (p->s[k] == '+' || p->s[k] == '-')) k++;
        if (k >= p->n || !is_digit(p->s[k])) return jerr(p, at, "digit expected in exponent");
        while (k < p->n && is_digit(p->s[k])) k++;
    }
    j->type = SK_JSON_NUMBER;

    /* Exact integer value when written without fraction/exponent. */
    if (integral) {
        uint64_t mag = 0;
        int fits = 1;
        for (size_t d = at + (size_t)neg; d < int_end; d++) {
            uint64_t digit = (uint64_t)(p->s[d] - '0');
            if (mag > (UINT64_MAX - digit) / 10) {
                fits = 0;
                break;
            }
            mag = mag * 10 + digit;
        }
        if (fits && !neg) {
            j->is_uint = 1;
            j->uinteger = mag;
            if (mag <= (uint64_t)INT64_MAX) {
                j->is_int = 1;
                j->integer = (int64_t)mag;
            }
        } else if (fits && neg && mag <= (uint64_t)INT64_MAX + 1) {
            j->is_int = 1;
            j->integer = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
            if (mag == 0) j->is_uint = 1; /* "-0" */
        }
    }

    /* Double value (strtod needs a NUL-terminated copy; the input need not be terminated). */
    char small[64];
    size_t len = k - at;
    char *tmp = len < sizeof small ? small : sk_malloc(len + 1);
    if (!tmp) return jerr_nomem(p);
    memcpy(tmp, p->s + at, len);
    tmp[len] = 0;
    j->number = strtod(tmp, NULL); /* overflow gives +-HUGE_VAL, underflow 0: both accepted */
    if (tmp != small) sk_free(tmp);
    p->i = k;
    return SHRINK_OK;
}

/* ---- values --------------------------------------------------------------------------- */

static shrink_status parse_value(jparser *p, sk_json *j);

/* Grows a container's arrays to hold at least one more item. */
static int grow(sk_json *j, size_t *cap, int object) {
    if (j->len < *cap) return 1;
    size_t nc = *cap ? *cap * 2 : 4;
    sk_json *items = sk_realloc(j->items, nc * sizeof *items);
    if (!items) return 0;
    j->items = items;
    if (object) {
        char **keys = sk_realloc(j->keys, nc * sizeof *keys);
        if (!keys) return 0;
        j->keys = keys;
        size_t *kl = sk_realloc(j->key_lens, nc * sizeof *kl);
        if (!kl) return 0;
        j->key_lens = kl;
    }
    *cap = nc;
    return 1;
}

static shrink_status parse_array(jparser *p, sk_json *j) {
    size_t cap = 0;
    j->type = SK_JSON_ARRAY;
    p->i++; /* '[' */
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return SHRINK_OK;
    }
    for (;;) {
        if (!grow(j, &cap, 0)) return jerr_nomem(p);
        sk_json *it = &j->items[j->len];
        memset(it, 0, sizeof *it);
        shrink_status st = parse_value(p, it);
        j->len++; /* counted even on failure so node_clear frees partial children */
        if (st) return st;
        skip_ws(p);
        if (p->i >= p->n) return jerr(p, p->i, "unterminated array");
        char c = p->s[p->i++];
        if (c == ']') return SHRINK_OK;
        if (c != ',') return jerr(p, p->i - 1, "expected ',' or ']'");
    }
}

static shrink_status parse_object(jparser *p, sk_json *j) {
    size_t cap = 0;
    j->type = SK_JSON_OBJECT;
    p->i++; /* '{' */
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return SHRINK_OK;
    }
    for (;;) {
        skip_ws(p);
        if (p->i >= p->n) return jerr(p, p->i, "unterminated object");
        if (p->s[p->i] != '"') return jerr(p, p->i, "expected string key");
        if (!grow(j, &cap, 1)) return jerr_nomem(p);
        char *key;
        size_t klen;
        shrink_status st = parse_string(p, &key, &klen);
        if (st) return st;
        sk_json *it = &j->items[j->len];
        memset(it, 0, sizeof *it);
        j->keys[j->len] = key;
        j->key_lens[j->len] = klen;
        j->len++;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') return jerr(p, p->i, "expected ':'");
        p->i++;
        st = parse_value(p, it);
        if (st) return st;
        skip_ws(p);
        if (p->i >= p->n) return jerr(p, p->i, "unterminated object");
        char c = p->s[p->i++];
        if (c == '}') return SHRINK_OK;
        if (c != ',') return jerr(p, p->i - 1, "expected ',' or '}'");
    }
}

static int match_word(jparser *p, const char *w, size_t wl) {
    if (p->n - p->i < wl || memcmp(p->s + p->i, w, wl) != 0) return 0;
    p->i += wl;
    return 1;
}

static shrink_status parse_value(jparser *p, sk_json *j) {
    skip_ws(p);
    if (p->i >= p->n) return jerr(p, p->i, "unexpected end of input, value expected");
    char c = p->s[p->i];
    shrink_status st;
    switch (c) {
    case '{':
    case '[':
        if (p->depth >= SK_JSON_MAX_DEPTH) return jerr(p, p->i, "nesting deeper than 128");
        p->depth++;
        st = c == '{' ? parse_object(p, j) : parse_array(p, j);
        p->depth--;
        return st;
    case '"':
        j->type = SK_JSON_STRING;
        return parse_string(p, &j->str, &j->len);
    case 't':
    case 'f':
        if (match_word(p, "true", 4) || match_word(p, "false", 5)) {
            j->type = SK_JSON_BOOL;
            j->boolean = c == 't';
            return SHRINK_OK;
        }
        return jerr(p, p->i, "invalid literal");
    case 'n':
        if (match_word(p, "null", 4)) {
            j->type = SK_JSON_NULL;
            return SHRINK_OK;
        }
        return jerr(p, p->i, "invalid literal");
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, j);
        return jerr(p, p->i, "unexpected character, value expected");
    }
}

shrink_status sk_json_parse(const char *text, size_t len, const char *what, sk_json **out) {
    *out = NULL;
    jparser p = {.s = text, .n = len, .i = 0, .what = what ? what : "json", .depth = 0};
    if (!text && len) return jerr(&p, 0, "no input");
    sk_json *root = sk_calloc(1, sizeof *root);
    if (!root) return jerr_nomem(&p);
    shrink_status st = parse_value(&p, root);
    if (st == SHRINK_OK) {
        skip_ws(&p);
        if (p.i != p.n) st = jerr(&p, p.i, "trailing characters after the document");
    }
    if (st) {
        sk_json_free(root);
        return st;
    }
    *out = root;
    return SHRINK_OK;
}

/* ---- getters -------------------------------------------------------------------------- */

const sk_json *sk_json_get(const sk_json *j, const char *key) {
    if (!j || j->type != SK_JSON_OBJECT || !key) return NULL;
    size_t kl = strlen(key);
    for (size_t k = 0; k < j->len; k++)
        if (j->key_lens[k] == kl && memcmp(j->keys[k], key, kl) == 0) return &j->items[k];
    return NULL;
}

int sk_json_get_int(const sk_json *j, const char *key, int64_t *out) {
    const sk_json *v = sk_json_get(j, key);
    if (!v || v->type != SK_JSON_NUMBER || !v->is_int) return 0;
    *out = v->integer;
    return 1;
}

int sk_json_get_num(const sk_json *j, const char *key, double *out) {
    const sk_json *v = sk_json_get(j, key);
    if (!v || v->type != SK_JSON_NUMBER) return 0;
    *out = v->number;
    return 1;
}

int sk_json_get_bool(const sk_json *j, const char *key, int *out) {
    const sk_json *v = sk_json_get(j, key);
    if (!v || v->type != SK_JSON_BOOL) return 0;
    *out = v->boolean;
    return 1;
}

const char *sk_json_get_str(const sk_json *j, const char *key) {
    const sk_json *v = sk_json_get(j, key);
    if (!v || v->type != SK_JSON_STRING) return NULL;
    return v->str;
}

shrink_status sk_json_read_file(const char *path, size_t max_bytes, sk_json **out) {
    char  *text = NULL;
    size_t len  = 0;
    shrink_status st = sk_read_file(path, max_bytes, &text, &len);
    if (st) return st;
    st = sk_json_parse(text, len, path, out);
    sk_free(text);
    return st;
}
