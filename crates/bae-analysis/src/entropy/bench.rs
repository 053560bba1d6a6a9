//! `bae entropy-bench`: the synthetic ground-truth benchmark (being written).
