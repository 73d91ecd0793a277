/*
 * sha256.h - SHA-256 (FIPS 180-4), incremental. The public shrink_sha256 / shrink_sha256_file
 * (include/shrink.h) are built on it; the manifest (docs/manifest.md) hashes every input with
 * it. Nothing outside src/ includes this.
 */
#ifndef SK_SHA256_H
#define SK_SHA256_H

#include "core.h"

typedef struct sk_sha256 {
    uint32_t h[8];
    uint64_t bytes;        /* message length so far */
    uint8_t  buf[64];      /* the partial block */
    size_t   n;            /* bytes in buf */
} sk_sha256;

SK_HIDDEN void sk_sha256_init(sk_sha256 *s);
SK_HIDDEN void sk_sha256_update(sk_sha256 *s, const void *data, size_t n);
SK_HIDDEN void sk_sha256_final(sk_sha256 *s, uint8_t digest[32]);
/* 64 lowercase hex digits and a NUL. */
SK_HIDDEN void sk_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif /* SK_SHA256_H */
