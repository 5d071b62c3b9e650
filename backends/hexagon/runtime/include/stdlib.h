/* stdlib.h of the freestanding Hexagon runtime (backends/hexagon/runtime): what the
   generated projects call. */
#ifndef PK_STDLIB_H
#define PK_STDLIB_H
#include <stddef.h>
#define EXIT_SUCCESS 0
#define EXIT_FAILURE 1
void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void free(void *p);
void exit(int status) __attribute__((noreturn));
void abort(void) __attribute__((noreturn));
long strtol(const char *s, char **end, int base);
#endif
