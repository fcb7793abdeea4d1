"""The base class of experiment.py's SAE: sae_bench's BaseSAE interface, light to import.

sae_bench's own BaseSAE module imports transformer_lens (and through it transformers, datasets
and pandas) for one helper that loads a model from the hub: about 7 s of every training run,
which never needs them. This class gives what the evals and the exports read of an SAE:
W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec, .device, .dtype, a sae_bench
CustomSAEConfig as .cfg, and abstract encode / decode / forward. The harness's evaluation
process, which loads the language model anyway, keeps sae_bench's class (saekit/exported_sae.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from sae_bench.custom_saes.custom_sae_config import CustomSAEConfig


class BaseSAE(torch.nn.Module, ABC):
    def __init__(self, d_in: int, d_sae: int, model_name: str, hook_layer: int, device: torch.device,
                 dtype: torch.dtype, hook_name: str | None = None):
        super().__init__()
        self.W_enc = torch.nn.Parameter(torch.zeros(d_in, d_sae))
        self.W_dec = torch.nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        self.device = device
        self.dtype = dtype
        self.cfg = CustomSAEConfig(model_name, d_in=d_in, d_sae=d_sae,
                                   hook_name=hook_name or f"blocks.{hook_layer}.hook_resid_post",
                                   hook_layer=hook_layer)
        self.cfg.dtype = str(dtype).removeprefix("torch.")
        self.to(dtype=dtype, device=device)

    @abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def to(self, *args, **kwargs):
        """Moves the parameters and keeps .device / .dtype in step (the evals read them)."""
        super().to(*args, **kwargs)
        if kwargs.get("device"):
            self.device = kwargs["device"]
        if kwargs.get("dtype"):
            self.dtype = kwargs["dtype"]
        return self

    @torch.no_grad()
    def check_decoder_norms(self) -> bool:
        """Whether every decoder row has unit norm (to bf16 / fp16 rounding where those are used)."""
        norms = self.W_dec.norm(dim=1)
        tolerance = 1e-2 if self.W_dec.dtype in (torch.bfloat16, torch.float16) else 1e-5
        return bool(torch.allclose(norms, torch.ones_like(norms), atol=tolerance))
