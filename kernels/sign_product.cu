// sign_product: (H S)_ik = popc(row_i AND pos_k) - popc(row_i AND neg_k), the covariance
// gradient built from it, and q = S c.
// CPU twins: bae_bits::sign_product, CovarianceTerm/CovarianceStats::add_covariance_grad.
//
// Math: S = sign(cov(H)) as two d' x d' bit masks (row k = sign row k; symmetric), c = firing
// counts, q_k = sum_j c_j S_jk (exact i64), and
//   dD/dH = (2/(n-1)) (H - 1 p^T) S  =>  G_ik += weight * 2/(n (n-1)) * (n (H S)_ik - q_k),
// evaluated in f64 from the exact integer and rounded once to f32 (as the CPU twin).
// covariance_grad fuses the rest of the backward of H into the same pass:
//   G_ik = f32(f64(G_ik + coef_k) + scale (n (HS)_ik - q_k))   (coef = entropy, optional)
//   dZ_ik = G (1 - G) (sign_s) or G (ste);  G is written back (dL/dH), dZ in f32 (+ bf16 copy).
//
// Launch shapes:
//   sign_times_counts : one warp per sign row k, lanes over its words, set bits walked with ffs.
//                       Cost: <= d'^2 bit visits (L1-resident counts); bytes: read 2 d' nb 8.
//   sign_product / covariance_grad : grid (ceil(d'/64), ceil(n/64)), 256 threads; block computes
//                       the 64 x 64 tile i in [64 by, ..), k in [64 bx, ..); thread (ty, tx) owns
//                       i = ty + 16a, k = tx + 16b (a, b < 4). Words staged WCH at a time.
//                       Cost: n d' nb (AND + POPC64) x 2 (1.07e9 pair-words at n=512, d'=8192:
//                       POPC-bound, ~0.6 ms on H100); bytes: n d' 4 (+ 4 for G read/write,
//                       + 4 or 6 for dZ) plus the masks once per block row (L2).
#include "common.cuh"
#include <cuda_bf16.h>

#define TILE 64
#define WCH 16

extern "C" __global__ void __launch_bounds__(256)
sign_times_counts(const u64* __restrict__ pos, const u64* __restrict__ neg,
                  const u32* __restrict__ counts, int dc, i64* __restrict__ q) {
    const long long k = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (k >= dc) return;
    const int nb = (dc + 63) >> 6;
    i64 s = 0;
    for (int w = lane; w < nb; w += 32) {
        u64 p = pos[k * nb + w], m = neg[k * nb + w];
        while (p) {
            s += counts[w * 64 + __ffsll((long long)p) - 1];
            p &= p - 1;
        }
        while (m) {
            s -= counts[w * 64 + __ffsll((long long)m) - 1];
            m &= m - 1;
        }
    }
    s = warp_sum_i64(s);
    if (lane == 0) q[k] = s;
}

// acc[a][b] = (H S)_ik for i = i0 + ty + 16a, k = k0 + tx + 16b (0 outside the matrix).
__device__ __forceinline__ void hs_tile(const u64* __restrict__ rows, const u64* __restrict__ pos,
                                        const u64* __restrict__ neg, int n, int dc, int i0, int k0,
                                        int acc[4][4]) {
    __shared__ u64 sr[WCH][TILE + 1];
    __shared__ u64 sp[WCH][TILE + 1];
    __shared__ u64 sn[WCH][TILE + 1];
    const int wpr = (dc + 63) >> 6;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) acc[a][b] = 0;

    for (int w0 = 0; w0 < wpr; w0 += WCH) {
        const int nw = min(WCH, wpr - w0);
        for (int t = tid; t < TILE * WCH; t += 256) {
            const int c = t / WCH, w = t % WCH;
            u64 vr = 0, vp = 0, vn = 0;
            if (w < nw) {
                if (i0 + c < n) vr = rows[(long long)(i0 + c) * wpr + w0 + w];
                if (k0 + c < dc) {
                    vp = pos[(long long)(k0 + c) * wpr + w0 + w];
                    vn = neg[(long long)(k0 + c) * wpr + w0 + w];
                }
            }
            sr[w][c] = vr;
            sp[w][c] = vp;
            sn[w][c] = vn;
        }
        __syncthreads();
        for (int w = 0; w < nw; ++w) {
            u64 r[4], p[4], m[4];
#pragma unroll
            for (int a = 0; a < 4; ++a) r[a] = sr[w][ty + 16 * a];
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                p[b] = sp[w][tx + 16 * b];
                m[b] = sn[w][tx + 16 * b];
            }
#pragma unroll
            for (int a = 0; a < 4; ++a)
#pragma unroll
                for (int b = 0; b < 4; ++b) acc[a][b] += popc64(r[a] & p[b]) - popc64(r[a] & m[b]);
        }
        __syncthreads();
    }
}

// (256, 3): up to 85 registers; the default heuristic capped these at 64 and spilled
extern "C" __global__ void __launch_bounds__(256, 3)
sign_product(const u64* __restrict__ rows, const u64* __restrict__ pos,
             const u64* __restrict__ neg, int n, int dc, int* __restrict__ out) {
    const int i0 = blockIdx.y * TILE, k0 = blockIdx.x * TILE;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    int acc[4][4];
    hs_tile(rows, pos, neg, n, dc, i0, k0, acc);
#pragma unroll
    for (int a = 0; a < 4; ++a) {
        const int i = i0 + ty + 16 * a;
#pragma unroll
        for (int b = 0; b < 4; ++b) {
            const int k = k0 + tx + 16 * b;
            if (i < n && k < dc) out[(long long)i * dc + k] = acc[a][b];
        }
    }
}

extern "C" __global__ void __launch_bounds__(256, 3)
covariance_grad(const u64* __restrict__ rows, const u64* __restrict__ pos,
                const u64* __restrict__ neg, const i64* __restrict__ q,
                const float* __restrict__ coef, int n, int dc, double scale, int estimator,
                float* __restrict__ g, float* __restrict__ dz, __nv_bfloat16* __restrict__ dz_bf16) {
    const int i0 = blockIdx.y * TILE, k0 = blockIdx.x * TILE;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    int acc[4][4];
    hs_tile(rows, pos, neg, n, dc, i0, k0, acc);
#pragma unroll
    for (int a = 0; a < 4; ++a) {
        const int i = i0 + ty + 16 * a;
#pragma unroll
        for (int b = 0; b < 4; ++b) {
            const int k = k0 + tx + 16 * b;
            if (i < n && k < dc) {
                const long long idx = (long long)i * dc + k;
                float v = g[idx];
                if (coef) v += coef[k];
                // explicit round-to-nearest ops: no FMA contraction, the same f64 ops as the CPU
                const double upd = __dmul_rn(scale, (double)((i64)n * acc[a][b] - q[k]));
                v = (float)__dadd_rn((double)v, upd);
                g[idx] = v;
                const float d = estimator == EST_STE ? v : v * (1.0f - v);
                if (dz) dz[idx] = d;
                if (dz_bf16) dz_bf16[idx] = __float2bfloat16(d);
            }
        }
    }
}
