//! `bae interpret`: ComSem and detection scores of features, from any judge model.

pub mod judge;
