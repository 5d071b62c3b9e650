/* The C library functions backends/metal/metal_host.mm and the Foundation/Metal subsets
   use, declared as C99/POSIX declare them: installed by the test as <stdio.h>, <string.h>
   and <stdlib.h> for the compile of the host for an arm64 macOS target (Linux's own C
   headers are not written for a Darwin target). Declarations only. */
#ifndef POCK_LIBC_SHIM
#define POCK_LIBC_SHIM
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
int snprintf(char *__restrict s, size_t n, const char *__restrict format, ...);
void *memcpy(void *__restrict dst, const void *__restrict src, size_t n);
void *memset(void *s, int c, size_t n);
char *getenv(const char *name);
#ifdef __cplusplus
}
#endif
#endif
