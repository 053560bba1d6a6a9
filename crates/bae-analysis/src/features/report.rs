//! Static HTML report of a [`super::FeatureReport`] (written by a helper; placeholder).
