// Host emulation of the CUDA features used by kernels/*.cu, to execute their index math, shared
// memory staging, barriers and warp-level exchanges on a machine without a GPU.
//
// Model (runtime in emu_runtime.cpp): blocks run one after another; every CUDA thread of a block
// is a fiber (own stack, switched in user space), so a block costs microseconds rather than OS
// thread start-ups and futex wake-ups. A fiber runs until it waits at a barrier or exits; which
// ready fiber runs next is random (seeded, emu_seed), per block either uniformly or with one
// warp at a time running ahead, so a missing barrier tends to show as a read of poison.
// Each warp intrinsic (ballot, shuffle, reduce, ldmatrix, mma) is an exchange of words between
// the lanes at a warp barrier (lanes assumed converged, as in the kernels). __syncthreads and
// __syncwarp are announced to ThreadSanitizer as release/acquire; the warp intrinsics are not
// (they order no memory in CUDA either), and fibers switch without implied synchronisation, so
// a TSan build sees the CUDA program's happens-before and no more. Exited threads leave the
// barriers. __shared__ variables are statics in section emu_shared, filled with 0xff bytes (NaN
// as f32/bf16) at every block start. cp.async lands at the matching wait_group (the destination
// holds poison until then).
// Timing, the memory model and occupancy are NOT emulated: this checks logic only.
#pragma once
#define BAE_HOST_EMULATION 1
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
using std::max;
using std::min;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
// set by the runtime: threadIdx at every fiber switch, the others at every block start
extern dim3 threadIdx, emu_block_idx, blockDim, gridDim;
#define blockIdx emu_block_idx
#define __global__
#define __device__
// static: a __shared__ inside an inline function must not be COMDAT (section type conflict)
#define __forceinline__ static inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static __attribute__((section("emu_shared")))
#define __align__(n) __attribute__((aligned(n)))

// ---- runtime (emu_runtime.cpp) ----
void emu_launch(dim3 grid, dim3 block, std::function<void()> fn);  // every thread of every block
void emu_seed(uint64_t seed);  // schedule shuffles (same seed, same schedule)
int emu_errors();              // deadlocks are fatal; this counts cp.async never waited for
void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);  // all lanes (as in the kernels)
// Publishes `count` (<= 8) words of this lane, waits for the warp and returns every lane's words
// (valid until this lane's next exchange). Like the intrinsics it serves, it orders no memory:
// it is no __syncwarp.
const uint64_t (*emu_warp_exchange(const uint64_t* mine, int count))[8];
struct EmuCpOp { void* dst; const void* src; int bytes; unsigned group; };
struct EmuCpAsync { EmuCpOp op[64]; int n = 0; unsigned committed = 0; };
EmuCpAsync& emu_cp_async();            // the current thread's pending cp.async copies

inline int emu_lane() { return threadIdx.x & 31; }

template <class F>
inline void emu_exchange(const uint64_t* mine, int count, F read) {
  read(emu_warp_exchange(mine, count));
}

inline unsigned __ballot_sync(unsigned, int p) {
  uint64_t v = p ? 1 : 0;
  unsigned r = 0;
  emu_exchange(&v, 1, [&](const uint64_t (*s)[8]) { for (int i = 0; i < 32; ++i) r |= (unsigned)s[i][0] << i; });
  return r;
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int off) {
  static_assert(sizeof(T) <= 8);
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  uint64_t o = 0;
  emu_exchange(&b, 1, [&](const uint64_t (*s)[8]) { o = s[emu_lane() ^ off][0]; });
  T r;
  std::memcpy(&r, &o, sizeof(T));
  return r;
}
inline unsigned __reduce_add_sync(unsigned, unsigned v) {
  uint64_t b = v;
  unsigned r = 0;
  emu_exchange(&b, 1, [&](const uint64_t (*s)[8]) { for (int i = 0; i < 32; ++i) r += (unsigned)s[i][0]; });
  return r;
}
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
// The kernels are built with -ffp-contract=fast (NVRTC's default --fmad=true), but an __f*_rn
// op is never fused with its neighbours: operands and result pass through an empty asm, which the
// compiler cannot see through, so no multiply-add is formed across it.
template <class T>
inline T emu_opaque(T x) {
#if defined(__x86_64__)
  asm("" : "+x"(x));
#else
  asm("" : "+m"(x));
#endif
  return x;
}
#define EMU_RN(name, T, expr) \
  inline T name(T a, T b) { a = emu_opaque(a); b = emu_opaque(b); return emu_opaque<T>(expr); }
EMU_RN(__fadd_rn, float, a + b)
EMU_RN(__fsub_rn, float, a - b)
EMU_RN(__fmul_rn, float, a * b)
EMU_RN(__fdiv_rn, float, a / b)
EMU_RN(__dadd_rn, double, a + b)
EMU_RN(__dmul_rn, double, a * b)
#undef EMU_RN
inline float __fmaf_rn(float a, float b, float c) {
  return emu_opaque(std::fma(emu_opaque(a), emu_opaque(b), emu_opaque(c)));
}
inline float __fsqrt_rn(float a) { return emu_opaque(std::sqrt(emu_opaque(a))); }

struct __nv_bfloat16 { uint16_t x; };
inline __nv_bfloat16 __float2bfloat16(float f) {  // round to nearest even, NaN stays NaN
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return {(uint16_t)((u >> 16) | 0x40)};
  u += 0x7fff + ((u >> 16) & 1);
  return {(uint16_t)(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 b) {
  uint32_t u = (uint32_t)b.x << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- the tensor-core helpers of encode_gemm.cu (PTX semantics of cp.async, ldmatrix, mma) ----
typedef unsigned int u32;
// cp.async.cg 16 bytes: src_bytes (0..16) are read, the rest zero-filled. Queued, not copied:
// the copy lands at the cp_async_wait that retires its commit group; until then dst is poison.
// The 16-byte writes are two 8-byte stores: GCC expands a 16-byte memset / memcpy after its TSan
// pass, so TSan would not see them.
inline void emu_store16(void* dst, uint64_t lo, uint64_t hi) {
  std::memcpy(dst, &lo, 8);
  std::memcpy((char*)dst + 8, &hi, 8);
}
inline void cp_async16(void* dst, const void* src, int src_bytes) {
  EmuCpAsync& q = emu_cp_async();
  if (q.n == 64) { std::fputs("emu: more than 64 cp.async in flight\n", stderr); std::abort(); }
  q.op[q.n++] = {dst, src, src_bytes, q.committed};
  emu_store16(dst, ~0ull, ~0ull);
}
inline void cp_async_commit() { ++emu_cp_async().committed; }
// cp.async.wait_group N: every committed group but the newest N has landed; copies issued after
// the last commit belong to no group and stay pending (PTX).
template <int N>
inline void cp_async_wait() {
  EmuCpAsync& q = emu_cp_async();
  int keep = 0;
  for (int i = 0; i < q.n; ++i) {
    EmuCpOp& o = q.op[i];
    if (o.group + N < q.committed) {
      uint64_t v[2] = {0, 0};
      std::memcpy(v, o.src, o.bytes);
      emu_store16(o.dst, v[0], v[1]);
    } else {
      q.op[keep++] = o;
    }
  }
  q.n = keep;
}
inline uint16_t emu_b16(uint64_t row_ptr, int col) { uint16_t v; std::memcpy(&v, (const char*)row_ptr + 2 * col, 2); return v; }
// x4: matrix i's 8 row addresses come from lanes 8i..8i+7; lane l receives row l/4, columns
// 2(l%4), 2(l%4)+1 (low half first); with .trans it receives column l/4 of rows 2(l%4), 2(l%4)+1.
inline void emu_ldmatrix(u32 r[4], const void* p, bool trans) {
  uint64_t a = (uint64_t)p;
  int l = emu_lane();
  emu_exchange(&a, 1, [&](const uint64_t (*s)[8]) {
    for (int i = 0; i < 4; ++i) {
      uint16_t lo, hi;
      if (!trans) {
        uint64_t row = s[8 * i + l / 4][0];
        lo = emu_b16(row, 2 * (l % 4));
        hi = emu_b16(row, 2 * (l % 4) + 1);
      } else {
        lo = emu_b16(s[8 * i + 2 * (l % 4)][0], l / 4);
        hi = emu_b16(s[8 * i + 2 * (l % 4) + 1][0], l / 4);
      }
      r[i] = (u32)lo | ((u32)hi << 16);
    }
  });
}
inline void ldmatrix_x4(u32 r[4], const void* p) { emu_ldmatrix(r, p, false); }
inline void ldmatrix_x4_trans(u32 r[4], const void* p) { emu_ldmatrix(r, p, true); }
inline float emu_bf(u32 reg, int half) { return __bfloat162float({(uint16_t)(half ? reg >> 16 : reg & 0xffff)}); }
// m16n8k16 row.col: A reg j of lane (g, t): rows g + 8 (j & 1), k 2t + 8 (j >> 1) + {0, 1};
// B reg j: k 2t + 8 j + {0, 1}, column g; C e: row g + 8 (e >> 1), column 2t + (e & 1).
// (bf16 x bf16 products are exact in f32, so contracting acc += A B into an FMA changes nothing.)
inline void mma_bf16(float c[4], const u32 a[4], const u32 b[2]) {
  uint64_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  int l = emu_lane(), g = l / 4, t = l % 4;
  float A[16][16], B[16][8];
  emu_exchange(mine, 6, [&](const uint64_t (*s)[8]) {
    for (int L = 0; L < 32; ++L) {
      int gg = L / 4, tt = L % 4;
      for (int j = 0; j < 4; ++j)
        for (int h = 0; h < 2; ++h) A[gg + 8 * (j & 1)][2 * tt + 8 * (j >> 1) + h] = emu_bf((u32)s[L][j], h);
      for (int j = 0; j < 2; ++j)
        for (int h = 0; h < 2; ++h) B[2 * tt + 8 * j + h][gg] = emu_bf((u32)s[L][4 + j], h);
    }
  });
  for (int e = 0; e < 4; ++e) {
    int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
    float acc = c[e];
    for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
    c[e] = acc;
  }
}
