// rate_target: the per-feature gradient coefficient of the rate-target term
// lambda * (1/d') sum_j KL(p* || p_j) with respect to every code element H_ij.
// CPU twin: bae_bits::rate_target_grad_coeffs (times lambda, as bae_ref::step_with applies it).
//
// Math: p_j = clamp(c_j / n, 1/(2n), 1 - 1/(2n)) (f64);
//   coef_j = f32(lambda / (d' n) * (-p*/p_j + (1 - p*)/(1 - p_j)))
// written to coef (accumulate = 0) or added to the entropy coefficients already there
// (accumulate = 1), so the step's estimator kernels add one coefficient per feature as before.
//
// Launch shape: one thread per feature, 1-D grid of 256-thread blocks.
// Cost per call: ~10 f64 flops per feature; bytes: read 4 d' (+4 d' when accumulating), write 4 d'.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
rate_target_coef(const u32* __restrict__ counts, int dc, int n, double target, double lambda,
                 int accumulate, float* __restrict__ coef) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= dc) return;
    const double lo = 0.5 / n;
    const double p = fmin(fmax((double)counts[j] / n, lo), 1.0 - lo);
    const double scale = 1.0 / ((double)dc * (double)n);
    const float c = (float)(lambda * (scale * (-target / p + (1.0 - target) / (1.0 - p))));
    coef[j] = accumulate ? __fadd_rn(coef[j], c) : c;
}
