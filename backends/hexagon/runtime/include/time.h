/* time.h of the freestanding Hexagon runtime: the monotonic clock (clock_gettime64). */
#ifndef PK_TIME_H
#define PK_TIME_H
#include <stdint.h>
typedef int64_t time_t;
struct timespec { time_t tv_sec; long tv_nsec; };
#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
int clock_gettime(int clock, struct timespec *t);
#endif
