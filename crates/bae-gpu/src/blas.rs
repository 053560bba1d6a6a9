//! Dense GEMMs on row-major matrices: cuBLAS `sgemm` (true f32, the fidelity mode) and cuBLASLt
//! (TF32, or bf16 operands with f32 accumulation and f32 output: the fast modes), both on the
//! compute stream. cuBLASLt descriptors and the chosen algorithm are cached per shape, mode and
//! operand alignment; [`Blas::prepare`] builds a plan ahead (the trainer does it at start-up, so a
//! heuristic that finds no algorithm fails there, not at the first step).
//!
//! Reproducibility: cuBLAS and cuBLASLt give bit-identical results run to run for one library
//! version on GPUs of one architecture and SM count, when each handle works on one stream with a
//! workspace of its own. Here both handles work on the compute stream only, with the user-owned
//! workspace below (sgemm included, via `cublasSetWorkspace`), atomics are disallowed for sgemm,
//! and the Lt algorithm is chosen once per (shape, mode, alignment), so a resumed run reuses the
//! same algorithms as an uninterrupted one. Not covered: another cuBLAS version or another GPU.
//!
//! Row-major `C[m x n] = op(A) op(B)` is the column-major product `C^T = op(B)^T op(A)^T`, so every
//! call swaps the operands and passes the row-major widths as leading dimensions.

use crate::context::GpuContext;
use crate::error::{GpuError, Result};
use cudarc::cublas::{result as blas, sys as blas_sys};
use cudarc::cublaslt::{result as lt, sys as lt_sys};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

/// How a GEMM computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmMode {
    /// cuBLAS sgemm: f32 operands, f32 arithmetic (no TF32).
    F32,
    /// cuBLASLt, f32 operands rounded to TF32 inside the tensor cores, f32 accumulation.
    Tf32,
    /// cuBLASLt, bf16 operands, f32 accumulation and output.
    Bf16,
}

/// Shape of a row-major product `C[m x n] = op(A) op(B)`: `A` is stored `m x k` (`k x m` when
/// `a_t`), `B` is stored `k x n` (`n x k` when `b_t`), `C` is `m x n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a_t: bool,
    pub b_t: bool,
}

impl GemmShape {
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// Column-major arguments: (transa, transb, m', n', k, lda, ldb, ldc) of `C^T = op(B)^T op(A)^T`.
    fn col_major(&self) -> (bool, bool, usize, usize, usize, usize, usize, usize) {
        let lda = if self.b_t { self.k } else { self.n };
        let ldb = if self.a_t { self.m } else { self.k };
        (self.b_t, self.a_t, self.n, self.m, self.k, lda, ldb, self.n)
    }
}

struct LtPlan {
    desc: lt_sys::cublasLtMatmulDesc_t,
    layouts: [lt_sys::cublasLtMatrixLayout_t; 3],
    algo: lt_sys::cublasLtMatmulAlgo_t,
}

// SAFETY: descriptors are plain host objects, used under the plan-cache mutex.
unsafe impl Send for LtPlan {}

impl Drop for LtPlan {
    fn drop(&mut self) {
        // SAFETY: created in `Blas::plan`, destroyed once; errors at teardown are ignored.
        unsafe {
            for l in self.layouts {
                let _ = lt::destroy_matrix_layout(l);
            }
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

/// cuBLAS + cuBLASLt handles bound to the compute stream.
pub struct Blas {
    stream: Arc<CudaStream>,
    handle: blas_sys::cublasHandle_t,
    lt: lt_sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    plans: Mutex<HashMap<PlanKey, LtPlan>>,
}

/// A cuBLASLt plan is valid for one shape, mode and operand alignment (bytes of A, B, C = D in
/// the column-major call).
type PlanKey = (GemmShape, GemmMode, [u32; 3]);

/// The alignment cuBLASLt's default preference assumes; every buffer of the trainer starts on it.
pub const LT_ALIGNMENT: u32 = 256;

/// The largest power of two (capped at [`LT_ALIGNMENT`]) dividing a device address.
pub fn ptr_alignment(ptr: u64) -> u32 {
    if ptr == 0 {
        LT_ALIGNMENT
    } else {
        (1u64 << ptr.trailing_zeros().min(LT_ALIGNMENT.trailing_zeros())) as u32
    }
}

// SAFETY: the handles are used from one thread at a time (&self methods serialise on the stream;
// the plan cache is behind a mutex).
unsafe impl Send for Blas {}
unsafe impl Sync for Blas {}

const WORKSPACE_BYTES: usize = 32 << 20;

impl Blas {
    pub fn new(gpu: &GpuContext) -> Result<Self> {
        // SAFETY: dlopen probes only (the handles below panic when the library is missing).
        if !unsafe { blas_sys::is_culib_present() } {
            return Err(GpuError::NoCublas("libcublas"));
        }
        if !unsafe { lt_sys::is_culib_present() } {
            return Err(GpuError::NoCublas("libcublasLt"));
        }
        let stream = gpu.stream().clone();
        gpu.cuda().bind_to_thread()?;
        let handle = blas::create_handle()?;
        // SAFETY: valid handle and stream.
        unsafe { blas::set_stream(handle, stream.cu_stream() as _) }?;
        let lt = lt::create_handle()?;
        // SAFETY: the workspace is only ever handed to cuBLAS(Lt), which writes it before reading.
        let workspace = unsafe { stream.alloc::<u8>(WORKSPACE_BYTES) }?;
        {
            let (ws, _guard) = workspace.device_ptr(&stream);
            // SAFETY: live handle; the workspace outlives it (both dropped with `Blas`, the
            // handle first in `Drop`) and is used on the handle's stream only.
            unsafe {
                blas_sys::cublasSetWorkspace_v2(handle, ws as *mut c_void, WORKSPACE_BYTES)
                    .result()?;
                blas_sys::cublasSetAtomicsMode(
                    handle,
                    blas_sys::cublasAtomicsMode_t::CUBLAS_ATOMICS_NOT_ALLOWED,
                )
                .result()?;
            }
        }
        Ok(Blas {
            stream,
            handle,
            lt,
            workspace,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// Row-major `C = op(A) op(B) + beta C` with raw device pointers; the types follow the
    /// mode: f32 A/B for `F32`/`Tf32`, bf16 A/B for `Bf16`; C is always f32.
    ///
    /// # Safety
    /// The pointers must address live device buffers of at least the sizes `s` implies, of the
    /// element types of `mode`, and C must not overlap A or B.
    pub unsafe fn gemm(
        &self,
        mode: GemmMode,
        s: GemmShape,
        a: u64,
        b: u64,
        c: u64,
        beta: f32,
    ) -> Result<()> {
        let alpha = 1.0f32;
        let (ta, tb, m, n, k, lda, ldb, ldc) = s.col_major();
        if m == 0 || n == 0 {
            return Ok(());
        }
        let fits = |v: usize| i32::try_from(v).is_ok();
        if ![m, n, k, lda, ldb, ldc].iter().all(|&v| fits(v)) {
            return Err(GpuError::Invalid(format!(
                "GEMM dimensions too large for cuBLAS: {s:?}"
            )));
        }
        // cuBLAS uses the calling thread's current context
        self.stream.context().bind_to_thread()?;
        // operands swapped: the column-major A is the row-major B
        let (a_cm, b_cm) = (b, a);
        match mode {
            GemmMode::F32 => {
                let op = |t: bool| {
                    if t {
                        blas_sys::cublasOperation_t::CUBLAS_OP_T
                    } else {
                        blas_sys::cublasOperation_t::CUBLAS_OP_N
                    }
                };
                // SAFETY: per the caller's contract.
                unsafe {
                    blas::sgemm(
                        self.handle,
                        op(ta),
                        op(tb),
                        m as i32,
                        n as i32,
                        k as i32,
                        &alpha,
                        a_cm as *const f32,
                        lda as i32,
                        b_cm as *const f32,
                        ldb as i32,
                        &beta,
                        c as *mut f32,
                        ldc as i32,
                    )
                }?;
            }
            GemmMode::Tf32 | GemmMode::Bf16 => {
                let align = [a_cm, b_cm, c].map(ptr_alignment);
                let key = (s, mode, align);
                let mut plans = self.plans.lock().expect("plan cache");
                if let std::collections::hash_map::Entry::Vacant(e) = plans.entry(key) {
                    e.insert(self.plan(mode, s, align)?);
                }
                let plan = &plans[&key];
                let (ws, _guard) = self.workspace.device_ptr(&self.stream);
                // SAFETY: per the caller's contract; descriptors from `plan`.
                unsafe {
                    lt::matmul(
                        self.lt,
                        plan.desc,
                        (&alpha as *const f32).cast(),
                        (&beta as *const f32).cast(),
                        a_cm as *const c_void,
                        plan.layouts[0],
                        b_cm as *const c_void,
                        plan.layouts[1],
                        c as *const c_void,
                        plan.layouts[2],
                        c as *mut c_void,
                        plan.layouts[2],
                        &plan.algo,
                        ws as *mut c_void,
                        WORKSPACE_BYTES,
                        self.stream.cu_stream() as _,
                    )
                }?;
            }
        }
        Ok(())
    }

    /// Builds (and caches) the cuBLASLt plan for `s` with every operand on a
    /// [`LT_ALIGNMENT`]-byte boundary; nothing to do for `F32` (sgemm needs no plan).
    pub fn prepare(&self, mode: GemmMode, s: GemmShape) -> Result<()> {
        if mode == GemmMode::F32 || s.m == 0 || s.n == 0 {
            return Ok(());
        }
        let align = [LT_ALIGNMENT; 3];
        let mut plans = self.plans.lock().expect("plan cache");
        if let std::collections::hash_map::Entry::Vacant(e) = plans.entry((s, mode, align)) {
            e.insert(self.plan(mode, s, align)?);
        }
        Ok(())
    }

    /// cuBLASLt descriptors and the heuristic's first algorithm for one shape, told the real
    /// alignment of the operands (`align`: A, B, C = D of the column-major call, in bytes).
    fn plan(&self, mode: GemmMode, s: GemmShape, align: [u32; 3]) -> Result<LtPlan> {
        use lt_sys::cublasComputeType_t as Compute;
        use lt_sys::cudaDataType_t as Dt;
        let (ta, tb, m, n, k, lda, ldb, ldc) = s.col_major();
        let (in_ty, compute) = match mode {
            GemmMode::Tf32 => (Dt::CUDA_R_32F, Compute::CUBLAS_COMPUTE_32F_FAST_TF32),
            GemmMode::Bf16 => (Dt::CUDA_R_16BF, Compute::CUBLAS_COMPUTE_32F),
            GemmMode::F32 => unreachable!("sgemm needs no plan"),
        };
        let desc = lt::create_matmul_desc(compute, Dt::CUDA_R_32F)?;
        let mut plan_layouts = Vec::new();
        let result = (|| -> Result<LtPlan> {
            for (attr, t) in [
                (
                    lt_sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                    ta,
                ),
                (
                    lt_sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB,
                    tb,
                ),
            ] {
                let v: i32 = t as i32; // CUBLAS_OP_N = 0, CUBLAS_OP_T = 1
                // SAFETY: live descriptor, 4-byte attribute value.
                unsafe { lt::set_matmul_desc_attribute(desc, attr, (&v as *const i32).cast(), 4) }?;
            }
            // stored (rows, cols) of the column-major operands
            let a_dims = if ta { (k, m) } else { (m, k) };
            let b_dims = if tb { (n, k) } else { (k, n) };
            plan_layouts.push(lt::create_matrix_layout(
                in_ty,
                a_dims.0 as u64,
                a_dims.1 as u64,
                lda as i64,
            )?);
            plan_layouts.push(lt::create_matrix_layout(
                in_ty,
                b_dims.0 as u64,
                b_dims.1 as u64,
                ldb as i64,
            )?);
            plan_layouts.push(lt::create_matrix_layout(
                Dt::CUDA_R_32F,
                m as u64,
                n as u64,
                ldc as i64,
            )?);
            let pref = lt::create_matmul_pref()?;
            let ws = WORKSPACE_BYTES;
            // SAFETY: live preference, usize attribute.
            use lt_sys::cublasLtMatmulPreferenceAttributes_t as Pref;
            let aligns = [
                (Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align[0]),
                (Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align[1]),
                (Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align[2]),
                (Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align[2]),
            ];
            let heuristic = unsafe {
                lt::set_matmul_pref_attribute(
                    pref,
                    Pref::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                    (&ws as *const usize).cast(),
                    std::mem::size_of::<usize>(),
                )
                .and_then(|_| {
                    for (attr, bytes) in aligns {
                        lt::set_matmul_pref_attribute(
                            pref,
                            attr,
                            (&bytes as *const u32).cast(),
                            std::mem::size_of::<u32>(),
                        )?;
                    }
                    Ok(())
                })
                .and_then(|_| {
                    lt::get_matmul_algo_heuristic(
                        self.lt,
                        desc,
                        plan_layouts[0],
                        plan_layouts[1],
                        plan_layouts[2],
                        plan_layouts[2],
                        pref,
                    )
                })
            };
            // SAFETY: created above.
            let _ = unsafe { lt::destroy_matmul_pref(pref) };
            let heuristic = heuristic?;
            Ok(LtPlan {
                desc,
                layouts: [plan_layouts[0], plan_layouts[1], plan_layouts[2]],
                algo: heuristic.algo,
            })
        })();
        if result.is_err() {
            // SAFETY: destroy what was created before the failure.
            unsafe {
                for l in plan_layouts {
                    let _ = lt::destroy_matrix_layout(l);
                }
                let _ = lt::destroy_matmul_desc(desc);
            }
        }
        result
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        self.plans.lock().map(|mut p| p.clear()).ok();
        // SAFETY: handles created in `new`, destroyed once.
        unsafe {
            let _ = blas::destroy_handle(self.handle);
            let _ = lt::destroy_handle(self.lt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_of_device_addresses() {
        assert_eq!(ptr_alignment(0x7f00_0000_0000), 256);
        assert_eq!(ptr_alignment(0x7f00_0000_0080), 128);
        assert_eq!(ptr_alignment(0x7f00_0000_0044), 4);
        assert_eq!(ptr_alignment(0x7f00_0000_0002), 2);
        assert_eq!(ptr_alignment(0), 256);
    }
}
