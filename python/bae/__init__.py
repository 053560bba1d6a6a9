"""Binary autoencoders from Python: the `bae` workspace's statistics, models and stores.

    import bae
    codes = bae.PackedCodes.from_dense(h)          # bool / uint8 / float (> 0) array, numpy or torch
    bae.entropy_bits(codes)                        # the paper's Σ_j H(p_j), bits
    bae.entropy_estimates(codes, doc_ids=docs)     # marginal, Miller–Madow, Chow–Liu tree, intervals
    bae.coactivation_counts(codes)                 # exact uint32 N_jk by AND + popcount

    m = bae.load("runs/main")                      # a `bae train` run or a SAELens export folder
    codes = m.encode(x)                            # BAE: PackedCodes; SAEs: float32 activations
    x_hat = m.decode(codes)

    store = bae.open_store("data/activations/block15")   # shards as numpy memmaps
    bae.write_store("acts/gpt2-l6", hidden_states)         # any model's states -> `bae train --data`
    coded = bae.open_codes("runs/main/codes")              # `bae encode` output, still packed

Everything heavy runs in Rust (bae._native) with the GIL released, on all cores. Errors are
`bae.BaeError` (a ValueError) with the same one-line messages as the `bae` command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import _native
from ._native import (
    BaeError,
    PackedCodes,
    coactivation_counts,
    covariance_term,
    entropy_bits,
    entropy_estimates,
    firing_counts,
    firing_rates,
)

__all__ = [
    "BaeError",
    "PackedCodes",
    "Model",
    "ActivationStore",
    "CodeStore",
    "load",
    "load_reference",
    "read_tensors",
    "open_store",
    "write_store",
    "open_codes",
    "firing_counts",
    "firing_rates",
    "entropy_bits",
    "entropy_estimates",
    "coactivation_counts",
    "covariance_term",
]


class Model:
    """A trained autoencoder (`bae.load`): a BAE or one of the SAE baselines, with bae's forward.

    `encode(x)` gives the BAE's codes `1[x W_enc + b_enc > 0]` as PackedCodes (`packed=False`: a
    bool array) or an SAE's float32 activations; `decode` and `reconstruct` give float32 rows.
    `encode(x, semantics="saelens")` applies SAELens 6's activations instead (TopK: exactly k, then
    ReLU; JumpReLU: ReLU before the threshold) as float32; bae's and SAELens's agree except on TopK
    rows whose k-th largest value is negative (or tied) and on a negative JumpReLU threshold.
    """

    def __init__(self, native: _native.Model):
        self._m = native
        self.config: dict[str, Any] = json.loads(native.config_json)
        self.summary: Optional[dict[str, Any]] = (
            json.loads(native.summary_json) if native.summary_json is not None else None
        )

    arch = property(lambda self: self._m.arch, doc='"bae", "relu-l1", "topk" or "jumprelu"')
    d = property(lambda self: self._m.d, doc="input width")
    d_code = property(lambda self: self._m.d_code, doc="code width d'")
    k = property(lambda self: self._m.k, doc="TopK's k (None otherwise)")
    threshold = property(lambda self: self._m.threshold, doc="JumpReLU's threshold (None otherwise)")
    path = property(lambda self: Path(self._m.path), doc="the folder it was loaded from")
    kind = property(lambda self: self._m.kind, doc='"run" or "saelens" (an export)')

    def weights(self) -> dict[str, np.ndarray]:
        """W_enc [d, d'], b_enc [d'], W_dec [d', d], b_dec [d] as new float32 arrays."""
        return self._m.weights()

    def pre(self, x: Any) -> np.ndarray:
        """Pre-activations z = x W_enc + b_enc (float32 [n, d'])."""
        return self._m.pre(x)

    def encode(self, x: Any, packed: bool = True, semantics: str = "bae") -> Any:
        if semantics == "bae":
            return self._m.encode(x, packed)
        if semantics != "saelens":
            raise BaeError(f"semantics must be 'bae' or 'saelens', got {semantics!r}")
        z = self.pre(x)
        if self.arch == "bae":
            return (z > 0).astype(np.float32)
        if self.arch == "relu-l1":
            return np.maximum(z, 0)
        if self.arch == "topk":
            k = min(self.k, z.shape[1])
            keep = np.argpartition(-z, k - 1, axis=1)[:, :k]
            out = np.zeros_like(z)
            np.put_along_axis(out, keep, np.maximum(np.take_along_axis(z, keep, axis=1), 0), axis=1)
            return out
        return np.where(z > self.threshold, np.maximum(z, 0), 0).astype(np.float32)

    def codes(self, x: Any) -> np.ndarray:
        """Which features are active, as a bool array [n, d'] (a BAE's codes; z > 0 gives 1)."""
        if self.arch == "bae":
            return self._m.encode(x, False)
        return self._m.encode(x, True) != 0

    def forward(self, x: Any, semantics: str = "bae") -> "tuple[np.ndarray, np.ndarray]":
        """(features as float32 [n, d'], reconstruction float32 [n, d]) under `semantics`."""
        feats = self.encode(x, packed=False, semantics=semantics)
        feats = np.asarray(feats, dtype=np.float32)
        return feats, self.decode(feats)

    def with_k(self, k: int) -> "Model":
        """The same TopK model keeping k values a row (a sweep over k at inference)."""
        return Model(self._m.with_k(k))

    def decode(self, codes: Any) -> np.ndarray:
        """Reconstruction act W_dec + b_dec (float32 [n, d]) from PackedCodes or a 2-D array."""
        return self._m.decode(codes)

    def reconstruct(self, x: Any) -> np.ndarray:
        """decode(encode(x)) with bae's forward (float32 [n, d])."""
        return self._m.reconstruct(x)

    def __repr__(self) -> str:
        return repr(self._m)


def load(path: "str | Path") -> Model:
    """Opens a `bae train` run folder (config.json + model.safetensors) or a `bae export --format
    saelens` folder (cfg.json + sae_weights.safetensors)."""
    return Model(_native.load(str(path)))


def read_tensors(path: "str | Path") -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a float64 array (exact for F16/BF16/F32/F64)."""
    return _native.read_tensors(str(path))


def load_reference(path: "str | Path") -> dict[str, np.ndarray]:
    """The tensors of an export's reference.safetensors (`bae export --with-reference N`):
    x, hidden_pre, feature_acts, sae_out, as float32 arrays."""
    p = Path(path)
    t = _native.read_tensors(str(p / "reference.safetensors" if p.is_dir() else p))
    return {k: v.astype(np.float32) for k, v in t.items()}


_NUMPY_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I32": np.int32,
                 "I64": np.int64, "U8": np.uint8, "BF16": np.uint16}


@dataclass
class Shard:
    """One shard of an activation store: numpy memmaps of its tensors (no copy)."""

    path: Path
    rows: int
    activations: np.ndarray
    """[rows, d]; for bf16 stores the raw uint16 bit patterns (`ActivationStore.rows` converts)"""
    doc_ids: Optional[np.ndarray]
    token_ids: Optional[np.ndarray]
    positions: Optional[np.ndarray]


class ActivationStore:
    """An extract folder (`bae extract`, or `write_store`) as memory-mapped shards."""

    def __init__(self, native: _native.ActivationShards):
        self._s = native
        self.manifest: dict[str, Any] = json.loads(native.manifest_json)
        self.dtype: str = self.manifest["dtype"]
        self.shards: list[Shard] = []
        for path, rows, tensors in native.layout():
            maps = {name: _memmap(path, *layout) for name, layout in tensors.items()}
            self.shards.append(Shard(Path(path), rows, maps["activations"], maps.get("doc_ids"),
                                     maps.get("token_ids"), maps.get("positions")))

    rows_total = property(lambda self: self._s.rows, doc="rows in all shards")
    d = property(lambda self: self._s.d, doc="row width")
    dir = property(lambda self: Path(self._s.dir), doc="the block folder (holds manifest.json)")

    def __len__(self) -> int:
        return self._s.rows

    def rows(self, index: Any) -> np.ndarray:
        """Rows at the global row numbers `index`, as float32 [len(index), d]."""
        return self._s.gather(np.asarray(index, dtype=np.int64).ravel().tolist())

    def column(self, name: str) -> Optional[np.ndarray]:
        """One id column ("doc_ids", "token_ids", "positions") over all shards, or None."""
        parts = [getattr(s, name) for s in self.shards]
        return None if any(p is None for p in parts) else np.concatenate(parts)


def _memmap(path: str, dtype: str, shape: list[int], offset: int) -> np.ndarray:
    if dtype not in _NUMPY_DTYPES:
        raise BaeError(f"{path}: tensor dtype {dtype} has no numpy equivalent")
    return np.memmap(path, dtype=_NUMPY_DTYPES[dtype], mode="r", offset=offset, shape=tuple(shape))


def write_store(path: "str | Path", activations: Any, token_ids: Any = None, doc_ids: Any = None,
                positions: Any = None, metadata: Optional[dict[str, Any]] = None, dtype: str = "f16",
                shard_rows: int = 65536, complete: bool = True) -> int:
    """Appends hidden states (2-D [rows, d], numpy or torch) to an extract store at `path`, in the
    format `bae extract` writes, so `bae train --data PATH` trains on them. Each shard and then
    manifest.json is written atomically: an interrupted call leaves its complete shards, and a
    later call continues the store (same width and dtype). `metadata` may name "model", "block",
    "tokenizer", "window" and "docs" (document names, indexed by doc_ids); its other entries go to
    every shard's safetensors metadata as strings. Returns the rows the store holds."""
    meta = dict(metadata or {})
    known = {k: meta.pop(k) for k in ("model", "block", "tokenizer", "window", "docs") if k in meta}
    ids = [None if v is None else np.asarray(v, dtype=np.int32).ravel().tolist()
           for v in (token_ids, doc_ids, positions)]
    return _native.write_store(
        str(path), activations, ids[0], ids[1], ids[2],
        model=str(known.get("model", "unknown")), block=int(known.get("block", 0)),
        tokenizer=str(known.get("tokenizer", "")), window=int(known.get("window", 0)),
        docs=[str(d) for d in known.get("docs", [])], metadata={str(k): str(v) for k, v in meta.items()},
        dtype=dtype, shard_rows=shard_rows, complete=complete)


def open_store(path: "str | Path") -> ActivationStore:
    """Opens an extract folder (a block folder, or an extract folder with one block)."""
    return ActivationStore(_native.open_shards(str(path)))


@dataclass
class CodeStore:
    """A `bae encode` folder: the codes, still bit-packed, and their id columns."""

    codes: PackedCodes
    token_ids: np.ndarray
    doc_ids: np.ndarray
    positions: np.ndarray
    settings: dict[str, Any]
    complete: bool


def open_codes(path: "str | Path") -> CodeStore:
    """Reads the bit-packed code shards of `bae encode --out DIR` without unpacking them."""
    codes, tok, doc, pos, settings, complete = _native.read_codes(str(path))
    return CodeStore(codes, tok, doc, pos, json.loads(settings), complete)
