//! Entropy studies of sets of hidden states under a trained BAE (method.md, "Applications"):
//! estimates of one set, curves by block, by token position and by number of in-context
//! demonstrations, and the synthetic ground-truth benchmark.

pub mod bench;
pub mod icl;
