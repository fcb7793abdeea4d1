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
import mmap
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import cache
from .config import ExperimentConfig
from .corpus import corpus_fingerprint, token_rows
from .lm import DTYPES, LanguageModel
from .timing import LM_FORWARD

COLLECT_ROWS = 16  # rows per forward pass while collecting
TRAIN_FILE = "acts.npy"  # [train_tokens, d_model], a NumPy array file: memory-mapped when read
STORED = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.int16}  # NumPy has no bfloat16


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
        "format": 2,  # 2: acts.npy, written and read through a memory map (1: acts.pt, read whole)
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
    """Written chunk by chunk into a memory-mapped .npy whose pages are dropped after each chunk,
    so collecting 2.5M tokens needs about the memory of 500k (bench/activation_memory.py)."""
    n_rows = math.ceil(cfg.train_tokens / (cfg.context_length - 1) * 1.01) + 1
    tokens = torch.from_numpy(token_rows(lm.tokenizer, "train", n_rows, cfg.context_length, lm.bos_id, cfg.seed))
    dtype = DTYPES[cfg.activation_dtype]
    store = np.lib.format.open_memmap(out / TRAIN_FILE, mode="w+", dtype=STORED[dtype],
                                      shape=(cfg.train_tokens, lm.d_model))
    n = 0
    for chunk in tokens.split(256):
        acts = hook_activations(lm, chunk)
        keep = ~special_mask(chunk, lm)
        keep[:, 0] = False  # position 0 is an outlier whatever the token
        rows = acts[keep].to(dtype)[: cfg.train_tokens - n]
        store[n : n + len(rows)] = rows.view(torch.int16).numpy() if dtype == torch.bfloat16 else rows.numpy()
        n += len(rows)
        store.flush()
        release_pages(store)
        if n >= cfg.train_tokens:
            break
    del store
    if n < cfg.train_tokens:
        raise RuntimeError(f"collected {n} training tokens, wanted {cfg.train_tokens}")


def release_pages(array: np.memmap) -> None:
    """Drop the mapping's resident pages: the file and the page cache keep the data, and the next
    read of a row faults its page back in. (For a copy-on-write mapping, rows written in place
    would revert to the file's: the training set is read-only.)"""
    array._mmap.madvise(mmap.MADV_DONTNEED)


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
    return mapped_rows(path / TRAIN_FILE, DTYPES[cfg.activation_dtype])


def mapped_rows(path: Path, dtype: torch.dtype) -> torch.Tensor:
    """A .npy file as a tensor over a copy-on-write memory map (writes stay in this process);
    ActivationBatches finds the file again through `.file_map` and reads its batches itself."""
    array = np.load(path, mmap_mode="c")
    rows = torch.from_numpy(array).view(dtype)
    rows.file_map = array
    return rows


def core_eval_data(cfg: ExperimentConfig, lm: LanguageModel) -> CoreEvalData:
    path = cache.cached_dir("core_eval", core_eval_key(cfg), lambda out: _build_core_eval(cfg, lm, out))
    return CoreEvalData(**torch.load(path / "core_eval.pt", mmap=True))


class ActivationBatches:
    """Shuffled batches of training activations as float32, one epoch after another.

    Shuffling is a seeded permutation of all rows per epoch, so runs are reproducible. A set from
    `mapped_rows` stays on disk: each batch's rows are read with one pread each, served by the page
    cache (about as fast as indexing rows in memory; a background reader thread was slower, as
    its Python loop holds the GIL the training step needs), so resident memory does not grow with
    train_tokens. Gathering through the memory map instead would leave most of the file mapped
    after a single batch: the kernel maps whole folios around each faulting row. On a GPU each
    batch goes through pinned memory.
    """

    def __init__(self, acts: torch.Tensor, batch_size: int, seed: int, device: str = "cpu"):
        self.acts = acts
        self.batch_size = batch_size
        self.device = device
        self.gen = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0
        file_map = getattr(acts, "file_map", None)
        self.reader = RowReader(file_map, acts.dtype) if file_map is not None else None
        if self.reader:
            release_pages(file_map)  # rows read through the map before training (input scale, mean)

    def __len__(self) -> int:
        return self.acts.shape[0]

    def _next_indices(self) -> torch.Tensor:
        if self._pos + self.batch_size > len(self._order):
            self._order = torch.randperm(len(self), generator=self.gen)
            self._pos = 0
        idx = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def next(self) -> torch.Tensor:
        idx = self._next_indices()
        batch = self.reader.read(idx.tolist()) if self.reader else self.acts[idx]
        if self.device.startswith("cuda"):
            return batch.pin_memory().to(device=self.device, dtype=torch.float32, non_blocking=True)
        return batch.to(device=self.device, dtype=torch.float32)


class RowReader:
    """Rows of a .npy file read by index with pread."""

    def __init__(self, file_map: np.memmap, dtype: torch.dtype):
        self.fd = os.open(file_map.filename, os.O_RDONLY)
        self.offset = file_map.offset
        self.row_shape = file_map.shape[1:]
        self.row_bytes = file_map[0].nbytes
        self.dtype = dtype
        weakref.finalize(self, os.close, self.fd)

    def read(self, rows: list[int]) -> torch.Tensor:
        out = torch.empty((len(rows), *self.row_shape), dtype=self.dtype)
        view = memoryview(out.view(torch.uint8).numpy()).cast("B")
        size, fd, start = self.row_bytes, self.fd, self.offset
        for j, r in enumerate(rows):
            if os.preadv(fd, [view[j * size : (j + 1) * size]], start + r * size) != size:
                raise OSError(f"short read of row {r} in the activation cache")
        return out
