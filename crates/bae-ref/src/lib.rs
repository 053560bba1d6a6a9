//! CPU reference for Binary Autoencoders (BAE) and the SAE baselines: the oracle every other
//! backend is checked against.
//!
//! One generic implementation runs in f64 (it reproduces the official float64 golden vectors) and
//! in f32 (the fast, multi-threaded CPU training path). Semantics follow the official code; see
//! `shared/docs/method.md`: `Z = X W_enc + b_enc`, `H = 1[Z > 0]`, `X^ = H W_dec + b_dec`,
//! `L = MSE + lambda_e * H_b + lambda_c * sum_{j!=k} |cov(H)_jk|`, estimators `sign_s` (G(1-G)) and `ste`.

mod adam;
mod arch;
mod float;
mod model;
mod params;

pub use adam::{Adam, AdamConfig, AdamScalars};
pub use arch::{Arch, Estimator};
pub use float::Float;
pub use model::{
    Backward, Forward, Losses, Step, StepOptions, activate, batch_variance_sum, column_sums,
    decode, encode_pre, forward, mse, step, step_with,
};
pub use params::{PARAM_NAMES, Params};
