// transpose_bits: row-packed <-> column-packed bit matrices (the same routine both ways).
// CPU twin: PackedRows::to_columns / PackedColumns::to_rows (bae_bits::transpose_bits).
//
// Math: input has n_major groups of wpm = ceil(n_minor/64) words (bit b of group g = M[g, b]);
// output has n_minor groups of wpo = ceil(n_major/64) words with bit g of group b = M[g, b].
// Rows -> columns: n_major = n (rows), n_minor = d' (columns). Columns -> rows: the reverse.
//
// Launch shape: one warp per 64x64 bit block (major block rb, minor word cw); 256 threads = 8
// blocks per CTA; 1-D grid over ceil(n_major/64) * wpm warps. Lane l loads rows l and l+32 of the
// block and transposes with 128 ballots; lane l writes output groups 64cw+l and 64cw+32+l.
// Cost per call: no FLOPs; bytes: read and write n_major*n_minor/8 each (~1 MiB at n=512,
// d'=8192), loads strided by wpm words (served from L2).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
transpose_bits(const u64* __restrict__ in, int n_major, int n_minor, u64* __restrict__ out) {
    const int wpm = (n_minor + 63) >> 6;
    const int wpo = (n_major + 63) >> 6;
    const long long warp_id = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (warp_id >= (long long)wpo * wpm) return;  // whole warps exit together
    const int rb = (int)(warp_id / wpm);
    const int cw = (int)(warp_id % wpm);

    const int r0 = rb * 64 + lane, r1 = r0 + 32;
    const u64 a0 = r0 < n_major ? in[(long long)r0 * wpm + cw] : 0ull;
    const u64 a1 = r1 < n_major ? in[(long long)r1 * wpm + cw] : 0ull;
    u64 t0, t1;
    warp_transpose64(a0, a1, t0, t1);
    const int m0 = cw * 64 + lane, m1 = m0 + 32;
    if (m0 < n_minor) out[(long long)m0 * wpo + rb] = t0;
    if (m1 < n_minor) out[(long long)m1 * wpo + rb] = t1;
}
