"""The experiment configuration: which language model, where to hook it, how much data, which evals.

It lives in `experiment_config.yaml`, a protected file the harness copies into each workspace
(and may rewrite from the user's harness config), so it is read from the current working
directory first and only then from the template's own copy beside this package. Everything an
agent may tune about the SAE itself lives in experiment.py instead.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CONFIG_NAME = "experiment_config.yaml"
CACHE_ENV = "SAE_HARNESS_CACHE"
DEFAULT_CACHE = Path("~/.cache/sae_harness/activations")

# Models saekit knows how to load. The embedded one needs neither a GPU nor the hub.
EMBEDDED_MODEL = "smollm2-135m"
HUB_MODELS = {"pythia-70m-deduped", "gemma-2-2b"}


@dataclass
class CoreEvalConfig:
    """sae_bench core eval sizes. Reconstruction batches cost LM forward passes (the layers after
    the hook, with the SAE spliced in); sparsity/variance batches only cost SAE passes."""

    batch_size_prompts: int = 8
    n_eval_reconstruction_batches: int = 3
    n_eval_sparsity_variance_batches: int = 16


@dataclass
class SparseProbingConfig:
    enabled: bool = True
    datasets: list[str] = field(
        default_factory=lambda: ["text_kind", "word_language", "numerals"]
    )
    train_per_class: int = 200
    test_per_class: int = 200
    max_tokens: int = 32  # per text, BOS included
    k_values: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 20, 50])


@dataclass
class AbsorptionConfig:
    enabled: bool = True
    # whole-word tokens drawn from the tokenizer, 80 % train / 20 % test; 0 = all of them (31,534
    # for SmolLM2: the LM probe over them takes 10-17 min on 2 cores, most of the README job)
    vocab_size: int = 4000
    # a sample keeps at least this many words of every first letter (all of them where fewer
    # exist): a uniform sample would leave x, z, y, q with a handful of test words
    min_words_per_letter: int = 60
    max_k_value: int = 10
    f1_jump_threshold: float = 0.03
    min_probe_f1: float = 0.6  # a letter is scored only if the LM's own probe reaches this F1
    min_letters: int = 20  # fewer scored letters than this: no score (sae_bench's own minimum)
    k_sparse_probe_num_epochs: int = 50
    # the L1 probe that picks each letter's main latents takes this many Adam steps per epoch (its
    # batch is the training split divided by it): sae_bench's fixed batch of 4,096 made a 3,200-word
    # split one step per epoch, 50 steps in all, and its picks near random
    k_sparse_probe_steps_per_epoch: int = 10


@dataclass
class SaeBenchFullConfig:
    """sae_bench's own end-to-end evals (hub datasets and models, meant for a GPU)."""

    enabled: bool = False
    eval_types: list[str] = field(
        default_factory=lambda: ["core", "sparse_probing", "absorption", "scr", "tpp"]
    )
    llm_batch_size: int = 32


@dataclass
class ExperimentConfig:
    model: str = EMBEDDED_MODEL
    hook_layer: int = 3  # residual stream after this block: blocks.{hook_layer}.hook_resid_post
    device: str = "cpu"
    llm_dtype: str = "float32"
    context_length: int = 128  # tokens per row, BOS included
    train_tokens: int = 500_000  # activations collected once and cached; BOS positions excluded
    activation_dtype: str = "float16"  # on-disk dtype of the training activations
    seed: int = 42
    core: CoreEvalConfig = field(default_factory=CoreEvalConfig)
    sparse_probing: SparseProbingConfig = field(default_factory=SparseProbingConfig)
    absorption: AbsorptionConfig = field(default_factory=AbsorptionConfig)
    saebench_full: SaeBenchFullConfig = field(default_factory=SaeBenchFullConfig)

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.hook_layer}.hook_resid_post"

    def validate(self) -> None:
        known = {EMBEDDED_MODEL} | HUB_MODELS
        if self.model not in known:
            raise ValueError(f"{CONFIG_NAME}: model {self.model!r} is not one of {sorted(known)}")
        if self.hook_layer < 0:
            raise ValueError(f"{CONFIG_NAME}: hook_layer must be >= 0, got {self.hook_layer}")
        if self.context_length < 8:
            raise ValueError(f"{CONFIG_NAME}: context_length must be >= 8, got {self.context_length}")
        a = self.absorption
        if a.vocab_size < 0 or a.min_letters < 1 or a.k_sparse_probe_steps_per_epoch < 1 or a.min_words_per_letter < 1:
            raise ValueError(
                f"{CONFIG_NAME}: absorption.vocab_size must be >= 0 (0 = whole vocabulary), "
                "min_letters, min_words_per_letter and k_sparse_probe_steps_per_epoch >= 1"
            )
        if a.vocab_size and 26 * a.min_words_per_letter > a.vocab_size:
            # the per-letter floor is kept first, so the sample would silently outgrow vocab_size
            raise ValueError(
                f"{CONFIG_NAME}: absorption.min_words_per_letter {a.min_words_per_letter} x 26 letters is more "
                f"than vocab_size {a.vocab_size}; lower min_words_per_letter or raise vocab_size (0 = all words)"
            )
        if a.min_letters > 26:
            raise ValueError(f"{CONFIG_NAME}: absorption.min_letters is {a.min_letters}, but there are 26 letters")
        for name in ("llm_dtype", "activation_dtype"):
            if getattr(self, name) not in ("float32", "float16", "bfloat16"):
                raise ValueError(f"{CONFIG_NAME}: {name} must be float32, float16 or bfloat16")


def _from_dict(cls: type, data: dict, where: str):
    """Build dataclass `cls` from a YAML mapping, naming the exact key that is wrong."""
    if not isinstance(data, dict):
        raise ValueError(f"{CONFIG_NAME}: {where or 'top level'} must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            raise ValueError(f"{CONFIG_NAME}: unknown key {path!r} (known: {sorted(fields)})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _from_dict(hint, value or {}, path)
            continue
        kwargs[key] = _check_type(value, hint, path)
    return cls(**kwargs)


def _check_type(value, hint, path: str):
    origin = typing.get_origin(hint) or hint
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ValueError(f"{CONFIG_NAME}: {path} must be a list")
        return [_check_type(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is bool and not isinstance(value, bool):
        raise ValueError(f"{CONFIG_NAME}: {path} must be true or false, got {value!r}")
    if origin is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{CONFIG_NAME}: {path} must be an integer, got {value!r}")
    if not isinstance(value, origin):
        raise ValueError(f"{CONFIG_NAME}: {path} must be {origin.__name__}, got {value!r}")
    return value


def config_path() -> Path:
    """The workspace's copy wins over the template's own copy."""
    here = Path.cwd() / CONFIG_NAME
    return here if here.exists() else Path(__file__).resolve().parent.parent / CONFIG_NAME


def load_config(path: str | Path | None = None) -> ExperimentConfig:
    path = Path(path) if path else config_path()
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    cfg = _from_dict(ExperimentConfig, data or {}, "")
    cfg.validate()
    return cfg


def cache_root() -> Path:
    """Outside the workspace, so that every run and every idea shares one copy of the activations."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()
