/*
 * schedule.c - learning-rate schedules: constant, linear warmup + cosine decay (as llm.c's
 * train_gpt2.cu and nanoGPT's get_lr), linear decay. One table row per schedule; optim.h
 * states the formulas. Computed in double.
 */
#include "optim.h"

#include <math.h>

static const char *const sched_names[SK_SCHED_COUNT] = {
    [SK_SCHED_CONSTANT] = "constant",
    [SK_SCHED_COSINE]   = "cosine",
    [SK_SCHED_LINEAR]   = "linear",
};

int sk_sched_parse(const char *name) {
    for (int i = 0; name && i < SK_SCHED_COUNT; i++)
        if (!strcmp(name, sched_names[i])) return i;
    return -1;
}

const char *sk_sched_name(sk_sched_kind k) {
    return (unsigned)k < SK_SCHED_COUNT ? sched_names[k] : "?";
}

double sk_schedule_lr(const sk_schedule *s, int64_t step) {
    if (step < s->warmup) return s->lr * (double)(step + 1) / (double)s->warmup;
    if (s->kind == SK_SCHED_CONSTANT) return s->lr;
    int64_t span = s->steps - s->warmup - 1;
    double  p    = span > 0 ? (double)(step - s->warmup) / (double)span : 1.0;
    if (p > 1.0) p = 1.0;
    if (s->kind == SK_SCHED_COSINE)
        return s->lr_min + (s->lr - s->lr_min) * 0.5 * (1.0 + cos(M_PI * p));
    return s->lr - (s->lr - s->lr_min) * p;
}
