//! Feature pages take their examples from across the rows, not from the first phrase that fires.

use bae_ref::Params;
use bae_train::MemoryRows;
use bae_train::pages::feature_pages;

#[test]
fn examples_are_spread_over_the_rows_and_take_the_rare_value() {
    // d = 2, d' = 2, Z = X: feature 0 fires when x0 > 0, feature 1 when x1 > 0
    let mut p = Params::<f32>::zeros(2, 2);
    p.w_enc = vec![1.0, 0.0, 0.0, 1.0];
    let n = 1000;
    let mut data = Vec::with_capacity(2 * n);
    for r in 0..n {
        // feature 0 fires on rows 0, 10, 20, ... (rate 0.1, rare value 1);
        // feature 1 is silent on rows 3, 13, 23, ... (rate 0.9, rare value 0)
        data.push(if r % 10 == 0 { 1.0 } else { -1.0 });
        data.push(if r % 10 == 3 { -1.0 } else { 1.0 });
    }
    let src = MemoryRows {
        d: 2,
        data,
        name: "mem".into(),
    };
    let pages = feature_pages(&p, &src, 0..n, &[0.1, 0.9], 2, 4, 64).unwrap();
    assert_eq!(pages.len(), 2);
    let page = |j: usize| pages.iter().find(|p| p.feature == j).unwrap();
    assert_eq!(page(0).rare_value, 1);
    assert_eq!(page(0).rows, vec![0, 250, 500, 750]);
    assert_eq!(page(1).rare_value, 0);
    assert_eq!(page(1).rows, vec![3, 253, 503, 753]);

    // a feature whose rare value only occurs in the first half still gets all its examples: one per
    // slice while there are hits (7; 257), then the page is topped up in corpus order (57, 107)
    let mut data = Vec::with_capacity(2 * n);
    for r in 0..n {
        data.push(if r < 500 && r % 50 == 7 { 1.0 } else { -1.0 });
        data.push(1.0);
    }
    let src = MemoryRows {
        d: 2,
        data,
        name: "mem".into(),
    };
    let pages = feature_pages(&p, &src, 0..n, &[0.01, 1.0], 1, 4, 64).unwrap();
    assert_eq!(pages[0].rows, vec![7, 57, 107, 257]);
}
