/* LD_PRELOAD fault shim for tests: a failing disk cannot be had on this machine, so
 * fsync/fdatasync are made to fail with EIO on demand.
 *   FAULTSHIM_SKIP=N   the first N calls succeed, every later call fails (EIO)
 *   FAULTSHIM_LOG=path append one line per call (to count them)
 * With neither set the calls pass through. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static long calls = 0;

static int should_fail(void) {
    const char *log = getenv("FAULTSHIM_LOG");
    if (log) { FILE *f = fopen(log, "a"); if (f) { fputs("sync\n", f); fclose(f); } }
    const char *skip = getenv("FAULTSHIM_SKIP");
    calls++;
    return skip && calls > atol(skip);
}

int fsync(int fd) {
    static int (*real)(int) = 0;
    if (!real) real = dlsym(RTLD_NEXT, "fsync");
    if (should_fail()) { errno = EIO; return -1; }
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int) = 0;
    if (!real) real = dlsym(RTLD_NEXT, "fdatasync");
    if (should_fail()) { errno = EIO; return -1; }
    return real(fd);
}
