"""The "binary" architecture for SAELens 6, so that `SAE.load_from_disk` loads a BAE exported by
`bae export --format saelens`.

    import bae.saelens                 # registers "binary" (idempotent)
    from sae_lens import SAE
    sae = SAE.load_from_disk("runs/main-saelens")
    codes = sae.encode(x)              # 0/1 floats: 1[x W_enc + b_enc > 0], strictly positive
    x_hat = sae.decode(codes)          # codes W_dec + b_dec

SAELens's registry (`sae_lens.register_sae_class`) maps an architecture name to an SAE class and its
config dataclass; this module registers `BinarySAE` / `BinarySAEConfig` under "binary". The class is
inference only (a BAE is trained by `bae train`: its entropy and covariance terms and the x(1-x)
gradient estimator are not SAELens training code). Needs torch and sae_lens 6.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from sae_lens import SAE, SAEConfig, register_sae_class
from sae_lens.registry import SAE_CLASS_REGISTRY
from torch import nn
from typing_extensions import override

ARCHITECTURE = "binary"


class Heaviside(nn.Module):
    """1[z > 0] in z's dtype (strict: 0 maps to 0), bae's binariser."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z > 0).to(z.dtype)


@dataclass
class BinarySAEConfig(SAEConfig):
    """Config of an exported BAE: the SAELens base fields only (d_in, d_sae, dtype, device, ...)."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return ARCHITECTURE


class BinarySAE(SAE[BinarySAEConfig]):
    """Binary autoencoder: features are the codes 1[x W_enc + b_enc > 0], reconstruction codes W_dec + b_dec.

    Parameters as SAELens's standard SAE: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in].
    """

    b_enc: nn.Parameter

    def __init__(self, cfg: BinarySAEConfig, use_error_term: bool = False):
        super().__init__(cfg, use_error_term)

    @override
    def initialize_weights(self) -> None:
        super().initialize_weights()
        self.b_enc = nn.Parameter(torch.zeros(self.cfg.d_sae, dtype=self.dtype, device=self.device))

    @override
    def get_activation_fn(self):
        return Heaviside()

    @override
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        sae_in = self.process_sae_in(x)
        hidden_pre = self.hook_sae_acts_pre(sae_in @ self.W_enc + self.b_enc)
        return self.hook_sae_acts_post(self.activation_fn(hidden_pre))

    @override
    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        sae_out_pre = feature_acts @ self.W_dec + self.b_dec
        sae_out_pre = self.hook_sae_recons(sae_out_pre)
        sae_out_pre = self.run_time_activation_norm_fn_out(sae_out_pre)
        return self.reshape_fn_out(sae_out_pre, self.d_head)


def register() -> type[BinarySAE]:
    """Register "binary" with SAELens (once; later calls do nothing). Returns the class."""
    registered = SAE_CLASS_REGISTRY.get(ARCHITECTURE)
    if registered is None:
        register_sae_class(ARCHITECTURE, BinarySAE, BinarySAEConfig)
    elif registered[0] is not BinarySAE:
        raise ValueError(f"SAELens already has a different {ARCHITECTURE!r} architecture: {registered[0]}")
    return BinarySAE


register()
