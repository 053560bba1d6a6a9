//! Co-activation counts, covariance, term, signs, sign product and covariance gradient against
//! plain dense implementations, on random ragged inputs with constant, duplicate and
//! complementary columns; and every back end against the scalar one.

mod common;

use bae_bits::{
    Backend, BitsError, CovarianceStats, CovarianceTerm, PackedColumns, PackedRows, SignMasks,
    coactivation_counts, sign_product,
};
use common::*;

fn signs_dense(s: &SignMasks, cols: usize) -> Vec<i64> {
    let mut out = vec![0i64; cols * cols];
    for j in 0..cols {
        for k in 0..cols {
            assert!(
                !(s.pos.get(j, k) && s.neg.get(j, k)),
                "pos and neg overlap at ({j},{k})"
            );
            out[j * cols + k] = s.sign(j, k) as i64;
        }
    }
    out
}

#[test]
fn statistics_match_naive() {
    let mut rng = Rng::new(10);
    for &(n, cols) in SHAPES {
        let h = random_codes(&mut rng, n, cols);
        let rows = PackedRows::from_dense01(&h, n, cols);
        let pc = rows.to_columns();

        let coact: Vec<i64> = coactivation_counts(&pc).iter().map(|&v| v as i64).collect();
        assert_eq!(coact, naive_coact(&h, n, cols), "coact {n}x{cols}");

        let st = CovarianceStats::from_columns(&pc).unwrap();
        assert_eq!((st.n_rows, st.n_cols), (n, cols));
        assert_eq!(
            st.firing.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            naive_counts(&h, n, cols)
        );
        assert_eq!(
            st.coact.iter().map(|&v| v as i64).collect::<Vec<_>>(),
            coact
        );

        let cov = naive_cov(&h, n, cols);
        let e = rel_err(&st.covariance_matrix(), &cov);
        assert!(e < 1e-13, "cov {n}x{cols}: {e}");

        let want_s = naive_signs(&h, n, cols);
        assert_eq!(signs_dense(&st.signs, cols), want_s, "signs {n}x{cols}");
        assert_eq!(st.signs.pos.n_rows(), cols);

        let term: f64 = (0..cols * cols)
            .filter(|&x| x / cols != x % cols)
            .map(|x| cov[x].abs())
            .sum();
        let e = (st.term - term).abs() / term.max(1e-300);
        assert!(e < 1e-12, "term {n}x{cols}: {} vs {term}", st.term);

        let hs: Vec<i64> = sign_product(&rows, &st.signs)
            .iter()
            .map(|&v| v as i64)
            .collect();
        assert_eq!(hs, naive_hs(&h, n, cols, &want_s), "H S {n}x{cols}");

        // the gradient is added on top of what is already there, scaled by the weight
        let want_g = naive_cov_grad(&h, n, cols, &want_s);
        let base: Vec<f64> = (0..n * cols).map(|_| rng.f64() - 0.5).collect();
        let mut g = base.clone();
        st.add_covariance_grad(&rows, 0.75, &mut g);
        let got: Vec<f64> = g.iter().zip(&base).map(|(a, b)| a - b).collect();
        let want: Vec<f64> = want_g.iter().map(|v| 0.75 * v).collect();
        let e = rel_err(&got, &want);
        assert!(
            e < 1e-12 || want.iter().all(|&v| v == 0.0) && got.iter().all(|v| v.abs() < 1e-15),
            "grad {n}x{cols}: {e}"
        );

        // f32 output
        let mut g32 = vec![0f32; n * cols];
        st.add_covariance_grad(&rows, 1.0, &mut g32);
        let g32: Vec<f64> = g32.iter().map(|&v| v as f64).collect();
        assert!(
            rel_err(&g32, &want_g) < 1e-6 || want_g.iter().all(|&v| v == 0.0),
            "grad f32 {n}x{cols}"
        );

        // the lean variant gives the same values
        let lean = CovarianceTerm::from_columns(&pc).unwrap();
        assert_eq!(
            (lean.term, &lean.signs, &lean.firing),
            (st.term, &st.signs, &st.firing)
        );
        let mut g2 = base.clone();
        lean.add_covariance_grad(&rows, 0.75, &mut g2);
        assert_eq!(g2, g);
    }
}

#[test]
fn special_columns_give_exact_zero_signs() {
    // col0 const 0, col1 const 1, col2 = col3 (dup), col4 = !col3, col5 independent of col3 by
    // construction (n = 4: rows 00 01 10 11 pattern), col6 = col3 again
    let n = 4;
    let cols = 7;
    let pat = [
        [0, 1, 0, 0, 1, 0, 0],
        [0, 1, 0, 0, 1, 1, 0],
        [0, 1, 1, 1, 0, 0, 1],
        [0, 1, 1, 1, 0, 1, 1],
    ];
    let h: Vec<f64> = pat
        .iter()
        .flat_map(|r| r.iter().map(|&v| v as f64))
        .collect();
    let pc = PackedColumns::from_dense01(&h, n, cols);
    let st = CovarianceStats::from_columns(&pc).unwrap();
    let s = signs_dense(&st.signs, cols);
    // constants: no sign with anything
    for k in 0..cols {
        assert_eq!(
            (s[k], s[cols + k], s[k * cols], s[k * cols + 1]),
            (0, 0, 0, 0)
        );
    }
    assert_eq!(s[2 * cols + 3], 1); // duplicate
    assert_eq!(s[3 * cols + 4], -1); // complement
    assert_eq!(s[3 * cols + 5], 0); // exactly uncorrelated
    assert_eq!(s[5 * cols + 6], 0);
    assert_eq!(s[2 * cols + 6], 1);
    // cov of a 2/4 column = 1/3; |C| over dup/complement pairs among {2,3,4,6}: 6 pairs x 2 x 1/3
    assert!((st.term - 4.0).abs() < 1e-15, "term {}", st.term);
}

#[test]
fn too_few_rows_is_an_error() {
    for n in [0, 1] {
        let pc = PackedColumns::zeros(n, 3);
        let e = CovarianceStats::from_columns(&pc).unwrap_err();
        assert_eq!(
            e,
            BitsError::TooFewRows {
                n_rows: n,
                needed: 2
            }
        );
        assert!(CovarianceTerm::from_columns(&pc).is_err());
    }
}

#[test]
fn all_constant_columns_have_no_term_and_no_gradient() {
    let (n, cols) = (10, 7);
    let h: Vec<f64> = (0..n * cols).map(|x| (x % cols % 2) as f64).collect();
    let rows = PackedRows::from_dense01(&h, n, cols);
    let st = CovarianceStats::from_columns(&rows.to_columns()).unwrap();
    assert_eq!(st.term, 0.0);
    assert!(st.covariance_matrix().iter().all(|&v| v == 0.0));
    let mut g = vec![0.0f64; n * cols];
    st.add_covariance_grad(&rows, 1.0, &mut g);
    assert!(g.iter().all(|&v| v == 0.0));
}

/// Every available back end gives bit-identical results to the scalar one, on shapes large
/// enough to use every code path (several word chunks, partial vectors, tails of every kind).
#[test]
fn backends_agree() {
    let backends = Backend::all_available();
    eprintln!("back ends on this CPU: {backends:?}");
    let mut rng = Rng::new(11);
    let shapes: &[(usize, usize)] = &[
        (2, 3),
        (65, 200),
        (512, 300),
        (300, 513),
        (4500, 130),
        (1000, 1000),
    ];
    for &(n, cols) in shapes {
        let h = random_codes(&mut rng, n, cols);
        let rows = PackedRows::from_dense01(&h, n, cols);
        let pc = rows.to_columns();
        let reference = CovarianceStats::from_columns_with(Backend::Scalar, &pc).unwrap();
        let ref_hs = bae_bits::sign_product_with(Backend::Scalar, &rows, &reference.signs);
        let mut ref_g = vec![0f32; n * cols];
        reference.add_covariance_grad_with(Backend::Scalar, &rows, 0.5, &mut ref_g);
        for &b in &backends {
            assert_eq!(
                bae_bits::coactivation_counts_with(b, &pc),
                reference.coact,
                "{b:?} coact {n}x{cols}"
            );
            let st = CovarianceStats::from_columns_with(b, &pc).unwrap();
            assert_eq!(st.firing, reference.firing, "{b:?}");
            assert_eq!(st.signs, reference.signs, "{b:?} signs {n}x{cols}");
            assert_eq!(st.term, reference.term, "{b:?} term {n}x{cols}");
            assert_eq!(
                bae_bits::sign_product_with(b, &rows, &st.signs),
                ref_hs,
                "{b:?} HS {n}x{cols}"
            );
            let mut g = vec![0f32; n * cols];
            st.add_covariance_grad_with(b, &rows, 0.5, &mut g);
            assert_eq!(g, ref_g, "{b:?} grad {n}x{cols}");
            let lean = CovarianceTerm::from_columns_with(b, &pc).unwrap();
            assert_eq!(
                (lean.term, &lean.signs),
                (reference.term, &reference.signs),
                "{b:?} lean"
            );
        }
    }
}

/// Long, dense columns: the vector kernels count in byte lanes and must widen them before a
/// byte overflows (the AVX2 kernel every 31 steps of 256 bits). 66 steps of all-ones columns
/// reach 8 a byte per step; a missed fold would wrap at 256.
#[test]
fn dense_long_columns_count_exactly() {
    let (n, cols) = (16_700, 70);
    let mut rng = Rng::new(5);
    // columns 0..40 always fire; the rest at random, half the time
    let h: Vec<f64> = (0..n * cols)
        .map(|i| (i % cols < 40 || rng.next_u64() & 1 == 1) as u8 as f64)
        .collect();
    let want: Vec<u32> = naive_coact(&h, n, cols)
        .into_iter()
        .map(|v| v as u32)
        .collect();
    assert_eq!(want[0], n as u32);
    let pc = PackedRows::from_dense01(&h, n, cols).to_columns();
    for b in Backend::all_available() {
        assert_eq!(bae_bits::coactivation_counts_with(b, &pc), want, "{b:?}");
    }
}

#[test]
fn sign_product_with_arbitrary_masks() {
    // sign_product is defined for any disjoint symmetric masks, not just covariance signs
    let mut rng = Rng::new(12);
    for &(n, cols) in &[(7usize, 1usize), (33, 70), (130, 129), (64, 200)] {
        let h = random_codes(&mut rng, n, cols);
        let mut s = vec![0i64; cols * cols];
        let (mut pos, mut neg) = (PackedRows::zeros(cols, cols), PackedRows::zeros(cols, cols));
        for j in 0..cols {
            for k in j + 1..cols {
                let v = rng.below(3) as i64 - 1;
                s[j * cols + k] = v;
                s[k * cols + j] = v;
                for (a, b) in [(j, k), (k, j)] {
                    if v > 0 {
                        pos.set(a, b, true);
                    } else if v < 0 {
                        neg.set(a, b, true);
                    }
                }
            }
        }
        let masks = SignMasks { pos, neg };
        let rows = PackedRows::from_dense01(&h, n, cols);
        let want = naive_hs(&h, n, cols, &s);
        for b in Backend::all_available() {
            let got: Vec<i64> = bae_bits::sign_product_with(b, &rows, &masks)
                .iter()
                .map(|&v| v as i64)
                .collect();
            assert_eq!(got, want, "{b:?} {n}x{cols}");
        }
    }
}
