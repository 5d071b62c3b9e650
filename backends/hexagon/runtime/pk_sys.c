/* pk_sys.c: the freestanding Hexagon runtime's system layer: `_start`, Linux system calls
   through trap0(#1) (number in r6, arguments in r0-r5, result in r0, negative errno on
   failure), exit, files, the clock, a brk-grown heap, and the string functions the
   compiler and the kernels call. No libc exists for this target here (clang ships none for
   hexagon-unknown-linux-musl); on a real cDSP the Hexagon SDK's QuRT supplies these.

   Syscall numbers are the asm-generic ones the Hexagon Linux port uses: 35 unlinkat,
   38 renameat, 56 openat, 57 close, 62 llseek, 63 read, 64 write, 93 exit, 94 exit_group,
   214 brk, 403 clock_gettime64. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pk_runtime.h"

int errno;

long pk_syscall(long n, long a, long b, long c, long d) { return pk_syscall5(n, a, b, c, d, 0); }

long pk_syscall5(long n, long a, long b, long c, long d, long e) {
    register long r0 __asm__("r0") = a;
    register long r1 __asm__("r1") = b;
    register long r2 __asm__("r2") = c;
    register long r3 __asm__("r3") = d;
    register long r4 __asm__("r4") = e;
    register long r6 __asm__("r6") = n;
    __asm__ volatile("trap0(#1)" : "+r"(r0) : "r"(r1), "r"(r2), "r"(r3), "r"(r4), "r"(r6) : "memory");
    return r0;
}

/* --- start and exit ------------------------------------------------------------------ */
int main(int argc, char **argv);

/* The kernel enters with sp at argc, argv[0..argc-1], NULL, envp...; the C entry wants an
   aligned stack (HVX spills need 128 bytes). */
__asm__(".globl _start\n"
        ".type _start,@function\n"
        "_start:\n"
        "  r0 = r29\n"
        "  r29 = and(r29, #-128)\n"
        "  call pk_start_c\n");

void pk_start_c(long *sp) {
    int argc = (int)sp[0];
    exit(main(argc, (char **)(sp + 1)));
}

void exit(int status) {
    pk_flush_all();
    pk_syscall(94, status, 0, 0, 0);
    for (;;) pk_syscall(93, status, 0, 0, 0);
}

void abort(void) { exit(134); }

/* --- files --------------------------------------------------------------------------- */
#define PK_AT_FDCWD (-100)

int pk_open(const char *path, int flags, int mode) { return (int)pk_syscall(56, PK_AT_FDCWD, (long)path, flags, mode); }
int pk_close(int fd) { return (int)pk_syscall(57, fd, 0, 0, 0); }

long pk_read(int fd, void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        long r = pk_syscall(63, fd, (long)((char *)buf + done), (long)(n - done), 0);
        if (r < 0) return r;
        if (r == 0) break;
        done += (size_t)r;
    }
    return (long)done;
}

long pk_write(int fd, const void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        long r = pk_syscall(64, fd, (long)((const char *)buf + done), (long)(n - done), 0);
        if (r <= 0) return r < 0 ? r : -5;
        done += (size_t)r;
    }
    return (long)done;
}

int64_t pk_lseek(int fd, int64_t offset, int whence) {
    int64_t result = 0;
    long r = pk_syscall5(62, fd, (long)(uint32_t)((uint64_t)offset >> 32), (long)(uint32_t)offset, (long)&result, whence);
    return r < 0 ? -1 : result;
}

int rename(const char *from, const char *to) {
    return pk_syscall(38, PK_AT_FDCWD, (long)from, PK_AT_FDCWD, (long)to) < 0 ? -1 : 0;
}

int remove(const char *path) { return pk_syscall(35, PK_AT_FDCWD, (long)path, 0, 0) < 0 ? -1 : 0; }

/* --- clock --------------------------------------------------------------------------- */
int clock_gettime(int clock, struct timespec *t) {
    int64_t ts[2];
    if (pk_syscall(403, clock, (long)ts, 0, 0) < 0) return -1;
    t->tv_sec = (time_t)ts[0];
    t->tv_nsec = (long)ts[1];
    return 0;
}

/* --- heap: blocks from brk, freed blocks on a first-fit list -------------------------- */
typedef struct pk_block {
    size_t size; /* usable bytes after the header */
    struct pk_block *next;
} pk_block;

static char *heap_top, *heap_end;
static pk_block *free_list;

void *malloc(size_t n) {
    size_t need = (n + 127) & ~(size_t)127;
    if (n == 0 || need < n) return NULL;
    for (pk_block **p = &free_list; *p; p = &(*p)->next) {
        if ((*p)->size >= need) {
            pk_block *b = *p;
            *p = b->next;
            return b + 1;
        }
    }
    if (!heap_top) heap_top = heap_end = (char *)pk_syscall(214, 0, 0, 0, 0);
    char *start = (char *)(((uintptr_t)heap_top + 127) & ~(uintptr_t)127) + 128 - sizeof(pk_block);
    if ((size_t)(UINTPTR_MAX - (uintptr_t)start) < need + sizeof(pk_block)) return NULL;
    char *end = start + sizeof(pk_block) + need;
    if (end > heap_end) {
        char *want = (char *)(((uintptr_t)end + 65535) & ~(uintptr_t)65535);
        if ((char *)pk_syscall(214, (long)want, 0, 0, 0) != want) return NULL;
        heap_end = want;
    }
    heap_top = end;
    pk_block *b = (pk_block *)start;
    b->size = need;
    return b + 1;
}

void free(void *p) {
    if (!p) return;
    pk_block *b = (pk_block *)p - 1;
    b->next = free_list;
    free_list = b;
}

__attribute__((no_builtin)) void *calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

/* --- strings and numbers ----------------------------------------------------------------- */
int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

__attribute__((no_builtin)) void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d == s || n == 0) return dst;
    if (d < s || d >= s + n) return memcpy(dst, src, n);
    while (n--) d[n] = s[n];
    return dst;
}

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

int strcmp(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n) {
    for (; n; n--, a++, b++)
        if (*a != *b || !*a) return (unsigned char)*a - (unsigned char)*b;
    return 0;
}

long strtol(const char *s, char **end, int base) {
    const char *p = s;
    while (*p == ' ' || (*p >= '\t' && *p <= '\r')) p++;
    int neg = *p == '-';
    if (*p == '-' || *p == '+') p++;
    if ((base == 0 || base == 16) && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) p += 2, base = 16;
    else if (base == 0) base = p[0] == '0' ? 8 : 10;
    unsigned long v = 0, lim = neg ? (unsigned long)LONG_MAX + 1 : LONG_MAX;
    int any = 0, over = 0;
    for (;; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'z' ? *p - 'a' + 10
              : *p >= 'A' && *p <= 'Z' ? *p - 'A' + 10 : 99;
        if (d >= base) break;
        any = 1;
        if (v > (lim - (unsigned long)d) / (unsigned long)base) over = 1;
        else v = v * (unsigned long)base + (unsigned long)d;
    }
    if (end) *end = (char *)(any ? p : s);
    if (over) errno = ERANGE;
    if (over) return neg ? LONG_MIN : LONG_MAX;
    return neg ? (long)(0 - v) : (long)v;
}
