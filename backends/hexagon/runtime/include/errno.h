/* errno.h of the freestanding Hexagon runtime (one thread: a plain variable). */
#ifndef PK_ERRNO_H
#define PK_ERRNO_H
extern int errno;
#define ENOENT 2
#define EIO 5
#define ENOMEM 12
#define EINVAL 22
#define ENOSPC 28
#define EDOM 33
#define ERANGE 34
#endif
