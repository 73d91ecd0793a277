/*
 * fuzz_llama2c.c - libFuzzer target: a llama2.c legacy checkpoint (7 x int32 header, then f32
 * arrays whose total must equal the file size) through sk_llama2c_parse. Every tensor the parse
 * accepts is touched at its first and last byte (an out-of-input view is an ASan report).
 */
#include "formats/formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    volatile uint8_t sink = 0;
    sk_config        cfg;
    sk_tensor       *t = NULL;
    int64_t          n = 0;
    if (sk_llama2c_parse(data, size, "fuzz.bin", &cfg, &t, &n) == SHRINK_OK) {
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *p = t[i].data;
            if (t[i].bytes) sink ^= p[0] ^ p[t[i].bytes - 1];
        }
        sk_tensors_free(t, n);
    }
    (void)sink;
    return 0;
}
