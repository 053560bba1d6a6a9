// backward: the element-wise parts of the backward pass and the deterministic reductions.
// CPU twins: bae_ref::step (dL/dX^, the entropy add and the estimator), bae_ref::mse,
// bae_ref::column_sums.
//
// Math:
//   mse_grad        : X^ = X^raw + b_dec (optional bias add; xhat may alias xhat_raw),
//                     dL/dX^ = f32(2/(n d)) * (X^ - X),
//                     SSE = sum (X^ - X)^2 in f64 -> one partial per block (fixed grid, so the
//                     result is deterministic); MSE = SSE / (n d) on the host.
//   apply_estimator : G += coef (entropy, optional), dL/dZ = G (1 - G) (sign_s) or G (ste).
//                     (With the covariance term on, sign_product.cu/covariance_grad does this.)
//   column_sums_*   : bias gradients sum_i M_ik, exactly in the CPU twin's order: partial sums
//                     over blocks of 64 rows (rows in order), then the partials in order, so the
//                     f32 result is bit-identical to bae_ref::column_sums.
//   sum_f64         : fixed-order sum of the per-block partials (one thread).
//
// Launch shapes and costs (n=512, d=2048, d'=8192):
//   mse_grad        : fixed grid (host: 2 x SMs blocks of 256), grid-stride over n d;
//                     3 flops/elem; bytes 4 n d x (2 read + 1-3 written) (~16 MiB).
//   apply_estimator : 1-D grid over n d', 256 threads; bytes 4 n d' x (1 read + 2-3 written).
//   column_sums_partial : grid (ceil(cols/256), ceil(rows/64)); bytes: read 4 rows cols.
//   column_sums_final   : ceil(cols/256) blocks; bytes: read 4 cols ceil(rows/64).
#include "common.cuh"
#include <cuda_bf16.h>

extern "C" __global__ void __launch_bounds__(256)
mse_grad(const float* __restrict__ x, const float* xhat_raw,
         const float* __restrict__ b_dec, int n, int d, float scale, float* xhat,
         float* __restrict__ dxhat, __nv_bfloat16* __restrict__ dxhat_bf16,
         double* __restrict__ partial) {
    __shared__ double scratch[32];
    const long long total = (long long)n * d;
    const long long stride = (long long)gridDim.x * blockDim.x;
    double sse = 0.0;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += stride) {
        float xh = xhat_raw[idx];
        if (b_dec) xh = __fadd_rn(xh, b_dec[idx % d]);
        const float xv = x[idx];
        const double e = (double)xh - (double)xv;
        sse += e * e;
        const float gv = __fmul_rn(scale, __fsub_rn(xh, xv));
        if (xhat) xhat[idx] = xh;
        dxhat[idx] = gv;
        if (dxhat_bf16) dxhat_bf16[idx] = __float2bfloat16(gv);
    }
    const double s = block_sum_f64(sse, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

extern "C" __global__ void __launch_bounds__(256)
apply_estimator(float* __restrict__ g, const float* __restrict__ coef, int n, int dc,
                int estimator, float* __restrict__ dz, __nv_bfloat16* __restrict__ dz_bf16) {
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)n * dc) return;
    float v = g[idx];
    if (coef) {
        v = __fadd_rn(v, coef[idx % dc]);
        g[idx] = v;
    }
    const float r = estimator == EST_STE ? v : __fmul_rn(v, __fsub_rn(1.0f, v));
    if (dz) dz[idx] = r;
    if (dz_bf16) dz_bf16[idx] = __float2bfloat16(r);
}

#define COLSUM_ROWS 64

extern "C" __global__ void __launch_bounds__(256)
column_sums_partial(const float* __restrict__ m, int rows, int cols,
                    float* __restrict__ partial) {
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= cols) return;
    const int r0 = blockIdx.y * COLSUM_ROWS;
    const int r1 = min(rows, r0 + COLSUM_ROWS);
    float acc = 0.0f;
    for (int r = r0; r < r1; ++r) acc = __fadd_rn(acc, m[(long long)r * cols + col]);
    partial[(long long)blockIdx.y * cols + col] = acc;
}

extern "C" __global__ void __launch_bounds__(256)
column_sums_final(const float* __restrict__ partial, int n_partials, int cols,
                  float* __restrict__ out) {
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= cols) return;
    float acc = 0.0f;
    for (int p = 0; p < n_partials; ++p) acc = __fadd_rn(acc, partial[(long long)p * cols + col]);
    out[col] = acc;
}

extern "C" __global__ void sum_f64(const double* __restrict__ partial, int count,
                                   double* __restrict__ out) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double s = 0.0;
    for (int i = 0; i < count; ++i) s += partial[i];
    out[0] = s;
}
