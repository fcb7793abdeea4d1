"""A run's exported encode / decode behind sae_bench's SAE interface, for the harness's evaluation.

Apart from exported.py (which writes the graphs in the run) because sae_bench's BaseSAE imports
transformer_lens: seconds the evaluation, which loads the language model, spends anyway, and the
training run need not. exported.py's docstring says what crosses from the run and why it is safe.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from sae_bench.custom_saes.base_sae import BaseSAE

from .exported import DECODE_FILE, ENCODE_FILE, INFO_FILE, ExportError, load_graph

DERIVE_CHUNK = 512  # unit latents decoded at once to derive W_dec


class ExportedSAE(BaseSAE):
    """sae_bench's SAE interface over a run's exported encode / decode, for the evaluation."""

    def __init__(self, folder: Path, bench):
        info = json.loads((folder / INFO_FILE).read_text())
        d_in, d_sae = int(info["d_in"]), int(info["d_sae"])
        if d_in != bench.d_model:
            raise ExportError(f"the exported SAE reads {d_in}-dimensional activations; the model's layer has "
                              f"{bench.d_model}")
        cfg = bench.cfg
        super().__init__(d_in, d_sae, cfg.model, cfg.hook_layer, torch.device(cfg.device), torch.float32)
        self.cfg.architecture = info.get("architecture", "custom")
        self.cfg.architecture_str = self.cfg.architecture
        self.cfg.context_size = cfg.context_length
        # kept in a plain dict, not as submodules: an exported module refuses train()/eval(),
        # which the evals call on the SAE (and it has no training mode to switch anyway)
        self._graphs = {"encode": load_graph(folder / ENCODE_FILE), "decode": load_graph(folder / DECODE_FILE)}
        with torch.no_grad():
            zero = torch.zeros(2, d_sae)
            b_dec = self._graphs["decode"](zero)[0]
            rows = []
            for start in range(0, d_sae, DERIVE_CHUNK):
                eye = torch.eye(d_sae)[start : start + DERIVE_CHUNK]
                if len(eye) < 2:
                    eye = torch.cat([eye, torch.zeros(1, d_sae)])[: max(2, len(eye))]
                rows.append(self._graphs["decode"](eye)[: min(DERIVE_CHUNK, d_sae - start)] - b_dec)
            self.W_dec.data = torch.cat(rows)
            self.b_dec.data = b_dec
            self.W_enc.data, self.b_enc.data = self._encoder_weights(folder, d_in, d_sae)

    def _encoder_weights(self, folder: Path, d_in: int, d_sae: int) -> tuple[torch.Tensor, torch.Tensor]:
        weights = folder / "sae_weights.safetensors"
        if weights.is_file():
            from safetensors.torch import load_file

            w = load_file(str(weights))
            if tuple(w.get("W_enc", torch.empty(0)).shape) == (d_in, d_sae) and "b_enc" in w:
                return w["W_enc"].float(), w["b_enc"].float()
        return self.W_dec.data.T.clone(), torch.zeros(d_sae)

    @classmethod
    def load(cls, folder: str | Path, bench) -> ExportedSAE:
        folder = Path(folder)
        missing = [n for n in (ENCODE_FILE, DECODE_FILE, INFO_FILE) if not (folder / n).is_file()]
        if missing:
            raise ExportError(f"{folder} has no {missing[0]}: experiment.py must call "
                              f"saekit.save_for_evaluation(sae, out / 'sae', bench) after training")
        return cls(folder, bench)

    def _flat(self, fn, x: torch.Tensor, width: int) -> torch.Tensor:
        """The graphs take [batch, d]; evals pass [batch, seq, d] too, and batches of one."""
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1]).float()
        n = len(flat)
        if n < 2:  # torch.export specialises sizes 0 and 1, so the graph wants at least two rows
            flat = torch.cat([flat, torch.zeros(2 - n, flat.shape[-1], dtype=flat.dtype)])
        return fn(flat)[:n].reshape(*lead, width).to(x.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._flat(self._graphs["encode"], x, self.cfg.d_sae)

    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        return self._flat(self._graphs["decode"], feature_acts, self.cfg.d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
