"""The trained SAE as the harness's evaluation sees it: encode and decode as exported graphs.

    saekit.save_for_evaluation(sae, out_dir / "sae", bench)   # experiment.py, after training
    sae = ExportedSAE.load(run_dir / "sae", bench)            # saekit.evaluate_run (exported_sae.py)

The evaluation runs in a process that imports no Python file the agent wrote. What crosses over
from the run is data only: `encode.pt2` and `decode.pt2`, written by torch.export (an ATen graph
and its weights) and `exported.json` (sizes). torch.export.load alone would run pickles, shared
libraries and arbitrary `torch.*` attributes found in such a file; safe_export.py admits only
tensor data and ATen operators, so loading one executes nothing the run wrote.
The decoder directions the evals read (W_dec, b_dec) are derived from the exported decode itself,
decode(e_i) - decode(0) and decode(0), so no weight matrix the run claims is trusted for them.
W_enc has no such derivation for a non-linear encoder; sae_bench reads it only for weight
statistics (encoder norms and cosines, absorption's diagnostic encoder cosine), never for a
headline metric, so it comes from the SAELens export beside it when there is one.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import torch

from .safe_export import UnsafeExport, load_program

ENCODE_FILE = "encode.pt2"
DECODE_FILE = "decode.pt2"
INFO_FILE = "exported.json"
EXAMPLE_TOKENS = 8
CHECK_TOKENS = 64
# the loaded graph against the module it came from, on the same tokens: float32 rounding of the
# same ops stays far below this share of the largest activation entry
CHECK_RTOL = 1e-4


class ExportError(Exception):
    """experiment.py's SAE could not be exported; the message says what to change."""


class _Method(torch.nn.Module):
    """One bound method of the SAE as a module torch.export can trace."""

    def __init__(self, sae: torch.nn.Module, name: str):
        super().__init__()
        self.sae = sae
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.sae, self.name)(x)


def _export(sae: torch.nn.Module, name: str, example: torch.Tensor):
    batch = torch.export.Dim("batch", min=2)
    try:
        return torch.export.export(_Method(sae, name), (example,), dynamic_shapes=({0: batch},), strict=False)
    except Exception as exc:  # torch raises many kinds here; all mean the same thing to the agent
        reason = " ".join(str(exc).split())[:400]
        raise ExportError(
            f"saekit could not export SAE.{name} with torch.export: {reason}. Keep encode/decode free of "
            f"Python branches on tensor values (use torch.where), of .item()/.tolist() and of shapes that "
            f"depend on the data; they must map a [batch, d_in] / [batch, d_sae] tensor to a tensor for any "
            f"batch size") from None


def load_graph(path: Path):
    """The exported graph as a callable module, loaded only if it is tensor data and ATen ops."""
    try:
        return load_program(path).module()
    except UnsafeExport as exc:
        raise ExportError(f"the harness does not load {path.name}: {exc}") from None


def save_for_evaluation(sae, folder: str | Path, bench) -> Path:
    """Export `sae`'s encode and decode (dynamic batch size) into `folder` and check that the
    saved graphs give what the SAE gives. Raises ExportError with what to change."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sae.eval()
    device, dtype = sae.W_enc.device, sae.W_enc.dtype
    x = bench.train_acts[:CHECK_TOKENS].to(device, dtype)
    d_in, d_sae = int(sae.cfg.d_in), int(sae.cfg.d_sae)
    with torch.no_grad():
        f = sae.encode(x)
        x_hat = sae.decode(f)
    if tuple(f.shape) != (len(x), d_sae) or tuple(x_hat.shape) != (len(x), d_in):
        raise ExportError(f"saekit could not export the SAE: encode must map [batch, {d_in}] to [batch, {d_sae}] "
                          f"and decode back; got {tuple(f.shape)} and {tuple(x_hat.shape)}")
    programs = {"encode": _export(sae, "encode", x[:EXAMPLE_TOKENS]),
                "decode": _export(sae, "decode", f[:EXAMPLE_TOKENS].detach())}
    with warnings.catch_warnings():
        # torch 2.13 warns on every save that no weight group holds a "complete tensor"; that
        # matters for weights on an accelerator only, and would sit in every run's stderr.log
        warnings.filterwarnings("ignore", message="No complete tensor found in the group")
        for name, file in (("encode", ENCODE_FILE), ("decode", DECODE_FILE)):
            torch.export.save(programs[name], str(folder / file))
    enc, dec = load_graph(folder / ENCODE_FILE), load_graph(folder / DECODE_FILE)
    with torch.no_grad():
        f2 = enc(x)
        x_hat2 = dec(f)
    scale = max(float(x.abs().max()), 1e-8)
    for name, got, want in (("encode", f2, f), ("decode", x_hat2, x_hat)):
        err = float((got - want).abs().max())
        if err > CHECK_RTOL * scale * 10:
            raise ExportError(f"saekit exported SAE.{name}, but the exported graph differs from the SAE by up to "
                              f"{err:.3g}: torch.export fixed a value that changes between calls (a Python "
                              f"branch or a number read from a tensor); compute it with tensor operations")
    info = {"d_in": d_in, "d_sae": d_sae, "dtype": str(dtype).removeprefix("torch."),
            "architecture": str(getattr(sae, "architecture", getattr(sae.cfg, "architecture", "custom"))),
            "torch": torch.__version__}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return folder


def export_or_exit(sae, folder: str | Path, bench) -> Path:
    """save_for_evaluation for experiment.py: a failure ends the run with one clear line."""
    try:
        return save_for_evaluation(sae, folder, bench)
    except ExportError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        raise SystemExit(3) from None
