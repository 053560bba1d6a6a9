// encode_gemm: the encoder GEMM on bf16 tensor cores with the binariser fused into its
// epilogue: Z = X W_enc + b_enc, codes = 1[Z > 0] packed by rows, optional Z (f32) and H (bf16),
// without Z ever round-tripping through device memory.
// CPU twin: bae_ref::encode_pre + PackedRows::encode_positive (with bf16-rounded X and W_enc).
//
// Math: X is n x d bf16 row-major, W_enc is d x d' bf16 row-major (the golden layout), f32
// accumulation (mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32), Z = acc + b_enc (f32),
// H_ij = 1[Z_ij > 0] (strict; NaN gives 0). Requires d % 8 == 0 and d' % 8 == 0 (16-byte rows
// for cp.async); the host falls back to cuBLASLt + encode_binarize otherwise.
//
// Launch shape: grid (ceil(d'/128), ceil(n/128)), 256 threads (8 warps as 2 (m) x 4 (n), each a
// 64 x 32 warp tile = 4 x 4 mma tiles of 16 x 8). K is walked 32 at a time through a 2-stage
// cp.async pipeline (A tile 128 x 32, B tile 32 x 128 bf16, rows padded by 16 bytes so that
// ldmatrix is conflict-free). A fragments via ldmatrix.x4, B fragments via ldmatrix.x4.trans
// (W_enc is K-major per row, the mma wants it column-major).
// Epilogue: each thread turns its 32 accumulators into bits, the 4 lanes of an mma row group OR
// their bits into the warp's 32-bit row segment, the 4 n-warps' segments meet in shared memory,
// and 256 threads write the block's 128 rows x 2 code words.
// Cost per call: 2 n d d' FLOPs (8.6 GFLOP at n=512, d=2048, d'=8192); bytes: X and W_enc read
// once from DRAM (2 n d + 2 d d'), tiles re-read from L2, codes n d'/8 written (+4 n d' for Z,
// +2 n d' for H when asked).
#include "common.cuh"
#include <cuda_bf16.h>

#define BM 128
#define BN 128
#define BK 32
#define APAD 8  // bf16 elements of padding per A row (16 bytes)
#define BPAD 8

#ifndef BAE_HOST_EMULATION  // the host emulator (crates/bae-gpu/emu) supplies these helpers
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

// 16-byte async copy global -> shared; src_bytes = 0 zero-fills without reading.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(u32 r[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32 r[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void mma_bf16(float c[4], const u32 a[4], const u32 b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

extern "C" __global__ void __launch_bounds__(256)
encode_gemm(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
            const float* __restrict__ bias, int n, int d, int dc, u64* __restrict__ codes,
            float* __restrict__ z_out, __nv_bfloat16* __restrict__ h_bf16) {
    __shared__ __align__(16) __nv_bfloat16 sa[2][BM][BK + APAD];
    __shared__ __align__(16) __nv_bfloat16 sb[2][BK][BN + BPAD];
    __shared__ u32 rowbits[BM][4];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int warp_m = warp & 1, warp_n = warp >> 1;  // 2 x 4 warps
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    // each thread copies 2 16-byte chunks of A and 2 of B per k-tile
    auto load_tile = [&](int stage, int k0) {
#pragma unroll
        for (int c2 = 0; c2 < 2; ++c2) {
            const int c = tid + 256 * c2;
            const int ar = c >> 2, ak = (c & 3) * 8;  // A: 128 rows x 4 chunks
            const bool aok = (m0 + ar < n) && (k0 + ak < d);
            const __nv_bfloat16* asrc = aok ? x + (long long)(m0 + ar) * d + k0 + ak : x;
            cp_async16(&sa[stage][ar][ak], asrc, aok ? 16 : 0);
            const int bk = c >> 4, bn = (c & 15) * 8;  // B: 32 rows x 16 chunks
            const bool bok = (k0 + bk < d) && (n0 + bn < dc);
            const __nv_bfloat16* bsrc = bok ? w + (long long)(k0 + bk) * dc + n0 + bn : w;
            cp_async16(&sb[stage][bk][bn], bsrc, bok ? 16 : 0);
        }
        cp_async_commit();
    };

    const int ktiles = (d + BK - 1) / BK;
    load_tile(0, 0);
    for (int kt = 0; kt < ktiles; ++kt) {
        const int stage = kt & 1;
        if (kt + 1 < ktiles) {
            load_tile(stage ^ 1, (kt + 1) * BK);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            u32 a[4][4], b[4][2];
#pragma unroll
            for (int mt = 0; mt < 4; ++mt) {
                const int r = warp_m * 64 + mt * 16 + (lane & 15);
                ldmatrix_x4(a[mt], &sa[stage][r][kk + (lane >> 4) * 8]);
            }
#pragma unroll
            for (int np = 0; np < 2; ++np) {
                // matrices: (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15)
                const int mi = lane >> 3;
                const int kr = kk + (lane & 7) + (mi & 1) * 8;
                const int nc = warp_n * 32 + np * 16 + (mi >> 1) * 8;
                u32 r[4];
                ldmatrix_x4_trans(r, &sb[stage][kr][nc]);
                b[2 * np][0] = r[0];
                b[2 * np][1] = r[1];
                b[2 * np + 1][0] = r[2];
                b[2 * np + 1][1] = r[3];
            }
#pragma unroll
            for (int mt = 0; mt < 4; ++mt)
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) mma_bf16(acc[mt][nt], a[mt], b[nt]);
        }
        __syncthreads();  // the stage is overwritten by the next iteration's prefetch
    }

    // epilogue: bias, step, bits; thread holds rows g, g+8 of each m-tile, cols 2t, 2t+1 of each
    // n-tile (g = lane / 4, t = lane % 4)
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int rl = warp_m * 64 + mt * 16 + g + half * 8;  // row within the block
            const int row = m0 + rl;
            u32 bits = 0;
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
                const int cl = warp_n * 32 + nt * 8 + 2 * t;  // column within the block
                const int col = n0 + cl;
                const bool ok = row < n && col < dc;  // d' % 8 == 0: col, col+1 valid together
                float z0 = 0.0f, z1 = 0.0f;
                bool h0 = false, h1 = false;
                if (ok) {
                    z0 = acc[mt][nt][2 * half] + bias[col];
                    z1 = acc[mt][nt][2 * half + 1] + bias[col + 1];
                    h0 = z0 > 0.0f;
                    h1 = z1 > 0.0f;
                    const long long idx = (long long)row * dc + col;
                    if (z_out) {
                        z_out[idx] = z0;
                        z_out[idx + 1] = z1;
                    }
                    if (h_bf16) {
                        h_bf16[idx] = __float2bfloat16(h0 ? 1.0f : 0.0f);
                        h_bf16[idx + 1] = __float2bfloat16(h1 ? 1.0f : 0.0f);
                    }
                }
                bits |= ((u32)h0 << (nt * 8 + 2 * t)) | ((u32)h1 << (nt * 8 + 2 * t + 1));
            }
            bits |= __shfl_xor_sync(FULL_MASK, bits, 1);
            bits |= __shfl_xor_sync(FULL_MASK, bits, 2);
            if (t == 0) rowbits[rl][warp_n] = bits;
        }
    }
    __syncthreads();
    {
        const int rl = tid >> 1, h = tid & 1;  // 128 rows x 2 words
        const int row = m0 + rl, word = (n0 >> 6) + h;
        if (row < n && n0 + 64 * h < dc) {
            const int wpr = (dc + 63) >> 6;
            codes[(long long)row * wpr + word] =
                (u64)rowbits[rl][2 * h] | ((u64)rowbits[rl][2 * h + 1] << 32);
        }
    }
}
