/*
 * fuzz_config.c - libFuzzer target: Hugging Face config.json through sk_config_parse, and the
 * same bytes as the tokenizer_config.json beside a fixed valid config.json (add_bos_token).
 */
#include "model/source.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char llama[] =
        "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 5, \"num_attention_heads\": 8, \"num_key_value_heads\": 4, "
        "\"vocab_size\": 512, \"max_position_embeddings\": 512}";
    sk_config cfg;
    (void)sk_config_parse((const char *)data, size, "fuzz/config.json", NULL, 0, &cfg);
    (void)sk_config_parse(llama, strlen(llama), "config.json", (const char *)data, size, &cfg);
    return 0;
}
