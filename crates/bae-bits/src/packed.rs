//! The two packed layouts. Both are the same thing underneath, a [`Bits`] matrix of `major`
//! word groups of `minor` bits each; `PackedRows` has major = rows, `PackedColumns` major = columns,
//! and the transpose between them is one routine.

use crate::simd::{self, Backend, Checked};
use crate::transpose::transpose_bits;
use crate::{BitsError, Real};
use rayon::prelude::*;
use std::fmt;

/// Packs `pred(src[j])` into `dst` (LSB first, tail bits 0).
#[inline]
pub(crate) fn pack_with<T: Copy>(src: &[T], dst: &mut [u64], pred: impl Fn(T) -> bool) {
    for (d, chunk) in dst.iter_mut().zip(src.chunks(64)) {
        let mut w = 0u64;
        for (b, &v) in chunk.iter().enumerate() {
            w |= (pred(v) as u64) << b;
        }
        *d = w;
    }
}

/// Expands one packed group of `len` bits into 0/1 values.
#[inline]
fn unpack_into<T: Real>(src: &[u64], dst: &mut [T]) {
    let one = T::from_f64(1.0);
    for (j, d) in dst.iter_mut().enumerate() {
        *d = if (src[j / 64] >> (j % 64)) & 1 == 1 {
            one
        } else {
            T::ZERO
        };
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits {
    major: usize,
    minor: usize,
    wpm: usize,
    words: Vec<u64>,
}

impl Bits {
    fn zeros(major: usize, minor: usize) -> Self {
        let wpm = minor.div_ceil(64);
        Bits {
            major,
            minor,
            wpm,
            words: vec![0; major * wpm],
        }
    }

    fn from_words(major: usize, minor: usize, words: Vec<u64>) -> Result<Self, BitsError> {
        let wpm = minor.div_ceil(64);
        if words.len() != major * wpm {
            return Err(BitsError::LengthMismatch {
                expected: major * wpm,
                got: words.len(),
            });
        }
        if !minor.is_multiple_of(64) {
            let tail = !0u64 << (minor % 64);
            for m in 0..major {
                let w = m * wpm + wpm - 1;
                if words[w] & tail != 0 {
                    return Err(BitsError::NonZeroTail { word: w });
                }
            }
        }
        Ok(Bits {
            major,
            minor,
            wpm,
            words,
        })
    }

    /// Packs a dense `major x minor` slice with a per-group packer, parallel over groups.
    fn pack<T: Real>(
        v: &[T],
        major: usize,
        minor: usize,
        pack: impl Fn(&[T], &mut [u64]) + Sync,
    ) -> Self {
        assert_eq!(
            v.len(),
            major * minor,
            "dense input must have major*minor = {major}*{minor} elements"
        );
        let mut b = Bits::zeros(major, minor);
        if minor > 0 {
            b.words
                .par_chunks_mut(b.wpm)
                .zip(v.par_chunks(minor))
                .with_min_len(16)
                .for_each(|(d, s)| pack(s, d));
        }
        b
    }

    fn to_dense<T: Real>(&self) -> Vec<T> {
        let mut out = vec![T::ZERO; self.major * self.minor];
        if self.minor > 0 {
            out.par_chunks_mut(self.minor)
                .zip(self.words.par_chunks(self.wpm))
                .with_min_len(16)
                .for_each(|(d, s)| unpack_into(s, d));
        }
        out
    }

    #[inline]
    fn get(&self, major: usize, minor: usize) -> bool {
        assert!(
            major < self.major && minor < self.minor,
            "bit index out of range"
        );
        (self.words[major * self.wpm + minor / 64] >> (minor % 64)) & 1 == 1
    }

    #[inline]
    fn set(&mut self, major: usize, minor: usize, v: bool) {
        assert!(
            major < self.major && minor < self.minor,
            "bit index out of range"
        );
        let w = &mut self.words[major * self.wpm + minor / 64];
        let bit = 1u64 << (minor % 64);
        if v {
            *w |= bit;
        } else {
            *w &= !bit;
        }
    }

    fn group(&self, m: usize) -> &[u64] {
        &self.words[m * self.wpm..(m + 1) * self.wpm]
    }

    fn transpose(&self, b: Backend) -> Bits {
        Bits {
            major: self.minor,
            minor: self.major,
            wpm: self.major.div_ceil(64),
            words: transpose_bits(b, &self.words, self.major, self.minor),
        }
    }

    fn group_popcounts(&self, b: Backend) -> Vec<u32> {
        let mut out = vec![0u32; self.major];
        if self.wpm == 0 {
            return out;
        }
        // ~4096 words per task so tiny groups do not drown in scheduling
        let per_task = (4096 / self.wpm).max(1);
        out.par_chunks_mut(per_task)
            .zip(self.words.par_chunks(per_task * self.wpm))
            .for_each(|(o, w)| simd::count_majors(b, w, self.wpm, o));
        out
    }
}

/// `n_rows x n_cols` bit matrix packed row by row (see the crate docs for the bit order).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PackedRows(Bits);

/// `n_rows x n_cols` bit matrix packed column by column (see the crate docs for the bit order).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PackedColumns(Bits);

impl fmt::Debug for PackedRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PackedRows {{ n_rows: {}, n_cols: {} }}",
            self.n_rows(),
            self.n_cols()
        )
    }
}

impl fmt::Debug for PackedColumns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PackedColumns {{ n_rows: {}, n_cols: {} }}",
            self.n_rows(),
            self.n_cols()
        )
    }
}

impl PackedRows {
    /// All-zero matrix.
    pub fn zeros(n_rows: usize, n_cols: usize) -> Self {
        PackedRows(Bits::zeros(n_rows, n_cols))
    }

    /// Wraps `n_rows * words_per_row` words; checks the length and that tail bits are 0.
    pub fn from_words(n_rows: usize, n_cols: usize, words: Vec<u64>) -> Result<Self, BitsError> {
        Bits::from_words(n_rows, n_cols, words).map(PackedRows)
    }

    /// Codes `H = 1[z > 0]` (strictly: 0 and NaN give 0) of a row-major `n_rows x n_cols` slice.
    pub fn encode_positive<T: Real>(z: &[T], n_rows: usize, n_cols: usize) -> Self {
        Self::encode_positive_with(Backend::detect(), z, n_rows, n_cols)
    }

    #[doc(hidden)]
    pub fn encode_positive_with<T: Real>(
        b: Backend,
        z: &[T],
        n_rows: usize,
        n_cols: usize,
    ) -> Self {
        let c = Checked(b.check());
        PackedRows(Bits::pack(z, n_rows, n_cols, |s, d| {
            T::pack_positive(s, d, c)
        }))
    }

    /// Bits `h != 0` of a row-major `n_rows x n_cols` slice.
    pub fn from_dense01<T: Real>(h: &[T], n_rows: usize, n_cols: usize) -> Self {
        PackedRows(Bits::pack(h, n_rows, n_cols, |s, d| {
            pack_with(s, d, |v| v != T::ZERO)
        }))
    }

    /// Row-major 0/1 values.
    pub fn to_dense<T: Real>(&self) -> Vec<T> {
        self.0.to_dense()
    }

    pub fn n_rows(&self) -> usize {
        self.0.major
    }

    pub fn n_cols(&self) -> usize {
        self.0.minor
    }

    pub fn words_per_row(&self) -> usize {
        self.0.wpm
    }

    pub fn words(&self) -> &[u64] {
        &self.0.words
    }

    /// Consumes the matrix, returning its words.
    pub fn into_words(self) -> Vec<u64> {
        self.0.words
    }

    /// The `words_per_row` words of row `i`.
    pub fn row(&self, i: usize) -> &[u64] {
        self.0.group(i)
    }

    pub fn get(&self, i: usize, j: usize) -> bool {
        self.0.get(i, j)
    }

    pub fn set(&mut self, i: usize, j: usize, v: bool) {
        self.0.set(i, j, v)
    }

    /// Rows `start .. start + len` as a new matrix.
    pub fn slice_rows(&self, start: usize, len: usize) -> PackedRows {
        assert!(start + len <= self.n_rows(), "row range out of bounds");
        let w = self.0.wpm;
        let words = self.0.words[start * w..(start + len) * w].to_vec();
        PackedRows(Bits {
            major: len,
            minor: self.0.minor,
            wpm: w,
            words,
        })
    }

    /// The same matrix packed by columns (64x64 block bit transposes, parallel).
    pub fn to_columns(&self) -> PackedColumns {
        PackedColumns(self.0.transpose(Backend::detect()))
    }

    #[doc(hidden)]
    pub fn to_columns_with(&self, b: Backend) -> PackedColumns {
        PackedColumns(self.0.transpose(b.check()))
    }

    /// Bits set per row (L0 of each token).
    pub fn row_popcounts(&self) -> Vec<u32> {
        self.0.group_popcounts(Backend::detect())
    }
}

impl PackedColumns {
    /// All-zero matrix.
    pub fn zeros(n_rows: usize, n_cols: usize) -> Self {
        PackedColumns(Bits::zeros(n_cols, n_rows))
    }

    /// Wraps `n_cols * words_per_col` words; checks the length and that tail bits are 0.
    pub fn from_words(n_rows: usize, n_cols: usize, words: Vec<u64>) -> Result<Self, BitsError> {
        Bits::from_words(n_cols, n_rows, words).map(PackedColumns)
    }

    /// Codes `H = 1[z > 0]` of a row-major `n_rows x n_cols` slice, packed by columns.
    pub fn encode_positive<T: Real>(z: &[T], n_rows: usize, n_cols: usize) -> Self {
        PackedRows::encode_positive(z, n_rows, n_cols).to_columns()
    }

    /// Bits `h != 0` of a row-major `n_rows x n_cols` slice, packed by columns.
    pub fn from_dense01<T: Real>(h: &[T], n_rows: usize, n_cols: usize) -> Self {
        PackedRows::from_dense01(h, n_rows, n_cols).to_columns()
    }

    /// Row-major 0/1 values (the same layout as `PackedRows::to_dense`).
    pub fn to_dense<T: Real>(&self) -> Vec<T> {
        self.to_rows().to_dense()
    }

    pub fn n_rows(&self) -> usize {
        self.0.minor
    }

    pub fn n_cols(&self) -> usize {
        self.0.major
    }

    pub fn words_per_col(&self) -> usize {
        self.0.wpm
    }

    pub fn words(&self) -> &[u64] {
        &self.0.words
    }

    /// Consumes the matrix, returning its words.
    pub fn into_words(self) -> Vec<u64> {
        self.0.words
    }

    /// The `words_per_col` words of column `j`.
    pub fn col(&self, j: usize) -> &[u64] {
        self.0.group(j)
    }

    pub fn get(&self, i: usize, j: usize) -> bool {
        self.0.get(j, i)
    }

    pub fn set(&mut self, i: usize, j: usize, v: bool) {
        self.0.set(j, i, v)
    }

    /// The same matrix packed by rows.
    pub fn to_rows(&self) -> PackedRows {
        PackedRows(self.0.transpose(Backend::detect()))
    }

    #[doc(hidden)]
    pub fn to_rows_with(&self, b: Backend) -> PackedRows {
        PackedRows(self.0.transpose(b.check()))
    }

    /// Bits set per column (firing counts).
    pub fn col_popcounts(&self) -> Vec<u32> {
        self.0.group_popcounts(Backend::detect())
    }

    #[doc(hidden)]
    pub fn col_popcounts_with(&self, b: Backend) -> Vec<u32> {
        self.0.group_popcounts(b.check())
    }
}

impl PackedRows {
    #[doc(hidden)]
    pub fn row_popcounts_with(&self, b: Backend) -> Vec<u32> {
        self.0.group_popcounts(b.check())
    }
}
