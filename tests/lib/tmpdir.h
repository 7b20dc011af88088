/* tmpdir.h: one scratch folder per unit-test program: tmpdir_make in the group setup,
 * tpath(name) for files inside it (8 rotating buffers, so a few can be alive at once),
 * tmpdir_remove in the group teardown. Header-only, for tests/unit only. */
#ifndef BGFM_TEST_TMPDIR_H
#define BGFM_TEST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

static char tmpdir[256];

/* mkdtemp of /tmp/bgfm-<what>-XXXXXX into tmpdir; 0 or -1 */
static int tmpdir_make(const char *what) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bgfm-%s-XXXXXX", what);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int tmpdir_remove(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tpath(const char *name) {
    static char buf[8][512];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

#endif
