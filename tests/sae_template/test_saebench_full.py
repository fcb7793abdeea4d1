"""The GPU / hub path cannot run offline; what can be checked here is how its output is folded in."""

import json

import pytest

from saekit.config import ExperimentConfig, SaeBenchFullConfig
from saekit.evals.saebench_full import collect_results, run_full_saebench


def test_saebench_result_files_become_final_info_sections(tmp_path):
    for eval_type, payload in [("core", {"eval_type_id": "core"}), ("scr", {"eval_type_id": "scr"}),
                               ("sparse_probing", {"eval_type_id": "sparse_probing"})]:
        d = tmp_path / eval_type
        d.mkdir()
        (d / "custom_sae_eval_results.json").write_text(json.dumps(payload))
    (tmp_path / "tpp").mkdir()  # an eval that wrote nothing adds no section
    sections = collect_results(tmp_path)
    assert sections == {
        "core evaluation results": {"eval_type_id": "core"},
        "scr evaluation results": {"eval_type_id": "scr"},
        "sparse probing evaluation results": {"eval_type_id": "sparse_probing"},
    }


def test_unknown_eval_type_is_refused_before_anything_runs(tmp_path):
    cfg = ExperimentConfig(saebench_full=SaeBenchFullConfig(enabled=True, eval_types=["core", "vibes"]))
    with pytest.raises(ValueError, match="vibes"):
        run_full_saebench(sae=None, cfg=cfg, out_dir=tmp_path)
