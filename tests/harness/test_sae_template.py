"""The SAE template's settings through the harness. Its end-to-end session (real SmolLM2
activations, real SAE training with seeds, metrics fed back against the baseline) is
test_harness_evaluation.py's, which also checks that the harness alone scores the runs; the
default setting is measured by bench/template_run.py.
"""

from __future__ import annotations


def test_a_setting_the_template_lacks_is_a_one_line_error(harness):
    cfg = harness.write_config({"template_settings": {"core": {"n_batches": 3}}})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg), "--model", "openai/x",
                    "--api-base", "http://127.0.0.1:9/v1", template="sae_variants")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "'core.n_batches' is not a setting" in r.stderr and "experiment_config.yaml" in r.stderr
    assert r.workspace is None
