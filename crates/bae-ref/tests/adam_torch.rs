//! `Adam<f32>` against torch.optim.Adam's float32 trajectories, bit for bit
//! (`tests/data/adam_torch_f32.json`, written by `scripts/adam_torch_golden.py`: torch's own
//! optimiser with an IEEE sqrt, the one CUDA uses; see the script for why).

use bae_ref::{Adam, AdamConfig, Params};
use serde_json::Value;

const GOLDEN: &str = include_str!("data/adam_torch_f32.json");
const TENSORS: [&str; 4] = ["w_enc", "b_enc", "w_dec", "b_dec"];

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array of bit patterns")
        .iter()
        .map(|b| f32::from_bits(b.as_u64().expect("u32 bit pattern") as u32))
        .collect()
}

fn params(v: &Value, d: usize, dc: usize) -> Params<f32> {
    let mut p = Params::<f32>::zeros(d, dc);
    for (name, t) in TENSORS.iter().zip(p.tensors_mut()) {
        let x = floats(&v[*name]);
        assert_eq!(x.len(), t.len(), "{name} length");
        t.copy_from_slice(&x);
    }
    p
}

/// The first element whose bits differ, with both values.
fn first_difference(what: &str, ours: &Params<f32>, torch: &Params<f32>) -> Option<String> {
    for ((name, a), b) in TENSORS.iter().zip(ours.tensors()).zip(torch.tensors()) {
        if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
            let n = (0..a.len())
                .filter(|&i| a[i].to_bits() != b[i].to_bits())
                .count();
            return Some(format!(
                "{what}: {name}[{i}] ours {:e} torch {:e} ({n} of {} differ)",
                a[i],
                b[i],
                a.len()
            ));
        }
    }
    None
}

#[test]
fn adam_f32_matches_torch_bit_for_bit() {
    let doc: Value = serde_json::from_str(GOLDEN).unwrap();
    let (d, dc) = (
        doc["d"].as_u64().unwrap() as usize,
        doc["d_code"].as_u64().unwrap() as usize,
    );
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    let mut failures = Vec::new();
    for case in cases {
        let c = &case["config"];
        let name = c["name"].as_str().unwrap();
        let config = AdamConfig {
            lr: c["lr"].as_f64().unwrap(),
            beta1: c["beta1"].as_f64().unwrap(),
            beta2: c["beta2"].as_f64().unwrap(),
            eps: c["eps"].as_f64().unwrap(),
        };
        let mut p = params(&case["init"], d, dc);
        let mut adam = Adam::new(config, &p);
        let mut checkpoints = case["checkpoints"].as_array().unwrap().iter().peekable();
        for (s, g) in case["grads"].as_array().unwrap().iter().enumerate() {
            adam.step(&mut p, &params(g, d, dc));
            let step = s as u64 + 1;
            if let Some(cp) = checkpoints.next_if(|cp| cp["step"].as_u64() == Some(step)) {
                let want = params(cp, d, dc);
                if let Some(msg) = first_difference(&format!("{name} step {step}"), &p, &want) {
                    failures.push(msg);
                }
            }
        }
        assert!(checkpoints.next().is_none(), "{name}: unread checkpoints");
        let moments = &case["final_moments"];
        for (what, ours) in [("m", &adam.m), ("v", &adam.v)] {
            let want = params(&moments[what], d, dc);
            if let Some(msg) = first_difference(&format!("{name} final {what}"), ours, &want) {
                failures.push(msg);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "Adam differs from torch:\n{}",
        failures.join("\n")
    );
}
