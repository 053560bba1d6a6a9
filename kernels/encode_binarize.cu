// encode_binarize: the BAE binariser H = 1[Z > 0] (strictly: 0 and NaN give 0), packed.
// CPU twin: bae_bits::PackedRows::encode_positive (+ the dense 0/1 decoder input of bae_ref).
//
// Math: Z = Zraw + b_enc (Zraw = X W_enc from a GEMM), H_ij = 1[Z_ij > 0].
// Outputs (each optional except the codes):
//   codes  : n x wpr u64, row-packed (bit j%64 of word j/64 of row i = H[i,j]; tail bits 0)
//   z_out  : Z in f32 (may alias zraw: in-place bias add)
//   h_f32  : H as 0/1 f32 (decoder input of the f32 GEMMs)
//   h_bf16 : H as 0/1 bf16 (decoder input of the bf16 GEMMs; exact)
//
// Launch shape: one warp per (row, 64-column word); 256 threads = 8 words per block; 1-D grid of
// ceil(n*wpr / 8) blocks. Lane l tests columns 64w+l and 64w+32+l; two ballots give the word.
// Cost per call: no FLOPs beyond n*d' adds; bytes: read 4 n d' (+4 d'), write n d'/8 (codes)
// + 4 n d' (z_out) + 4 n d' (h_f32) + 2 n d' (h_bf16), for the outputs asked for.
// A tensor-core GEMM with this epilogue fused is in encode_gemm.cu.
#include "common.cuh"
#include <cuda_bf16.h>

extern "C" __global__ void __launch_bounds__(256)
encode_binarize(const float* zraw, const float* __restrict__ bias, int n, int dc,
                float* z_out, u64* __restrict__ codes, float* __restrict__ h_f32,
                __nv_bfloat16* __restrict__ h_bf16) {
    const int wpr = (dc + 63) >> 6;
    const long long warp_id = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (warp_id >= (long long)n * wpr) return;  // whole warps exit together
    const int row = (int)(warp_id / wpr);
    const int w = (int)(warp_id % wpr);
    const long long base = (long long)row * dc;

    bool bit[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int col = w * 64 + h * 32 + lane;
        bit[h] = false;
        if (col < dc) {
            float z = zraw[base + col];
            if (bias) z += bias[col];
            bit[h] = z > 0.0f;  // NaN compares false
            if (z_out) z_out[base + col] = z;
            if (h_f32) h_f32[base + col] = bit[h] ? 1.0f : 0.0f;
            if (h_bf16) h_bf16[base + col] = __float2bfloat16(bit[h] ? 1.0f : 0.0f);
        }
    }
    const u32 lo = __ballot_sync(FULL_MASK, bit[0]);
    const u32 hi = __ballot_sync(FULL_MASK, bit[1]);
    if (lane == 0) codes[(long long)row * wpr + w] = (u64)lo | ((u64)hi << 32);
}
