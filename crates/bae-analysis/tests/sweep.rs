//! `bae sweep`'s grid: parsing, generic application of values to any config field, folder names,
//! and the checks that run before anything trains (no data needed: nothing here trains).

use bae_analysis::sweep::{parse_grid, plan, point_name, set_field, valid_keys};
use bae_train::{ArchKind, TrainConfig};
use std::path::Path;

fn base() -> TrainConfig {
    TrainConfig {
        data: "x.safetensors".into(),
        steps: Some(10),
        ..TrainConfig::default()
    }
}

#[test]
fn cartesian_product_first_group_slowest_with_names_and_values() {
    let axes =
        parse_grid(" lambda-entropy=1e-7,1e-5 ; lambda-cov=0,1e-7;estimator=sign_s,ste;").unwrap();
    assert_eq!(axes.len(), 3);
    assert_eq!(axes[1].key, "lambda-cov");
    assert_eq!(axes[1].field, "lambda_cov");
    let pts = plan(&axes, &base(), Path::new("out")).unwrap();
    assert_eq!(pts.len(), 8);
    let names: Vec<&str> = pts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names[0],
        "lambda-entropy=1e-7,lambda-cov=0,estimator=sign_s"
    );
    assert_eq!(names[1], "lambda-entropy=1e-7,lambda-cov=0,estimator=ste");
    assert_eq!(
        names[2],
        "lambda-entropy=1e-7,lambda-cov=1e-7,estimator=sign_s"
    );
    assert_eq!(
        names[7],
        "lambda-entropy=1e-5,lambda-cov=1e-7,estimator=ste"
    );
    let p = &pts[5];
    assert_eq!(p.cfg.lambda_entropy, 1e-5);
    assert_eq!(p.cfg.lambda_cov, 0.0);
    assert_eq!(p.cfg.estimator, "ste");
    assert_eq!(p.cfg.out, Path::new("out").join(&p.name));
    assert_eq!(p.cfg.steps, Some(10), "fields the grid does not name stay");
    assert_eq!(
        p.values,
        vec![
            ("lambda-entropy".to_string(), "1e-5".to_string()),
            ("lambda-cov".to_string(), "0".to_string()),
            ("estimator".to_string(), "ste".to_string()),
        ]
    );
}

#[test]
fn values_of_every_type_apply_generically() {
    let b = base();
    assert_eq!(set_field(&b, "steps", "500").unwrap().steps, Some(500));
    assert_eq!(set_field(&b, "steps", "1e3").unwrap().steps, Some(1000));
    assert_eq!(set_field(&b, "steps", "null").unwrap().steps, None);
    assert_eq!(set_field(&b, "lr", "1").unwrap().lr, 1.0);
    assert_eq!(set_field(&b, "lambda-cov", "0").unwrap().lambda_cov, 0.0);
    assert_eq!(set_field(&b, "batch_size", "64").unwrap().batch_size, 64);
    assert!(!set_field(&b, "shuffle", "false").unwrap().shuffle);
    assert_eq!(
        set_field(&b, "entropy-start", "0").unwrap().entropy_start,
        Some(0)
    );
    assert_eq!(
        set_field(&b, "arch", "relu-l1").unwrap().arch,
        ArchKind::ReluL1
    );
    // an optional text field given digits: the number does not fit, the text does
    assert_eq!(
        set_field(&b, "checkpoint-every", "500")
            .unwrap()
            .checkpoint_every
            .as_deref(),
        Some("500")
    );
    // every field, present and future, takes its own default written as the grid would write it
    let d = serde_json::to_value(&b).unwrap();
    for (field, v) in d.as_object().unwrap() {
        let raw = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let c = set_field(&b, &field.replace('_', "-"), &raw)
            .unwrap_or_else(|e| panic!("{field}={raw}: {e}"));
        assert_eq!(c, b, "{field}={raw}");
    }
}

#[test]
fn bad_keys_and_values_are_one_line() {
    let b = base();
    let e = parse_grid("lamda-cov=0,1").unwrap_err();
    assert!(
        e.contains("'lamda-cov'") && e.contains("valid keys:") && e.contains("lambda-cov"),
        "{e}"
    );
    assert!(!e.contains('\n'));
    let keys = valid_keys();
    assert!(keys.iter().any(|k| k == "estimator") && !keys.iter().any(|k| k == "out"));
    for (spec, want) in [
        ("lambda-cov", "not key=v1,v2"),
        ("lambda-cov=0,,1", "empty value"),
        ("lambda-cov=0,0", "twice"),
        ("lambda-cov=0;lambda_cov=1", "given twice"),
        ("out=a,b", "cannot be varied"),
        ("val-split=0.1,0.2", "cannot be varied"),
        ("data=a", "cannot be varied"),
        (" ; ", "at least one"),
    ] {
        let e = parse_grid(spec).unwrap_err();
        assert!(e.contains(want) && !e.contains('\n'), "{spec}: {e}");
    }
    for (key, raw, want) in [
        ("steps", "abc", "steps=abc"),
        ("steps", "1.5", "u64"),
        ("lambda-cov", "abc", "f64"),
        ("shuffle", "maybe", "bool"),
        ("arch", "relu", "relu-l1"),
        ("nope", "1", "valid keys"),
    ] {
        let e = set_field(&b, key, raw).unwrap_err();
        assert!(
            e.contains(key) && e.contains(want) && !e.contains('\n'),
            "{key}={raw}: {e}"
        );
    }
    let axes = parse_grid("steps=5,abc").unwrap();
    let e = plan(&axes, &b, Path::new("o")).unwrap_err();
    assert!(e.contains("steps=abc"), "{e}");
}

#[test]
fn every_point_is_validated_and_distinct() {
    let b = base();
    let axes = parse_grid("lambda-cov=0,1e-7;batch-size=64,1").unwrap();
    let e = plan(&axes, &b, Path::new("o")).unwrap_err();
    assert!(
        e.contains("grid point lambda-cov=0,batch-size=1") && e.contains("--batch-size"),
        "{e}"
    );
    let axes = parse_grid("estimator=sign_s,bogus").unwrap();
    let e = plan(&axes, &b, Path::new("o")).unwrap_err();
    assert!(
        e.contains("estimator=bogus") && e.contains("unknown estimator"),
        "{e}"
    );
    let axes = parse_grid("lambda-cov=0,0.0").unwrap();
    let e = plan(&axes, &b, Path::new("o")).unwrap_err();
    assert!(e.contains("same settings"), "{e}");
}

#[test]
fn folder_names_are_filesystem_safe_and_distinct() {
    let v = |x: &str| vec![("init".to_string(), x.to_string())];
    let a = point_name(&v("/tmp/a b.safetensors"));
    let b = point_name(&v("/tmp/a_b.safetensors"));
    assert!(!a.contains('/') && !a.contains(' '), "{a}");
    assert_ne!(a, b);
    assert!(a.starts_with("init=_tmp_a_b.safetensors-"), "{a}");
    let long = point_name(&v(&"x".repeat(400)));
    assert!(long.len() < 140, "{}", long.len());
    assert_ne!(long, point_name(&v(&"x".repeat(401))));
    assert_eq!(
        point_name(&[
            ("lambda-entropy".to_string(), "1e-05".to_string()),
            ("estimator".to_string(), "ste".to_string())
        ]),
        "lambda-entropy=1e-05,estimator=ste"
    );
}
