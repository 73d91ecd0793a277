/*
 * manifest.c - the manifest a model file carries (docs/manifest.md): the source the writers
 * ask for its text (set by the caller; the library never builds one), reading it back from a
 * GGUF file's metadata ("shrink.manifest") or a Hugging Face folder's shrink_manifest.json,
 * and verifying the inputs it names by re-hashing them.
 */
#include "formats.h"

#include "../core/json.h"

#include <math.h>
#include <sys/stat.h>

static shrink_manifest_fn manifest_fn;
static void              *manifest_user;

void shrink_set_manifest_source(shrink_manifest_fn fn, void *user) {
    manifest_fn   = fn;
    manifest_user = user;
}

shrink_status sk_manifest_for_write(const char *out, const char **text) {
    *text = manifest_fn ? manifest_fn(manifest_user) : NULL;
    if (!*text) return SHRINK_OK;
    sk_json *j = NULL;
    shrink_status st = sk_json_parse(*text, strlen(*text), "manifest", &j);
    int obj = !st && j->type == SK_JSON_OBJECT;
    sk_json_free(j);
    if (!obj) {
        *text = NULL;
        return sk_error(SHRINK_ERR_ARG, "%s: the manifest to write is not a JSON object", out);
    }
    return SHRINK_OK;
}

/* ==== reading ============================================================================ */

typedef struct mf_priv {
    shrink_manifest pub;   /* first: a shrink_manifest * is an mf_priv * */
    sk_json        *tree;
} mf_priv;

void shrink_manifest_free(shrink_manifest *m) {
    if (!m) return;
    mf_priv *p = (mf_priv *)m;
    sk_json_free(p->tree);
    sk_free(m->json);
    sk_free(m->command);
    sk_free(m->inputs);
    sk_free(m->seeds);
    sk_free(m->quality);
    for (int32_t i = 0; i < m->n_parents; i++) sk_free(m->parents[i].command);
    sk_free(m->parents);
    sk_free(p);
}

const char *shrink_input_state_name(shrink_input_state s) {
    switch (s) {
    case SHRINK_INPUT_MATCH:   return "match";
    case SHRINK_INPUT_CHANGED: return "changed";
    case SHRINK_INPUT_MISSING: return "missing";
    default:                   return "unchecked";
    }
}

static int is_hex64(const char *s) {
    if (!s || strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* An object of numbers (seeds, quality) into a table; 0 on out of memory or a bad member. */
static shrink_status num_table(const sk_json *o, const char *what, const char *where,
                               shrink_manifest_value **out, int32_t *n) {
    *out = NULL;
    *n = 0;
    if (!o) return SHRINK_OK;
    if (o->type != SK_JSON_OBJECT)
        return sk_error(SHRINK_ERR_FORMAT, "%s: manifest key \"%s\" is not an object", where, what);
    *out = sk_calloc(o->len ? o->len : 1, sizeof **out);
    if (!*out) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", where);
    for (size_t i = 0; i < o->len; i++) {
        (*out)[i].key = o->keys[i];
        (*out)[i].value = o->items[i].type == SK_JSON_NUMBER ? o->items[i].number : NAN;
    }
    *n = (int32_t)o->len;
    return SHRINK_OK;
}

/* argv of a "command" array (strings; anything else "?"); *n 0 when absent. */
static shrink_status command_of(const sk_json *cmd, const char *where, const char ***out,
                                int32_t *n) {
    *out = NULL;
    *n = 0;
    if (!cmd || cmd->type != SK_JSON_ARRAY) return SHRINK_OK;
    *out = sk_calloc(cmd->len ? cmd->len : 1, sizeof **out);
    if (!*out) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", where);
    for (size_t i = 0; i < cmd->len; i++)
        (*out)[i] = cmd->items[i].type == SK_JSON_STRING ? cmd->items[i].str : "?";
    *n = (int32_t)cmd->len;
    return SHRINK_OK;
}

static const char *str_or_empty(const sk_json *j, const char *key) {
    const char *s = sk_json_get_str(j, key);
    return s ? s : "";
}

/* "parents": [{"arg", "path", "manifest": {...}}]: one level, entries without a manifest
 * object skipped. */
static shrink_status parents_of(shrink_manifest *m, const sk_json *ps, const char *where) {
    if (!ps || ps->type != SK_JSON_ARRAY || !ps->len) return SHRINK_OK;
    m->parents = sk_calloc(ps->len, sizeof *m->parents);
    if (!m->parents) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", where);
    for (size_t i = 0; i < ps->len; i++) {
        const sk_json *e = &ps->items[i], *pm = sk_json_get(e, "manifest");
        if (!pm || pm->type != SK_JSON_OBJECT) continue;
        shrink_manifest_parent *r = &m->parents[m->n_parents++];
        r->arg = str_or_empty(e, "arg");
        r->path = str_or_empty(e, "path");
        r->version = str_or_empty(pm, "version");
        r->date = str_or_empty(pm, "date");
        shrink_status st = command_of(sk_json_get(pm, "command"), where, &r->command, &r->n_command);
        if (st) return st;
    }
    return SHRINK_OK;
}

/* Fills m's fields from its json text; `where` names the file in messages. */
static shrink_status parse_manifest(mf_priv *p, const char *where) {
    shrink_manifest *m = &p->pub;
    shrink_status st = sk_json_parse(m->json, strlen(m->json), where, &p->tree);
    if (st) return st;
    const sk_json *j = p->tree;
    if (j->type != SK_JSON_OBJECT)
        return sk_error(SHRINK_ERR_FORMAT, "%s: the manifest is not a JSON object", where);
    m->version = str_or_empty(j, "version");
    m->date = str_or_empty(j, "date");
    int64_t th;
    m->threads = sk_json_get_int(j, "threads", &th) && th >= 0 && th < INT32_MAX ? (int32_t)th : -1;
    if ((st = command_of(sk_json_get(j, "command"), where, &m->command, &m->n_command)) ||
        (st = parents_of(m, sk_json_get(j, "parents"), where)))
        return st;
    const sk_json *in = sk_json_get(j, "inputs");
    if (in && in->type != SK_JSON_ARRAY)
        return sk_error(SHRINK_ERR_FORMAT, "%s: manifest key \"inputs\" is not an array", where);
    if (in) {
        m->inputs = sk_calloc(in->len ? in->len : 1, sizeof *m->inputs);
        if (!m->inputs) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", where);
        for (size_t i = 0; i < in->len; i++) {
            const sk_json *e = &in->items[i];
            shrink_manifest_input *r = &m->inputs[i];
            int64_t b;
            r->arg = sk_json_get_str(e, "arg");
            r->path = sk_json_get_str(e, "path");
            r->sha256 = sk_json_get_str(e, "sha256");
            if (!r->arg) r->arg = "";
            if (e->type != SK_JSON_OBJECT || !r->path || !is_hex64(r->sha256) ||
                !sk_json_get_int(e, "bytes", &b) || b < 0)
                return sk_error(SHRINK_ERR_FORMAT, "%s: manifest input %zu lacks a path, 64 hex "
                                "digits of sha256 or a size in bytes", where, i + 1);
            r->bytes = (uint64_t)b;
        }
        m->n_inputs = (int32_t)in->len;
    }
    if ((st = num_table(sk_json_get(j, "seeds"), "seeds", where, &m->seeds, &m->n_seeds)))
        return st;
    return num_table(sk_json_get(j, "quality"), "quality", where, &m->quality, &m->n_quality);
}

/* The manifest text of a GGUF file (*text NULL if it has none). */
static shrink_status gguf_text(const char *path, char **text) {
    sk_map map;
    shrink_status st = sk_map_file(path, &map);
    if (st) return st;
    sk_gguf *g = NULL;
    st = sk_gguf_parse(map.data, map.size, path, &g);
    if (!st) {
        const sk_gguf_kv *kv = sk_gguf_find(g, SHRINK_MANIFEST_KEY);
        if (kv && kv->val.type != SK_GGUF_STRING)
            st = sk_error(SHRINK_ERR_FORMAT, "%s: metadata %s is a %s, not a string", path,
                          SHRINK_MANIFEST_KEY, sk_gguf_type_name(kv->val.type));
        else if (kv && !(*text = sk_strndup(kv->val.v.s.s, (size_t)kv->val.v.s.len)))
            st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    }
    sk_gguf_free(g);
    sk_unmap(&map);
    return st;
}

shrink_status shrink_manifest_read(const char *path, shrink_manifest **out) {
    *out = NULL;
    if (!path || !*path) return sk_error(SHRINK_ERR_ARG, "reading a manifest: no path");
    struct stat sb;
    if (stat(path, &sb) != 0) return sk_error_not_found(path, "model file or folder");
    char *text = NULL, *where = NULL;
    shrink_status st = SHRINK_OK;
    if (S_ISREG(sb.st_mode) && sk_format_from_path(path) == SK_FORMAT_GGUF) {
        st = gguf_text(path, &text);
        where = sk_strdup(path);
    } else if (S_ISDIR(sb.st_mode) || S_ISREG(sb.st_mode)) {
        char *dir = S_ISDIR(sb.st_mode) ? sk_strdup(path) : sk_path_dir(path);
        where = dir ? sk_path_join(dir, SHRINK_MANIFEST_FILE) : NULL;
        sk_free(dir);
        if (!where) return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
        size_t len;
        if (sk_file_exists(where)) st = sk_read_file(where, 64u << 20, &text, &len);
    } else {
        return sk_error(SHRINK_ERR_ARG, "%s: is %s, not a model", path, sk_file_kind(sb.st_mode));
    }
    if (st || !text) {
        sk_free(where);
        return st;
    }
    mf_priv *p = sk_calloc(1, sizeof *p);
    if (!p) {
        sk_free(text);
        sk_free(where);
        return sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    }
    p->pub.json = text;
    st = parse_manifest(p, where ? where : path);
    sk_free(where);
    if (st) {
        shrink_manifest_free(&p->pub);
        return st;
    }
    *out = &p->pub;
    return SHRINK_OK;
}

shrink_status shrink_manifest_verify(shrink_manifest *m, int32_t *n_bad) {
    int32_t bad = 0;
    if (n_bad) *n_bad = 0;
    if (!m) return sk_error(SHRINK_ERR_ARG, "verifying a manifest: none given");
    for (int32_t i = 0; i < m->n_inputs; i++) {
        shrink_manifest_input *r = &m->inputs[i];
        struct stat sb;
        r->now_sha256[0] = 0;
        r->now_bytes = 0;
        if (stat(r->path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            r->state = SHRINK_INPUT_MISSING;
        } else {
            shrink_status st = shrink_sha256_file(r->path, r->now_sha256, &r->now_bytes);
            if (st == SHRINK_ERR_NOMEM) return st;
            r->state = st ? SHRINK_INPUT_MISSING
                       : r->now_bytes == r->bytes && !strcmp(r->now_sha256, r->sha256)
                           ? SHRINK_INPUT_MATCH
                           : SHRINK_INPUT_CHANGED;
        }
        bad += r->state != SHRINK_INPUT_MATCH;
    }
    if (n_bad) *n_bad = bad;
    return SHRINK_OK;
}
