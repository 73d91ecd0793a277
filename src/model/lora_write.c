/*
 * lora_write.c - writing LoRA adapters (lora.h: sk_lora_write): the PEFT folder and llama.cpp's GGUF LoRA
 * adapter, the two layouts model/lora.c reads. Adapters are small (A and B of each adapted
 * projection), so each file is built in memory and written at once through sk_out (atomic).
 *
 * GGUF (version 3): general.architecture, general.type = adapter, adapter.type = lora,
 * adapter.lora.alpha; tensors blk.N.<attn_q|...|ffn_down>.weight.lora_a of ggml shape
 * (in, r) and .lora_b of (r, out), f32, q/k rows of lora_b interleaved as llama.cpp's
 * convert_lora_to_gguf.py permutes them. PEFT: adapter_config.json (peft_type LORA, r,
 * lora_alpha, target_modules, ...) and adapter_model.safetensors with
 * base_model.model.model.layers.N.(self_attn|mlp).<module>.lora_A|lora_B.weight, f32.
 */
#include "lora.h"
#include "../core/out.h"

#include <math.h>
#include <stdio.h>

static const char *const peft_mod[SK_LORA_N_LIN] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                     "gate_proj", "up_proj", "down_proj"};
static const char *const gguf_mod[SK_LORA_N_LIN] = {"attn_q", "attn_k", "attn_v",
                                                     "attn_output", "ffn_gate", "ffn_up",
                                                     "ffn_down"};

static void put_u32(sk_bytes *b, uint32_t v) { sk_bytes_put(b, &v, 4); }
static void put_u64(sk_bytes *b, uint64_t v) { sk_bytes_put(b, &v, 8); }
static void put_gstr(sk_bytes *b, const char *s) {
    put_u64(b, strlen(s));
    sk_bytes_put(b, s, strlen(s));
}

/* B of pair p as the file stores it: q/k rows moved to `want` when the adapter's differ. */
static shrink_status b_rows(const sk_lora *a, const sk_config *c, int which,
                            const sk_lora_pair *p, sk_rope_layout want, float **tmp,
                            const float **out) {
    *out = p->B;
    if ((which != SK_LIN_Q && which != SK_LIN_K) || a->layout == want) return SHRINK_OK;
    float *t = sk_aligned_alloc(64, (size_t)p->out * (size_t)p->r * sizeof(float));
    if (!t) return sk_error(SHRINK_ERR_NOMEM, "LoRA writer: out of memory");
    sk_lora_permute_b(p->B, t, p->out, p->r, c->head_dim, a->layout);
    *tmp = t;
    *out = t;
    return SHRINK_OK;
}

/* alpha that makes the file's scale (alpha / r) equal a's effective scale. */
static double file_alpha(const sk_lora *a) { return (double)a->scale * (double)a->r; }

static shrink_status write_file(const char *path, const sk_bytes *b, const char *const *inputs,
                                int n_inputs, int finish_only, sk_out *o) {
    shrink_status st = sk_out_open(o, path, inputs, n_inputs);
    if (!st) st = sk_out_write(o, b->p, b->n);
    if (!st) st = finish_only ? sk_out_finish(o) : sk_out_commit(o);
    return st;
}

static shrink_status write_gguf(const sk_lora *a, const sk_config *c, const char *path,
                                const char *const *inputs, int n_inputs, const char *manifest) {
    const uint64_t align = 32;
    sk_bytes h = {0}, d = {0};
    shrink_status st = SHRINK_OK;
    int64_t n_t = 2 * a->n_pairs;
    sk_bytes_put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, (uint64_t)n_t);
    put_u64(&h, manifest ? 5 : 4);
    put_gstr(&h, "general.architecture");
    put_u32(&h, SK_GGUF_STRING);
    put_gstr(&h, c->arch->gguf_arch ? c->arch->gguf_arch : "llama");
    put_gstr(&h, "general.type");
    put_u32(&h, SK_GGUF_STRING);
    put_gstr(&h, "adapter");
    put_gstr(&h, "adapter.type");
    put_u32(&h, SK_GGUF_STRING);
    put_gstr(&h, "lora");
    put_gstr(&h, "adapter.lora.alpha");
    put_u32(&h, SK_GGUF_FLOAT32);
    float alpha = (float)file_alpha(a);
    sk_bytes_put(&h, &alpha, 4);
    if (manifest) {   /* docs/manifest.md */
        put_gstr(&h, SHRINK_MANIFEST_KEY);
        put_u32(&h, SK_GGUF_STRING);
        put_gstr(&h, manifest);
    }
    for (int l = 0; l < a->n_layers && !st; l++)
        for (int w = 0; w < SK_LORA_N_LIN && !st; w++) {
            const sk_lora_pair *p = &a->pairs[(size_t)l * SK_LORA_N_LIN + w];
            if (!p->A) continue;
            float *tmp = NULL;
            const float *B;
            if ((st = b_rows(a, c, w, p, SK_ROPE_INTERLEAVED, &tmp, &B))) break;
            for (int ab = 0; ab < 2; ab++) {
                char name[96];
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", l, gguf_mod[w],
                         ab ? 'b' : 'a');
                put_gstr(&h, name);
                put_u32(&h, 2);
                put_u64(&h, (uint64_t)(ab ? p->r : p->in));   /* ne[0]: columns */
                put_u64(&h, (uint64_t)(ab ? p->out : p->r));  /* ne[1]: rows */
                put_u32(&h, 0);                               /* GGML_TYPE_F32 */
                put_u64(&h, (uint64_t)d.n);
                size_t nb = (size_t)p->r * (size_t)(ab ? p->out : p->in) * sizeof(float);
                sk_bytes_put(&d, ab ? B : p->A, nb);
                static const uint8_t zero[32];
                sk_bytes_put(&d, zero, (size_t)((align - d.n % align) % align));
            }
            sk_free(tmp);
        }
    static const uint8_t zero[32];
    sk_bytes_put(&h, zero, (size_t)((align - h.n % align) % align));
    sk_bytes_put(&h, d.p, d.n);
    if (!st && (h.oom || d.oom)) st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    sk_out o = {.fd = -1};
    if (!st) st = write_file(path, &h, inputs, n_inputs, 0, &o);
    sk_free(h.p);
    sk_free(d.p);
    return st;
}

static shrink_status write_peft(const sk_lora *a, const sk_config *c, const char *path,
                                const char *const *inputs, int n_inputs, const char *manifest) {
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && (sk_same_file(path, inputs[i]) || sk_path_within(inputs[i], path)))
            return sk_error(SHRINK_ERR_ARG, "%s: is or holds the input %s; write the adapter "
                            "folder somewhere else", path, inputs[i]);
    if (sk_file_exists(path))
        return sk_error(SHRINK_ERR_ARG, "%s: exists and is a file; a PEFT adapter is a folder "
                        "(name it *.gguf for llama.cpp's format)", path);
    sk_bytes hj = {0}, d = {0}, cfg = {0}, st_file = {0};
    shrink_status st = SHRINK_OK;
    int targets[SK_LORA_N_LIN] = {0};
    sk_bytes_printf(&hj, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int l = 0; l < a->n_layers && !st; l++)
        for (int w = 0; w < SK_LORA_N_LIN && !st; w++) {
            const sk_lora_pair *p = &a->pairs[(size_t)l * SK_LORA_N_LIN + w];
            if (!p->A) continue;
            targets[w] = 1;
            float *tmp = NULL;
            const float *B;
            if ((st = b_rows(a, c, w, p, SK_ROPE_HALF, &tmp, &B))) break;
            for (int ab = 0; ab < 2; ab++) {
                size_t nb = (size_t)p->r * (size_t)(ab ? p->out : p->in) * sizeof(float);
                sk_bytes_printf(&hj, ",\"base_model.model.model.layers.%d.%s.%s.lora_%c.weight\":{\"dtype\":"
                     "\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}", l,
                     w < SK_LIN_GATE ? "self_attn" : "mlp", peft_mod[w], ab ? 'B' : 'A',
                     (long long)(ab ? p->out : p->r), (long long)(ab ? p->r : p->in), d.n,
                     d.n + nb);
                sk_bytes_put(&d, ab ? B : p->A, nb);
            }
            sk_free(tmp);
        }
    sk_bytes_printf(&hj, "}");
    while (hj.n % 8) sk_bytes_put(&hj, " ", 1);
    put_u64(&st_file, hj.n);
    sk_bytes_put(&st_file, hj.p, hj.n);
    sk_bytes_put(&st_file, d.p, d.n);
    sk_bytes_printf(&cfg, "{\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"CAUSAL_LM\",\n  \"r\": %lld,\n"
         "  \"lora_alpha\": %.9g,\n  \"lora_dropout\": 0.0,\n  \"bias\": \"none\",\n"
         "  \"fan_in_fan_out\": false,\n  \"use_rslora\": false,\n  \"inference_mode\": true,\n"
         "  \"target_modules\": [", (long long)a->r, file_alpha(a));
    for (int w = 0, k = 0; w < SK_LORA_N_LIN; w++)
        if (targets[w]) sk_bytes_printf(&cfg, "%s\"%s\"", k++ ? ", " : "", peft_mod[w]);
    sk_bytes_printf(&cfg, "]\n}\n");
    if (!st && (hj.oom || d.oom || cfg.oom || st_file.oom))
        st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    sk_outdir od = {0};
    sk_out f[3] = {{.fd = -1}, {.fd = -1}, {.fd = -1}};
    char *p0 = NULL, *p1 = NULL, *p2 = NULL;
    if (!st) st = sk_outdir_open(&od, path);
    if (!st) {
        p0 = sk_path_join(od.tmp, "adapter_config.json");
        p1 = sk_path_join(od.tmp, "adapter_model.safetensors");
        p2 = manifest ? sk_path_join(od.tmp, SHRINK_MANIFEST_FILE) : NULL;
        if (!p0 || !p1 || (manifest && !p2))
            st = sk_error(SHRINK_ERR_NOMEM, "%s: out of memory", path);
    }
    sk_bytes mb = {(uint8_t *)manifest, manifest ? strlen(manifest) : 0, 0, 0};
    if (!st) st = write_file(p0, &cfg, inputs, n_inputs, 1, &f[0]);
    if (!st) st = write_file(p1, &st_file, inputs, n_inputs, 1, &f[1]);
    if (!st && manifest) st = write_file(p2, &mb, inputs, n_inputs, 1, &f[2]);
    for (int i = 0; i < 3 && !st; i++)
        if (i < 2 || manifest) st = sk_out_rename(&f[i]);
    if (!st) st = sk_outdir_commit(&od);
    if (st) {
        for (int i = 0; i < 3; i++) sk_out_abort(&f[i]);
        sk_outdir_abort(&od);
    }
    sk_free(p0);
    sk_free(p1);
    sk_free(p2);
    sk_free(hj.p);
    sk_free(d.p);
    sk_free(cfg.p);
    sk_free(st_file.p);
    return st;
}

shrink_status sk_lora_write(const sk_lora *a, const sk_config *cfg, const char *path,
                            const char *const *inputs, int n_inputs) {
    if (!a || !cfg || !path || !*path)
        return sk_error(SHRINK_ERR_ARG, "LoRA writer: no adapter or output path");
    if (!isfinite(a->scale) || a->r < 1)
        return sk_error(SHRINK_ERR_ARG, "%s: adapter has no rank or a non-finite scale", path);
    const char *manifest;
    shrink_status st = sk_manifest_for_write(path, &manifest);
    if (st) return st;
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".gguf"))
        return write_gguf(a, cfg, path, inputs, n_inputs, manifest);
    return write_peft(a, cfg, path, inputs, n_inputs, manifest);
}

/* ---- public API ------------------------------------------------------------------------ */

shrink_status shrink_model_save_lora(const shrink_model *m, int i, const char *out) {
    const sk_lora *a = m ? m->lora : NULL;
    for (int k = 0; a && k < i; k++) a = a->next;
    if (!a || i < 0) return sk_error(SHRINK_ERR_RANGE, "save adapter: no adapter number %d", i);
    const char *inputs[2] = {a->path, m->path};
    return sk_lora_write(a, &m->cfg, out, inputs, 2);
}
