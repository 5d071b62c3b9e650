/* pk_stdio.c: files and printf for the freestanding Hexagon runtime.

   Files are the Linux descriptors behind a small buffer for writes (stdout flushes at each
   newline, so `make run` shows each step's loss as it comes). printf converts floats
   exactly: the double is expanded to all its decimal digits with a small bignum (a double
   is m * 2^e, and m * 2^e or m * 5^-e / 10^-e is an integer), then rounded half-to-even at
   the requested digit, which is what glibc prints; so `%.9g` of a float reads back as the
   same float, and the emulated run prints the host's text for the same numbers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pk_runtime.h"

struct pk_file {
    int fd, line_buffered, error, writing; /* line_buffered: 0 full, 1 line, 2 none (_IO?BF) */
    size_t n;
    unsigned char buf[4096];
};

static struct pk_file files[3 + 8] = {{0, 0, 0, 0, 0, {0}}, {1, 1, 0, 1, 0, {0}}, {2, 2, 0, 1, 0, {0}}};
FILE *const stdin = &files[0], *const stdout = &files[1], *const stderr = &files[2];

static int flush(FILE *f) {
    if (f->writing && f->n) {
        if (pk_write(f->fd, f->buf, f->n) < 0) f->error = 1;
        f->n = 0;
    }
    return f->error ? EOF : 0;
}

void pk_flush_all(void) {
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) flush(&files[i]);
}

FILE *fopen(const char *path, const char *mode) {
    FILE *f = NULL;
    for (size_t i = 3; i < sizeof files / sizeof files[0]; i++)
        if (files[i].fd == 0) { f = &files[i]; break; }
    if (!f) return NULL;
    int w = mode[0] == 'w';
    int fd = pk_open(path, w ? PK_O_WRONLY | PK_O_CREAT | PK_O_TRUNC : PK_O_RDONLY, 0644);
    if (fd < 0) return NULL;
    f->fd = fd, f->line_buffered = 0, f->error = 0, f->writing = w, f->n = 0;
    return f;
}

int fclose(FILE *f) {
    int r = flush(f);
    if (pk_close(f->fd) < 0) r = EOF;
    f->fd = 0;
    return r;
}

/* the mode only (writes always go through this file's own buffer) */
int setvbuf(FILE *f, char *buf, int mode, size_t size) {
    (void)buf, (void)size;
    if (mode < 0 || mode > 2) return -1;
    flush(f);
    f->line_buffered = mode;
    return 0;
}

int fflush(FILE *f) {
    if (f) return flush(f);
    pk_flush_all();
    return 0;
}

off_t ftello(FILE *f) {
    if (flush(f)) return -1;
    return pk_lseek(f->fd, 0, SEEK_CUR);
}

int fseeko(FILE *f, off_t offset, int whence) {
    if (flush(f)) return -1;
    return pk_lseek(f->fd, offset, whence) < 0 ? -1 : 0;
}

long ftell(FILE *f) {
    off_t r = ftello(f);
    return r > 0x7fffffff ? -1 : (long)r;
}

int fseek(FILE *f, long offset, int whence) { return fseeko(f, offset, whence); }

size_t fread(void *buf, size_t size, size_t n, FILE *f) {
    if (!size || !n) return 0;
    if (n > SIZE_MAX / size) n = SIZE_MAX / size;
    long r = pk_read(f->fd, buf, size * n);
    if (r < 0) { f->error = 1; return 0; }
    return (size_t)r / size;
}

static int has_newline(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n; i++) if (s[i] == '\n') return 1;
    return 0;
}

static void put(FILE *f, const void *p, size_t n) {
    const unsigned char *s = p;
    if (n >= sizeof f->buf) {
        flush(f);
        if (pk_write(f->fd, s, n) < 0) f->error = 1;
        return;
    }
    if (f->n + n > sizeof f->buf) flush(f);
    memcpy(f->buf + f->n, s, n);
    f->n += n;
    if (f->line_buffered == 2 || (f->line_buffered == 1 && has_newline(s, n))) flush(f);
}

size_t fwrite(const void *buf, size_t size, size_t n, FILE *f) {
    if (!size || !n) return 0;
    put(f, buf, size * n);
    return f->error ? 0 : n;
}

int fputs(const char *s, FILE *f) { put(f, s, strlen(s)); return f->error ? EOF : 0; }
int puts(const char *s) { put(stdout, s, strlen(s)); put(stdout, "\n", 1); return stdout->error ? EOF : 0; }
int putchar(int c) { unsigned char b = (unsigned char)c; put(stdout, &b, 1); return c; }

/* --- exact decimal digits of a double ---------------------------------------------------- */
#define LIMBS 90 /* of 10^9: 810 digits, more than m * 5^1074 has */

/* All the significant digits of |v| (finite, nonzero) into d (no leading zeros), and where
   the decimal point goes: |v| = 0.d[0]d[1]... * 10^point. Returns the digit count. */
static int exact_digits(double v, char *d, int *point) {
    union { double d; uint64_t u; } b = {v};
    uint64_t m = b.u & 0x000fffffffffffffull;
    int e = (int)(b.u >> 52 & 0x7ff);
    if (e) m |= 1ull << 52, e -= 1075; else e = -1074;
    uint32_t limb[LIMBS];
    int n = 0;
    while (m) limb[n++] = (uint32_t)(m % 1000000000u), m /= 1000000000u;
    int shift = e < 0 ? -e : 0;
    for (int k = e > 0 ? e : -e; k > 0;) {  /* times 2^e, or times 5^-e */
        int step = e > 0 ? (k < 29 ? k : 29) : (k < 13 ? k : 13);
        uint64_t mul = e > 0 ? 1ull << step : 1;
        if (e < 0) for (int i = 0; i < step; i++) mul *= 5;
        uint64_t carry = 0;
        for (int i = 0; i < n; i++) {
            uint64_t t = limb[i] * mul + carry;
            limb[i] = (uint32_t)(t % 1000000000u);
            carry = t / 1000000000u;
        }
        while (carry) limb[n++] = (uint32_t)(carry % 1000000000u), carry /= 1000000000u;
        k -= step;
    }
    int len = 0;
    char tmp[16];
    for (int i = n - 1; i >= 0; i--) {
        int t = 0;
        for (uint32_t x = limb[i], j = 0; j < 9; j++) tmp[t++] = (char)('0' + x % 10), x /= 10;
        for (int j = 8; j >= 0; j--)
            if (len || tmp[j] != '0' || i == 0) d[len++] = tmp[j];
    }
    while (len > 1 && d[len - 1] == '0') len--, shift--;  /* trailing zeros say nothing */
    *point = len - shift;
    return len;
}

/* d[0..len) rounded half-to-even to keep digits (>= 0); carries may add a digit in front
   (then *point grows). Returns the new length (at least keep, digits past len are 0). */
static int round_digits(char *d, int len, int keep, int *point) {
    if (keep >= len) {
        for (int i = len; i < keep; i++) d[i] = '0';
        return keep;
    }
    int up = d[keep] > '5';
    if (d[keep] == '5') {
        up = 0;
        for (int i = keep + 1; i < len; i++) if (d[i] != '0') up = 1;
        if (!up) up = keep > 0 && (d[keep - 1] - '0') % 2;
    }
    if (keep == 0) {
        if (up) { d[0] = '1'; (*point)++; return 1; }
        return 0;
    }
    int i = keep - 1;
    while (up && i >= 0) {
        if (d[i] == '9') d[i--] = '0';
        else d[i]++, up = 0;
    }
    if (up) {
        memmove(d + 1, d, (size_t)keep);
        d[0] = '1';
        (*point)++;
    }
    return keep;
}

typedef struct { char *buf; size_t cap, len; FILE *f; } out_t;

static void emit(out_t *o, const char *s, size_t n) {
    if (o->f) { put(o->f, s, n); o->len += n; return; }
    for (size_t i = 0; i < n; i++, o->len++)
        if (o->len + 1 < o->cap) o->buf[o->len] = s[i];
}

static void pad(out_t *o, char c, int n) { for (; n > 0; n--) emit(o, &c, 1); }

/* one float conversion (%e %f %g, upper case with up) into s; returns its length */
static int format_double(char *s, double v, char conv, int prec, int alt) {
    int upper = conv >= 'A' && conv <= 'Z', n = 0;
    char c = (char)(conv | 32);
    union { double d; uint64_t u; } b = {v};
    if (b.u >> 63) s[n++] = '-', b.u &= ~(1ull << 63), v = b.d;
    if (v != v || v == __builtin_inf()) {
        const char *t = v != v ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf");
        memcpy(s + n, t, 3);
        return n + 3;
    }
    static char d[820];
    int point = 1, len = 1;
    if (v == 0.0) d[0] = '0'; else len = exact_digits(v, d, &point);
    if (prec < 0) prec = 6;
    if (c == 'g') {
        int p = prec ? prec : 1, pt = point;
        int l = v == 0.0 ? 1 : round_digits(d, len, p, &pt);
        int x = v == 0.0 ? 0 : pt - 1;
        if (l == 0) l = 1, d[0] = '0';
        c = (x < -4 || x >= p) ? 'e' : 'f';
        prec = c == 'e' ? p - 1 : p - 1 - x;
        if (!alt) {  /* %g drops trailing zeros */
            int sig = l;
            while (sig > 1 && d[sig - 1] == '0') sig--;
            int frac = c == 'e' ? sig - 1 : sig - pt;
            if (frac < prec) prec = frac < 0 ? 0 : frac;
        }
        len = l, point = pt;
    }
    if (c == 'e') {
        int x = v == 0.0 ? 0 : point - 1;
        int l = v == 0.0 ? 1 : round_digits(d, len, prec + 1, &point);
        if (v != 0.0) x = point - 1;
        s[n++] = d[0];
        if (prec || alt) s[n++] = '.';
        for (int i = 1; i <= prec; i++) s[n++] = i < l ? d[i] : '0';
        s[n++] = upper ? 'E' : 'e';
        s[n++] = x < 0 ? '-' : '+';
        int ax = x < 0 ? -x : x;
        if (ax >= 100) s[n++] = (char)('0' + ax / 100);
        s[n++] = (char)('0' + ax / 10 % 10);
        s[n++] = (char)('0' + ax % 10);
        return n;
    }
    /* %f: digits up to prec places after the point */
    int keep = point + prec, l;
    if (v == 0.0) { point = 1; l = 1; }
    else if (keep < 0) { l = 0; point = 1; d[0] = '0'; }
    else {
        l = round_digits(d, len, keep, &point);
        if (l == 0) { d[0] = '0'; l = 1; point = 1; }  /* rounded to zero */
    }
    int total = v == 0.0 ? 1 : l;
    if (point <= 0) s[n++] = '0';
    for (int i = 0; i < point; i++) s[n++] = i < total ? d[i] : '0';
    if (prec || alt) s[n++] = '.';
    for (int i = 0; i < prec; i++) {
        int k = point + i;
        s[n++] = k < 0 ? '0' : (k < total && v != 0.0 ? d[k] : '0');
    }
    return n;
}

static int format(out_t *o, const char *fmt, va_list ap) {
    char tmp[1100];
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') { emit(o, p, 1); continue; }
        int left = 0, zero = 0, plus = 0, space = 0, alt = 0, width = 0, prec = -1, lng = 0;
        for (p++;; p++) {
            if (*p == '-') left = 1;
            else if (*p == '0') zero = 1;
            else if (*p == '+') plus = 1;
            else if (*p == ' ') space = 1;
            else if (*p == '#') alt = 1;
            else break;
        }
        if (*p == '*') { width = va_arg(ap, int); if (width < 0) left = 1, width = -width; p++; }
        else while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
        if (*p == '.') {
            p++;
            prec = 0;
            if (*p == '*') { prec = va_arg(ap, int); p++; }
            else while (*p >= '0' && *p <= '9') prec = prec * 10 + (*p++ - '0');
        }
        for (;; p++) {
            if (*p == 'l') lng++;
            else if (*p == 'z' || *p == 't') lng = sizeof(size_t) == 8 ? 2 : 0;
            else if (*p == 'j') lng = 2;
            else if (*p != 'h') break;
        }
        char conv = *p, sign = 0;
        int n = 0;
        const char *s = tmp;
        if (conv == 'd' || conv == 'i' || conv == 'u' || conv == 'x' || conv == 'X' || conv == 'o' || conv == 'p') {
            uint64_t u;
            if (conv == 'p') u = (uintptr_t)va_arg(ap, void *), alt = 1, conv = 'x';
            else if (conv == 'd' || conv == 'i') {
                int64_t x = lng >= 2 ? va_arg(ap, long long) : lng ? va_arg(ap, long) : va_arg(ap, int);
                u = x < 0 ? -(uint64_t)x : (uint64_t)x;
                sign = x < 0 ? '-' : plus ? '+' : space ? ' ' : 0;
            } else u = lng >= 2 ? va_arg(ap, unsigned long long) : lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            unsigned base = conv == 'o' ? 8 : conv == 'u' || conv == 'd' || conv == 'i' ? 10 : 16;
            const char *dig = conv == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
            char r[24];
            int k = 0;
            do r[k++] = dig[u % base], u /= base; while (u);
            if (prec >= 0) zero = 0;
            if (sign) tmp[n++] = sign;
            if (alt && base == 16) tmp[n++] = '0', tmp[n++] = conv == 'X' ? 'X' : 'x';
            for (int i = k; i < prec; i++) tmp[n++] = '0';
            while (k) tmp[n++] = r[--k];
        } else if (conv == 'f' || conv == 'F' || conv == 'e' || conv == 'E' || conv == 'g' || conv == 'G') {
            double v = va_arg(ap, double);
            int neg = __builtin_signbit(v);
            n = format_double(tmp + 1, v, conv, prec, alt);
            if (!neg && (plus || space)) tmp[0] = plus ? '+' : ' ', n++;
            else s = tmp + 1;
            if (v != v || __builtin_isinf(v)) zero = 0;
        } else if (conv == 's') {
            s = va_arg(ap, const char *);
            if (!s) s = "(null)";
            n = (int)strlen(s);
            if (prec >= 0 && n > prec) n = prec;
            zero = 0;
        } else if (conv == 'c') {
            tmp[0] = (char)va_arg(ap, int);
            n = 1;
            zero = 0;
        } else if (conv == '%') {
            emit(o, "%", 1);
            continue;
        } else {
            if (!conv) break;
            continue;
        }
        if (left) { emit(o, s, (size_t)n); pad(o, ' ', width - n); }
        else if (zero && width > n) {  /* zeros after the sign and 0x */
            int pre = (s[0] == '-' || s[0] == '+' || s[0] == ' ') + ((s[0] == '0' && (s[1] | 32) == 'x') ? 2 : 0);
            emit(o, s, (size_t)pre);
            pad(o, '0', width - n);
            emit(o, s + pre, (size_t)(n - pre));
        } else { pad(o, ' ', width - n); emit(o, s, (size_t)n); }
    }
    return (int)o->len;
}

int vsnprintf(char *buf, size_t n, const char *fmt, va_list ap) {
    out_t o = {buf, n, 0, NULL};
    int len = format(&o, fmt, ap);
    if (n) buf[o.len < n ? o.len : n - 1] = 0;
    return len;
}

int snprintf(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return r;
}

int vfprintf(FILE *f, const char *fmt, va_list ap) {
    out_t o = {NULL, 0, 0, f};
    return format(&o, fmt, ap);
}

int fprintf(FILE *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(f, fmt, ap);
    va_end(ap);
    return r;
}

int printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(stdout, fmt, ap);
    va_end(ap);
    return r;
}
