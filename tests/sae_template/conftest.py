"""Tests of the SAE template, run with the experiment interpreter:

    .venvs/sae/bin/python -m pytest tests/sae_template

saekit is imported from the template folder itself, as experiment.py imports it in a workspace.
"""

import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "sae_variants"
EVALUATION_STACK = ("transformer_lens", "transformers", "datasets", "pandas")
"""What only the evaluation needs (the language model's stack): a training process imports none of it."""
sys.path.insert(0, str(TEMPLATE))

import torch  # noqa: E402

from saekit.lm import LanguageModel  # noqa: E402


@pytest.fixture(scope="session")
def template_dir() -> Path:
    return TEMPLATE


@pytest.fixture
def tiny_lm() -> LanguageModel:
    """A 3-block transformer_lens model with random weights: real forward passes, instantly."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=3, d_model=8, d_head=4, n_heads=2, d_mlp=16, d_vocab=11, n_ctx=16,
        act_fn="gelu", normalization_type="LN", model_name="tiny", device="cpu",
    )
    model = HookedTransformer(cfg)
    model.eval()
    return LanguageModel(
        model=model, tokenizer=None, name="tiny", hook_layer=0, hook_name="blocks.0.hook_resid_post",
        bos_id=0, special_ids=frozenset({0}),
    )


class LinearSAE:
    """Builds sae_bench BaseSAEs with weights chosen by a test: f = relu(x W_enc + b_enc), x_hat = f W_dec + b_dec."""

    @staticmethod
    def make(W_enc: torch.Tensor, W_dec: torch.Tensor, b_enc=None, b_dec=None, hook_layer: int = 0):
        from sae_bench.custom_saes.base_sae import BaseSAE

        class _SAE(BaseSAE):
            def encode(self, x):
                return torch.relu(x @ self.W_enc + self.b_enc)

            def decode(self, f):
                return f @ self.W_dec + self.b_dec

            def forward(self, x):
                return self.decode(self.encode(x))

        d_in, d_sae = W_enc.shape
        sae = _SAE(d_in, d_sae, "tiny", hook_layer, torch.device("cpu"), torch.float32)
        sae.cfg.architecture_str = "relu"
        with torch.no_grad():
            sae.W_enc.copy_(W_enc)
            sae.W_dec.copy_(W_dec)
            if b_enc is not None:
                sae.b_enc.copy_(b_enc)
            if b_dec is not None:
                sae.b_dec.copy_(b_dec)
        return sae


@pytest.fixture
def linear_sae():
    return LinearSAE.make
