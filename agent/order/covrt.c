// Profiling-only runtime for -sanitize-coverage=func,trace-pc-guard: records each function's
// first entry (return address into it) to $COV_OUT; after $COV_REARM seconds writes a marker
// and re-arms every guard so the steady state's functions are recorded again.
#include <stdint.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
static int fd = -1;
#define MAXR 64
static uint32_t *starts[MAXR], *stops[MAXR];
static int nr = 0;
static void put(uint64_t v) { if (fd >= 0) { ssize_t r = write(fd, &v, 8); (void)r; } }
static void *rearm(void *arg) {
  int secs = (int)(intptr_t)arg;
  for (int round = 0; round < 1; round++) {
    sleep(secs);
    put(~0ULL);
    for (int i = 0; i < nr; i++) for (uint32_t *g = starts[i]; g < stops[i]; g++) __atomic_store_n(g, 1, __ATOMIC_RELAXED);
  }
  return 0;
}
void __sanitizer_cov_trace_pc_guard_init(uint32_t *start, uint32_t *stop) {
  if (start == stop || *start) return;
  if (fd < 0) {
    const char *p = getenv("COV_OUT");
    if (p) fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    put(0xC0C0C0C0ULL);
    put((uint64_t)(uintptr_t)&__sanitizer_cov_trace_pc_guard_init);
    const char *r = getenv("COV_REARM");
    if (r) { pthread_t t; pthread_create(&t, 0, rearm, (void *)(intptr_t)atoi(r)); pthread_detach(t); }
  }
  for (uint32_t *g = start; g < stop; g++) *g = 1;
  if (nr < MAXR) { starts[nr] = start; stops[nr] = stop; nr++; }
}
void __sanitizer_cov_trace_pc_guard(uint32_t *guard) {
  if (!__atomic_exchange_n(guard, 0, __ATOMIC_RELAXED)) return;
  put((uint64_t)(uintptr_t)__builtin_return_address(0));
}
