// Runs every kernel of kernels/*.cu under the host emulator (cuda_emu.h) on random inputs with
// ragged sizes and compares with straightforward references written from the math. Built and
// run by emu/run.sh (and by tests/emulated.rs when a C++20 compiler is present).
// `harness quick` runs the small shapes only (the ThreadSanitizer build); the default adds the
// d' = 8192 shapes with ragged n (references there use AND + popcount per word, not per bit).
#include "cuda_emu.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <cassert>
#include <cstring>
#include <vector>
#include "kernels.h"
static std::mt19937_64 rng(12345);
static int fails = 0;
#define CHECK(c, ...) do { if (!(c)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); ++fails; return; } } while (0)
static float unif(float a, float b) { return a + (b - a) * (rng() >> 11) * (1.0 / 9007199254740992.0); }
struct Bits { int major, minor, wpm; std::vector<u64> w;
  Bits(int M, int m) : major(M), minor(m), wpm((m + 63) / 64), w((size_t)M * ((m + 63) / 64), 0) {}
  bool get(int a, int b) const { return (w[(size_t)a * wpm + b / 64] >> (b % 64)) & 1; }
  void set(int a, int b) { w[(size_t)a * wpm + b / 64] |= 1ull << (b % 64); } };
static Bits random_bits(int M, int m, double extra_dense = 0) {
  Bits r(M, m); std::vector<double> rate(m); for (int j = 0; j < m; ++j) { int k = rng() % 10; rate[j] = k == 0 ? 0 : k == 1 ? 1 : unif(0, 1); }
  for (int a = 0; a < M; ++a) for (int b = 0; b < m; ++b) if (unif(0, 1) < rate[b]) r.set(a, b); return r; }
static Bits random_mask(int M, int m) {  // uniform bits, tails 0
  Bits r(M, m); for (int a = 0; a < M; ++a) for (int w = 0; w < r.wpm; ++w) r.w[(size_t)a * r.wpm + w] = rng() & (w == r.wpm - 1 && m % 64 ? (1ull << (m % 64)) - 1 : ~0ull); return r; }
static Bits transpose_ref(const Bits& x) { Bits t(x.minor, x.major); for (int a = 0; a < x.major; ++a) for (int b = 0; b < x.minor; ++b) if (x.get(a, b)) t.set(b, a); return t; }
static dim3 g1(size_t b, unsigned t) { return {(unsigned)std::max<size_t>(b, 1), 1, 1}; }

static void t_encode(int n, int dc) {
  int wpr = (dc + 63) / 64; std::vector<float> z(n * dc), b(dc); for (auto& v : z) v = unif(-1, 1); for (auto& v : b) v = unif(-.3, .3);
  z[0] = -b[0]; if (n * dc > 5) z[5] = NAN;
  std::vector<float> zo(n * dc, 7), h(n * dc, 7); std::vector<__nv_bfloat16> hb(n * dc, {0xffff}); std::vector<u64> codes(n * wpr, ~0ull);
  emu_launch(g1((n * wpr + 7) / 8, 256), {256, 1, 1}, [&] { encode_binarize(z.data(), b.data(), n, dc, zo.data(), codes.data(), h.data(), hb.data()); });
  for (int i = 0; i < n; ++i) for (int j = 0; j < dc; ++j) { float v = z[i * dc + j] + b[j]; bool bit = v > 0;
    CHECK(((codes[i * wpr + j / 64] >> (j % 64)) & 1) == bit, "encode bit %d %d", i, j);
    CHECK(h[i * dc + j] == (bit ? 1.f : 0.f), "h"); CHECK(__bfloat162float(hb[i * dc + j]) == (bit ? 1.f : 0.f), "hb");
    CHECK(memcmp(&zo[i * dc + j], &v, 4) == 0 || (std::isnan(v) && std::isnan(zo[i*dc+j])), "z_out"); }
  for (int i = 0; i < n; ++i) if (dc % 64) CHECK((codes[i * wpr + wpr - 1] >> (dc % 64)) == 0, "tail");
  printf("encode n=%d dc=%d ok\n", n, dc); }

static void t_transpose(int M, int m) {
  Bits x = random_bits(M, m); Bits want = transpose_ref(x); std::vector<u64> out(want.w.size(), ~0ull);
  size_t warps = (size_t)((M + 63) / 64) * ((m + 63) / 64);
  emu_launch(g1((warps + 7) / 8, 256), {256}, [&] { transpose_bits(x.w.data(), M, m, out.data()); });
  CHECK(out == want.w, "transpose %d %d", M, m); printf("transpose %d x %d ok\n", M, m); }

static void t_firing_entropy(int n, int dc) {
  Bits rows = random_bits(n, dc); Bits cols = transpose_ref(rows);
  std::vector<u32> c1(dc, 99), c2(dc, 99), want(dc, 0);
  for (int i = 0; i < n; ++i) for (int j = 0; j < dc; ++j) want[j] += rows.get(i, j);
  emu_launch(g1((dc + 7) / 8, 256), {256}, [&] { firing_counts(cols.w.data(), dc, cols.wpm, c1.data()); });
  emu_launch(g1((dc + 255) / 256, 256), {256}, [&] { firing_counts_rows(rows.w.data(), n, dc, c2.data()); });
  CHECK(c1 == want, "firing_counts"); CHECK(c2 == want, "firing_counts_rows");
  std::vector<float> coef(dc, NAN); std::vector<double> out(2, NAN); double lambda = 0.5;
  emu_launch(g1(1, 1024), {1024}, [&] { entropy_terms(want.data(), dc, n, lambda, 1, coef.data(), out.data()); });
  double h = 0; for (int j = 0; j < dc; ++j) { double p = (double)want[j] / n, q = 1 - p; h += -(p * std::log2(p + 1e-10) + q * std::log2(q + 1e-10)); }
  CHECK(std::fabs(out[0] - h) < 1e-12 * std::max(1.0, std::fabs(h)), "entropy %g %g", out[0], h); CHECK(out[1] == (h >= 0 ? 1.0 : 0.0), "applied");
  for (int j = 0; j < dc; ++j) { double p = (double)want[j] / n, q = 1 - p, pe = p + 1e-10, qe = q + 1e-10, L = 0.6931471805599453;
    double g = (1.0 / n) * (-std::log2(pe) - p / (pe * L) + std::log2(qe) + q / (qe * L)); CHECK(coef[j] == (h >= 0 ? (float)(lambda * g) : 0.f), "coef %d", j); }
  printf("firing/entropy n=%d dc=%d ok\n", n, dc); }

struct Cov { std::vector<u32> N; std::vector<u64> pos, neg; unsigned __int128 abs; std::vector<u32> c; };
static int popc_and(const u64* a, const u64* b, int words) { int s = 0; for (int w = 0; w < words; ++w) s += __builtin_popcountll(a[w] & b[w]); return s; }
static Cov cov_ref(const Bits& rows) { int n = rows.major, dc = rows.minor, nb = (dc + 63) / 64; Cov r; r.N.assign((size_t)dc * dc, 0); r.c.assign(dc, 0);
  r.pos.assign((size_t)dc * nb, 0); r.neg = r.pos; r.abs = 0;
  Bits cols = transpose_ref(rows);  // N = H^T H: N_jk = |column j AND column k|
  for (int j = 0; j < dc; ++j) for (int k = j; k < dc; ++k) r.N[(size_t)j * dc + k] = r.N[(size_t)k * dc + j] = popc_and(&cols.w[(size_t)j * cols.wpm], &cols.w[(size_t)k * cols.wpm], cols.wpm);
  for (int j = 0; j < dc; ++j) r.c[j] = r.N[(size_t)j * dc + j];
  for (int j = 0; j < dc; ++j) for (int k = 0; k < dc; ++k) { i64 v = (i64)n * r.N[(size_t)j * dc + k] - (i64)r.c[j] * r.c[k];
    if (j != k && v > 0) r.pos[(size_t)j * nb + k / 64] |= 1ull << (k % 64); if (j != k && v < 0) r.neg[(size_t)j * nb + k / 64] |= 1ull << (k % 64);
    if (j < k) r.abs += v < 0 ? -v : v; }
  return r; }
// (H M)_ik - (H M')_ik for 0/1 rows H and masks M, M' (row k = mask row k), word by word
static int hs_ref(const Bits& rows, const std::vector<u64>& m, const std::vector<u64>& m2, int i, int k) {
  const u64* r = &rows.w[(size_t)i * rows.wpm]; return popc_and(r, &m[(size_t)k * rows.wpm], rows.wpm) - popc_and(r, &m2[(size_t)k * rows.wpm], rows.wpm); }

static void t_coact(int n, int dc) {
  Bits rows = random_bits(n, dc); Bits cols = transpose_ref(rows); Cov want = cov_ref(rows); int nb = (dc + 63) / 64;
  std::vector<u64> pos((size_t)dc * nb, ~0ull), neg = pos; std::vector<u32> N((size_t)dc * dc, 0xdead); u64 abs = 0;
  emu_launch({(unsigned)nb, (unsigned)nb, 1}, {256}, [&] { coactivation(cols.w.data(), want.c.data(), dc, cols.wpm, n, pos.data(), neg.data(), N.data(), &abs); });
  CHECK(N == want.N, "coact N"); CHECK(pos == want.pos, "pos"); CHECK(neg == want.neg, "neg"); CHECK(abs == (u64)want.abs, "abs %llu vs %llu", abs, (u64)want.abs);
  // sign_times_counts
  std::vector<i64> q(dc, -1), qw(dc, 0); for (int k = 0; k < dc; ++k) for (int j = 0; j < dc; ++j) { int s = ((want.pos[(size_t)k*nb+j/64]>>(j%64))&1) - ((want.neg[(size_t)k*nb+j/64]>>(j%64))&1); qw[k] += s * (i64)want.c[j]; }
  emu_launch(g1((dc + 7) / 8, 256), {256}, [&] { sign_times_counts(want.pos.data(), want.neg.data(), want.c.data(), dc, q.data()); });
  CHECK(q == qw, "q");
  // sign_product with random masks
  Bits P = random_mask(dc, dc), Q = random_mask(dc, dc); std::vector<int> hs((size_t)n * dc, -12345), hw((size_t)n * dc, 0);
  for (int i = 0; i < n; ++i) for (int k = 0; k < dc; ++k) hw[(size_t)i * dc + k] = hs_ref(rows, P.w, Q.w, i, k);
  emu_launch({(unsigned)nb, (unsigned)((n + 63) / 64), 1}, {256}, [&] { sign_product(rows.w.data(), P.w.data(), Q.w.data(), n, dc, hs.data()); });
  CHECK(hs == hw, "sign_product");
  // covariance_grad with true signs
  std::vector<float> g0((size_t)n * dc), coef(dc); for (auto& v : g0) v = unif(-.5, .5); for (auto& v : coef) v = unif(-1e-3, 1e-3);
  double scale = 0.7 * 2.0 / ((double)n * (n - 1));
  for (int est = 0; est < 2; ++est) {
    std::vector<float> g = g0, dz((size_t)n * dc, NAN), gw = g0, dzw((size_t)n * dc); std::vector<__nv_bfloat16> dzb((size_t)n * dc, {0xffff});
    for (int i = 0; i < n; ++i) for (int k = 0; k < dc; ++k) { int s = hs_ref(rows, want.pos, want.neg, i, k);
      float v = gw[(size_t)i*dc+k] + coef[k]; v = (float)((double)v + scale * (double)((i64)n * s - qw[k])); gw[(size_t)i*dc+k] = v; dzw[(size_t)i*dc+k] = est == 1 ? v : v * (1.f - v); }
    emu_launch({(unsigned)nb, (unsigned)((n + 63) / 64), 1}, {256}, [&] { covariance_grad(rows.w.data(), want.pos.data(), want.neg.data(), q.data(), coef.data(), n, dc, scale, est, g.data(), dz.data(), dzb.data()); });
    CHECK(g == gw, "cov grad G est %d", est); CHECK(dz == dzw, "cov grad dz");
    for (size_t i = 0; i < dz.size(); ++i) CHECK(dzb[i].x == __float2bfloat16(dzw[i]).x, "dzb");
    std::vector<float> g2 = g0, dz2((size_t)n * dc, NAN);
    emu_launch(g1(((size_t)n * dc + 255) / 256, 256), {256}, [&] { apply_estimator(g2.data(), coef.data(), n, dc, est, dz2.data(), nullptr); });
    for (size_t i = 0; i < g2.size(); ++i) { float v = g0[i] + coef[i % dc]; CHECK(g2[i] == v && dz2[i] == (est == 1 ? v : v * (1.f - v)), "apply_estimator"); }
  }
  printf("coactivation/sign_product/cov_grad n=%d dc=%d ok\n", n, dc); }

static void t_mse_colsum(int n, int d) {
  std::vector<float> x((size_t)n * d), raw((size_t)n * d), b(d); for (auto& v : x) v = unif(-2, 2); for (auto& v : raw) v = unif(-2, 2); for (auto& v : b) v = unif(-.1, .1);
  std::vector<float> xh = raw, dx((size_t)n * d, NAN); std::vector<double> part(3, NAN), sse(1, NAN); float scale = (float)(2.0 / ((double)n * d));
  emu_launch(g1(3, 256), {256}, [&] { mse_grad(x.data(), xh.data(), b.data(), n, d, scale, xh.data(), dx.data(), nullptr, part.data()); });
  emu_launch(g1(1, 32), {32}, [&] { sum_f64(part.data(), 3, sse.data()); });
  double s = 0; for (size_t i = 0; i < x.size(); ++i) { float h = raw[i] + b[i % d]; CHECK(xh[i] == h, "xhat"); CHECK(dx[i] == scale * (h - x[i]), "dx"); double e = (double)h - x[i]; s += e * e; }
  CHECK(std::fabs(sse[0] - s) <= 1e-12 * s, "sse %g %g", sse[0], s);
  int blocks = (n + 63) / 64; std::vector<float> p((size_t)blocks * d, NAN), out(d, NAN);
  emu_launch({(unsigned)((d + 255) / 256), (unsigned)blocks, 1}, {256}, [&] { column_sums_partial(dx.data(), n, d, p.data()); });
  emu_launch(g1((d + 255) / 256, 256), {256}, [&] { column_sums_final(p.data(), blocks, d, out.data()); });
  for (int c = 0; c < d; ++c) { float acc = 0; for (int bb = 0; bb < blocks; ++bb) { float a = 0; for (int r = bb * 64; r < std::min(n, bb * 64 + 64); ++r) a += dx[(size_t)r * d + c]; acc += a; } CHECK(out[c] == acc, "colsum %d", c); }
  printf("mse/colsum n=%d d=%d ok\n", n, d); }

static void t_decode(int n, int dc, int d) {
  Bits rows = random_bits(n, dc); std::vector<float> w((size_t)dc * d), b(d), out((size_t)n * d, NAN); for (auto& v : w) v = unif(-1, 1); for (auto& v : b) v = unif(-1, 1);
  emu_launch({(unsigned)((d + 63) / 64), (unsigned)((n + 63) / 64), 1}, {256}, [&] { decode(rows.w.data(), w.data(), b.data(), n, dc, d, out.data()); });
  for (int i = 0; i < n; ++i) for (int c = 0; c < d; ++c) { float acc = 0; for (int j = 0; j < dc; ++j) if (rows.get(i, j)) acc += w[(size_t)j * d + c]; CHECK(out[(size_t)i * d + c] == acc + b[c], "decode %d %d", i, c); }
  printf("decode n=%d dc=%d d=%d ok\n", n, dc, d); }

static void t_adam() {
  int len = 1000; std::vector<float> p(len), m(len, 0), v(len, 0), g(len), pw, mw, vw; for (auto& x : p) x = unif(-1, 1); pw = p; mw = m; vw = v;
  std::vector<__nv_bfloat16> sh(len, {0xffff});
  for (int t = 1; t <= 5; ++t) { for (auto& x : g) x = unif(-1, 1);
    float ss = (float)(1e-2 / (1 - std::pow(0.9, t))), bc = (float)std::sqrt(1 - std::pow(0.999, t)), w1 = (float)(1 - 0.9), b2 = (float)0.999, w2 = (float)(1 - 0.999), eps = (float)1e-8;
    emu_launch(g1(2, 256), {256}, [&] { adam_step(p.data(), m.data(), v.data(), g.data(), len, ss, bc, w1, b2, w2, eps, sh.data()); });
    // torch's f32 order (bae_ref::Adam): fused lerp and addcmul, then p - (step m) / denom
    for (int i = 0; i < len; ++i) { mw[i] = std::fma(w1, g[i] - mw[i], mw[i]); vw[i] = std::fma(w2 * g[i], g[i], b2 * vw[i]); float den = std::sqrt(vw[i]) / bc + eps; pw[i] -= (ss * mw[i]) / den; }
    CHECK(p == pw && m == mw && v == vw, "adam t=%d", t); }
  for (int i = 0; i < len; ++i) CHECK(sh[i].x == __float2bfloat16(p[i]).x, "shadow");
  printf("adam ok\n"); }
// nearest bf16, ties to even, by comparing the two neighbours' values (0x7f80 counts as 2^128)
static uint16_t bf16_ref(float f) {
  uint32_t u; memcpy(&u, &f, 4); uint16_t lo = u >> 16, hi = lo + 1;
  auto val = [](uint16_t b) { if ((b & 0x7fff) == 0x7f80) return std::ldexp(b >> 15 ? -1.0 : 1.0, 128);
    uint32_t v = (uint32_t)b << 16; float x; memcpy(&x, &v, 4); return (double)x; };
  double dl = std::fabs((double)f - val(lo)), dh = std::fabs(val(hi) - (double)f);
  return dl < dh ? lo : dh < dl ? hi : (lo & 1 ? hi : lo); }
static void t_convert(int len) {
  std::vector<float> x(len); std::vector<__nv_bfloat16> y(len, {0x1234});
  const uint32_t special[] = {0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f7fffff, 0x7f7f7fff, 0x7f7f8000, 0x00000001, 0x807fffff, 0x3f808000, 0x3f818000, 0x3f80ffff};
  for (int i = 0; i < len; ++i) { uint32_t u = i < 13 ? special[i] : (uint32_t)rng(); if (i >= 13 && i % 3 == 0) u = (u & 0xffff0000) | 0x8000; memcpy(&x[i], &u, 4); }
  emu_launch(g1(3, 256), {256}, [&] { f32_to_bf16(x.data(), len, y.data()); });
  for (int i = 0; i < len; ++i) { if (std::isnan(x[i])) { CHECK((y[i].x & 0x7f80) == 0x7f80 && (y[i].x & 0x7f), "bf16 NaN %d", i); continue; }
    CHECK(y[i].x == bf16_ref(x[i]), "bf16 of %a: %04x vs %04x", x[i], y[i].x, bf16_ref(x[i])); }
  printf("f32_to_bf16 len=%d ok\n", len); }
static void t_rate_target(int n, int dc) {
  std::vector<u32> counts(dc); for (int j = 0; j < dc; ++j) counts[j] = (u32)(rng() % (n + 1));
  counts[0] = 0; if (dc > 2) { counts[1] = (u32)n; counts[2] = 1; }  // both clamps and the rarest rate
  const double target = 0.005, lambda = 2.0;
  std::vector<float> coef(dc, NAN), base(dc), acc(dc);
  for (int j = 0; j < dc; ++j) base[j] = acc[j] = unif(-1, 1);
  emu_launch(g1((dc + 255) / 256, 256), {256}, [&] { rate_target_coef(counts.data(), dc, n, target, lambda, 0, coef.data()); });
  emu_launch(g1((dc + 255) / 256, 256), {256}, [&] { rate_target_coef(counts.data(), dc, n, target, lambda, 1, acc.data()); });
  for (int j = 0; j < dc; ++j) {  // d/dH_ij of lambda/d' sum KL(t || p), p clamped to [1/2n, 1 - 1/2n]
    double p = (double)counts[j] / n, lo = 0.5 / n; p = p < lo ? lo : (p > 1 - lo ? 1 - lo : p);
    const float want = (float)(lambda * ((1.0 / ((double)dc * n)) * (-target / p + (1 - target) / (1 - p))));
    CHECK(coef[j] == want, "rate coef %d: %a vs %a", j, coef[j], want);
    CHECK(acc[j] == base[j] + want, "rate coef accumulated %d", j); }
  printf("rate_target n=%d dc=%d ok\n", n, dc); }
static void t_encode_gemm(int n, int d, int dc) {
  int wpr = (dc + 63) / 64; std::vector<__nv_bfloat16> x((size_t)n * d), w((size_t)d * dc); std::vector<float> b(dc);
  for (auto& v : x) v = __float2bfloat16(unif(-1, 1)); for (auto& v : w) v = __float2bfloat16(unif(-1, 1)); for (auto& v : b) v = unif(-.5, .5);
  std::vector<u64> codes((size_t)n * wpr, ~0ull); std::vector<float> z((size_t)n * dc, NAN); std::vector<__nv_bfloat16> h((size_t)n * dc, {0xffff});
  emu_launch({(unsigned)((dc + 127) / 128), (unsigned)((n + 127) / 128), 1}, {256}, [&] { encode_gemm(x.data(), w.data(), b.data(), n, d, dc, codes.data(), z.data(), h.data()); });
  int near = 0;
  for (int i = 0; i < n; ++i) for (int j = 0; j < dc; ++j) {
    double ref = 0, mag = std::fabs(b[j]); for (int k = 0; k < d; ++k) { double t = (double)__bfloat162float(x[(size_t)i*d+k]) * __bfloat162float(w[(size_t)k*dc+j]); ref += t; mag += std::fabs(t); }
    ref += b[j]; float zg = z[(size_t)i * dc + j]; bool bit = (codes[(size_t)i * wpr + j / 64] >> (j % 64)) & 1;
    CHECK(std::fabs(zg - ref) <= 1e-5 * mag + 1e-6, "encode_gemm z[%d,%d] %g vs %g", i, j, zg, ref);
    CHECK(bit == (zg > 0), "bit vs z"); CHECK(__bfloat162float(h[(size_t)i * dc + j]) == (bit ? 1.f : 0.f), "h");
    if (std::fabs(ref) > 1e-5 * mag + 1e-6) CHECK(bit == (ref > 0), "encode_gemm bit [%d,%d]", i, j); else ++near; }
  for (int i = 0; i < n; ++i) if (dc % 64) CHECK((codes[(size_t)i * wpr + wpr - 1] >> (dc % 64)) == 0, "tail");
  printf("encode_gemm n=%d d=%d dc=%d ok (%d near zero)\n", n, d, dc, near); }
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "quick") == 0;
  const char* env = std::getenv("BAE_TEST_SEED");
  unsigned long long seed = env ? std::strtoull(env, nullptr, 10) : (unsigned long long)std::chrono::steady_clock::now().time_since_epoch().count();
  rng.seed(seed); emu_seed(seed);
  printf("emulated kernels: seed %llu (BAE_TEST_SEED=%llu replays)\n", seed, seed);
  const double t0 = now();
  t_adam(); t_convert(5000); t_encode_gemm(1, 8, 8); t_encode_gemm(37, 40, 72); t_encode_gemm(130, 72, 200); t_encode_gemm(128, 64, 256);
  t_encode(1, 1); t_encode(5, 63); t_encode(37, 130); t_encode(3, 200);
  t_transpose(1, 1); t_transpose(70, 130); t_transpose(130, 7); t_transpose(64, 64);
  t_firing_entropy(2, 1); t_firing_entropy(100, 50); t_firing_entropy(70, 130);
  t_rate_target(512, 300); t_rate_target(7, 5);
  t_coact(2, 1); t_coact(70, 130); t_coact(1100, 70); t_coact(65, 64); t_coact(10, 1100);
  t_mse_colsum(1, 1); t_mse_colsum(7, 100); t_mse_colsum(130, 300);
  t_decode(1, 1, 1); t_decode(5, 63, 70); t_decode(65, 130, 129);
  printf("small shapes: %.1f s\n", now() - t0);
  if (!quick) {  // d' = 8192 (nb = 128 words: > 32 lanes, several staging rounds), ragged n
    const double t1 = now();
    t_encode_gemm(77, 64, 8192); t_encode_gemm(509, 40, 8192); t_encode(509, 8192); t_transpose(77, 8192); t_transpose(8192, 509);
    t_firing_entropy(509, 8192); t_coact(77, 8192); t_mse_colsum(77, 8192); t_decode(77, 8192, 40);
    printf("d' = 8192 shapes: %.1f s\n", now() - t1);
  }
  if (emu_errors()) { printf("FAIL: %d emulator errors (see stderr)\n", emu_errors()); ++fails; }
  printf(fails ? "FAILURES: %d\n" : "all ok\n", fails); return fails != 0; }
