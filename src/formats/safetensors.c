/*
 * safetensors.c - reader of Hugging Face safetensors files, single or sharded.
 *
 * Layout (https://huggingface.co/docs/safetensors, "Format"):
 *   1. u64 little-endian N: length of the JSON header;
 *   2. N bytes of UTF-8 JSON: {"__metadata__": {...}, "<name>": {"dtype": "F32",
 *      "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...};
 *   3. the data section: tensor bytes at [begin, end) relative to its start, little-endian,
 *      row-major. Nothing requires the data to be aligned.
 * Sharded checkpoints add model.safetensors.index.json: {"weight_map": {"<tensor>":
 * "<shard file>"}}; each shard is a plain safetensors file beside the index.
 *
 * What this file does: validates everything in the header before any tensor is used (header
 * length against the file and SK_ST_MAX_HEADER, dtype names, shape products against overflow,
 * offsets against the data section and the shape), and produces tensor tables whose data are
 * views into the bytes it was given. What it does not: convert or copy data (load.c does),
 * write files.
 */
#include "formats.h"

#include "../core/json.h"

/* ---- tensor tables -------------------------------------------------------------------- */

void sk_tensors_free(sk_tensor *t, int64_t n) {
    if (!t) return;
    for (int64_t i = 0; i < n; i++) sk_free(t[i].name);
    sk_free(t);
}

void sk_st_raw_free(sk_st_raw *t, int64_t n) {
    if (!t) return;
    for (int64_t i = 0; i < n; i++) sk_free(t[i].name);
    sk_free(t);
}

void sk_strings_free(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) sk_free(s[i]);
    sk_free(s);
}

/* ---- dtypes --------------------------------------------------------------------------- */

/* Every dtype the safetensors format names, with its element size. Only the ones that are
 * also rows of the dtype table (kernels.h) can be model weights. */
static const struct {
    const char *name;
    size_t      bytes;
} st_dtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2}, {"I64", 8},     {"I32", 4},
    {"I16", 2}, {"I8", 1},  {"U64", 8},  {"U32", 4},  {"U16", 2},     {"U8", 1},
    {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};

static size_t st_dtype_bytes(const char *s) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) return st_dtypes[i].bytes;
    return 0;
}

/* The shrink dtype whose safetensors spelling is s; -1 if none. */
static int st_dtype_to_shrink(const char *s) {
    for (int t = 0; t < SHRINK_DTYPE_COUNT; t++)
        if (sk_dtype((shrink_dtype)t)->st_name && strcmp(sk_dtype((shrink_dtype)t)->st_name, s) == 0)
            return t;
    return -1;
}

/* ---- header --------------------------------------------------------------------------- */

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fails if two of names[0..n) are equal (sorts a copy of the pointers: O(n log n)). */
static shrink_status check_unique(char *const *names, int64_t n, const char *what) {
    if (n < 2) return SHRINK_OK;
    char **s = sk_malloc((size_t)n * sizeof *s);
    if (!s) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", what);
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_name);
    shrink_status st = SHRINK_OK;
    for (int64_t i = 1; i < n; i++) {
        if (strcmp(s[i - 1], s[i]) == 0) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s' appears more than once", what, s[i]);
            break;
        }
    }
    sk_free(s);
    return st;
}

/* Parses one header entry `key: v` into *t; data section is sec[0..sec_len). */
static shrink_status parse_entry(const char *key, const sk_json *v, const uint8_t *sec,
                                 uint64_t sec_len, const char *name, sk_st_raw *t) {
    if (v->type != SK_JSON_OBJECT)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': header entry is not an object",
                        name, key);
    const char *dt = sk_json_get_str(v, "dtype");
    if (!dt) return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': missing string 'dtype'", name, key);
    size_t eb = st_dtype_bytes(dt);
    if (!eb)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': unsupported dtype '%.16s'", name,
                        key, dt);
    snprintf(t->dtype, sizeof t->dtype, "%s", dt);
    t->elem_bytes = eb;

    const sk_json *shape = sk_json_get(v, "shape");
    if (!shape || shape->type != SK_JSON_ARRAY)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': missing array 'shape'", name, key);
    if (shape->len > SK_ST_MAX_DIMS)
        return sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions, at most %d "
                        "supported", name, key, shape->len, SK_ST_MAX_DIMS);
    uint64_t n_elems = 1;
    for (size_t d = 0; d < shape->len; d++) {
        const sk_json *s = &shape->items[d];
        if (s->type != SK_JSON_NUMBER || !s->is_int || s->integer < 0)
            return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a "
                            "non-negative integer", name, key, d);
        if (!sk_mul_ok(n_elems, (uint64_t)s->integer, &n_elems) || n_elems > (uint64_t)INT64_MAX)
            return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': shape product overflows",
                            name, key);
        t->shape[d] = s->integer;
    }
    t->n_dims = (int32_t)shape->len;
    t->n_elems = n_elems;
    uint64_t bytes;
    if (!sk_mul_ok(n_elems, eb, &bytes))
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': byte size overflows", name, key);

    const sk_json *off = sk_json_get(v, "data_offsets");
    if (!off || off->type != SK_JSON_ARRAY || off->len != 2 ||
        off->items[0].type != SK_JSON_NUMBER || !off->items[0].is_uint ||
        off->items[1].type != SK_JSON_NUMBER || !off->items[1].is_uint)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' must be two "
                        "non-negative integers", name, key);
    uint64_t begin = off->items[0].uinteger, end = off->items[1].uinteger;
    if (begin > end || end > sec_len)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                        ") out of the data section (%" PRIu64 " bytes)", name, key, begin, end,
                        sec_len);
    if (end - begin != bytes)
        return sk_error(SHRINK_ERR_FORMAT, "%s: tensor '%s': data_offsets span %" PRIu64
                        " bytes but shape and dtype %s need %" PRIu64, name, key, end - begin,
                        dt, bytes);
    t->bytes = bytes;
    t->data = sec + begin;
    return SHRINK_OK;
}

shrink_status sk_safetensors_parse_raw(const uint8_t *data, size_t len, const char *name,
                                       sk_st_raw **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (len < 8)
        return sk_error(SHRINK_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors "
                        "header", name, len);
    uint64_t hlen = sk_rd_u64(data);
    if (hlen > len - 8)
        return sk_error(SHRINK_ERR_FORMAT, "%s: header length %" PRIu64 " past the end of the "
                        "file (%zu bytes)", name, hlen, len);
    if (hlen > SK_ST_MAX_HEADER)
        return sk_error(SHRINK_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the limit of "
                        "%u bytes", name, hlen, SK_ST_MAX_HEADER);
    if (hlen < 2 || data[8] != '{')
        return sk_error(SHRINK_ERR_FORMAT, "%s: not a safetensors file (header does not start "
                        "with '{')", name);
    sk_json *h;
    shrink_status st = sk_json_parse((const char *)data + 8, (size_t)hlen, name, &h);
    if (st) return st;
    if (h->type != SK_JSON_OBJECT) {
        sk_json_free(h);
        return sk_error(SHRINK_ERR_FORMAT, "%s: safetensors header is not a JSON object", name);
    }
    const uint8_t *sec = data + 8 + hlen;
    uint64_t sec_len = (uint64_t)len - 8 - hlen;

    sk_st_raw *t = sk_calloc(h->len ? h->len : 1, sizeof *t);
    if (!t) {
        sk_json_free(h);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
    }
    int64_t n = 0;
    for (size_t i = 0; i < h->len; i++) {
        if (strcmp(h->keys[i], "__metadata__") == 0) continue;
        if (h->key_lens[i] != strlen(h->keys[i])) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: tensor name with a NUL byte", name);
            goto out_free;
        }
        st = parse_entry(h->keys[i], &h->items[i], sec, sec_len, name, &t[n]);
        if (st) goto out_free;
        t[n].name = sk_strdup(h->keys[i]);
        if (!t[n].name) {
            st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
            goto out_free;
        }
        n++;
    }
    /* unique names: check_unique takes an array of name pointers */
    char **names = sk_malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!names) {
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
        goto out_free;
    }
    for (int64_t i = 0; i < n; i++) names[i] = t[i].name;
    st = check_unique(names, n, name);
    sk_free(names);
    if (st) goto out_free;
    sk_json_free(h);
    *out = t;
    *n_out = n;
    return SHRINK_OK;

out_free:
    sk_st_raw_free(t, n);
    sk_json_free(h);
    return st;
}

shrink_status sk_safetensors_parse(const uint8_t *data, size_t len, const char *name,
                                   sk_tensor **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    sk_st_raw *raw;
    int64_t n;
    shrink_status st = sk_safetensors_parse_raw(data, len, name, &raw, &n);
    if (st) return st;
    sk_tensor *t = sk_calloc(n ? (size_t)n : 1, sizeof *t);
    if (!t) {
        sk_st_raw_free(raw, n);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
    }
    for (int64_t i = 0; i < n; i++) {
        int dt = st_dtype_to_shrink(raw[i].dtype);
        if (dt < 0) {
            st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': unsupported dtype %s "
                          "(F32, F16 and BF16 are supported)", name, raw[i].name, raw[i].dtype);
            break;
        }
        if (raw[i].n_dims > 4) {
            st = sk_error(SHRINK_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions, at most 4 "
                          "supported", name, raw[i].name, raw[i].n_dims);
            break;
        }
        t[i].name = raw[i].name; /* moves ownership */
        raw[i].name = NULL;
        t[i].dtype = (shrink_dtype)dt;
        t[i].n_dims = raw[i].n_dims;
        for (int d = 0; d < raw[i].n_dims; d++) t[i].shape[d] = raw[i].shape[d];
        t[i].bytes = raw[i].bytes;
        t[i].data = raw[i].data;
    }
    sk_st_raw_free(raw, n);
    if (st) {
        sk_tensors_free(t, n);
        return st;
    }
    *out = t;
    *n_out = n;
    return SHRINK_OK;
}

/* ---- sharded index -------------------------------------------------------------------- */

static int valid_shard_name(const char *s, size_t len) {
    if (len == 0 || len != strlen(s)) return 0;
    if (strchr(s, '/') || strchr(s, '\\')) return 0;
    return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

shrink_status sk_safetensors_index_parse(const char *text, size_t len, const char *name,
                                         char ***files, int *n_files) {
    *files = NULL;
    *n_files = 0;
    sk_json *j;
    shrink_status st = sk_json_parse(text, len, name, &j);
    if (st) return st;
    const sk_json *wm = sk_json_get(j, "weight_map");
    if (!wm || wm->type != SK_JSON_OBJECT || wm->len == 0) {
        sk_json_free(j);
        return sk_error(SHRINK_ERR_FORMAT, "%s: 'weight_map' missing, not an object, or empty",
                        name);
    }
    char **f = NULL;
    int n = 0, cap = 0;
    for (size_t i = 0; i < wm->len; i++) {
        const sk_json *v = &wm->items[i];
        if (v->type != SK_JSON_STRING || !valid_shard_name(v->str, v->len)) {
            st = sk_error(SHRINK_ERR_FORMAT, "%s: weight_map entry '%s' is not a plain file name",
                          name, wm->keys[i]);
            goto out_free;
        }
        int seen = 0;
        for (int k = n - 1; k >= 0 && !seen; k--) seen = strcmp(f[k], v->str) == 0;
        if (seen) continue;
        if (n == cap) {
            int nc = cap ? cap * 2 : 8;
            char **g = sk_realloc(f, (size_t)nc * sizeof *g);
            if (!g) goto out_nomem;
            f = g;
            cap = nc;
        }
        if (!(f[n] = sk_strdup(v->str))) goto out_nomem;
        n++;
    }
    sk_json_free(j);
    *files = f;
    *n_files = n;
    return SHRINK_OK;

out_nomem:
    st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", name);
out_free:
    sk_strings_free(f, n);
    sk_json_free(j);
    return st;
}

/* ---- files ---------------------------------------------------------------------------- */

/* Maps one safetensors file into m and appends its tensors. */
static shrink_status open_one(sk_files *f, const char *path) {
    sk_map *maps = sk_realloc(f->maps, (size_t)(f->n_maps + 1) * sizeof *maps);
    if (!maps) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    f->maps = maps;
    sk_map *mp = &f->maps[f->n_maps];
    shrink_status st = sk_map_file(path, mp);
    if (st) return st;
    f->n_maps++;
    f->file_bytes += mp->size;

    sk_tensor *t;
    int64_t n;
    st = sk_safetensors_parse(mp->data, mp->size, path, &t, &n);
    if (st) return st;
    sk_tensor *all = sk_realloc(f->tensors, (size_t)(f->n_tensors + n + 1) * sizeof *all);
    if (!all) {
        sk_tensors_free(t, n);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(all + f->n_tensors, t, (size_t)n * sizeof *t);
    sk_free(t); /* names moved into f->tensors */
    f->tensors = all;
    f->n_tensors += n;
    return SHRINK_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

shrink_status sk_safetensors_open(sk_files *f, const char *path) {
    if (!ends_with(path, ".json")) return open_one(f, path);

    char *text;
    size_t len;
    shrink_status st = sk_read_file(path, SK_ST_MAX_HEADER, &text, &len);
    if (st) return st;
    char **files;
    int n_files;
    st = sk_safetensors_index_parse(text, len, path, &files, &n_files);
    sk_free(text);
    if (st) return st;
    char *dir = sk_path_dir(path);
    if (!dir) {
        sk_strings_free(files, n_files);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < n_files && !st; i++) {
        char *p = sk_path_join(dir, files[i]);
        if (!p) {
            st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        st = open_one(f, p);
        sk_free(p);
    }
    sk_free(dir);
    sk_strings_free(files, n_files);
    if (st) return st;

    /* names must be unique across shards too */
    char **names = sk_malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *names);
    if (!names) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    for (int64_t i = 0; i < f->n_tensors; i++) names[i] = f->tensors[i].name;
    st = check_unique(names, f->n_tensors, path);
    sk_free(names);
    return st;
}
