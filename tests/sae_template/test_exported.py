"""The SAE as the harness's evaluation receives it: encode / decode exported with torch.export
(saekit/exported.py), loaded without experiment.py, and the clear failure for an SAE that
cannot be exported. No language model needed: a stand-in bench with random activations."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
from conftest import EVALUATION_STACK

from saekit import load_config
from saekit.exported import ENCODE_FILE, ExportError, save_for_evaluation
from saekit.exported_sae import ExportedSAE


@pytest.fixture
def experiment(template_dir):
    sys.path.insert(0, str(template_dir))
    try:
        import experiment

        yield experiment
    finally:
        sys.path.remove(str(template_dir))
        sys.modules.pop("experiment", None)


def _bench(template_dir):
    cfg = load_config(template_dir / "experiment_config.yaml")
    torch.manual_seed(0)
    return SimpleNamespace(cfg=cfg, train_acts=torch.randn(256, 576) * 3, d_model=576,
                           lm=SimpleNamespace(d_model=576))


def test_the_exported_sae_computes_what_the_sae_computes(experiment, template_dir, tmp_path):
    bench = _bench(template_dir)
    tc = experiment.TrainConfig()
    sae = experiment.SAE(576, 2304, tc, 3.0, bench)
    with torch.no_grad():
        sae.b_dec.data = torch.randn(576) * 0.1
    save_for_evaluation(sae, tmp_path, bench)
    loaded = ExportedSAE.load(tmp_path, bench)
    loaded.eval()  # every eval calls it: the exported graphs must not be asked to switch modes
    for shape in ((1, 576), (7, 576), (2, 5, 576)):  # batches of one and the evals' [batch, seq, d]
        x = torch.randn(*shape) * 3
        with torch.no_grad():
            assert torch.allclose(loaded(x), sae(x), atol=1e-4), shape
            assert torch.equal(loaded.encode(x) > 0, sae.encode(x) > 0)
    # the decoder directions come from the exported decode, not from any weight the run wrote
    assert torch.allclose(loaded.W_dec, sae.W_dec, atol=1e-5)
    assert torch.allclose(loaded.b_dec, sae.b_dec * sae.input_scale, atol=1e-5)
    assert loaded.cfg.d_sae == 2304 and loaded.cfg.architecture_str == "topk"


def test_an_encode_that_branches_on_values_fails_with_what_to_change(experiment, template_dir, tmp_path):
    class Branchy(experiment.SAE):
        def encode(self, x):
            if x.sum() > 0:
                return super().encode(x)
            return super().encode(-x)

    bench = _bench(template_dir)
    with pytest.raises(ExportError) as err:
        save_for_evaluation(Branchy(576, 2304, experiment.TrainConfig(), 3.0, bench), tmp_path, bench)
    message = str(err.value)
    assert message.startswith("saekit could not export SAE.encode with torch.export: ")
    assert "free of Python branches on tensor values" in message and "\n" not in message
    assert not (tmp_path / ENCODE_FILE).exists()


def test_loading_needs_no_experiment_module(experiment, template_dir, tmp_path):
    """The evaluation process has no experiment.py: the export must load without it."""
    bench = _bench(template_dir)
    save_for_evaluation(experiment.SAE(576, 2304, experiment.TrainConfig(), 3.0, bench), tmp_path, bench)
    code = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(template_dir)!r})
        sys.modules["experiment"] = None  # any import of it fails
        enc = torch.export.load({str(tmp_path / ENCODE_FILE)!r}).module()
        print(tuple(enc(torch.randn(3, 576)).shape))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(3, 2304)"


def test_a_training_run_does_not_import_the_evaluation_stack(template_dir):
    """experiment.py and saekit's training side must start without transformer_lens (and the
    transformers / datasets / pandas it pulls in): about 7 s of every run, 2-3 runs per idea each."""
    code = ("import sys, experiment, saekit\n"
            f"heavy = sorted(m for m in {EVALUATION_STACK!r} if m in sys.modules)\n"
            "assert not heavy, heavy\n"
            "assert issubclass(experiment.SAE, saekit.BaseSAE)\n"
            "assert saekit.ExportedSAE.__name__ == 'ExportedSAE' and 'transformer_lens' in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=template_dir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
