//! `bae entropy-bench`: the exact entropies of the hidden bits, the estimators on the hidden bits,
//! and one small case end to end (rows, a trained BAE, its codes, the estimates).

use bae_analysis::entropy::bench::{self, BenchOptions, Case, Group, Setting, cases::h2};
use bae_bits::PackedRows;

/// Every kind of group, with parameters away from the symmetric special cases.
fn groups() -> Vec<Group> {
    vec![
        Group::Bit { p: 0.5 },
        Group::Bit { p: 0.013 },
        Group::Copy { p: 0.3, q: 0.85 },
        Group::Copy { p: 0.5, q: 0.5 },
        Group::OneHot { m: 2 },
        Group::OneHot { m: 5 },
        Group::Parent {
            p: 0.4,
            k: 3,
            on: 0.7,
            off: 0.15,
        },
        Group::Parent {
            p: 0.5,
            k: 1,
            on: 1.0,
            off: 0.0,
        },
        Group::Xor,
    ]
}

fn enumerated_entropy(probs: &[f64]) -> f64 {
    probs
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| -p * p.log2())
        .sum()
}

#[test]
fn exact_entropy_of_each_group_matches_enumeration() {
    for g in groups() {
        let probs = g.pattern_probs();
        assert_eq!(probs.len(), 1 << g.width(), "{g:?}");
        let total: f64 = probs.iter().sum();
        assert!(
            (total - 1.0).abs() < 1e-12,
            "{g:?}: probabilities sum to {total}"
        );
        let (closed, brute) = (g.entropy_bits(), enumerated_entropy(&probs));
        assert!(
            (closed - brute).abs() < 1e-12,
            "{g:?}: closed form {closed} vs enumeration {brute}"
        );
    }
    // values known by hand
    assert!((Group::OneHot { m: 4 }.entropy_bits() - 2.0).abs() < 1e-12);
    assert!((Group::Xor.entropy_bits() - 2.0).abs() < 1e-12);
    assert!((Group::Copy { p: 0.5, q: 0.9 }.entropy_bits() - (1.0 + h2(0.9))).abs() < 1e-12);
    // a case is the sum of its independent groups
    let case = Case::new("mixed", "every group", groups()).unwrap();
    let sum: f64 = groups()
        .iter()
        .map(|g| enumerated_entropy(&g.pattern_probs()))
        .sum();
    assert!((case.true_entropy_bits() - sum).abs() < 1e-9);
    assert_eq!(
        case.bits(),
        groups().iter().map(Group::width).sum::<usize>()
    );
}

#[test]
fn limits_of_the_estimators_on_the_hidden_bits() {
    let by_name = |n: &str| bench::select_cases(n).unwrap().remove(0);
    // tree-structured groups: the Chow–Liu bound is exact, the marginal sum is not
    for name in ["copy", "parent"] {
        let c = by_name(name);
        assert!(
            (c.limit_tree_bits() - c.true_entropy_bits()).abs() < 1e-9,
            "{name}"
        );
        assert!(
            c.limit_marginal_bits() > c.true_entropy_bits() + 3.0,
            "{name}"
        );
    }
    // one-hot: 4 groups of 4, the tree leaves out higher-order redundancy
    let c = by_name("one-hot");
    let per_group_marginal = 4.0 * h2(0.25);
    let pair = 1.5 - h2(0.25); // H(X2 | X1) of two bits of a one-hot group
    assert!((c.limit_marginal_bits() - 4.0 * per_group_marginal).abs() < 1e-9);
    assert!((c.limit_tree_bits() - 4.0 * (h2(0.25) + 3.0 * pair)).abs() < 1e-9);
    assert!((c.true_entropy_bits() - 8.0).abs() < 1e-12);
    // xor: pairwise independent, the tree removes nothing
    let c = by_name("xor");
    assert!((c.limit_tree_bits() - 15.0).abs() < 1e-9);
    assert!((c.true_entropy_bits() - 10.0).abs() < 1e-12);
}

#[test]
fn the_generator_draws_the_stated_distribution() {
    let case = Case::new("all kinds", "", groups()).unwrap();
    let n = 200_000;
    let rows = bench::generate(&case, n, 3, 0.0, false, 11);
    let mut at = 0;
    for g in &case.groups {
        let w = g.width();
        let mut counts = vec![0u64; 1 << w];
        for i in 0..n {
            let s = (0..w).fold(0usize, |s, j| s | (rows.bits.get(i, at + j) as usize) << j);
            counts[s] += 1;
        }
        for (s, (&c, &p)) in counts.iter().zip(&g.pattern_probs()).enumerate() {
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            let f = c as f64 / n as f64;
            assert!(
                (f - p).abs() <= 5.0 * sd + 1e-12,
                "{g:?}: pattern {s:b} drawn {f} times a row, expected {p}"
            );
        }
        at += w;
    }
    // the rows: each bit that is on adds its direction; centred rows have mean ~0
    let centred = bench::generate(&case, 20_000, 4, 0.05, true, 3);
    for k in 0..4 {
        let mean: f64 = centred
            .x
            .iter()
            .skip(k)
            .step_by(4)
            .map(|&v| v as f64)
            .sum::<f64>()
            / 20_000.0;
        assert!(mean.abs() < 0.1, "column {k}: mean {mean}");
    }
    let plain = bench::generate(&case, 20_000, 4, 0.05, false, 3);
    assert_eq!(
        plain.bits.words(),
        centred.bits.words(),
        "same seed, same bits"
    );
}

fn true_bits(name: &str, n: usize, seed: u64) -> (Case, PackedRows) {
    let case = bench::select_cases(name).unwrap().remove(0);
    let rows = bench::generate(&case, n, 2, 0.05, true, seed);
    (case, rows.bits)
}

#[test]
fn estimators_on_the_true_bits_of_independent_cases_find_the_truth() {
    for (name, tol) in [
        ("fair-16", 0.01),
        ("sparse-0.1", 0.06),
        ("sparse-0.02", 0.04),
    ] {
        let (case, bits) = true_bits(name, 120_000, 5);
        let truth = case.true_entropy_bits();
        let e = bench::measure(&bits, 128, 100, 0.9, 1);
        for (what, v) in [
            ("marginal", e.marginal.bits),
            ("Miller–Madow", e.miller_madow.bits),
            ("tree", e.tree.bits),
        ] {
            assert!(
                (v - truth).abs() < tol,
                "{name}: {what} {v} vs truth {truth}"
            );
        }
        assert!(e.tree.bits <= e.marginal.bits + 1e-9);
        // the intervals lie close around the truth
        for i in [e.marginal, e.tree] {
            assert!(
                i.lo <= i.hi && i.lo > truth - 3.0 * tol && i.hi < truth + 3.0 * tol,
                "{name}: interval {i:?} vs truth {truth}"
            );
        }
        assert!(
            e.marginal.hi - e.marginal.lo < 0.2,
            "{name}: interval too wide"
        );
    }
}

#[test]
fn tree_removes_the_copies_the_marginal_sum_counts_twice() {
    let (case, bits) = true_bits("copy", 120_000, 6);
    let truth = case.true_entropy_bits(); // 8 (1 + H(0.9)) = 11.75
    let e = bench::measure(&bits, 128, 50, 0.9, 2);
    assert!(
        (e.tree.bits - truth).abs() < 0.05,
        "tree {} vs {truth}",
        e.tree.bits
    );
    assert!(
        (e.marginal.bits - 16.0).abs() < 0.01,
        "marginal {}",
        e.marginal.bits
    );
    assert!(e.marginal.bits > truth + 4.0);
    // the same for parent -> children groups; one-hot groups keep their higher-order redundancy
    let (case, bits) = true_bits("parent", 120_000, 7);
    let e = bench::measure(&bits, 128, 0, 0.9, 3);
    assert!((e.tree.bits - case.true_entropy_bits()).abs() < 0.05);
    let (case, bits) = true_bits("one-hot", 120_000, 8);
    let e = bench::measure(&bits, 128, 0, 0.9, 4);
    assert!((e.tree.bits - case.limit_tree_bits()).abs() < 0.05);
    assert!(e.tree.bits > case.true_entropy_bits() + 3.0);
    // the plug-in joint entropy of 16 bits with 2^8 patterns is exact at this n
    assert!(
        (e.joint_plugin - 8.0).abs() < 0.01,
        "joint {}",
        e.joint_plugin
    );
}

/// r = 4 fair bits end to end: rows, a BAE with the official λ's (600 steps), its codes of the
/// held-out rows, the estimates.
///
/// Not asserted: the tree bound on the BAE's codes within 10 % of 4 bits. It is not: on 10 seeds
/// of this case it was 6.1–8.8 bits (1.5–2.2×) at FVU 0.14–0.21; the full benchmark's rows and
/// 16,000 steps gave 6.1 bits at FVU 0.07. The reason, measured here: the code carries the 4 bits
/// and little else (its plug-in joint entropy is 4.05–4.49 bits on those seeds), but d' = 16
/// features hold them as threshold functions of several bits each rather than as copies of single
/// bits (2–8 features copy a bit), and a pairwise (tree) bound cannot remove the higher-order
/// redundancy between such features. At d' = r the BAE keeps fewer than r bits (FVU ~0.3).
#[test]
fn four_fair_bits_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = BenchOptions::quick(dir.path());
    opts.cases = bench::select_cases("fair-4").unwrap();
    opts.settings = vec![Setting::Official];
    let c = bench::run_case(&opts, &opts.cases[0]).unwrap();
    assert_eq!((c.bits, c.d, c.d_code), (4, 16, 16));
    assert_eq!(c.codes.len(), 2);
    let (t, b) = (&c.codes[0], &c.codes[1]);
    // the hidden bits: every estimate is 4 bits
    for v in [
        t.estimates.marginal.bits,
        t.estimates.tree.bits,
        t.estimates.joint_plugin,
    ] {
        assert!((v - 4.0).abs() < 0.01, "true bits: {v}");
    }
    // the BAE reconstructs the rows, and its code carries the 4 bits and little else: its joint
    // entropy (measurable by counting patterns at ~2^4 of them) is 4 bits plus the rows that noise
    // puts across a feature's threshold (4.05–4.49 bits on 10 seeds)
    let fvu = b.fvu.unwrap();
    assert!(fvu < 0.3, "FVU {fvu}");
    let e = &b.estimates;
    assert!(
        (3.8..4.6).contains(&e.joint_plugin),
        "the code's joint entropy {} is not ~4 bits",
        e.joint_plugin
    );
    // every estimate is an upper bound of the code's joint entropy, the tree the tightest
    assert!(
        e.tree.bits >= e.joint_plugin - 0.05,
        "tree {} < joint {}",
        e.tree.bits,
        e.joint_plugin
    );
    assert!(e.tree.bits <= e.marginal.bits + 1e-9);
    assert!(e.marginal.bits <= e.miller_madow.bits);
    assert!(e.tree.lo <= e.tree.hi && (e.tree.bits - (e.tree.lo + e.tree.hi) / 2.0).abs() < 0.5);
    eprintln!(
        "fair-4 end to end: FVU {fvu:.3}, joint {:.3}, tree {:.3}, marginal {:.3}",
        e.joint_plugin, e.tree.bits, e.marginal.bits
    );
    // the run folder holds the trained model
    assert!(
        dir.path()
            .join("fair-4-official/model.safetensors")
            .is_file()
    );
}

#[test]
fn outputs_table_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = BenchOptions::quick(&dir.path().join("runs"));
    opts.cases = bench::select_cases("xor").unwrap();
    opts.settings = vec![Setting::Sparse];
    opts.steps = 50;
    opts.train_rows = 2048;
    opts.held_out_rows = 1024;
    let mut lines = Vec::new();
    let report = bench::run(&opts, "test", &mut |i, n, c| {
        lines.push(format!("{i}/{n} {}", bench::case_line(c)))
    })
    .unwrap();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("1/1 xor (r 15, truth 10.00 bits)"),
        "{}",
        lines[0]
    );
    let table = bench::table(&report);
    assert_eq!(table.lines().count(), 2 + 2, "{table}");
    let widths: Vec<usize> = table.lines().map(|l| l.chars().count()).collect();
    assert!(widths.iter().all(|&w| w == widths[0]), "aligned:\n{table}");
    assert!(table.contains("| xor ") && table.contains("true bits") && table.contains("sparse"));
    bench::write_outputs(dir.path(), &report).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(bench::BENCH_JSON)).unwrap())
            .unwrap();
    assert_eq!(json["cases"][0]["truth"], 10.0);
    assert_eq!(json["cases"][0]["codes"][1]["code"], "sparse");
    let svg = std::fs::read_to_string(dir.path().join(bench::BENCH_SVG)).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("xor"));
    // bad input: one line
    for bad in ["fair-5", "", "fair,nope"] {
        let e = bench::select_cases(bad).unwrap_err();
        assert!(!e.contains('\n') && e.starts_with("--cases"), "{e}");
    }
    assert_eq!(bench::select_cases("sparse,copy").unwrap().len(), 4);
    let bad = BenchOptions {
        noise: -1.0,
        ..opts.clone()
    };
    assert!(
        bench::run_case(&bad, &opts.cases[0])
            .unwrap_err()
            .contains("--noise")
    );
}
