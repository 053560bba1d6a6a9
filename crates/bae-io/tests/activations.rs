//! ActivationFile: round trips through write_activations, hand-built files, and rejections.

mod common;

use bae_io::{ActivationFile, DType, FileFormat, write_activations};
use common::{assert_err, f32_bytes, npy_v1, st_file};
use half::{bf16, f16};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Deterministic test matrix with a spread of magnitudes and signs.
fn matrix(n: usize, d: usize) -> Vec<f32> {
    (0..n * d)
        .map(|i| {
            let x = i as f32;
            (x * 0.731).sin() * (1.0 + (i % 7) as f32 * 13.0) + (i % 3) as f32 * 1e-3
        })
        .collect()
}

fn expected(dtype: DType, data: &[f32]) -> Vec<f32> {
    match dtype {
        DType::F32 | DType::F64 => data.to_vec(),
        DType::F16 => data.iter().map(|v| f16::from_f32(*v).to_f32()).collect(),
        DType::BF16 => data.iter().map(|v| bf16::from_f32(*v).to_f32()).collect(),
    }
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn read_all(f: &ActivationFile) -> Vec<f32> {
    let mut out = vec![0.0; f.n_rows() * f.dim()];
    f.read_rows(0, f.n_rows(), &mut out).unwrap();
    out
}

fn check_roundtrip(name: &str, dtype: DType, format: FileFormat) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let (n, d) = (13, 7);
    let data = matrix(n, d);
    let mut meta = BTreeMap::new();
    meta.insert("layer".to_string(), "12".to_string());
    write_activations(&path, n, d, &data, dtype, &meta).unwrap();

    let f = ActivationFile::open(&path).unwrap();
    assert_eq!(
        (f.n_rows(), f.dim(), f.dtype(), f.format()),
        (n, d, dtype, format)
    );
    assert_eq!(f.path(), path);
    let want = expected(dtype, &data);
    assert_eq!(read_all(&f), want);

    let mut part = vec![0.0; 4 * d];
    f.read_rows(3, 4, &mut part).unwrap();
    assert_eq!(part, want[3 * d..7 * d]);

    let idx = [12, 0, 5, 5, 9];
    let mut gathered = vec![0.0; idx.len() * d];
    f.gather_rows(&idx, &mut gathered).unwrap();
    for (r, &i) in idx.iter().enumerate() {
        assert_eq!(gathered[r * d..(r + 1) * d], want[i * d..(i + 1) * d]);
    }
    f.check_finite().unwrap();

    if format == FileFormat::Safetensors {
        assert_eq!(f.metadata().get("layer").map(String::as_str), Some("12"));
        // The reference implementation reads our file too.
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("activations").unwrap();
        assert_eq!(t.shape(), &[n, d]);
        assert_eq!(t.dtype().to_string(), dtype.name());
    }
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn roundtrip_safetensors_f32() {
    check_roundtrip("a.safetensors", DType::F32, FileFormat::Safetensors);
}

#[test]
fn roundtrip_safetensors_f16() {
    check_roundtrip("a.safetensors", DType::F16, FileFormat::Safetensors);
}

#[test]
fn roundtrip_safetensors_bf16() {
    check_roundtrip("a.safetensors", DType::BF16, FileFormat::Safetensors);
}

#[test]
fn roundtrip_safetensors_f64() {
    check_roundtrip("a.safetensors", DType::F64, FileFormat::Safetensors);
}

#[test]
fn roundtrip_npy_f32() {
    check_roundtrip("a.npy", DType::F32, FileFormat::Npy);
}

#[test]
fn roundtrip_npy_f16() {
    check_roundtrip("a.npy", DType::F16, FileFormat::Npy);
}

#[test]
fn roundtrip_npy_f64() {
    check_roundtrip("a.NPY", DType::F64, FileFormat::Npy);
}

#[test]
fn write_rejects_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let none = BTreeMap::new();
    let p = dir.path().join("x.npy");
    assert_err(
        write_activations(&p, 1, 2, &[1.0, 2.0], DType::BF16, &none),
        &p,
        &["cannot write BF16 to .npy"],
    );
    assert_err(
        write_activations(&p, 2, 2, &[1.0, 2.0], DType::F32, &none),
        &p,
        &["shape [2, 2] does not match 2 values"],
    );
    assert_err(
        write_activations(&p, 0, 2, &[], DType::F32, &none),
        &p,
        &["empty activation matrix"],
    );
    assert_err(
        write_activations(&p, 1, 2, &[1.0, 1e6], DType::F16, &none),
        &p,
        &["value 1e6 at row 0, column 1 overflows F16"],
    );
    let q = dir.path().join("x.csv");
    assert_err(
        write_activations(&q, 1, 2, &[1.0, 2.0], DType::F32, &none),
        &q,
        &["supported: .safetensors, .npy"],
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn hand_built_npy_v1() {
    let dir = tempfile::tempdir().unwrap();
    let data = [1.5f32, -2.0, 0.25, 1e-7, 3e8, -0.0];
    let bytes = npy_v1(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }",
        &f32_bytes(&data),
    );
    assert_eq!(bytes.len(), 128 + 24);
    let p = write_file(dir.path(), "h.npy", &bytes);
    let f = ActivationFile::open(&p).unwrap();
    assert_eq!((f.n_rows(), f.dim(), f.dtype()), (3, 2, DType::F32));
    assert_eq!(read_all(&f), data);
    let mut row = [0.0; 2];
    f.read_rows(2, 1, &mut row).unwrap();
    assert_eq!(row, [3e8, -0.0]);
}

#[test]
fn hand_built_npy_unpadded_v2_and_v3_with_odd_data_offset() {
    // No padding: data starts at an odd offset, so f16 values are unaligned in the map.
    let dir = tempfile::tempdir().unwrap();
    let vals = [0.5f32, -1.0, 2.0, 65504.0, 6e-8, 3.0];
    let halves: Vec<u8> = vals
        .iter()
        .flat_map(|v| f16::from_f32(*v).to_bits().to_le_bytes())
        .collect();
    for (major, dict) in [
        (2u8, "{'shape':(2,3),'fortran_order':False,'descr':'|f2'}"),
        (
            3u8,
            "{\"descr\": \"=f2\", \"fortran_order\": False, \"shape\": (2, 3)}\n",
        ),
    ] {
        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.extend_from_slice(&[major, 0]);
        bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        bytes.extend_from_slice(dict.as_bytes());
        bytes.extend_from_slice(&halves);
        let p = write_file(dir.path(), &format!("v{major}.npy"), &bytes);
        let f = ActivationFile::open(&p).unwrap();
        assert_eq!((f.n_rows(), f.dim(), f.dtype()), (2, 3, DType::F16));
        let want: Vec<f32> = vals.iter().map(|v| f16::from_f32(*v).to_f32()).collect();
        assert_eq!(read_all(&f), want);
        let mut g = vec![0.0; 3];
        f.gather_rows(&[1], &mut g).unwrap();
        assert_eq!(g, want[3..]);
    }
}

fn npy_error(dict: &str, data: &[u8], phrases: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "bad.npy", &npy_v1(dict, data));
    assert_err(ActivationFile::open(&p), &p, phrases);
}

#[test]
fn npy_fortran_order_rejected() {
    npy_error(
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
        &[0; 16],
        &["fortran_order is True", "not supported"],
    );
}

#[test]
fn npy_big_endian_rejected() {
    npy_error(
        "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }",
        &[0; 16],
        &["big-endian dtype \">f4\" is not supported"],
    );
}

#[test]
fn npy_unsupported_dtype_named() {
    npy_error(
        "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }",
        &[0; 16],
        &["unsupported dtype \"<i4\"", "'<f4'"],
    );
    npy_error(
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
        &[0; 8],
        &["structured"],
    );
}

#[test]
fn npy_wrong_rank_rejected() {
    npy_error(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }",
        &[0; 24],
        &["1 dimension(s)", "(6,)", "expected a 2-D matrix"],
    );
    npy_error(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }",
        &[0; 24],
        &["3 dimension(s)", "(1, 2, 3)"],
    );
    npy_error(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
        &[0; 4],
        &["0 dimension(s)"],
    );
}

#[test]
fn npy_empty_matrix_rejected() {
    npy_error(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }",
        &[],
        &["empty", "(0, 4)"],
    );
    npy_error(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }",
        &[],
        &["empty"],
    );
}

#[test]
fn npy_missing_key_and_bad_version() {
    npy_error(
        "{'descr': '<f4', 'shape': (1, 1), }",
        &[0; 4],
        &["no 'fortran_order' entry"],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = npy_v1(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }",
        &[0; 4],
    );
    bytes[6] = 9;
    let p = write_file(dir.path(), "v9.npy", &bytes);
    assert_err(
        ActivationFile::open(&p),
        &p,
        &["unsupported .npy format version 9.0"],
    );
}

#[test]
fn npy_huge_shape_on_small_file_rejected() {
    // Neither case may allocate: both are refused from the header alone.
    npy_error(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4000000000, 4096), }",
        &[0; 64],
        &["truncated", "needs 65536000000000 bytes", "only 64 bytes"],
    );
    npy_error(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 18446744073709551615), }",
        &[0; 64],
        &["overflows"],
    );
    npy_error(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999, 2), }",
        &[0; 64],
        &["negative or too large"],
    );
}

#[test]
fn truncated_files_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let data = matrix(4, 3);
    for (name, dtype) in [("t.npy", DType::F32), ("t.safetensors", DType::F16)] {
        let p = dir.path().join(name);
        write_activations(&p, 4, 3, &data, dtype, &BTreeMap::new()).unwrap();
        let full = std::fs::read(&p).unwrap();
        // Cut in the data, then in the header.
        for cut in [full.len() - 1, full.len() - 10, 20] {
            std::fs::write(&p, &full[..cut]).unwrap();
            assert_err(ActivationFile::open(&p), &p, &["truncated"]);
        }
    }
}

#[test]
fn empty_missing_directory_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "e.safetensors", b"");
    assert_err(ActivationFile::open(&p), &p, &["file is empty (0 bytes)"]);

    let missing = dir.path().join("nope.npy");
    assert_err(
        ActivationFile::open(&missing),
        &missing,
        &["file not found"],
    );

    assert_err(
        ActivationFile::open(dir.path()),
        dir.path(),
        &["is a directory"],
    );

    // Deterministic pseudo-random bytes.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let garbage: Vec<u8> = (0..500)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    let p = write_file(dir.path(), "g.npy", &garbage);
    assert_err(ActivationFile::open(&p), &p, &["not a valid .npy file"]);
    let p = write_file(dir.path(), "g.safetensors", &garbage);
    assert_err(ActivationFile::open(&p), &p, &["safetensors"]);
    let p = write_file(dir.path(), "g.bin", &garbage);
    assert_err(
        ActivationFile::open(&p),
        &p,
        &["extension '.bin'", "supported: .safetensors, .npy"],
    );
    let p = write_file(dir.path(), "noext", &garbage);
    assert_err(ActivationFile::open(&p), &p, &["no extension"]);
}

#[test]
fn format_detected_from_magic_when_extension_is_unknown_or_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = matrix(3, 4);
    let npy = dir.path().join("a.npy");
    let st = dir.path().join("a.safetensors");
    write_activations(&npy, 3, 4, &data, DType::F32, &BTreeMap::new()).unwrap();
    write_activations(&st, 3, 4, &data, DType::F32, &BTreeMap::new()).unwrap();
    for (src, name, format) in [
        (&npy, "a.bin", FileFormat::Npy),
        (&st, "a.dat", FileFormat::Safetensors),
        (&npy, "swapped.safetensors", FileFormat::Npy),
        (&st, "swapped.npy", FileFormat::Safetensors),
    ] {
        let p = dir.path().join(name);
        std::fs::copy(src, &p).unwrap();
        let f = ActivationFile::open(&p).unwrap();
        assert_eq!(f.format(), format);
        assert_eq!(read_all(&f), data);
    }
}

fn st_error(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)], phrases: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "bad.safetensors", &st_file(tensors));
    assert_err(ActivationFile::open(&p), &p, phrases)
}

#[test]
fn safetensors_only_tensor_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let bytes = st_file(&[("hidden_states", Dtype::F32, vec![2, 3], f32_bytes(&data))]);
    let p = write_file(dir.path(), "one.safetensors", &bytes);
    let f = ActivationFile::open(&p).unwrap();
    assert_eq!((f.n_rows(), f.dim()), (2, 3));
    assert_eq!(read_all(&f), data);
    assert_eq!(f.metadata().get("source").map(String::as_str), Some("test"));
}

#[test]
fn safetensors_prefers_activations_among_several() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = st_file(&[
        ("labels", Dtype::I32, vec![2], vec![0; 8]),
        (
            "activations",
            Dtype::F32,
            vec![1, 2],
            f32_bytes(&[7.0, 8.0]),
        ),
        ("zz", Dtype::F32, vec![2, 2], f32_bytes(&[0.0; 4])),
    ]);
    let p = write_file(dir.path(), "s.safetensors", &bytes);
    let f = ActivationFile::open(&p).unwrap();
    assert_eq!(read_all(&f), [7.0, 8.0]);
}

#[test]
fn safetensors_several_tensors_without_activations_rejected() {
    let t = |name| (name, Dtype::F32, vec![1, 1], f32_bytes(&[0.0]));
    st_error(
        &[t("b"), t("a")],
        &[
            "2 tensors and none named \"activations\"",
            "(found \"a\", \"b\")",
        ],
    );
    let msg = st_error(
        &[
            t("t1"),
            t("t2"),
            t("t3"),
            t("t4"),
            t("t5"),
            t("t6"),
            t("t7"),
        ],
        &[
            "7 tensors",
            "\"t1\", \"t2\", \"t3\", \"t4\", \"t5\", ... (2 more)",
        ],
    );
    assert!(!msg.contains("t6"), "{msg}");
}

#[test]
fn safetensors_rank_and_dtype_rejected() {
    st_error(
        &[(
            "activations",
            Dtype::F32,
            vec![2, 1, 2],
            f32_bytes(&[0.0; 4]),
        )],
        &["tensor \"activations\" has 3 dimension(s)", "[2, 1, 2]"],
    );
    st_error(
        &[("x", Dtype::F32, vec![4], f32_bytes(&[0.0; 4]))],
        &["1 dimension(s)"],
    );
    st_error(
        &[("activations", Dtype::I32, vec![2, 2], vec![0; 16])],
        &["unsupported dtype I32", "supported: F16, BF16, F32, F64"],
    );
    st_error(
        &[("activations", Dtype::F32, vec![0, 3], vec![])],
        &["is empty", "[0, 3]"],
    );
    st_error(&[], &["contains no tensors"]);
}

#[test]
fn nan_and_inf_reported_with_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (10, 5);
    for (dtype, bad, word) in [
        (DType::F32, f32::NAN, "NaN"),
        (DType::F16, f32::INFINITY, "inf"),
        (DType::BF16, f32::NEG_INFINITY, "-inf"),
    ] {
        let mut data = matrix(n, d);
        data[7 * d + 3] = bad;
        let p = dir.path().join(format!("nan_{dtype}.safetensors"));
        write_activations(&p, n, d, &data, dtype, &BTreeMap::new()).unwrap();
        let f = ActivationFile::open(&p).unwrap();
        let phrases = [&format!("non-finite value {word} at row 7, column 3") as &str];
        let mut all = vec![0.0; n * d];
        assert_err(f.read_rows(0, n, &mut all), &p, &phrases);
        assert_err(f.check_finite(), &p, &phrases);
        let mut one = vec![0.0; 2 * d];
        assert_err(f.gather_rows(&[2, 7], &mut one), &p, &phrases);
        // Rows without the bad value read fine.
        let mut ok = vec![0.0; 7 * d];
        f.read_rows(0, 7, &mut ok).unwrap();
        f.read_rows(8, 2, &mut ok[..2 * d]).unwrap();
        f.gather_rows(&[9, 0], &mut ok[..2 * d]).unwrap();
    }
}

#[test]
fn f64_outside_f32_range_reported() {
    let dir = tempfile::tempdir().unwrap();
    let vals = [1.0f64, 2.0, 1e300, 4.0];
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = write_file(
        dir.path(),
        "big.safetensors",
        &st_file(&[("activations", Dtype::F64, vec![2, 2], bytes)]),
    );
    let f = ActivationFile::open(&p).unwrap();
    assert_eq!(f.dtype(), DType::F64);
    assert_err(
        f.check_finite(),
        &p,
        &["value 1e300 at row 1, column 0 is outside the f32 range"],
    );
}

#[test]
fn read_argument_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.npy");
    write_activations(&p, 4, 2, &matrix(4, 2), DType::F32, &BTreeMap::new()).unwrap();
    let f = ActivationFile::open(&p).unwrap();
    let mut buf = vec![0.0; 4];
    assert_err(
        f.read_rows(3, 2, &mut buf),
        &p,
        &["rows [3, 3+2) out of range (the file has 4 rows)"],
    );
    assert_err(f.read_rows(usize::MAX, 2, &mut buf), &p, &["out of range"]);
    assert_err(
        f.read_rows(0, 1, &mut buf),
        &p,
        &["output buffer holds 4 values but 1 rows of dimension 2 need 2"],
    );
    assert_err(
        f.gather_rows(&[0, 4], &mut buf),
        &p,
        &["row index 4 out of range (the file has 4 rows)"],
    );
    assert_err(f.gather_rows(&[0], &mut buf), &p, &["output buffer"]);
    f.read_rows(4, 0, &mut []).unwrap();
    f.gather_rows(&[], &mut []).unwrap();
}

#[test]
fn check_finite_scans_multiple_chunks() {
    // More than one scan chunk (2^20 values): the bad value sits in the second chunk.
    let dir = tempfile::tempdir().unwrap();
    let (n, d) = (3000, 512);
    let mut data = vec![0.5f32; n * d];
    data[2500 * d + 511] = f32::NAN;
    let p = dir.path().join("big.npy");
    write_activations(&p, n, d, &data, DType::F16, &BTreeMap::new()).unwrap();
    let f = ActivationFile::open(&p).unwrap();
    assert_err(f.check_finite(), &p, &["row 2500, column 511"]);
}
