// adam: fused Adam update on the f32 master weights, torch single-tensor semantics, in exactly
// the operation order of the CPU twin bae_ref::Adam::step (every op rounded to nearest, no FMA
// contraction, so the update is bit-identical given the same inputs):
//   m = m + (1 - b1) (g - m)                    (torch: m.lerp_(g, 1 - b1))
//   v = b2 v + ((1 - b2) g) g
//   denom = sqrt(v) / sqrt(1 - b2^t) + eps
//   p = p - step_size (m / denom),   step_size = lr / (1 - b1^t)
// The scalars (step_size, sqrt(1 - b2^t), 1 - b1, b2, 1 - b2, eps) are computed on the host in
// f64 and rounded to f32, as torch and the CPU twin do.
// Optionally writes a bf16 shadow of the updated parameters (operands of the bf16 GEMMs).
//
// Launch shape: 1-D grid-stride over all parameters (one buffer holding W_enc, b_enc, W_dec,
// b_dec with zero padding between them: padding stays exactly 0), 256 threads.
// Cost per call: ~12 flops per parameter (1 sqrt, 2 div); bytes 16 read + 12 written (+2 bf16)
// per parameter: 470 MiB at d=2048, d'=8192 -> ~0.16 ms at 3 TB/s.
#include "common.cuh"
#include <cuda_bf16.h>

extern "C" __global__ void __launch_bounds__(256)
adam_step(float* __restrict__ p, float* __restrict__ m, float* __restrict__ v,
          const float* __restrict__ g, long long len, float step_size, float bc2_sqrt, float w1,
          float b2, float w2, float eps, __nv_bfloat16* __restrict__ shadow) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += stride) {
        const float gi = g[i];
        float mi = m[i], vi = v[i], pi = p[i];
        mi = __fadd_rn(mi, __fmul_rn(w1, __fsub_rn(gi, mi)));
        vi = __fadd_rn(__fmul_rn(b2, vi), __fmul_rn(__fmul_rn(w2, gi), gi));
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        pi = __fsub_rn(pi, __fmul_rn(step_size, __fdiv_rn(mi, denom)));
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
        if (shadow) shadow[i] = __float2bfloat16(pi);
    }
}
