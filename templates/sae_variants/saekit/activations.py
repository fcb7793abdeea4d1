"""Residual-stream activations at the hook, collected once per configuration and cached on disk.

Collection runs only the blocks up to the hook (stop_at_layer), about 9x cheaper than a full pass
on the default model. Two artefacts, with separate keys so that changing eval sizes never
re-collects the training set:

- train:     [train_tokens, d_model] activations (BOS / special-token positions dropped), in
             `activation_dtype`, read by the trainer;
- core eval: eval-split token rows with their float32 activations, plus everything of the
             core eval that does not depend on the SAE: clean logits and per-token loss of the
             reconstruction rows, and the logits with the hook zero-ablated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import cache
from .config import ExperimentConfig
from .corpus import corpus_fingerprint, token_rows
from .lm import DTYPES, LanguageModel
from .timing import LM_FORWARD

COLLECT_ROWS = 16  # rows per forward pass while collecting


@torch.no_grad()
def hook_activations(lm: LanguageModel, tokens: torch.Tensor, rows_per_pass: int = COLLECT_ROWS) -> torch.Tensor:
    """[rows, ctx] tokens -> [rows, ctx, d_model] float32 residual stream after block hook_layer."""
    out = []
    for chunk in tokens.split(rows_per_pass):
        with LM_FORWARD.timing():
            resid = lm.model(chunk.to(lm.model.cfg.device), stop_at_layer=lm.hook_layer + 1)
        out.append(resid.float().cpu())
    return torch.cat(out)


def special_mask(tokens: torch.Tensor, lm: LanguageModel) -> torch.Tensor:
    """True where the token is BOS / EOS / PAD (positions SAEBench leaves out of its metrics)."""
    return torch.isin(tokens, torch.tensor(sorted(lm.special_ids), dtype=tokens.dtype))


def train_key(cfg: ExperimentConfig) -> dict:
    return {
        "what": "train activations",
        "model": cfg.model,
        "hook": cfg.hook_name,
        "llm_dtype": cfg.llm_dtype,
        "context_length": cfg.context_length,
        "n_tokens": cfg.train_tokens,
        "dtype": cfg.activation_dtype,
        **corpus_fingerprint(cfg.seed),
    }


def core_eval_key(cfg: ExperimentConfig) -> dict:
    c = cfg.core
    return {
        "what": "core eval",
        "model": cfg.model,
        "hook": cfg.hook_name,
        "llm_dtype": cfg.llm_dtype,
        "context_length": cfg.context_length,
        "rows": c.batch_size_prompts * max(c.n_eval_sparsity_variance_batches, c.n_eval_reconstruction_batches),
        "reconstruction_rows": c.batch_size_prompts * c.n_eval_reconstruction_batches,
        "format": 1,
        **corpus_fingerprint(cfg.seed),
    }


def _build_train(cfg: ExperimentConfig, lm: LanguageModel, out: Path) -> None:
    n_rows = math.ceil(cfg.train_tokens / (cfg.context_length - 1) * 1.01) + 1
    tokens = torch.from_numpy(token_rows(lm.tokenizer, "train", n_rows, cfg.context_length, lm.bos_id, cfg.seed))
    dtype = DTYPES[cfg.activation_dtype]
    kept, n = [], 0
    for chunk in tokens.split(256):
        acts = hook_activations(lm, chunk)
        keep = ~special_mask(chunk, lm)
        keep[:, 0] = False  # position 0 is an outlier whatever the token
        kept.append(acts[keep].to(dtype))
        n += kept[-1].shape[0]
        if n >= cfg.train_tokens:
            break
    acts = torch.cat(kept)[: cfg.train_tokens].contiguous()
    if acts.shape[0] < cfg.train_tokens:
        raise RuntimeError(f"collected {acts.shape[0]} training tokens, wanted {cfg.train_tokens}")
    torch.save(acts, out / "acts.pt")


@torch.no_grad()
def core_eval_tensors(lm: LanguageModel, tokens: torch.Tensor, n_reconstruction_rows: int) -> dict:
    """Everything of the core eval that does not depend on the SAE, for these token rows."""
    model = lm.model
    acts = hook_activations(lm, tokens)
    logits, losses = [], []
    for chunk in tokens[:n_reconstruction_rows].split(8):
        with LM_FORWARD.timing():
            lg, loss = model(chunk.to(model.cfg.device), return_type="both", loss_per_token=True)
        logits.append(lg.to(torch.float16).cpu())  # 2 bytes x vocab per token: the largest artefact
        losses.append(loss.float().cpu())
    # With the residual stream zeroed at the hook no information about the tokens is left, so
    # the zero-ablated logits are the same for every row: one row is stored, and checked.
    dtype = next(model.parameters()).dtype
    zeros = torch.zeros(2, tokens.shape[1], lm.d_model, dtype=dtype, device=model.cfg.device)
    with LM_FORWARD.timing():
        zero_logits = model(zeros, start_at_layer=lm.hook_layer + 1, return_type="logits").float().cpu()
    if not torch.allclose(zero_logits[0], zero_logits[1], atol=1e-4):
        raise RuntimeError("zero-ablated logits differ between rows; the single-row cache would be wrong")
    return {
        "tokens": tokens,
        "acts": acts,
        "clean_logits": torch.cat(logits),
        "clean_loss": torch.cat(losses),
        "zero_abl_logits": zero_logits[0],
    }


def _build_core_eval(cfg: ExperimentConfig, lm: LanguageModel, out: Path) -> None:
    key = core_eval_key(cfg)
    rows = token_rows(lm.tokenizer, "eval", key["rows"], cfg.context_length, lm.bos_id, cfg.seed)
    tensors = core_eval_tensors(lm, torch.from_numpy(rows).long(), key["reconstruction_rows"])
    torch.save(tensors, out / "core_eval.pt")


@dataclass
class CoreEvalData:
    tokens: torch.Tensor  # [rows, ctx] int64
    acts: torch.Tensor  # [rows, ctx, d] float32
    clean_logits: torch.Tensor  # [reconstruction rows, ctx, vocab] float16 (memory-mapped)
    clean_loss: torch.Tensor  # [reconstruction rows, ctx - 1]
    zero_abl_logits: torch.Tensor  # [ctx, vocab], the same for every row


def train_activations(cfg: ExperimentConfig, lm: LanguageModel | Callable[[], LanguageModel]) -> torch.Tensor:
    """The cached training activations (memory-mapped). `lm` may be a function that loads the
    model: it is called only if the activations must be collected."""
    def build(out: Path) -> None:
        _build_train(cfg, lm() if callable(lm) else lm, out)

    path = cache.cached_dir("activations", train_key(cfg), build)
    return torch.load(path / "acts.pt", mmap=True)


def core_eval_data(cfg: ExperimentConfig, lm: LanguageModel) -> CoreEvalData:
    path = cache.cached_dir("core_eval", core_eval_key(cfg), lambda out: _build_core_eval(cfg, lm, out))
    return CoreEvalData(**torch.load(path / "core_eval.pt", mmap=True))


class ActivationBatches:
    """Shuffled batches of training activations as float32, one epoch after another.

    The whole set is read into memory once (0.6 GB at the default size); shuffling is by a
    seeded permutation per epoch so that runs are reproducible.
    """

    def __init__(self, acts: torch.Tensor, batch_size: int, seed: int, device: str = "cpu"):
        self.acts = acts.clone()  # out of the memory map: random row access is then cheap
        self.batch_size = batch_size
        self.device = device
        self.gen = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def __len__(self) -> int:
        return self.acts.shape[0]

    def next(self) -> torch.Tensor:
        if self._pos + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self), generator=self.gen)
            self._pos = 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return self.acts[idx].to(device=self.device, dtype=torch.float32)
