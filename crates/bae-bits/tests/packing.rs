//! Packing, unpacking, transposes, tails and per-row / per-column popcounts.

mod common;

use bae_bits::{
    Backend, BitsError, FiringCounter, PackedColumns, PackedRows, firing_counts,
    firing_counts_rows, firing_rates,
};
use common::{Rng, naive_counts, random_codes};

const SIZES: &[usize] = &[1, 2, 63, 64, 65, 127, 128, 129, 300];

/// Every tail bit (past the matrix edge) of every word group is 0.
fn assert_tails_zero(words: &[u64], groups: usize, bits: usize) {
    let wpg = bits.div_ceil(64);
    assert_eq!(words.len(), groups * wpg);
    if !bits.is_multiple_of(64) {
        let tail = !0u64 << (bits % 64);
        for g in 0..groups {
            assert_eq!(
                words[g * wpg + wpg - 1] & tail,
                0,
                "group {g} has tail bits"
            );
        }
    }
}

#[test]
fn round_trip_and_transpose_ragged() {
    let mut rng = Rng::new(1);
    for &n in SIZES {
        for &cols in SIZES {
            let h = random_codes(&mut rng, n, cols);
            let rows = PackedRows::from_dense01(&h, n, cols);
            assert_eq!(
                (rows.n_rows(), rows.n_cols(), rows.words_per_row()),
                (n, cols, cols.div_ceil(64))
            );
            assert_tails_zero(rows.words(), n, cols);
            assert_eq!(
                rows.to_dense::<f64>(),
                h,
                "rows round trip n={n} cols={cols}"
            );
            for i in 0..n {
                for j in 0..cols {
                    assert_eq!(rows.get(i, j), h[i * cols + j] == 1.0);
                    // the documented bit position
                    assert_eq!(
                        (rows.row(i)[j / 64] >> (j % 64)) & 1 == 1,
                        h[i * cols + j] == 1.0
                    );
                }
            }

            let tc = rows.to_columns();
            assert_eq!(
                (tc.n_rows(), tc.n_cols(), tc.words_per_col()),
                (n, cols, n.div_ceil(64))
            );
            assert_tails_zero(tc.words(), cols, n);
            // naive column packing
            let mut naive = vec![0u64; cols * n.div_ceil(64)];
            for j in 0..cols {
                for i in 0..n {
                    if h[i * cols + j] == 1.0 {
                        naive[j * n.div_ceil(64) + i / 64] |= 1 << (i % 64);
                    }
                }
            }
            assert_eq!(tc.words(), &naive[..], "to_columns n={n} cols={cols}");
            assert_eq!(tc.col(cols - 1), &naive[(cols - 1) * n.div_ceil(64)..]);
            assert_eq!(PackedColumns::from_dense01(&h, n, cols), tc);
            assert_eq!(
                tc.to_dense::<f32>(),
                h.iter().map(|&v| v as f32).collect::<Vec<_>>()
            );
            assert_eq!(tc.to_rows(), rows, "transpose back n={n} cols={cols}");
            for b in Backend::all_available() {
                assert_eq!(rows.to_columns_with(b), tc, "{b:?} n={n} cols={cols}");
                assert_eq!(tc.to_rows_with(b), rows, "{b:?} n={n} cols={cols}");
            }
            for i in 0..n {
                for j in 0..cols {
                    assert_eq!(tc.get(i, j), h[i * cols + j] == 1.0);
                }
            }
        }
    }
}

#[test]
fn zeros_get_set() {
    let mut r = PackedRows::zeros(70, 130);
    let mut c = PackedColumns::zeros(70, 130);
    assert!(r.words().iter().all(|&w| w == 0) && c.words().iter().all(|&w| w == 0));
    for &(i, j) in &[(0, 0), (69, 129), (3, 64), (64, 63), (1, 127)] {
        r.set(i, j, true);
        c.set(i, j, true);
    }
    assert_eq!(r.to_columns(), c);
    r.set(69, 129, false);
    assert!(!r.get(69, 129) && r.get(3, 64));
    assert_eq!(r.row_popcounts().iter().sum::<u32>(), 4);
    assert_eq!(c.col_popcounts()[129], 1);
}

#[test]
fn from_words_validates() {
    // 3 rows x 70 cols -> 2 words per row
    let ok = vec![1u64, 0x3F, 0, 0, u64::MAX, 0x20];
    let r = PackedRows::from_words(3, 70, ok.clone()).unwrap();
    assert!(r.get(0, 0) && r.get(0, 69) && r.get(2, 63) && r.get(2, 69) && !r.get(2, 68));
    assert_eq!(
        PackedRows::from_words(3, 70, vec![0; 5]).unwrap_err(),
        BitsError::LengthMismatch {
            expected: 6,
            got: 5
        }
    );
    let mut bad = ok;
    bad[3] = 0x40; // bit 70 of row 1
    assert_eq!(
        PackedRows::from_words(3, 70, bad).unwrap_err(),
        BitsError::NonZeroTail { word: 3 }
    );
    // columns: 2 cols x 65 rows
    assert!(PackedColumns::from_words(65, 2, vec![0, 1, 0, 1]).is_ok());
    assert_eq!(
        PackedColumns::from_words(65, 2, vec![0, 2, 0, 0]).unwrap_err(),
        BitsError::NonZeroTail { word: 1 }
    );
    let e = PackedColumns::from_words(65, 2, vec![0]).unwrap_err();
    assert!(!e.to_string().contains('\n') && e.to_string().contains("expected 4"));
}

#[test]
fn encode_positive_is_strict() {
    let z32 = [
        1.0f32,
        0.0,
        -0.0,
        -1.0,
        f32::NAN,
        1e-30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE,
    ];
    let want = [true, false, false, false, false, true, true, false, true];
    for b in Backend::all_available() {
        let r = PackedRows::encode_positive_with(b, &z32, 1, z32.len());
        let got: Vec<bool> = (0..z32.len()).map(|j| r.get(0, j)).collect();
        assert_eq!(got, want, "{b:?} f32");
        let z64: Vec<f64> = z32.iter().map(|&v| v as f64).collect();
        let r = PackedRows::encode_positive_with(b, &z64, 1, z64.len());
        let got: Vec<bool> = (0..z64.len()).map(|j| r.get(0, j)).collect();
        assert_eq!(got, want, "{b:?} f64");
    }
}

#[test]
fn encode_positive_backends_agree_ragged() {
    let mut rng = Rng::new(2);
    for &n in &[1usize, 3, 65] {
        for &cols in &[1usize, 15, 16, 17, 63, 64, 65, 100, 127, 300] {
            let z: Vec<f64> = (0..n * cols)
                .map(|_| match rng.below(5) {
                    0 => 0.0,
                    _ => rng.f64() - 0.5,
                })
                .collect();
            let z32: Vec<f32> = z.iter().map(|&v| v as f32).collect();
            let want = PackedRows::from_dense01(
                &z.iter()
                    .map(|&v| (v > 0.0) as u8 as f64)
                    .collect::<Vec<_>>(),
                n,
                cols,
            );
            for b in Backend::all_available() {
                assert_eq!(
                    PackedRows::encode_positive_with(b, &z, n, cols),
                    want,
                    "{b:?} f64 {n}x{cols}"
                );
                assert_eq!(
                    PackedRows::encode_positive_with(b, &z32, n, cols),
                    want,
                    "{b:?} f32 {n}x{cols}"
                );
            }
            assert_eq!(
                PackedColumns::encode_positive(&z32, n, cols),
                want.to_columns()
            );
        }
    }
}

#[test]
fn firing_counts_rates_and_counter() {
    let mut rng = Rng::new(3);
    for &(n, cols) in common::SHAPES {
        let h = random_codes(&mut rng, n, cols);
        let want: Vec<u32> = naive_counts(&h, n, cols)
            .iter()
            .map(|&c| c as u32)
            .collect();
        let rows = PackedRows::from_dense01(&h, n, cols);
        let c = rows.to_columns();
        assert_eq!(firing_counts(&c), want, "{n}x{cols}");
        assert_eq!(firing_counts_rows(&rows), want, "rows {n}x{cols}");
        for b in Backend::all_available() {
            assert_eq!(bae_bits::firing_counts_with(b, &c), want, "{b:?}");
            assert_eq!(bae_bits::firing_counts_rows_with(b, &rows), want, "{b:?}");
            let l0: Vec<u32> = (0..n)
                .map(|i| h[i * cols..(i + 1) * cols].iter().sum::<f64>() as u32)
                .collect();
            assert_eq!(rows.row_popcounts_with(b), l0, "{b:?} L0");
        }
        let rates = firing_rates(&c);
        for (r, &w) in rates.iter().zip(&want) {
            assert_eq!(*r, w as f64 / n as f64);
        }
    }

    // streaming over uneven batches == all at once
    let (n, cols) = (1000, 77);
    let h = random_codes(&mut rng, n, cols);
    let all = naive_counts(&h, n, cols);
    let mut counter = FiringCounter::new(cols);
    assert_eq!(counter.rates(), vec![0.0; cols]);
    let mut start = 0;
    for (t, len) in [1usize, 63, 64, 300, 572].into_iter().enumerate() {
        let part = &h[start * cols..(start + len) * cols];
        if t % 2 == 0 {
            counter.add(&PackedColumns::from_dense01(part, len, cols));
        } else {
            counter.add_rows(&PackedRows::from_dense01(part, len, cols));
        }
        start += len;
    }
    assert_eq!(start, n);
    assert_eq!(counter.n_rows(), n as u64);
    assert_eq!(
        counter.counts(),
        &all.iter().map(|&c| c as u64).collect::<Vec<_>>()[..]
    );
    let rates = counter.rates();
    for (r, &c) in rates.iter().zip(&all) {
        assert_eq!(*r, c as f64 / n as f64);
    }
}

#[test]
fn slice_rows_copies_the_range() {
    let mut rng = Rng::new(4);
    let (n, cols) = (200, 90);
    let h = random_codes(&mut rng, n, cols);
    let rows = PackedRows::from_dense01(&h, n, cols);
    let s = rows.slice_rows(37, 100);
    assert_eq!(s.to_dense::<f64>(), h[37 * cols..137 * cols].to_vec());
    assert_eq!(rows.slice_rows(200, 0).n_rows(), 0);
}

#[test]
fn empty_shapes() {
    for (n, cols) in [(0, 0), (0, 5), (5, 0)] {
        let r = PackedRows::from_dense01::<f32>(&[], n, cols);
        assert_eq!(r.words().len(), n * cols.div_ceil(64));
        let c = r.to_columns();
        assert_eq!((c.n_rows(), c.n_cols()), (n, cols));
        assert_eq!(firing_counts(&c), vec![0; cols]);
        assert_eq!(r.row_popcounts(), vec![0; n]);
        assert_eq!(firing_rates(&c), vec![0.0; cols]);
    }
}
