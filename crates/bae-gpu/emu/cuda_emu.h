// Host emulation of the CUDA features used by kernels/*.cu, to execute their index math, shared
// memory staging, barriers and warp-level exchanges on a machine without a GPU.
//
// Model: blocks run one after another; every CUDA thread of a block is a std::thread;
// __syncthreads is a std::barrier over the block, and each warp intrinsic (ballot, shuffle,
// reduce, ldmatrix, mma) is an exchange through per-warp slots between two warp barriers
// (lanes are assumed converged, as in the kernels). __shared__ becomes `static` (one block at a
// time). Timing, the memory model and occupancy are NOT emulated: this checks logic only.
#pragma once
#define BAE_HOST_EMULATION 1
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>
using std::max;
using std::min;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local dim3 threadIdx;
inline dim3 emu_block_idx, blockDim, gridDim;
#define blockIdx emu_block_idx
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct EmuWarp {
  std::barrier<> bar{32};
  uint64_t slot[32][8];
};
inline std::barrier<>* emu_block_bar;
inline EmuWarp* emu_warps;
inline void __syncthreads() { emu_block_bar->arrive_and_wait(); }
inline EmuWarp& emu_warp() { return emu_warps[threadIdx.x >> 5]; }
inline int emu_lane() { return threadIdx.x & 31; }

// publish up to 8 words, wait for the warp, let `read` look at every lane's words, wait again
template <class F>
inline void emu_exchange(const uint64_t* mine, int count, F read) {
  EmuWarp& w = emu_warp();
  for (int i = 0; i < count; ++i) w.slot[emu_lane()][i] = mine[i];
  w.bar.arrive_and_wait();
  read(w.slot);
  w.bar.arrive_and_wait();
}

inline unsigned __ballot_sync(unsigned, int p) {
  uint64_t v = p ? 1 : 0;
  unsigned r = 0;
  emu_exchange(&v, 1, [&](uint64_t (*s)[8]) { for (int i = 0; i < 32; ++i) r |= (unsigned)s[i][0] << i; });
  return r;
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int off) {
  static_assert(sizeof(T) <= 8);
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  uint64_t o = 0;
  emu_exchange(&b, 1, [&](uint64_t (*s)[8]) { o = s[emu_lane() ^ off][0]; });
  T r;
  std::memcpy(&r, &o, sizeof(T));
  return r;
}
inline unsigned __reduce_add_sync(unsigned, unsigned v) {
  uint64_t b = v;
  unsigned r = 0;
  emu_exchange(&b, 1, [&](uint64_t (*s)[8]) { for (int i = 0; i < 32; ++i) r += (unsigned)s[i][0]; });
  return r;
}
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }

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
inline void cp_async16(void* dst, const void* src, int src_bytes) {
  if (src_bytes) std::memcpy(dst, src, 16); else std::memset(dst, 0, 16);
}
inline void cp_async_commit() {}
template <int N> inline void cp_async_wait() {}
inline uint16_t emu_b16(uint64_t row_ptr, int col) { uint16_t v; std::memcpy(&v, (const char*)row_ptr + 2 * col, 2); return v; }
// x4: matrix i's 8 row addresses come from lanes 8i..8i+7; lane l receives row l/4, columns
// 2(l%4), 2(l%4)+1 (low half first); with .trans it receives column l/4 of rows 2(l%4), 2(l%4)+1.
inline void emu_ldmatrix(u32 r[4], const void* p, bool trans) {
  uint64_t a = (uint64_t)p;
  int l = emu_lane();
  emu_exchange(&a, 1, [&](uint64_t (*s)[8]) {
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
inline void mma_bf16(float c[4], const u32 a[4], const u32 b[2]) {
  uint64_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  int l = emu_lane(), g = l / 4, t = l % 4;
  float A[16][16], B[16][8];
  emu_exchange(mine, 6, [&](uint64_t (*s)[8]) {
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

// Runs `fn` as every thread of every block of the grid.
inline void emu_launch(dim3 grid, dim3 block, std::function<void()> fn) {
  gridDim = grid;
  blockDim = block;
  const unsigned nt = block.x;
  for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
      emu_block_idx = {bx, by, 0};
      std::barrier<> bar(nt);
      emu_block_bar = &bar;
      std::unique_ptr<EmuWarp[]> warps(new EmuWarp[(nt + 31) / 32]);
      emu_warps = warps.get();
      std::vector<std::thread> ts;
      ts.reserve(nt);
      for (unsigned t = 0; t < nt; ++t)
        ts.emplace_back([&, t] {
          threadIdx = {t, 0, 0};
          fn();
          bar.arrive_and_drop();  // exited threads leave the barriers
          warps[t >> 5].bar.arrive_and_drop();
        });
      for (auto& th : ts) th.join();
    }
}
