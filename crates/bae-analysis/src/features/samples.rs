//! Sample collection (placeholder).
