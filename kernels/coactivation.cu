// coactivation: co-activation counts N = H^T H by AND + popcount on column-packed codes, fused
// with the covariance term and the exact sign masks of the covariance.
// CPU twins: bae_bits::coactivation_counts, CovarianceStats::from_columns (term, signs).
//
// Math: N_jk = popc(col_j AND col_k) (summed over the wpc words of the columns);
//   v_jk = n N_jk - c_j c_k  (exact, i64; n (n-1) C_jk with the unbiased covariance C)
//   D = sum_{j != k} |C_jk| = 2 sum_{j<k} |v_jk| / (n (n-1))  -> abs_sum += sum_{j<k} |v_jk| (u64)
//   pos bit (j,k) = v_jk > 0, neg bit (j,k) = v_jk < 0, both 0 on the diagonal (sign(0) = 0);
//   masks are d' x d' row-packed (d' rows of nb = ceil(d'/64) words), symmetric.
// Optional: the full symmetric d' x d' u32 matrix N (tests; 256 MiB at d' = 8192).
//
// Launch shape: grid (nb, nb) of 256-thread blocks, block (x = kb, y = jb) computes the 64 x 64
// pair tile j in [64 jb, 64 jb + 64), k in [64 kb, 64 kb + 64) and blocks with kb < jb exit
// (symmetry: the upper tile writes the mirror sign words through a 64x64 bit transpose).
// Thread (ty, tx) = (tid / 16, tid % 16) owns the 4 x 4 pairs j = 64jb + ty + 16a,
// k = 64kb + tx + 16b (interleaved: conflict-free shared loads). Words are staged through shared
// memory WCH at a time (columns of any length).
// Cost per call: (d'^2/2) * wpc AND+POPC64 (2.7e8 at n=512, d'=8192; POPC-bound, ~0.15 ms on
// H100 at 16 POPC/clk/SM); bytes: read d' wpc 8 per block row (L2), write 2 d' nb 8 (masks).
#include "common.cuh"

#define TILE 64
#define WCH 16  // words per column staged per shared-memory round

extern "C" __global__ void __launch_bounds__(256)
coactivation(const u64* __restrict__ cols, const u32* __restrict__ counts, int dc, int wpc, int n,
             u64* __restrict__ pos, u64* __restrict__ neg, u32* __restrict__ coact,
             u64* __restrict__ abs_sum) {
    const int kb = blockIdx.x, jb = blockIdx.y;
    if (kb < jb) return;
    const bool diag = kb == jb;
    const int nb = (dc + 63) >> 6;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int j0 = jb * TILE, k0 = kb * TILE;

    // +1 pads the coalesced staging stores (consecutive threads step through w) off one bank
    __shared__ u64 sa[WCH][TILE + 1];
    __shared__ u64 sb[WCH][TILE + 1];
    __shared__ u64 tile_bits[2][TILE];  // pos / neg words of the tile rows j (bits over k)
    __shared__ u64 block_abs[8];

    int acc[4][4];
#pragma unroll
    for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) acc[a][b] = 0;

    for (int w0 = 0; w0 < wpc; w0 += WCH) {
        const int nw = min(WCH, wpc - w0);
        // stage words w0 .. w0+nw of the 64 j-columns and 64 k-columns (zero past the edges)
        for (int t = tid; t < TILE * WCH; t += 256) {
            const int c = t / WCH, w = t % WCH;
            u64 va = 0, vb = 0;
            if (w < nw) {
                if (j0 + c < dc) va = cols[(long long)(j0 + c) * wpc + w0 + w];
                if (k0 + c < dc) vb = cols[(long long)(k0 + c) * wpc + w0 + w];
            }
            sa[w][c] = va;
            sb[w][c] = vb;
        }
        __syncthreads();
        for (int w = 0; w < nw; ++w) {
            u64 ra[4], rb[4];
#pragma unroll
            for (int a = 0; a < 4; ++a) ra[a] = sa[w][ty + 16 * a];
#pragma unroll
            for (int b = 0; b < 4; ++b) rb[b] = sb[w][tx + 16 * b];
#pragma unroll
            for (int a = 0; a < 4; ++a)
#pragma unroll
                for (int b = 0; b < 4; ++b) acc[a][b] += popc64(ra[a] & rb[b]);
        }
        __syncthreads();
    }

    // epilogue: counts, exact signs, |v| over the strict upper triangle
    u64 local_abs = 0;
    u64 pw[4], nw_[4];
#pragma unroll
    for (int a = 0; a < 4; ++a) {
        const int jj = ty + 16 * a, j = j0 + jj;
        pw[a] = 0;
        nw_[a] = 0;
        const i64 cj = j < dc ? (i64)counts[j] : 0;
#pragma unroll
        for (int b = 0; b < 4; ++b) {
            const int kk = tx + 16 * b, k = k0 + kk;
            if (j < dc && k < dc) {
                const int nc = acc[a][b];
                if (coact) {
                    coact[(long long)j * dc + k] = (u32)nc;
                    if (!diag) coact[(long long)k * dc + j] = (u32)nc;
                }
                const i64 v = (i64)n * (i64)nc - cj * (i64)counts[k];
                if (j != k) {
                    if (v > 0) pw[a] |= 1ull << kk;
                    if (v < 0) nw_[a] |= 1ull << kk;
                }
                if (!diag || jj < kk) local_abs += (u64)(v < 0 ? -v : v);
            }
        }
        // gather the 64 bits of row j from the 16 lanes sharing ty
        pw[a] = half_warp_or_u64(pw[a]);
        nw_[a] = half_warp_or_u64(nw_[a]);
    }
    if (tx < 4) {
        // lane tx == a owns row ty + 16a (registers indexed by unrolled constants only)
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            if (tx == a) {
                const int jj = ty + 16 * a;
                tile_bits[0][jj] = pw[a];
                tile_bits[1][jj] = nw_[a];
                if (j0 + jj < dc) {
                    pos[(long long)(j0 + jj) * nb + kb] = pw[a];
                    neg[(long long)(j0 + jj) * nb + kb] = nw_[a];
                }
            }
        }
    }

    // block sum of |v| (exact integers: any order gives the same result)
    const u64 wsum = warp_sum_u64(local_abs);
    if ((tid & 31) == 0) block_abs[tid >> 5] = wsum;
    __syncthreads();
    if (tid == 0) {
        u64 s = 0;
        for (int i = 0; i < 8; ++i) s += block_abs[i];
        if (s) atomicAdd(abs_sum, s);
    }

    // mirror: rows k of the kb tile, word jb = transpose of the tile's words (warp 0: pos, 1: neg)
    if (!diag && tid < 64) {
        const int which = tid >> 5, lane = tid & 31;
        u64 t0, t1;
        warp_transpose64(tile_bits[which][lane], tile_bits[which][lane + 32], t0, t1);
        u64* dst = which ? neg : pos;
        if (k0 + lane < dc) dst[(long long)(k0 + lane) * nb + jb] = t0;
        if (k0 + lane + 32 < dc) dst[(long long)(k0 + lane + 32) * nb + jb] = t1;
    }
}
