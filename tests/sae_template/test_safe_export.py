"""A run's export is loaded as data: an archive carrying a pickle payload, a non-ATen call, a
shared library or an evaluated shape expression is refused before anything in it can run
(saekit/safe_export.py). Built from a real export of the template's SAE, then altered."""

from __future__ import annotations

import json
import pickle
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from saekit import load_config
from saekit.exported import DECODE_FILE, ENCODE_FILE, ExportError, save_for_evaluation
from saekit.exported_sae import ExportedSAE
from saekit.safe_export import UnsafeExport, load_program


class Payload:
    """Unpickling this creates the marker file: proof that code from the archive ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def exported(template_dir, tmp_path):
    sys.path.insert(0, str(template_dir))
    try:
        import experiment
    finally:
        sys.path.remove(str(template_dir))
        sys.modules.pop("experiment", None)
    cfg = load_config(template_dir / "experiment_config.yaml")
    torch.manual_seed(0)
    bench = SimpleNamespace(cfg=cfg, train_acts=torch.randn(64, 576), d_model=576, lm=SimpleNamespace(d_model=576))
    sae = experiment.SAE(576, 2304, experiment.TrainConfig(), 3.0, bench)
    save_for_evaluation(sae, tmp_path / "sae", bench)
    return tmp_path / "sae", bench


def _rewrite(path: Path, change) -> None:
    """Rewrite the archive with change(name, data) -> data (None drops the file), plus any
    files change.extra holds."""
    with zipfile.ZipFile(path) as z:
        items = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for name, data in items:
            data = change(name, data)
            if data is not None:
                z.writestr(name, data)
        for name, data in getattr(change, "extra", {}).items():
            z.writestr(name, data)


def _pickled_weight(marker: Path):
    def change(name: str, data: bytes) -> bytes:
        if name.endswith("data/weights/model_weights_config.json"):
            config = json.loads(data)
            config["config"]["sae.W_enc"]["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("data/weights/weight_0"):
            return pickle.dumps(Payload(marker), protocol=2)
        return data
    return change


def test_a_pickle_in_the_archive_runs_under_torch_export_load_and_is_refused_here(exported, tmp_path):
    folder, _ = exported
    marker = tmp_path / "payload-ran"
    _rewrite(folder / ENCODE_FILE, _pickled_weight(marker))
    with pytest.raises(Exception):
        torch.export.load(str(folder / ENCODE_FILE))
    assert marker.exists(), "the premise: torch.export.load unpickles the payload"
    marker.unlink()
    with pytest.raises(UnsafeExport, match="sae.W_enc is stored as a pickled object"):
        load_program(folder / ENCODE_FILE)
    assert not marker.exists()


def test_the_evaluation_refuses_an_altered_export_with_the_reason(exported, tmp_path):
    folder, bench = exported
    marker = tmp_path / "payload-ran"
    _rewrite(folder / DECODE_FILE, _pickled_weight(marker))
    with pytest.raises(ExportError, match="the harness does not load decode.pt2: .* pickled object"):
        ExportedSAE.load(folder, bench)
    assert not marker.exists()


@pytest.mark.parametrize("alteration, reason", [
    ("target", "calls 'torch.os.system'; only ATen operators"),
    ("file", "calls 'torch.ops.aten.from_file.default'"),
    ("library", "holds 'data/aotinductor/model/model.so'"),
    ("expression", "shape expression is not plain arithmetic"),
    ("opaque", "is stored as a pickled object"),
])
def test_calls_libraries_expressions_and_objects_are_refused(exported, alteration, reason):
    folder, _ = exported

    def change(name: str, data: bytes) -> bytes:
        if alteration in ("target", "file") and name.endswith("models/model.json"):
            new = b'"torch.os.system"' if alteration == "target" else b'"torch.ops.aten.from_file.default"'
            return data.replace(b'"torch.ops.aten.relu.default"', new)
        if alteration == "expression" and name.endswith("models/model.json"):
            return data.replace(b"Symbol('s77', positive=True, integer=True)", b"__import__('os').getcwd()", 1)
        if alteration == "opaque" and name.endswith("data/constants/model_constants_config.json"):
            return json.dumps({"config": {"c": {"path_name": "opaque_obj_0", "use_pickle": False}}}).encode()
        return data
    if alteration == "library":
        change.extra = {"encode/data/aotinductor/model/model.so": b"\x7fELF"}
    _rewrite(folder / ENCODE_FILE, change)
    with pytest.raises(UnsafeExport, match=reason):
        load_program(folder / ENCODE_FILE)


def test_a_plain_export_still_loads(exported):
    folder, bench = exported
    loaded = ExportedSAE.load(folder, bench)
    x = torch.randn(3, 576)
    assert loaded.encode(x).shape == (3, 2304) and loaded(x).shape == (3, 576)
