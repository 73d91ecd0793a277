/*
 * tasks.h - task accuracy (shrink eval): reading task files (JSONL), the lm-evaluation-harness
 * way of splitting a (context, continuation) pair into tokens, scoring endings with one pass
 * over the context (its KV cache is reused for every ending), greedy generation, and the
 * builders of the lambada and choice task files from plain text. The public entry points are
 * in include/shrink.h (section "task accuracy"); docs/eval.md describes the rules.
 */
#ifndef SK_TASKS_H
#define SK_TASKS_H

#include "../core/core.h"

/* One random stream (splitmix64) for the task builders: the same seed gives the same file. */
SK_HIDDEN uint64_t sk_task_rand(uint64_t *state);

#endif /* SK_TASKS_H */
