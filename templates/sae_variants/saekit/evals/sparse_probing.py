"""Sparse probing with sae_bench's probe code, on offline labelled text (see labelled.py).

As in sae_bench: per dataset and class, a one-vs-rest logistic probe on mean-pooled activations;
top-k variants keep the k dimensions whose class means differ most on the training set. The LM's
per-token activations and the LM-only probe results do not depend on the SAE, so they are built
once and cached; each run then encodes the cached activations with its SAE (sae_bench's
get_sae_meaned_activations) and trains the SAE probes (sae_bench's train_probe_on_activations).
Beside every mean accuracy, final_info gets its standard error (key + "_stderr"), binomial over the
test texts: two runs whose top-1 differ by a few of these differ by more than test noise.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import torch

from .. import cache, labelled
from ..activations import hook_activations
from ..config import ExperimentConfig
from ..lm import LanguageModel
from ..logs import into_log


def probe_stderr(accuracies: dict[str, float], n_test: int) -> float:
    """Standard error of the mean of one dataset's per-probe accuracies, each measured on n_test
    held-out texts: sqrt(sum_p a_p (1 - a_p) / n_test) / P. The test texts are the sampled units
    (binomial per probe, probes independent); the probes themselves are fixed by the task set."""
    accs = list(accuracies.values())
    return math.sqrt(sum(a * (1 - a) / n_test for a in accs)) / len(accs)


def mean_stderr(stderrs: list[float]) -> float:
    """Standard error of a mean of independent means (sae_bench averages the datasets' means)."""
    return math.sqrt(sum(s * s for s in stderrs)) / len(stderrs)


def dataset_key(cfg: ExperimentConfig, name: str) -> dict:
    sp = cfg.sparse_probing
    return {
        "what": "sparse probing",
        "dataset": name,
        "model": cfg.model,
        "hook": cfg.hook_name,
        "llm_dtype": cfg.llm_dtype,
        "train_per_class": sp.train_per_class,
        "test_per_class": sp.test_per_class,
        "max_tokens": sp.max_tokens,
        "k_values": sp.k_values,
        "seed": cfg.seed,
        "sources": labelled.fingerprint(name),
        "format": 2,
    }


def _ragged_activations(lm: LanguageModel, texts: list[str], max_tokens: int, rows_per_pass: int = 64):
    """Hook activations of each text's tokens after BOS, as (flat [sum(lengths), d] float16, lengths).

    Texts go through the model sorted by length, so little padding is computed; right padding
    cannot change earlier tokens under causal attention, and it is not stored.
    """
    ids = [lm.tokenizer(t, add_special_tokens=False)["input_ids"][: max_tokens - 1] for t in texts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    per_text: list[torch.Tensor] = [torch.empty(0)] * len(ids)
    for start in range(0, len(order), rows_per_pass):
        batch = order[start : start + rows_per_pass]
        rows = torch.full((len(batch), 1 + max(len(ids[i]) for i in batch)), lm.bos_id, dtype=torch.long)
        for r, i in enumerate(batch):
            rows[r, 1 : 1 + len(ids[i])] = torch.tensor(ids[i])
        acts = hook_activations(lm, rows, rows_per_pass=len(batch))
        for r, i in enumerate(batch):
            per_text[i] = acts[r, 1 : 1 + len(ids[i])]
    return torch.cat(per_text).to(torch.float16), torch.tensor([len(x) for x in ids])


def _padded(flat: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Ragged [sum(lengths), d] -> [n, max_len, d] float32, zero where there is no token.

    Zero rows are sae_bench's convention for "not a token": its pooling counts non-zero rows.
    """
    out = torch.zeros(len(lengths), int(lengths.max()), flat.shape[-1])
    offsets = torch.cumsum(lengths, 0) - lengths
    for i, (o, n) in enumerate(zip(offsets.tolist(), lengths.tolist())):
        out[i, :n] = flat[o : o + n].float()
    return out


def _build_dataset(cfg: ExperimentConfig, lm: LanguageModel, name: str, out: Path) -> None:
    import sae_bench.evals.sparse_probing.probe_training as probe_training
    import sae_bench.sae_bench_utils.activation_collection as activation_collection

    sp = cfg.sparse_probing
    texts = labelled.build(name, cfg.seed, sp.train_per_class, sp.test_per_class)
    stored: dict[str, dict[str, dict[str, torch.Tensor]]] = {"train": {}, "test": {}}
    pooled: dict[str, dict[str, torch.Tensor]] = {}
    for split, classes in texts.items():
        for cls, items in classes.items():
            flat, lengths = _ragged_activations(lm, items, sp.max_tokens)
            stored[split][cls] = {"acts": flat, "lengths": lengths}
        pooled[split] = activation_collection.create_meaned_model_activations(
            {cls: _padded(v["acts"], v["lengths"]) for cls, v in stored[split].items()}
        )
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    # as in sae_bench: the full-width probe is trained by gradient descent, top-k ones by sklearn
    _, full = probe_training.train_probe_on_activations(
        pooled["train"], pooled["test"], select_top_k=None, use_sklearn=False, batch_size=250, epochs=100, lr=1e-2
    )
    llm_results = {"llm_test_accuracy": full}
    for k in sp.k_values:
        _, acc = probe_training.train_probe_on_activations(pooled["train"], pooled["test"], select_top_k=k)
        llm_results[f"llm_top_{k}_test_accuracy"] = acc
    torch.save({"acts": stored, "llm_results": llm_results, "texts": texts}, out / "probing.pt")


class _PaddingSkipped:
    """The SAE as sae_bench's pooling sees it, encoding real tokens only.

    get_sae_meaned_activations encodes every [text, position] of the padded batch and then
    multiplies the padding positions (rows summing to zero) by 0; a quarter of the rows are
    padding. Here they are not encoded and are 0 already, so the pooled features are the same
    numbers (the same rows are encoded and summed), for three quarters of the encoder's work.
    """

    def __init__(self, sae):
        self.sae, self.dtype, self.device = sae, sae.dtype, sae.device

    def encode(self, acts_BLD: torch.Tensor) -> torch.Tensor:
        real = acts_BLD.sum(-1) != 0.0  # sae_bench's own test for a padding position
        out = acts_BLD.new_zeros(*acts_BLD.shape[:-1], int(self.sae.cfg.d_sae))
        out[real] = self.sae.encode(acts_BLD[real])
        return out


def _sae_results(sae, data: dict, cfg: ExperimentConfig) -> dict[str, dict[str, float]]:
    import sae_bench.evals.sparse_probing.probe_training as probe_training
    import sae_bench.sae_bench_utils.activation_collection as activation_collection

    sp = cfg.sparse_probing
    bld = {
        split: {cls: _padded(v["acts"], v["lengths"]).to(sae.device, sae.dtype) for cls, v in classes.items()}
        for split, classes in data["acts"].items()
    }
    tokens_only = _PaddingSkipped(sae)
    train = activation_collection.get_sae_meaned_activations(bld["train"], tokens_only, 125)
    test = activation_collection.get_sae_meaned_activations(bld["test"], tokens_only, 125)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    per_class: dict[str, dict[str, float]] = {}
    _, per_class["sae_test_accuracy"] = probe_training.train_probe_on_activations(
        train, test, select_top_k=None, use_sklearn=False, batch_size=250, epochs=100, lr=1e-2
    )
    for k in sp.k_values:
        _, per_class[f"sae_top_{k}_test_accuracy"] = probe_training.train_probe_on_activations(
            train, test, select_top_k=k
        )
    return per_class


def prepare_sparse_probing(cfg: ExperimentConfig, lm: LanguageModel) -> dict[str, Path]:
    def build(out: Path, name: str) -> None:
        with into_log(out / "build.log"):
            _build_dataset(cfg, lm, name, out)

    return {
        name: cache.cached_dir("sparse_probing", dataset_key(cfg, name), lambda out, n=name: build(out, n))
        for name in cfg.sparse_probing.datasets
    }


def run_sparse_probing_eval(sae, cfg: ExperimentConfig, dirs: dict[str, Path]) -> dict:
    from sae_bench.evals.sparse_probing.eval_config import SparseProbingEvalConfig
    from sae_bench.evals.sparse_probing.eval_output import (
        EVAL_TYPE_ID_SPARSE_PROBING,
        SparseProbingEvalOutput,
        SparseProbingLlmMetrics,
        SparseProbingMetricCategories,
        SparseProbingResultDetail,
        SparseProbingSaeMetrics,
    )
    from sae_bench.sae_bench_utils import get_sae_bench_version, get_sae_lens_version
    from sae_bench.sae_bench_utils.general_utils import average_results_dictionaries

    sp = cfg.sparse_probing
    dataset_results: dict[str, dict[str, float]] = {}
    per_class_all: dict[str, dict] = {}
    for name, path in dirs.items():
        data = torch.load(path / "probing.pt", weights_only=False)
        per_class = {**data["llm_results"], **_sae_results(sae, data, cfg)}
        per_class_all[f"{name}_results"] = per_class
        dataset_results[f"{name}_results"] = {key: sum(v.values()) / len(v) for key, v in per_class.items()}
    averaged = average_results_dictionaries(dataset_results, list(dirs))
    n_test = 2 * sp.test_per_class  # each probe's test set: a class's test texts and as many others
    dataset_stderrs = {name: {f"{key}_stderr": probe_stderr(v, n_test) for key, v in per_class.items()}
                       for name, per_class in per_class_all.items()}
    stderrs = {key: mean_stderr([d[key] for d in dataset_stderrs.values()])
               for key in next(iter(dataset_stderrs.values()))}
    eval_cfg = SparseProbingEvalConfig(
        random_seed=cfg.seed,
        dataset_names=list(dirs),
        probe_train_set_size=sp.train_per_class * 5,
        probe_test_set_size=sp.test_per_class * 5,
        context_length=sp.max_tokens,
        sae_batch_size=125,
        llm_batch_size=64,
        llm_dtype=cfg.llm_dtype,
        model_name=cfg.model,
        k_values=sp.k_values,
    )
    llm = {k: v for k, v in averaged.items() if k.startswith("llm_")}
    sae_m = {k: v for k, v in averaged.items() if k.startswith("sae_")}
    output = SparseProbingEvalOutput(
        eval_type_id=EVAL_TYPE_ID_SPARSE_PROBING,
        eval_config=eval_cfg,
        eval_id=str(uuid.uuid4()),
        datetime_epoch_millis=int(time.time() * 1000),
        eval_result_metrics=SparseProbingMetricCategories(
            llm=SparseProbingLlmMetrics(**llm), sae=SparseProbingSaeMetrics(**sae_m)
        ),
        eval_result_details=[
            SparseProbingResultDetail(dataset_name=name, **res)
            for name, res in dataset_results.items()
        ],
        eval_result_unstructured=per_class_all,
        sae_bench_commit_hash=get_sae_bench_version(),
        sae_lens_id="custom_sae",
        sae_lens_release_id=f"{cfg.model}_{cfg.hook_name}",
        sae_lens_version=get_sae_lens_version(),
        sae_cfg_dict=sae.cfg.to_dict(),
    )
    result = asdict(output)
    # beside sae_bench's keys (its dataclasses have no field for them): the standard error of each
    # mean accuracy, so that a difference between two runs can be weighed against it
    for group in ("llm", "sae"):
        result["eval_result_metrics"][group].update({k: v for k, v in stderrs.items() if k.startswith(group)})
    for detail in result["eval_result_details"]:
        detail.update(dataset_stderrs[detail["dataset_name"]])
    return result
