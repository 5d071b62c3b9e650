/* pk_runtime.h: what the runtime's files share (not part of the C interface it provides). */
#ifndef PK_RUNTIME_H
#define PK_RUNTIME_H
#include <stddef.h>
#include <stdint.h>

long pk_syscall(long n, long a, long b, long c, long d);
long pk_syscall5(long n, long a, long b, long c, long d, long e);
int64_t pk_lseek(int fd, int64_t offset, int whence);
int pk_open(const char *path, int flags, int mode);
int pk_close(int fd);
long pk_read(int fd, void *buf, size_t n);
long pk_write(int fd, const void *buf, size_t n);
void pk_flush_all(void);

#define PK_O_RDONLY 0
#define PK_O_WRONLY 01
#define PK_O_CREAT 0100
#define PK_O_TRUNC 01000
#endif
