/*
 * dispatch.c - chooses the kernel set once: starts at the references, then moves up to AVX2
 * and AVX-512 when cpuid says the CPU has them and xgetbv says the OS saves their registers,
 * and fills the kernel table of every level (per dtype: dequantizer, dot, act quantizer).
 * SHRINK_KERNELS=ref|avx2|avx512 forces a level (clamped to what the CPU has); a bad value is
 * reported through the log callback (sk_log).
 */
#include "kernels.h"

#include <cpuid.h>
#include <pthread.h>

static pthread_once_t sk_once = PTHREAD_ONCE_INIT;
static const sk_kernel_set *sk_chosen = &sk_kernels_ref;
static sk_isa sk_cpu_level = SK_ISA_REF;
static int sk_has_bf16;
static int sk_has_vnni;
static char sk_desc[160];
static sk_isa_table sk_tables[SK_ISA_COUNT]; /* filled once by init_once */

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static sk_isa detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return SK_ISA_REF;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return SK_ISA_REF;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return SK_ISA_REF; /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return SK_ISA_REF;
    int avx2 = (b >> 5) & 1;
    sk_has_vnni = (c >> 11) & 1; /* AVX512_VNNI */
    int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
        avx512vl = (b >> 31) & 1;
    unsigned a1 = 0, b1, c1, d1;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) sk_has_bf16 = (a1 >> 5) & 1;
    if (!(avx2 && fma && f16c)) return SK_ISA_REF;
    /* opmask, upper halves of ZMM0-15, ZMM16-31 */
    if (avx512f && avx512dq && avx512bw && avx512vl && (xcr0 & 0xE0) == 0xE0)
        return SK_ISA_AVX512;
    return SK_ISA_AVX2;
}

static const sk_kernel_set *set_of(sk_isa isa) {
    switch (isa) {
    case SK_ISA_AVX512: return &sk_kernels_avx512;
    case SK_ISA_AVX2:   return &sk_kernels_avx2;
    default:            return &sk_kernels_ref;
    }
}

static void describe(void) {
    static const char *feat[SK_ISA_COUNT] = {
        [SK_ISA_REF] = "scalar C",
        [SK_ISA_AVX2] = "avx2, fma, f16c",
        [SK_ISA_AVX512] = "avx512f/bw/vl/dq, fma, f16c",
    };
    sk_isa lvl = SK_ISA_REF;
    for (int i = 0; i < SK_ISA_COUNT; i++)
        if (sk_chosen == set_of((sk_isa)i)) lvl = (sk_isa)i;
    snprintf(sk_desc, sizeof sk_desc, "%s (%s; cpu up to %s%s%s)", sk_chosen->name, feat[lvl],
             set_of(sk_cpu_level)->name, sk_has_vnni ? ", avx512vnni" : "",
             sk_has_bf16 ? ", avx512bf16" : "");
}

/* The table of every level: its own kernels up to the CPU's level, the CPU level's above. */
static void fill_tables(void) {
    for (int i = 0; i < SK_ISA_COUNT; i++) {
        sk_isa_table *tb = &sk_tables[i];
        tb->isa = (sk_isa)i > sk_cpu_level ? sk_cpu_level : (sk_isa)i;
        tb->set = set_of(tb->isa);
        const int vnni = tb->isa >= SK_ISA_AVX512 && sk_has_vnni;
        tb->i8 = vnni ? &sk_i8_gemm_avx512 : tb->isa >= SK_ISA_AVX2 ? &sk_i8_gemm_avx2 : NULL;
        tb->q8 = vnni ? &sk_q8_gemm_avx512 : tb->isa >= SK_ISA_AVX2 ? &sk_q8_gemm_avx2 : NULL;
        sk_dequant_fill(tb);
        sk_qdot_fill(tb, vnni);
    }
}

static void init_once(void) {
    sk_cpu_level = detect();
    fill_tables();
    sk_isa lvl = sk_cpu_level;
    const char *env = getenv("SHRINK_KERNELS");
    if (env && *env) {
        sk_isa want = SK_ISA_COUNT;
        for (int i = 0; i < SK_ISA_COUNT; i++)
            if (strcmp(env, set_of((sk_isa)i)->name) == 0) want = (sk_isa)i;
        if (want == SK_ISA_COUNT)
            sk_log("SHRINK_KERNELS=%s unknown (ref, avx2, avx512); using %s", env,
                   set_of(lvl)->name);
        else if (want > sk_cpu_level)
            sk_log("SHRINK_KERNELS=%s not supported by this CPU; using %s", env,
                   set_of(lvl)->name);
        else
            lvl = want;
    }
    sk_chosen = set_of(lvl);
    describe();
}

void sk_kernels_init(void) { pthread_once(&sk_once, init_once); }

const sk_kernel_set *sk_kernels(void) {
    sk_kernels_init();
    return sk_chosen;
}

const char *sk_kernels_isa(void) { return sk_kernels()->name; }

const sk_isa_table *sk_kernel_table(sk_isa isa) {
    sk_kernels_init();
    if ((unsigned)isa >= SK_ISA_COUNT) isa = sk_cpu_level;
    return &sk_tables[isa];
}

sk_isa sk_cpu_isa(void) {
    sk_kernels_init();
    return sk_cpu_level;
}

const sk_kernel_set *sk_kernels_get(sk_isa isa) {
    if ((unsigned)isa >= SK_ISA_COUNT || isa > sk_cpu_isa()) return NULL;
    return set_of(isa);
}

sk_isa sk_kernels_force(sk_isa isa) {
    sk_kernels_init();
    if ((unsigned)isa >= SK_ISA_COUNT || isa > sk_cpu_level) isa = sk_cpu_level;
    sk_chosen = set_of(isa);
    describe();
    return isa;
}

int sk_cpu_has_vnni(void) {
    sk_kernels_init();
    return sk_cpu_level >= SK_ISA_AVX512 && sk_has_vnni;
}

const char *shrink_kernels_name(void) {
    sk_kernels_init();
    return sk_desc;
}
