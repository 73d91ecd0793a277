/*
 * status.c - error messages (thread-local, stb's stbi_failure_reason made thread-safe), the
 * log callback (diagnostics that are not errors) and the assertion handler: the one place in
 * src/ that writes to stderr and ends the process (tests/test_library_hygiene.sh).
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

static shrink_log_fn sk_log_fn;
static void         *sk_log_user;

void shrink_set_log_callback(shrink_log_fn fn, void *user) {
    sk_log_fn = fn;
    sk_log_user = user;
}

void sk_log(const char *fmt, ...) {
    if (!sk_log_fn) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sk_log_fn(msg, sk_log_user);
}

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
