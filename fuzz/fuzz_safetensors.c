/*
 * fuzz_safetensors.c - libFuzzer target: a safetensors file (u64 header length, JSON header,
 * data) through sk_safetensors_parse and sk_safetensors_parse_raw. Every tensor the parse
 * accepts is touched at its first and last byte, so a view reaching outside the input is an
 * ASan report. Build and run: make fuzz; sh fuzz/run.sh 60 safetensors.
 */
#include "formats/formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    volatile uint8_t sink = 0;
    sk_tensor       *t    = NULL;
    int64_t          n    = 0;
    if (sk_safetensors_parse(data, size, "fuzz.safetensors", &t, &n) == SHRINK_OK) {
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *p = t[i].data;
            if (t[i].bytes) sink ^= p[0] ^ p[t[i].bytes - 1];
            sink ^= (uint8_t)t[i].name[0];
        }
        sk_tensors_free(t, n);
    }
    sk_st_raw *r = NULL;
    if (sk_safetensors_parse_raw(data, size, "fuzz.safetensors", &r, &n) == SHRINK_OK) {
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *p = r[i].data;
            if (r[i].bytes) sink ^= p[0] ^ p[r[i].bytes - 1];
        }
        sk_st_raw_free(r, n);
    }
    (void)sink;
    return 0;
}
