/* LD_PRELOAD fault shim for tests: a full disk without root (a small tmpfs needs
 * mount).  Every write to a file under FAULTSHIM_FULL_DIR fails with ENOSPC, as
 * on a full filesystem; files elsewhere and pipes (stdout, stderr) are written as
 * usual.  Unset: the calls pass through. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int full(int fd) {
    const char *dir = getenv("FAULTSHIM_FULL_DIR");
    if (!dir || !*dir) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strncmp(path, dir, strlen(dir)) == 0;
}

#define REAL(name) static __typeof__(name) *real; if (!real) real = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write);
    if (count && full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, buf, count);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(writev);
    if (iovcnt && full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, iov, iovcnt);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite);
    if (count && full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    REAL(pwrite64);
    if (count && full(fd)) { errno = ENOSPC; return -1; }
    return real(fd, buf, count, offset);
}
