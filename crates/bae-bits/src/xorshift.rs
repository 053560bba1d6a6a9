//! A deterministic xorshift64 stream for this crate's tests and benches (not part of the API).

/// Marsaglia's xorshift64 (13, 7, 17). The seed is forced odd, so never zero.
#[derive(Clone, Debug)]
pub struct XorShift64(u64);

impl XorShift64 {
    pub fn new(seed: u64) -> Self {
        XorShift64(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }

    /// `n x cols` bits as 0.0 / 1.0, row-major; column `j` fires with probability
    /// `density_per_col(j)` percent.
    pub fn bits(
        &mut self,
        n: usize,
        cols: usize,
        density_per_col: impl Fn(usize) -> u64,
    ) -> Vec<f64> {
        (0..n * cols)
            .map(|x| ((self.next_u64() % 100) < density_per_col(x % cols)) as u8 as f64)
            .collect()
    }
}
