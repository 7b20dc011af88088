/* cli.c: helpers for subcommand argument parsing (help flags, strict numbers).
 * Not the dispatcher (dispatch.c) and not any subcommand. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bgfm/cli.h"

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

int cli_parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out,
                  bgfm_err *e) {
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < lo || v > hi)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: expected an integer in [%lld, %lld], got '%s'", opt,
                         (long long)lo, (long long)hi, s ? s : "(nothing)");
    *out = v;
    return 0;
}

int cli_parse_f64(const char *opt, const char *s, double lo, double hi, double *out,
                  bgfm_err *e) {
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !*s || *end || errno || !isfinite(v) || v < lo || v > hi)
        return bgfm_fail(e, BGFM_EUSAGE, "%s: expected a number in [%g, %g], got '%s'", opt, lo,
                         hi, s ? s : "(nothing)");
    *out = v;
    return 0;
}
