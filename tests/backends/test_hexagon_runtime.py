"""The freestanding Hexagon runtime (backends/hexagon/runtime) under qemu-hexagon, against
numpy and Python: the compiler's division and square-root helpers bit-exact, the math
functions within their stated ulp bounds (special values included), printf's float
conversions character for character, and the heap, files and memcpy/memset (HVX paths)."""

import math
import struct
import subprocess

import numpy as np
import pytest
from pockengine.backends.hexagon import toolchain

pytestmark = pytest.mark.skipif(toolchain.available() is not None,
                                reason=f"Hexagon toolchain: {toolchain.available()}")

# one driver: reads OP N then N records of 16 bytes (two doubles or two int64), writes N
# results of 8 bytes
DRIVER = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef union { double d[2]; int64_t i[2]; uint64_t u[2]; } rec;
static double f1(int op, float a, float b) {
    switch (op) {
    case 0: return expf(a);   case 1: return logf(a);  case 2: return sqrtf(a); case 3: return sinf(a);
    case 4: return cosf(a);   case 5: return tanhf(a); case 6: return erff(a);  case 7: return powf(a, b);
    case 8: return a / b;     case 9: return floorf(a); case 10: return roundf(a); case 11: return fabsf(a);
    }
    abort();
}
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb"), *o = fopen(argv[2], "wb");
    int32_t hdr[2];
    if (!f || !o || fread(hdr, 4, 2, f) != 2) return 3;
    int op = hdr[0], n = hdr[1];
    rec *r = malloc((size_t)n * sizeof(rec));
    if (fread(r, sizeof(rec), (size_t)n, f) != (size_t)n) return 4;
    for (int k = 0; k < n; k++) {
        double a = r[k].d[0], b = r[k].d[1], y = 0;
        int64_t x = r[k].i[0], z = r[k].i[1];
        uint64_t ux = r[k].u[0], uz = r[k].u[1];
        if (op < 20) y = f1(op, (float)a, (float)b);
        else if (op == 20) y = exp(a);
        else if (op == 21) y = log(a);
        else if (op == 22) y = sqrt(a);
        else if (op == 23) y = pow(a, b);
        else if (op == 24) y = a / b;
        else {
            int64_t v = op == 30 ? x / z : op == 31 ? x % z : op == 32 ? (int64_t)(ux / uz) : op == 33 ? (int64_t)(ux % uz)
                      : op == 34 ? (int64_t)((int32_t)x / (int32_t)z) : op == 35 ? (int64_t)((int32_t)x % (int32_t)z)
                      : op == 36 ? (int64_t)((uint32_t)ux / (uint32_t)uz) : (int64_t)((uint32_t)ux % (uint32_t)uz);
            memcpy(&y, &v, 8);
        }
        fwrite(&y, 8, 1, o);
    }
    return fclose(o) ? 5 : 0;
}
"""

FLOAT_OPS = {"expf": 0, "logf": 1, "sqrtf": 2, "sinf": 3, "cosf": 4, "tanhf": 5, "erff": 6, "powf": 7,
             "fdiv": 8, "floorf": 9, "roundf": 10, "fabsf": 11}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("hexrt")
    (d / "driver.c").write_text(DRIVER)
    exe = toolchain.build([d / "driver.c"], d / "driver", cwd=d)

    def go(op: int, a, b=None, ints=False):
        a = np.asarray(a)
        b = np.zeros_like(a) if b is None else np.asarray(b)
        recs = np.stack([a, b], 1).astype(np.int64 if ints else np.float64)
        (d / "in.bin").write_bytes(struct.pack("<ii", op, len(a)) + recs.tobytes())
        subprocess.run([toolchain.RUNNER, str(exe), "in.bin", "out.bin"], cwd=d, check=True, timeout=120)
        return np.frombuffer((d / "out.bin").read_bytes(), np.int64 if ints else np.float64)

    return go


def specials():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.17549435e-38, 3.4028235e38, -3.4028235e38,
                  1.0, -1.0, 0.5, 2.0, 88.7, 89.0, -87.3, -104.0, 1e-7, 4.0, 3.999, 1e10, 1e30, 12582912.0], np.float32)
    return x


def f32_ulps(got, want):
    """|got - want| in units of the float32 spacing at want (want in float64)."""
    w = want.astype(np.float32)
    spacing = np.spacing(np.abs(w)).astype(np.float64)
    return np.abs(got - want) / np.maximum(spacing, 1.4e-45)


def check_f32(got, want, bound):
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    inf = np.isinf(want.astype(np.float32)) & ~nan
    assert np.array_equal(got[inf], want.astype(np.float32)[inf].astype(np.float64))
    ok = ~nan & ~inf
    err = f32_ulps(got[ok], want[ok])
    assert err.max() <= bound, (err.max(), got[ok][err.argmax()], want[ok][err.argmax()])


@pytest.mark.parametrize("name,domain,ref,bound", [
    ("expf", (-104, 89), np.exp, 1.0), ("logf", (1e-38, 3e38), np.log, 1.0),
    ("sinf", (-1e6, 1e6), np.sin, 1.0), ("cosf", (-1e6, 1e6), np.cos, 1.0),
    ("tanhf", (-10, 10), np.tanh, 1.0), ("erff", (-5, 5), np.vectorize(math.erf), 1.0),
])
def test_float_math_within_ulp_bounds(run, name, domain, ref, bound):
    rng = np.random.default_rng(1)
    lo, hi = domain
    if lo > 0:  # log-uniform over positive ranges
        x = np.exp(rng.uniform(np.log(lo), np.log(hi), 3000))
    else:
        x = np.concatenate([rng.uniform(lo, hi, 2000), rng.uniform(-3, 3, 1000)])
    if name in ("sinf", "cosf"):  # the whole float range: Payne-Hanek reduction
        x = np.concatenate([x, np.exp(rng.uniform(0, 88, 1000)) * rng.choice([-1, 1], 1000)])
    x = np.concatenate([x.astype(np.float32), specials()]).astype(np.float32)
    with np.errstate(all="ignore"):
        want = ref(x.astype(np.float64)).astype(np.float64)
        if name == "logf":
            want[x == 0] = -np.inf
    check_f32(run(FLOAT_OPS[name], x.astype(np.float64)), want, bound)


def test_powf(run):
    rng = np.random.default_rng(2)
    x = np.concatenate([np.exp(rng.uniform(-20, 20, 2000)), -rng.integers(1, 9, 500).astype(float),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0]]).astype(np.float32)
    y = np.concatenate([rng.uniform(-4, 4, 2000), rng.integers(-5, 6, 500).astype(float),
                        [-1.0, 3.0, 0.5, -3.0, 0.0, np.nan, np.inf, -2.5]]).astype(np.float32)
    with np.errstate(all="ignore"):
        want = np.power(x.astype(np.float64), y.astype(np.float64))
    check_f32(run(FLOAT_OPS["powf"], x.astype(np.float64), y.astype(np.float64)), want, 1.0)


def random_floats(rng, n):
    """float32s from every binade, denormals and specials included, as their bits."""
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([bits.view(np.float32), specials()])


def test_division_and_sqrt_are_correctly_rounded(run):
    rng = np.random.default_rng(3)
    a, b = random_floats(rng, 4000), random_floats(rng, 4000)
    a, b = np.concatenate([a, rng.uniform(1, 2, 2000).astype(np.float32)]), \
        np.concatenate([b, rng.uniform(1, 2, 2000).astype(np.float32)])
    with np.errstate(all="ignore"):
        want = (a / b).astype(np.float64)
    got = run(FLOAT_OPS["fdiv"], a.astype(np.float64), b.astype(np.float64))
    assert np.array_equal(got, want, equal_nan=True)
    ad, bd = rng.standard_normal(3000) * np.exp(rng.uniform(-700, 700, 3000)), rng.standard_normal(3000)
    ad = np.concatenate([ad, [0.0, 1.0, 5e-324, 1e-310, np.inf, np.nan, 1e308, 1e-308, 1.0]])
    bd = np.concatenate([bd * np.exp(rng.uniform(-700, 700, 3000)), [0.0, 3.0, 2.0, 3.0, 1.0, 1.0, 1e-10, 1e10, 0.0]])
    with np.errstate(all="ignore"):
        assert np.array_equal(run(24, ad, bd), ad / bd, equal_nan=True)
        s = np.abs(np.concatenate([ad, bd, a.astype(np.float64)]))
        s = np.concatenate([s, [-1.0, -0.0]])
        assert np.array_equal(run(22, s), np.sqrt(s), equal_nan=True)
        assert np.array_equal(run(FLOAT_OPS["sqrtf"], np.abs(a).astype(np.float64)),
                              np.sqrt(np.abs(a)).astype(np.float64), equal_nan=True)


def test_double_math(run):
    rng = np.random.default_rng(4)
    x = rng.uniform(-700, 700, 3000)
    ulp = lambda w: np.spacing(np.abs(w))
    got, want = run(20, x), np.exp(x)
    assert (np.abs(got - want) / ulp(want)).max() <= 1.0
    y = np.exp(rng.uniform(-700, 700, 3000))
    y = np.concatenate([y, 1 + rng.uniform(-1e-3, 1e-3, 500), [5e-324, 1e-310]])
    got, want = run(21, y), np.log(y)
    assert (np.abs(got - want) / ulp(want)).max() <= 2.0
    sp = run(21, np.array([0.0, -1.0, np.inf, np.nan]))
    assert sp[0] == -np.inf and np.isnan(sp[1]) and sp[2] == np.inf and np.isnan(sp[3])
    # pow with integer exponents, as Adam's bias correction calls it: within 3 + 2 |y log x| ulp
    b, t = rng.uniform(0.8, 0.9999, 500), rng.integers(1, 5000, 500).astype(float)
    t = np.minimum(t, np.floor(-700 / np.log(b)))  # normal results
    got, want = run(23, b, t), np.power(b, t)
    assert (np.abs(got - want) / ulp(want) <= 3 + 2 * np.abs(t * np.log(b))).all()


def test_rounding_functions(run):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.49, 3.7, -3.7, 1e20, -0.0, 8388609.0, np.inf, np.nan], np.float32)
    assert np.array_equal(run(FLOAT_OPS["floorf"], x.astype(float)), np.floor(x).astype(float), equal_nan=True)
    want = [math.copysign(math.floor(abs(v) + 0.5), v) if math.isfinite(v) else v for v in x.tolist()]  # half away
    got = run(FLOAT_OPS["roundf"], x.astype(float))
    assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got[:-1]), np.signbit(x[:-1]))


def test_integer_division(run):
    rng = np.random.default_rng(5)
    a = np.concatenate([rng.integers(-2**62, 2**62, 2000), rng.integers(-1000, 1000, 500), [-2**63, 7, -7, 0]])
    b = np.concatenate([rng.integers(-2**40, 2**40, 2000), rng.integers(-30, 30, 500), [3, 2, 2, 5]])
    b[b == 0] = 1
    q = [abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1) for x, y in zip(a.tolist(), b.tolist())]  # C truncates
    got = run(30, a, b, ints=True)
    assert [int(v) for v in got] == [int(v) for v in q]
    assert [int(v) for v in run(31, a, b, ints=True)] == [int(x) - int(y) * int(z) for x, y, z in zip(a, b, q)]
    ua, ub = a.view(np.uint64), np.abs(b).astype(np.uint64)
    assert np.array_equal(run(32, a, np.abs(b), ints=True).view(np.uint64), ua // ub)
    assert np.array_equal(run(33, a, np.abs(b), ints=True).view(np.uint64), ua % ub)
    a32, b32 = a.astype(np.int32).astype(np.int64), b.astype(np.int32).astype(np.int64)
    b32[b32 == 0] = 1
    want = np.trunc(a32 / b32).astype(np.int64)
    assert np.array_equal(run(34, a32, b32, ints=True), want)
    assert np.array_equal(run(35, a32, b32, ints=True), a32 - b32 * want)
    u32a, u32b = a32 & 0xffffffff, np.maximum(b32 & 0xffffffff, 1)
    assert np.array_equal(run(36, u32a, u32b, ints=True), u32a // u32b)
    assert np.array_equal(run(37, u32a, u32b, ints=True), u32a % u32b)


PRINTF = r"""
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb");
    double v;
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0) return 9;
    while (fread(&v, 8, 1, f) == 1)
        printf("%.9g|%.17g|%e|%.3f|%g|%.0f|%12.4E|%-10.2g|%+.1f|%a\n", v, v, v, v, v, v, v, v, v, 0.0);
    char buf[8];
    int n = snprintf(buf, sizeof buf, "%ld-%s-%05d", -42L, "abcdef", 7);
    printf("%d %s %lld %llu %x %zu %c%%\n", n, buf, -9000000000LL, 18446744073709551615ULL, 0xbeefu, (size_t)12, 'z');
    /* heap and bulk copies: misaligned starts and odd lengths through the HVX paths */
    for (int len = 0; len < 1200; len += 37) {
        unsigned char *a = malloc(len + 300), *b = malloc(len + 300);
        for (int i = 0; i < len + 300; i++) a[i] = (unsigned char)(i * 7 + len), b[i] = 0;
        memcpy(b + len % 5, a + len % 3, len);
        for (int i = 0; i < len; i++) if (b[len % 5 + i] != a[len % 3 + i]) return 10;
        if (b[len % 5 + len] != 0) return 11;
        memset(a + 1, len & 255, len);
        for (int i = 0; i < len; i++) if (a[1 + i] != (len & 255)) return 12;
        if (((unsigned long)a & 127) != 0) return 13;
        free(a);
        free(b);
    }
    return 0;
}
"""


def test_printf_matches_glibc_formatting(tmp_path):
    (tmp_path / "p.c").write_text(PRINTF.replace("|%a", "").replace(", 0.0);", ");"))
    exe = toolchain.build([tmp_path / "p.c"], tmp_path / "p", cwd=tmp_path)
    rng = np.random.default_rng(6)
    vals = np.concatenate([[0.0, -0.0, 0.5, 1.5, 2.5, 1e-5, 123456789.0, 9.9999999e-5, 0.00095, 1e300, 5e-324,
                            np.inf, -np.inf, 1 / 3, 2 / 3, 999999.5, 0.05, 1e21, 1e-310],
                           rng.standard_normal(200) * np.exp(rng.uniform(-60, 60, 200)),
                           rng.standard_normal(100).astype(np.float32).astype(float)])
    (tmp_path / "v.bin").write_bytes(vals.tobytes())
    res = subprocess.run([toolchain.RUNNER, str(exe), "v.bin"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.returncode
    lines = res.stdout.splitlines()
    for v, line in zip(vals.tolist(), lines):
        want = "%.9g|%.17g|%e|%.3f|%g|%.0f|%12.4E|%-10.2g|%+.1f" % ((v,) * 9)
        assert line == want, (v, line, want)
    assert lines[len(vals)] == "16 -42-abc -9000000000 18446744073709551615 beef 12 z%"
