// Shared definitions for the kernels in this folder (included by every .cu file; NVRTC gets
// `-I kernels`). No kernels here.
//
// Bit-packing conventions (identical to crate bae-bits):
//   row-packed codes    : row i occupies wpr = ceil(cols/64) words from i*wpr; bit j%64 of word
//                         j/64 is H[i, j]
//   column-packed codes : column j occupies wpc = ceil(n/64) words from j*wpc; bit i%64 of word
//                         i/64 is H[i, j]
//   tail bits (beyond the matrix edge) are always 0.
#pragma once

typedef unsigned long long u64;
typedef long long i64;
typedef unsigned int u32;

#define FULL_MASK 0xffffffffu

// Estimator codes shared with the host (bae_gpu::Estimator as i32).
#define EST_SIGN_S 0  // dL/dZ = G * (1 - G)
#define EST_STE 1     // dL/dZ = G

__device__ __forceinline__ int popc64(u64 x) { return __popcll(x); }

// Sum of a 64-bit value over the 32 lanes of a warp (every lane gets the result).
__device__ __forceinline__ u64 warp_sum_u64(u64 v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

__device__ __forceinline__ i64 warp_sum_i64(i64 v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

__device__ __forceinline__ double warp_sum_f64(double v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

// OR of a 64-bit value over groups of 16 consecutive lanes (lanes 0-15 and 16-31 separately).
__device__ __forceinline__ u64 half_warp_or_u64(u64 v) {
#pragma unroll
    for (int off = 8; off > 0; off >>= 1) v |= __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

// 64x64 bit transpose by one warp: lane l holds rows l and l+32 (a0, a1); afterwards it holds
// the transposed rows l and l+32 (t0, t1): bit r of t_c is bit c of row r. 128 ballots.
__device__ __forceinline__ void warp_transpose64(u64 a0, u64 a1, u64& t0, u64& t1) {
    const int lane = threadIdx.x & 31;
    t0 = 0;
    t1 = 0;
#pragma unroll 8
    for (int c = 0; c < 64; ++c) {
        u32 lo = __ballot_sync(FULL_MASK, (a0 >> c) & 1ull);
        u32 hi = __ballot_sync(FULL_MASK, (a1 >> c) & 1ull);
        u64 w = (u64)lo | ((u64)hi << 32);
        if (c == lane) t0 = w;
        if (c == lane + 32) t1 = w;
    }
}

// Deterministic block sum of a double (fixed tree order); result valid in thread 0.
// `scratch` holds one double per warp (blockDim.x / 32 <= 32).
__device__ __forceinline__ double block_sum_f64(double v, double* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum_f64(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    double r = 0.0;
    if (warp == 0) {
        const int nw = (blockDim.x + 31) >> 5;
        r = lane < nw ? scratch[lane] : 0.0;
        r = warp_sum_f64(r);
    }
    __syncthreads();
    return r;
}
