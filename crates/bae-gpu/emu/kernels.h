// Prototypes of the kernels in kernels/*.cu, for the harness. run.sh force-includes this file
// into every kernel too: extern "C" names carry no types, so a kernel whose signature changed
// must fail to compile rather than be called with the wrong arguments.
#pragma once
#include "cuda_emu.h"
typedef unsigned long long u64; typedef long long i64; typedef unsigned u32;
extern "C" {
void encode_binarize(const float*, const float*, int, int, float*, u64*, float*, __nv_bfloat16*);
void transpose_bits(const u64*, int, int, u64*);
void firing_counts(const u64*, int, int, u32*);
void firing_counts_rows(const u64*, int, int, u32*);
void entropy_terms(const u32*, int, int, double, int, float*, double*);
void rate_target_coef(const u32*, int, int, double, double, int, float*);
void coactivation(const u64*, const u32*, int, int, int, u64*, u64*, u32*, u64*);
void sign_times_counts(const u64*, const u64*, const u32*, int, i64*);
void sign_product(const u64*, const u64*, const u64*, int, int, int*);
void covariance_grad(const u64*, const u64*, const u64*, const i64*, const float*, int, int, double, int, float*, float*, __nv_bfloat16*);
void mse_grad(const float*, const float*, const float*, int, int, float, float*, float*, __nv_bfloat16*, double*);
void apply_estimator(float*, const float*, int, int, int, float*, __nv_bfloat16*);
void column_sums_partial(const float*, int, int, float*);
void column_sums_final(const float*, int, int, float*);
void sum_f64(const double*, int, double*);
void decode(const u64*, const float*, const float*, int, int, int, float*);
void adam_step(float*, float*, float*, const float*, long long, float, float, float, float, float, float, __nv_bfloat16*);
void encode_gemm(const __nv_bfloat16*, const __nv_bfloat16*, const float*, int, int, int, u64*, float*, __nv_bfloat16*);
void f32_to_bf16(const float*, long long, __nv_bfloat16*);
}
