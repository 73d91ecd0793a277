/* The calibration text as tokens, shared by every calibrated operation (quantize's imatrix and
 * w8a8_static, pruning, sensitivity). */
#include "model.h"
#include "../core/core.h"
#include "../tokenizer/tokenizer.h"

/* The calibration tokens: the whole text encoded (want 0), or a prefix long enough for `want`
 * tokens and 64 more (the tokens of a prefix equal the whole text's except near the cut). */
shrink_status sk_calib_encode(const shrink_model *m, const char *path, int64_t want,
                              int32_t **ids, size_t *n) {
    const shrink_tokenizer *tok = shrink_model_tokenizer(m);
    if (!tok)
        return sk_error(SHRINK_ERR_ARG, "%s: the model has no tokenizer to encode the "
                        "calibration text (give one with --tokenizer)", path);
    char *text = NULL;
    size_t len;
    shrink_status st = sk_read_file(path, (size_t)1 << 31, &text, &len);
    if (st) return st;
    size_t bad;
    if (!sk_utf8_valid(text, len, &bad))
        st = sk_error(SHRINK_ERR_FORMAT, "%s: not UTF-8 text: invalid byte 0x%02X at byte "
                      "offset %zu", path, (unsigned char)text[bad], bad);
    size_t pre = want > 0 ? (size_t)want * 8 + 4096 : len;
    while (!st) {
        if (pre >= len) pre = len;
        while (pre < len && ((unsigned char)text[pre] & 0xC0) == 0x80) pre--;
        if ((st = shrink_tokenizer_encode(tok, text, pre, m->cfg.add_bos, ids, n))) break;
        if (pre == len || (int64_t)*n >= want + 64) {
            if (pre < len) *n = (size_t)want; /* the tail near the cut may differ */
            break;
        }
        shrink_free(*ids);
        *ids = NULL;
        pre *= 4;
    }
    sk_free(text);
    return st;
}

