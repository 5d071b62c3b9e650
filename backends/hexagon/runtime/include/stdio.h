/* stdio.h of the freestanding Hexagon runtime: buffered files over the Linux system calls,
   and printf with exact float conversions (%e %f %g, correctly rounded). */
#ifndef PK_STDIO_H
#define PK_STDIO_H
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>
#define EOF (-1)
#define _IOFBF 0
#define _IOLBF 1
#define _IONBF 2
#define SEEK_SET 0
#define SEEK_CUR 1
#define SEEK_END 2
typedef struct pk_file FILE;
extern FILE *const stdin, *const stdout, *const stderr;
FILE *fopen(const char *path, const char *mode);
int fclose(FILE *f);
int fflush(FILE *f);
int setvbuf(FILE *f, char *buf, int mode, size_t size);
off_t ftello(FILE *f);
int fseeko(FILE *f, off_t offset, int whence);
long ftell(FILE *f);
int fseek(FILE *f, long offset, int whence);
size_t fread(void *buf, size_t size, size_t n, FILE *f);
size_t fwrite(const void *buf, size_t size, size_t n, FILE *f);
int fputs(const char *s, FILE *f);
int puts(const char *s);
int putchar(int c);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int fprintf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int snprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t n, const char *fmt, va_list ap);
int vfprintf(FILE *f, const char *fmt, va_list ap);
int rename(const char *from, const char *to);
int remove(const char *path);
#endif
