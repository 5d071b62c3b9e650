/* sys/types.h of the freestanding Hexagon runtime: file offsets are 64-bit (llseek). */
#ifndef PK_SYS_TYPES_H
#define PK_SYS_TYPES_H
#include <stddef.h>
#include <stdint.h>
typedef int64_t off_t;
typedef int32_t ssize_t;
#endif
