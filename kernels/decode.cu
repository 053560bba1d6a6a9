// decode: X^ = H W_dec + b_dec straight from the row-packed codes: for each output element the
// sum of the W_dec rows whose bit is set (exact selection, f32 accumulation in code order).
// CPU twin: bae_ref::decode (with the 0/1 act matrix of the BAE).
//
// Math: X^_ic = b_dec_c + sum_{j : H_ij = 1} W_dec[j, c]  (H is 0/1, so no multiplications).
//
// Launch shape: grid (ceil(d/64), ceil(n/64)) of 256 threads; a block owns a 64 x 64 output tile
// (rows i0.., columns c0..) and walks the codes one 64-bit word (64 features) at a time: the 64
// W_dec rows of that word (64 x 64 f32 = 16 KiB) and the 64 code words go to shared memory.
// Thread (ty, tx) owns rows ty + 16a and columns tx + 16b (a, b < 4): coalesced loads/stores,
// conflict-free shared reads.
// Cost per call: n d' d select-adds (8.6e9 at n=512, d=2048, d'=8192: ~0.3 ms of FP32 adds on an
// H100, about a dense f32 GEMM's time; bf16 tensor cores are faster for the fast path); bytes:
// W_dec read ceil(n/64) times (L2), codes n d'/8, output 4 n d.
#include "common.cuh"

#define TILE 64

extern "C" __global__ void __launch_bounds__(256)
decode(const u64* __restrict__ codes, const float* __restrict__ w_dec,
       const float* __restrict__ b_dec, int n, int dc, int d, float* __restrict__ xhat) {
    __shared__ float sw[TILE][TILE];
    __shared__ u64 sc[TILE];
    const int wpr = (dc + 63) >> 6;
    const int i0 = blockIdx.y * TILE, c0 = blockIdx.x * TILE;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;

    float acc[4][4];
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) acc[a][b] = 0.0f;

    for (int w = 0; w < wpr; ++w) {
        const int j0 = w * 64;
        for (int t = tid; t < TILE * TILE; t += 256) {
            const int jj = t / TILE, cc = t % TILE;
            const int j = j0 + jj, c = c0 + cc;
            sw[jj][cc] = (j < dc && c < d) ? w_dec[(long long)j * d + c] : 0.0f;
        }
        if (tid < TILE) sc[tid] = (i0 + tid < n) ? codes[(long long)(i0 + tid) * wpr + w] : 0ull;
        __syncthreads();
        u64 bits[4];
#pragma unroll
        for (int a = 0; a < 4; ++a) bits[a] = sc[ty + 16 * a];
        const int jn = min(64, dc - j0);
        for (int jj = 0; jj < jn; ++jj) {
            float wv[4];
#pragma unroll
            for (int b = 0; b < 4; ++b) wv[b] = sw[jj][tx + 16 * b];
#pragma unroll
            for (int a = 0; a < 4; ++a) {
                const bool on = (bits[a] >> jj) & 1ull;
#pragma unroll
                for (int b = 0; b < 4; ++b) acc[a][b] = on ? __fadd_rn(acc[a][b], wv[b]) : acc[a][b];
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int a = 0; a < 4; ++a) {
        const int i = i0 + ty + 16 * a;
#pragma unroll
        for (int b = 0; b < 4; ++b) {
            const int c = c0 + tx + 16 * b;
            if (i < n && c < d) xhat[(long long)i * d + c] = __fadd_rn(acc[a][b], b_dec[c]);
        }
    }
}
