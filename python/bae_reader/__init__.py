"""Read `bae` autoencoders with numpy: a `bae train` run folder or a `bae export --format saelens` folder.

    import bae_reader
    m = bae_reader.load("runs/main")            # or an export folder: cfg.json + sae_weights.safetensors
    codes = m.codes(x)                          # BAE: bool [n, d_sae], 1[x W_enc + b_enc > 0] (strict)
    feats = m.encode(x)                         # float32 [n, d_sae]: 0/1 codes for a BAE, activations for SAEs
    x_hat = m.decode(feats)                     # feats W_dec + b_dec

Only numpy and safetensors are needed. Weights are W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in],
b_dec [d_in] (bae's golden layout, which is also SAELens's). The encoder follows bae's forward
(`crates/bae-ref/src/model.rs`):

    bae       codes = 1[z > 0]                  (z = x W_enc + b_enc; z = 0 gives 0)
    relu-l1   a = relu(z)
    topk      a = z * 1[z >= k-th largest of the row]   (official semantics: no ReLU, ties keep all)
    jumprelu  a = z * 1[z > theta]              (theta fixed, not learned)

`encode(x, semantics="saelens")` gives SAELens 6's forward instead (TopK: exactly k values, then ReLU;
JumpReLU: relu(z) * 1[z > threshold]); the two agree except for TopK rows whose k-th largest value is
negative (and exact ties), and JumpReLU with a negative threshold.

`bae_reader.saelens.register()` (needs torch and sae_lens 6) adds the "binary" architecture to SAELens,
so `SAE.load_from_disk(export_folder)` loads an exported BAE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

__all__ = ["Autoencoder", "load", "load_reference", "BaeReaderError"]

ARCHS = ("bae", "relu-l1", "topk", "jumprelu")
# SAELens architecture names of an export, and the bae architecture each comes from
SAELENS_TO_BAE = {"binary": "bae", "standard": "relu-l1", "topk": "topk", "jumprelu": "jumprelu"}


class BaeReaderError(ValueError):
    """A folder or file that is not a readable bae model; the message names the file."""


@dataclass
class Autoencoder:
    arch: str
    W_enc: np.ndarray
    b_enc: np.ndarray
    W_dec: np.ndarray
    b_dec: np.ndarray
    k: int | None = None
    # one threshold per feature (jumprelu); a run folder's single theta is broadcast
    threshold: np.ndarray | None = None
    source: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    def _input(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise BaeReaderError(f"input has shape {x.shape}, expected [n, {self.d_in}]")
        return x

    def pre(self, x: Any) -> np.ndarray:
        """Pre-activations z = x W_enc + b_enc, float32 [n, d_sae]."""
        return self._input(x) @ self.W_enc + self.b_enc

    def codes(self, x: Any) -> np.ndarray:
        """BAE codes 1[z > 0] as bool [n, d_sae] (strictly positive: z = 0 gives False)."""
        if self.arch != "bae":
            raise BaeReaderError(f"{self.source}: codes() is for a BAE; this is {self.arch} (use encode)")
        return self.pre(x) > 0

    def activate(self, z: np.ndarray, semantics: str = "bae") -> np.ndarray:
        """The architecture's activation applied to pre-activations z."""
        if semantics not in ("bae", "saelens"):
            raise BaeReaderError(f"semantics must be 'bae' or 'saelens', not {semantics!r}")
        z = np.asarray(z, dtype=np.float32)
        if self.arch == "bae":
            return (z > 0).astype(np.float32)
        if self.arch == "relu-l1":
            return np.where(z > 0, z, np.float32(0))
        if self.arch == "jumprelu":
            keep = z > self.threshold
            if semantics == "saelens":
                keep &= z > 0
            return np.where(keep, z, np.float32(0))
        # topk
        k = min(max(int(self.k), 1), z.shape[1])
        if semantics == "bae":
            kth = -np.partition(-z, k - 1, axis=1)[:, k - 1 : k]
            return np.where(z >= kth, z, np.float32(0))
        idx = np.argpartition(-z, k - 1, axis=1)[:, :k]
        out = np.zeros_like(z)
        rows = np.arange(z.shape[0])[:, None]
        out[rows, idx] = np.maximum(z[rows, idx], 0)
        return out

    def encode(self, x: Any, semantics: str = "bae") -> np.ndarray:
        """Features, float32 [n, d_sae]: the 0/1 codes of a BAE, the activations of an SAE."""
        return self.activate(self.pre(x), semantics)

    def decode(self, feats: Any) -> np.ndarray:
        """Reconstruction feats W_dec + b_dec, float32 [n, d_in]."""
        f = np.asarray(feats, dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != self.d_sae:
            raise BaeReaderError(f"features have shape {f.shape}, expected [n, {self.d_sae}]")
        return f @ self.W_dec + self.b_dec

    def forward(self, x: Any, semantics: str = "bae") -> tuple[np.ndarray, np.ndarray]:
        f = self.encode(x, semantics)
        return f, self.decode(f)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        v = json.loads(path.read_text())
    except OSError as e:
        raise BaeReaderError(f"{path}: cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise BaeReaderError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(v, dict):
        raise BaeReaderError(f"{path}: not a JSON object")
    return v


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise BaeReaderError(f"{path}: no such file")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types
        raise BaeReaderError(f"{path}: not a readable safetensors file: {e}") from None


def _weights(path: Path, tensors: dict[str, np.ndarray], extra: tuple[str, ...] = ()) -> list[np.ndarray]:
    names = ("W_enc", "b_enc", "W_dec", "b_dec") + extra
    for n in names:
        if n not in tensors:
            raise BaeReaderError(f"{path}: missing tensor {n}")
    w_enc = tensors["W_enc"]
    if w_enc.ndim != 2:
        raise BaeReaderError(f"{path}: W_enc has shape {list(w_enc.shape)}, expected [d_in, d_sae]")
    d, dc = w_enc.shape
    want = {"W_enc": (d, dc), "b_enc": (dc,), "W_dec": (dc, d), "b_dec": (d,), "threshold": (dc,)}
    out = []
    for n in names:
        t = tensors[n]
        if tuple(t.shape) != want[n]:
            raise BaeReaderError(f"{path}: {n} has shape {list(t.shape)}, expected {list(want[n])}")
        out.append(np.ascontiguousarray(t, dtype=np.float32))
    return out


def _load_run(folder: Path) -> Autoencoder:
    cfg = _read_json(folder / "config.json")
    arch = cfg.get("arch")
    if arch not in ARCHS:
        raise BaeReaderError(f"{folder / 'config.json'}: arch {arch!r} is not one of {', '.join(ARCHS)}")
    mpath = folder / "model.safetensors"
    if not mpath.is_file():
        raise BaeReaderError(f"{mpath}: the run folder has no model (training unfinished?)")
    w_enc, b_enc, w_dec, b_dec = _weights(mpath, _read_tensors(mpath))
    m = Autoencoder(arch, w_enc, b_enc, w_dec, b_dec, source=str(folder), config=cfg)
    if arch == "topk":
        m.k = int(cfg["k"])
    if arch == "jumprelu":
        # bae compares with theta rounded to the working precision (f32)
        m.threshold = np.full(m.d_sae, np.float32(cfg["theta"]), dtype=np.float32)
    return m


def _load_export(folder: Path) -> Autoencoder:
    cpath = folder / "cfg.json"
    cfg = _read_json(cpath)
    sa = cfg.get("architecture")
    if sa not in SAELENS_TO_BAE:
        raise BaeReaderError(
            f"{cpath}: architecture {sa!r} is not one bae exports ({', '.join(SAELENS_TO_BAE)})"
        )
    if cfg.get("apply_b_dec_to_input", True) or cfg.get("normalize_activations", "none") != "none":
        raise BaeReaderError(
            f"{cpath}: apply_b_dec_to_input / normalize_activations are not those of a bae export (false / none)"
        )
    wpath = folder / "sae_weights.safetensors"
    extra = ("threshold",) if sa == "jumprelu" else ()
    ws = _weights(wpath, _read_tensors(wpath), extra)
    m = Autoencoder(SAELENS_TO_BAE[sa], *ws[:4], source=str(folder), config=cfg)
    if sa == "topk":
        if not isinstance(cfg.get("k"), int):
            raise BaeReaderError(f"{cpath}: topk without an integer k")
        m.k = cfg["k"]
    if sa == "jumprelu":
        m.threshold = ws[4]
    return m


def load(path: str | Path) -> Autoencoder:
    """A `bae train` run folder (config.json + model.safetensors) or a `bae export` folder (cfg.json +
    sae_weights.safetensors)."""
    folder = Path(path)
    if not folder.is_dir():
        raise BaeReaderError(f"{folder}: not a folder")
    if (folder / "cfg.json").is_file():
        return _load_export(folder)
    if (folder / "config.json").is_file():
        return _load_run(folder)
    raise BaeReaderError(f"{folder}: neither a bae run folder (config.json) nor an export (cfg.json)")


def load_reference(path: str | Path) -> dict[str, np.ndarray]:
    """`reference.safetensors` of an export (`bae export --with-reference N`): x [n, d_in] and bae's own
    hidden_pre, feature_acts [n, d_sae] and sae_out [n, d_in]."""
    p = Path(path)
    if p.is_dir():
        p = p / "reference.safetensors"
    t = _read_tensors(p)
    for n in ("x", "hidden_pre", "feature_acts", "sae_out"):
        if n not in t:
            raise BaeReaderError(f"{p}: missing tensor {n}")
    return t
