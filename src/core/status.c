/*
 * status.c - error messages (thread-local, stb's stbi_failure_reason made thread-safe) and
 * the assertion handler.
 */
#include "core.h"

static _Thread_local char sk_errbuf[1024];

shrink_status sk_error(shrink_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sk_errbuf, sizeof sk_errbuf, fmt, ap);
    va_end(ap);
    return st;
}

void sk_clear_error(void) { sk_errbuf[0] = '\0'; }

const char *shrink_last_error(void) { return sk_errbuf; }

const char *shrink_status_name(shrink_status st) {
    switch (st) {
    case SHRINK_OK:              return "ok";
    case SHRINK_ERR_IO:          return "i/o error";
    case SHRINK_ERR_FORMAT:      return "malformed file";
    case SHRINK_ERR_NOMEM:       return "out of memory";
    case SHRINK_ERR_UNSUPPORTED: return "unsupported";
    case SHRINK_ERR_ARG:         return "bad argument";
    case SHRINK_ERR_RANGE:       return "out of range";
    }
    return "unknown status";
}

_Noreturn void sk_abort(const char *file, int line, const char *expr) {
    fprintf(stderr, "shrink: %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}
