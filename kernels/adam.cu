// adam: fused Adam update on the f32 master weights, torch's f32 arithmetic operation for
// operation, as the CPU twin bae_ref::Adam::step (checked bit for bit against torch.optim.Adam);
// every op rounded to nearest with explicit intrinsics, so nvcc contracts nothing else:
//   m = fma(1 - b1, g - m, m)                   (torch: m.lerp_(g, 1 - b1))
//   v = fma((1 - b2) g, g, b2 v)                (torch: v.mul_(b2).addcmul_(g, g, 1 - b2))
//   denom = sqrt(v) / sqrt(1 - b2^t) + eps      (IEEE sqrt and division)
//   p = p - (step_size m) / denom,  step_size = lr / (1 - b1^t)   (torch: p.addcdiv_(m, denom, -step_size))
// The scalars are bae_ref::AdamScalars: Python-float (f64) values rounded to f32, as torch does.
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
        mi = __fmaf_rn(w1, __fsub_rn(gi, mi), mi);
        vi = __fmaf_rn(__fmul_rn(w2, gi), gi, __fmul_rn(b2, vi));
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        pi = __fsub_rn(pi, __fdiv_rn(__fmul_rn(step_size, mi), denom));
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
        if (shadow) shadow[i] = __float2bfloat16(pi);
    }
}
