/*
 * Disk-stall shim for the chaos harness (test/chaos/diskFaults.ts), loaded into one agent with
 * LD_PRELOAD. While byte 0 of the control file TRELLIS_STALL_FLAG is '1', every write and sync
 * (write, pwrite, writev, pwritev, fsync, fdatasync, sync_file_range) on a file under
 * TRELLIS_STALL_DIR blocks, polling every 2 ms, and goes on when the byte is '0' again: what a
 * process sees of a disk that stops completing I/O. Reads, and writes elsewhere (stdout, sockets),
 * are untouched. The control file is mapped (MAP_SHARED) once at load, so the check when no stall is
 * in force costs one memory read per call; the path check (readlink of /proc/self/fd/N) runs only
 * while the flag is set. Bytes 8..15 count the calls that were held (little-endian uint64), bytes
 * 16..23 the calls in progress being held: the harness's evidence that the stall really happened.
 * Without TRELLIS_STALL_FLAG (or if the file cannot be mapped) every call passes straight through.
 * Built by test/chaos/stall/build.sh (gcc -shared -fPIC).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FLAG_BYTES 64

static volatile unsigned char *flag_map; /* NULL: no control file, never stall */
static char stall_dir[PATH_MAX];
static size_t stall_dir_len;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_sync_file_range)(int, off_t, off_t, unsigned int);

static void resolve(void) {
  real_write = dlsym(RTLD_NEXT, "write");
  real_pwrite = dlsym(RTLD_NEXT, "pwrite");
  real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
  real_writev = dlsym(RTLD_NEXT, "writev");
  real_pwritev = dlsym(RTLD_NEXT, "pwritev");
  real_pwritev64 = dlsym(RTLD_NEXT, "pwritev64");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  real_sync_file_range = dlsym(RTLD_NEXT, "sync_file_range");
}

__attribute__((constructor)) static void stall_init(void) {
  resolve();
  const char *flag = getenv("TRELLIS_STALL_FLAG");
  const char *dir = getenv("TRELLIS_STALL_DIR");
  if (!flag || !*flag || !dir || !*dir || strlen(dir) >= sizeof stall_dir) return;
  strcpy(stall_dir, dir);
  stall_dir_len = strlen(stall_dir);
  while (stall_dir_len > 1 && stall_dir[stall_dir_len - 1] == '/') stall_dir[--stall_dir_len] = 0;
  int fd = open(flag, O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size >= FLAG_BYTES) {
    void *m = mmap(NULL, FLAG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m != MAP_FAILED) flag_map = m;
  }
  close(fd);
}

static int under_dir(int fd) {
  char link[64], target[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return 0;
  target[n] = 0;
  return (size_t)n >= stall_dir_len && strncmp(target, stall_dir, stall_dir_len) == 0 &&
         (target[stall_dir_len] == '/' || target[stall_dir_len] == 0);
}

/* Blocks while the flag is set and fd is a file under the stalled directory. */
static void maybe_stall(int fd) {
  if (!flag_map || flag_map[0] != '1' || fd < 0 || !under_dir(fd)) return;
  uint64_t *counts = (uint64_t *)(flag_map + 8);
  __atomic_add_fetch(&counts[0], 1, __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&counts[1], 1, __ATOMIC_SEQ_CST);
  struct timespec ts = {0, 2 * 1000 * 1000};
  while (flag_map[0] == '1') nanosleep(&ts, NULL);
  __atomic_sub_fetch(&counts[1], 1, __ATOMIC_SEQ_CST);
}

#define NEED(f) do { if (!(f)) resolve(); } while (0)

ssize_t write(int fd, const void *b, size_t n) { NEED(real_write); maybe_stall(fd); return real_write(fd, b, n); }
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) { NEED(real_pwrite); maybe_stall(fd); return real_pwrite(fd, b, n, o); }
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) { NEED(real_pwrite64); maybe_stall(fd); return real_pwrite64(fd, b, n, o); }
ssize_t writev(int fd, const struct iovec *v, int c) { NEED(real_writev); maybe_stall(fd); return real_writev(fd, v, c); }
ssize_t pwritev(int fd, const struct iovec *v, int c, off_t o) { NEED(real_pwritev); maybe_stall(fd); return real_pwritev(fd, v, c, o); }
ssize_t pwritev64(int fd, const struct iovec *v, int c, off_t o) { NEED(real_pwritev64); maybe_stall(fd); return real_pwritev64(fd, v, c, o); }
int fsync(int fd) { NEED(real_fsync); maybe_stall(fd); return real_fsync(fd); }
int fdatasync(int fd) { NEED(real_fdatasync); maybe_stall(fd); return real_fdatasync(fd); }
int sync_file_range(int fd, off_t o, off_t n, unsigned int f) { NEED(real_sync_file_range); maybe_stall(fd); return real_sync_file_range(fd, o, n, f); }
