//! Downstream fidelity on the real SmolLM2, with reconstructions whose answers are known:
//! the identity splice changes nothing (KL ≤ 1e-6, CE equal), a zero "reconstruction" is exactly
//! zero ablation, the mean row is exactly mean ablation.

mod common;

use bae_analysis::eval::fidelity::{fidelity, held_out_text};

#[test]
fn identity_zero_and_mean_splices_have_known_answers() {
    let Some((model_path, corpus)) = common::real_model_and_corpus("fidelity") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let block = common::small_extract(&model_path, &corpus, dir.path(), 3, 400);
    let mut gguf = bae_llm::Gguf::open(&model_path).unwrap();
    let tok = bae_llm::Tokenizer::from_gguf(&gguf).unwrap();
    let text = held_out_text(&block, &tok, 0, 3).unwrap();
    assert_eq!((text.block, text.window, text.skip), (3, 64, 2));
    assert_eq!(text.windows.len(), 3);
    let full = bae_llm::LoadOptions {
        n_layers: None,
        head: true,
    };
    let model = bae_llm::Model::from_gguf(&mut gguf, full).unwrap();
    let d = model.config().d_model;
    let mean: Vec<f32> = (0..d).map(|i| (i % 7) as f32 * 0.1).collect();
    let pb = indicatif::ProgressBar::hidden();

    let same = fidelity(&model, "m", &text, &|x, _| x.to_vec(), &mean, 2, &pb).unwrap();
    assert_eq!(same.windows, 3);
    assert_eq!(same.scored_positions, 3 * (64 - 2 - 1));
    assert!(same.spliced_positions > 0 && same.spliced_positions <= 3 * 62);
    assert!(same.kl_spliced <= 1e-6, "identity KL {}", same.kl_spliced);
    assert!(same.jsd_spliced <= 1e-6 && same.last_token_jsd <= 1e-6);
    assert!((same.ce_spliced - same.ce_clean).abs() <= 1e-9);
    assert!((same.ce_loss_score - 1.0).abs() <= 1e-9);
    assert!(same.ce_clean > 0.5 && same.ce_clean < same.ce_zero_ablated);
    assert!(same.kl_zero_ablated > 0.1);

    let zero = fidelity(
        &model,
        "m",
        &text,
        &|x, _| vec![0.0; x.len()],
        &mean,
        3,
        &pb,
    )
    .unwrap();
    assert_eq!(zero.ce_spliced, zero.ce_zero_ablated);
    assert_eq!(zero.kl_spliced, zero.kl_zero_ablated);
    assert_eq!(zero.jsd_spliced, zero.jsd_zero_ablated);
    assert_eq!(zero.ce_loss_score, 0.0);
    assert_eq!(zero.kl_div_score, 0.0);
    // the batch size does not change the numbers (up to summation order)
    assert!((zero.ce_clean - same.ce_clean).abs() <= 1e-9);
    assert!((zero.ce_zero_ablated - same.ce_zero_ablated).abs() <= 1e-9);

    let m = mean.clone();
    let as_mean = fidelity(
        &model,
        "m",
        &text,
        &move |x, n| {
            assert_eq!(x.len(), n * d);
            m.repeat(n)
        },
        &mean,
        2,
        &pb,
    )
    .unwrap();
    assert_eq!(as_mean.ce_spliced, as_mean.ce_mean_ablated);
    assert_eq!(as_mean.kl_spliced, as_mean.kl_mean_ablated);
}
