// firing_entropy: firing counts per feature (popcount) and the minibatch Bernoulli entropy with
// its per-feature gradient coefficients.
// CPU twins: bae_bits::firing_counts (columns), firing_counts_rows (rows), entropy_bits,
// entropy_train_bits, entropy_grad_coeffs.
//
// Math: c_j = sum_i H_ij; p_j = c_j / n (f64);
//   H_b = -sum_j [p log2(p + 1e-10) + (1-p) log2(1-p + 1e-10)]   (bits, summed, official eps)
//   dH_b/dH_ij = (1/n) [-log2(p+e) - p/((p+e) ln2) + log2(1-p+e) + (1-p)/((1-p+e) ln2)]
// As the official trainer: when the summed entropy is negative (every feature constant) the
// trained entropy is the constant 0 and no gradient flows. coef_j = f32(lambda * dH_b/dH_ij) when
// the entropy term is on and active, else 0.
//
// Kernels and launch shapes:
//   firing_counts      : one warp per column of the column-packed codes; 1-D grid, 256 threads.
//                        Bytes: read d' * wpc * 8 (0.5 MiB at n=512, d'=8192), write 4 d'.
//   firing_counts_rows : one thread per column of the row-packed codes, looping over the rows
//                        (the 32 lanes of a warp share each word). Bytes: read n d'/8, write 4 d'.
//   entropy_terms      : ONE block of 1024 threads (deterministic fixed-order reduction).
//                        ~30 f64 flops per feature; bytes: read 4 d', write 4 d' + 16.
#include "common.cuh"

#define ENTROPY_EPS 1e-10
#define LN_2 0.6931471805599453

extern "C" __global__ void __launch_bounds__(256)
firing_counts(const u64* __restrict__ cols, int n_cols, int wpc, u32* __restrict__ counts) {
    const long long warp_id = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (warp_id >= n_cols) return;
    const u64* c = cols + warp_id * wpc;
    u32 s = 0;
    for (int w = lane; w < wpc; w += 32) s += popc64(c[w]);
    s = __reduce_add_sync(FULL_MASK, s);
    if (lane == 0) counts[warp_id] = s;
}

extern "C" __global__ void __launch_bounds__(256)
firing_counts_rows(const u64* __restrict__ rows, int n, int n_cols, u32* __restrict__ counts) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n_cols) return;
    const int wpr = (n_cols + 63) >> 6;
    const u64* p = rows + (j >> 6);
    const int b = j & 63;
    u32 s = 0;
    for (int i = 0; i < n; ++i) s += (u32)((p[(long long)i * wpr] >> b) & 1ull);
    counts[j] = s;
}

// out[0] = summed entropy in bits; out[1] = 1.0 if the entropy gradient was applied, else 0.0.
extern "C" __global__ void __launch_bounds__(1024)
entropy_terms(const u32* __restrict__ counts, int n_cols, int n, double lambda, int entropy_on,
              float* __restrict__ coef, double* __restrict__ out) {
    __shared__ double scratch[32];
    __shared__ int apply;
    const double inv_n = 1.0 / (double)n;
    double h = 0.0;
    for (int j = threadIdx.x; j < n_cols; j += blockDim.x) {
        const double p = (double)counts[j] / (double)n;
        const double q = 1.0 - p;
        h += -(p * log2(p + ENTROPY_EPS) + q * log2(q + ENTROPY_EPS));
    }
    const double total = block_sum_f64(h, scratch);
    if (threadIdx.x == 0) {
        apply = (entropy_on != 0 && total >= 0.0 && lambda != 0.0) ? 1 : 0;
        out[0] = total;
        out[1] = apply ? 1.0 : 0.0;
    }
    __syncthreads();
    if (coef == nullptr) return;
    for (int j = threadIdx.x; j < n_cols; j += blockDim.x) {
        float c = 0.0f;
        if (apply) {
            const double p = (double)counts[j] / (double)n;
            const double q = 1.0 - p;
            const double pe = p + ENTROPY_EPS, qe = q + ENTROPY_EPS;
            const double g = inv_n * (-log2(pe) - p / (pe * LN_2) + log2(qe) + q / (qe * LN_2));
            c = (float)(lambda * g);
        }
        coef[j] = c;
    }
}
