//! Which autoencoder is trained and with which loss terms.

/// Backward of the binariser (the gradient passed from H to Z).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimator {
    /// official default (`SignBinarization_sigmoid`): dL/dZ = G * (1 - G) on the upstream gradient G
    SignS,
    /// identity straight-through (official `sign`): dL/dZ = G
    Ste,
}

impl Estimator {
    pub fn name(self) -> &'static str {
        match self {
            Estimator::SignS => "sign_s",
            Estimator::Ste => "ste",
        }
    }
}

/// The model family and its sparsity / independence terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arch {
    /// Binary autoencoder: L = MSE + lambda_entropy * 1[entropy on] * H_b + lambda_cov * D
    Bae {
        estimator: Estimator,
        lambda_entropy: f64,
        lambda_cov: f64,
    },
    /// ReLU SAE: L = MSE + l1 * sum|a| (a sum over batch and features)
    ReluL1 { l1: f64 },
    /// TopK SAE, official semantics: a = z * 1[z >= k-th largest of the row] (no ReLU, ties keep all)
    TopK { k: usize, l1: f64 },
    /// fixed-threshold "JumpReLU": a = z if z > theta else 0, theta not learned
    JumpRelu { theta: f64, l1: f64 },
}

impl Arch {
    pub fn name(&self) -> &'static str {
        match self {
            Arch::Bae { .. } => "bae",
            Arch::ReluL1 { .. } => "relu-l1",
            Arch::TopK { .. } => "topk",
            Arch::JumpRelu { .. } => "jumprelu",
        }
    }

    pub fn is_binary(&self) -> bool {
        matches!(self, Arch::Bae { .. })
    }
}
