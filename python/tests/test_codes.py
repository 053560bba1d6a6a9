"""PackedCodes and the statistics against plain numpy references, on random and ragged shapes."""

import math

import numpy as np
import pytest

import bae

SHAPES = [(1, 1), (7, 5), (64, 64), (65, 63), (130, 129), (333, 200), (1000, 70)]
EPS = 1e-10


def random_bits(rng, n, d):
    rates = rng.uniform(0.0, 0.6, size=d)
    rates[: d // 7] = 0.0  # constant columns too
    return rng.random((n, d)) < rates


@pytest.mark.parametrize("n,d", SHAPES)
def test_dense_roundtrip_every_dtype_and_order(rng, n, d):
    h = random_bits(rng, n, d)
    for arr in [h, h.astype(np.uint8), h.astype(np.float32), h.astype(np.float64) * 3 - 1,
                h.astype(np.int16), np.asfortranarray(h), h.astype(np.float32)[:, ::1]]:
        c = bae.PackedCodes.from_dense(arr)
        assert c.shape == (n, d) and c.rows == n and c.cols == d and len(c) == n
        np.testing.assert_array_equal(c.to_dense(), arr > 0)


@pytest.mark.parametrize("d", [1, 7, 8, 9, 63, 64, 65, 71, 130, 1000])
def test_bool_packing_equals_numpy_packbits(rng, d):
    # C-contiguous bool rows take their own path (8 bools gathered by one multiply)
    h = random_bits(rng, 37, d)
    w = bae.PackedCodes.from_dense(h).words().view(np.uint8)
    want = np.packbits(h, axis=1, bitorder="little")
    np.testing.assert_array_equal(w[:, : want.shape[1]], want)
    assert not w[:, want.shape[1]:].any()


def test_strided_views_read_in_place(rng):
    big = random_bits(rng, 200, 150)
    view = big[::3, 5:140:2]
    np.testing.assert_array_equal(bae.PackedCodes.from_dense(view).to_dense(), view)


@pytest.mark.parametrize("n,d", SHAPES)
def test_words_are_lsb_first_and_roundtrip(rng, n, d):
    h = random_bits(rng, n, d)
    c = bae.PackedCodes.from_dense(h)
    w = c.words()
    assert w.dtype == np.uint64 and w.shape == (n, (d + 63) // 64)
    # numpy's little-endian bit order, padded to whole u64 words, is the same layout
    padded = np.zeros((n, w.shape[1] * 64), dtype=bool)
    padded[:, :d] = h
    want = np.packbits(padded, axis=1, bitorder="little").view("<u8")
    np.testing.assert_array_equal(w, want)
    assert bae.PackedCodes.from_words(w, d) == c


def test_take_rows(rng):
    h = random_bits(rng, 50, 70)
    c = bae.PackedCodes.from_dense(h)
    idx = [3, 3, 49, 0]
    np.testing.assert_array_equal(c.take(idx).to_dense(), h[idx])


@pytest.mark.parametrize("n,d", SHAPES)
def test_counts_rates_entropy(rng, n, d):
    h = random_bits(rng, n, d)
    c = bae.PackedCodes.from_dense(h)
    np.testing.assert_array_equal(bae.firing_counts(c), h.sum(0))
    p = h.mean(0)
    np.testing.assert_allclose(bae.firing_rates(c), p, rtol=0, atol=1e-15)
    per = -(p * np.log2(p + EPS) + (1 - p) * np.log2(1 - p + EPS))
    np.testing.assert_allclose(bae.entropy_bits(c, per_feature=True), per, rtol=1e-12, atol=1e-15)
    assert math.isclose(bae.entropy_bits(c), per.sum(), rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("n,d", SHAPES)
def test_coactivation_counts_equal_integer_product(rng, n, d):
    h = random_bits(rng, n, d)
    got = bae.coactivation_counts(bae.PackedCodes.from_dense(h))
    assert got.dtype == np.uint32 and got.shape == (d, d)
    hi = h.astype(np.int64)
    np.testing.assert_array_equal(got, hi.T @ hi)


@pytest.mark.parametrize("n,d", [s for s in SHAPES if s[0] >= 2])
def test_covariance_term_matches_numpy_cov(rng, n, d):
    h = random_bits(rng, n, d)
    cov = np.cov(h.T.astype(np.float64)).reshape(d, d)
    want = np.abs(cov).sum() - np.abs(np.diag(cov)).sum()
    got = bae.covariance_term(bae.PackedCodes.from_dense(h))
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)


def test_estimates_plugin_miller_madow_and_tree(rng):
    n, d = 800, 40
    h = random_bits(rng, n, d)
    e = bae.entropy_estimates(bae.PackedCodes.from_dense(h), reps=0, tree_reps=0)
    p = h.mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plug = np.nan_to_num(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))
    assert math.isclose(e["marginal"]["bits"], plug.sum(), rel_tol=1e-12)
    varying = int(((p > 0) & (p < 1)).sum())
    assert e["varying_features"] == varying
    mm = plug.sum() + varying / (2 * n * math.log(2))
    assert math.isclose(e["miller_madow"]["bits"], mm, rel_tol=1e-12)
    assert e["tree"]["bits"] <= e["marginal"]["bits"] + 1e-9
    assert e["marginal"]["lo"] is None and e["rows"] == n


def test_tree_removes_exact_copies(rng):
    n = 2000
    base = rng.random((n, 6)) < 0.3
    h = np.concatenate([base, base[:, :3]], axis=1)  # three exact copies
    e = bae.entropy_estimates(bae.PackedCodes.from_dense(h), reps=0, tree_reps=0)
    p = base.mean(0)
    hb = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    assert math.isclose(e["marginal"]["bits"], hb.sum() + hb[:3].sum(), rel_tol=1e-12)
    # the copies are removed (the tree's other edges only take the sample's small dependences)
    assert hb.sum() - 0.05 <= e["tree"]["bits"] <= hb.sum() + 1e-9


def test_intervals_over_documents(rng):
    n = 3000
    h = random_bits(rng, n, 30)
    docs = np.repeat(np.arange(60), n // 60).astype(np.int32)
    e = bae.entropy_estimates(bae.PackedCodes.from_dense(h), doc_ids=docs, reps=100, tree_reps=10)
    assert e["group_unit"] == "documents" and e["groups"] == 60
    for k in ["marginal", "miller_madow", "tree"]:
        assert e[k]["lo"] <= e[k]["hi"]
    assert e["marginal"]["lo"] <= e["marginal"]["bits"] <= e["marginal"]["hi"]


def test_golden_entropy_sets_match_the_official_values():
    """The official code's f64 values (tests/golden/entropy_sets), computed from Python."""
    from conftest import golden_dir

    t = bae._native.read_tensors(str(golden_dir() / "entropy_sets.safetensors"))
    sets = sorted({k.split(".")[0] for k in t})
    assert len(sets) == 6
    for s in sets:
        h = t[f"{s}.h"]
        c = bae.PackedCodes.from_dense(h)
        np.testing.assert_allclose(bae.firing_rates(c), t[f"{s}.p"], rtol=0, atol=1e-15)
        np.testing.assert_allclose(bae.entropy_bits(c, per_feature=True), t[f"{s}.entropy_per_feature"],
                                   rtol=1e-12, atol=1e-15)
        assert math.isclose(bae.entropy_bits(c), float(t[f"{s}.entropy"]), rel_tol=1e-12, abs_tol=1e-12)
        if h.shape[0] >= 2:
            assert math.isclose(bae.covariance_term(c), float(t[f"{s}.cov"]), rel_tol=1e-12, abs_tol=1e-12)


def test_torch_like_objects_through_the_array_interface(rng):
    class ArrayLike:  # what a CPU torch tensor offers numpy
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a if dtype is None else self.a.astype(dtype)

    h = random_bits(rng, 20, 9)
    c = bae.PackedCodes.from_dense(ArrayLike(h.astype(np.float32)))
    np.testing.assert_array_equal(c.to_dense(), h)


@pytest.mark.parametrize("bad,msg", [
    (np.zeros((2, 3, 4)), "2-D"),
    (np.zeros(5), "2-D"),
    (np.array([["a", "b"]]), "unsupported dtype"),
])
def test_bad_arrays_raise_bae_error(bad, msg):
    with pytest.raises(bae.BaeError, match=msg):
        bae.PackedCodes.from_dense(bad)


def test_bad_words_and_rows_raise():
    with pytest.raises(bae.BaeError, match="words per row"):
        bae.PackedCodes.from_words(np.zeros((3, 1), dtype=np.uint64), 65)
    with pytest.raises(bae.BaeError, match="uint64"):
        bae.PackedCodes.from_words(np.zeros((3, 1), dtype=np.int8), 8)
    with pytest.raises(bae.BaeError, match="at least|rows"):
        bae.covariance_term(bae.PackedCodes.from_dense(np.ones((1, 4), dtype=bool)))
    with pytest.raises(bae.BaeError, match="out of range"):
        bae.PackedCodes.from_dense(np.ones((2, 4), dtype=bool)).take([2])
    with pytest.raises(bae.BaeError, match="doc_ids has 3 entries"):
        bae.entropy_estimates(bae.PackedCodes.from_dense(np.ones((4, 4), dtype=bool)), doc_ids=[0, 1, 2])
