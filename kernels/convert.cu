// convert: f32 -> bf16 copies (round to nearest even) for the bf16 GEMM operands: the input
// batch X and the initial parameter shadow (Adam keeps the shadow up to date afterwards).
// CPU twin: half::bf16::from_f32 element by element.
//
// Launch shape: 1-D grid-stride, 256 threads.
// Cost per call: no flops; bytes 6 per element (4 read, 2 written).
#include "common.cuh"
#include <cuda_bf16.h>

extern "C" __global__ void __launch_bounds__(256)
f32_to_bf16(const float* __restrict__ src, long long len, __nv_bfloat16* __restrict__ dst) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += stride)
        dst[i] = __float2bfloat16(src[i]);
}
