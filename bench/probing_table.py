"""Sparse probing on the SAE template's default setting: LM, trained baseline SAE and untrained SAE.

    .venvs/sae/bin/python bench/probing_table.py [--weights-dir DIR]

Builds (or reads from the shared cache) the probing sets of templates/sae_variants/
experiment_config.yaml, trains the template's baseline SAE on the cached activations exactly as
experiment.py does (or loads DIR/sae_trained.pt and DIR/sae_untrained.pt, state dicts of
experiment.SAE), and prints mean top-1 / top-5 / all-latent accuracy with its standard error
(binomial over test texts, see saekit/evals/sparse_probing.py) for the LM and for both SAEs,
then per dataset, and the seconds one SAE's sparse-probing eval takes (the warm-run cost).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "sae_variants"
sys.path.insert(0, str(TEMPLATE))

import torch  # noqa: E402

import saekit  # noqa: E402,F401  (sets up the environment sae_bench needs)
import experiment as ex  # noqa: E402
from saekit.activations import train_activations  # noqa: E402
from saekit.config import load_config  # noqa: E402
from saekit.evals.sparse_probing import prepare_sparse_probing, run_sparse_probing_eval  # noqa: E402
from saekit.lm import load_language_model  # noqa: E402
from saekit.logs import into_log  # noqa: E402


class _Bench:
    def __init__(self, cfg):
        self.cfg = cfg


def baseline_saes(cfg, lm, weights_dir: Path | None) -> dict[str, ex.SAE]:
    tc = ex.TrainConfig()
    d_in = lm.d_model
    bench = _Bench(cfg)
    if weights_dir is not None:
        out = {}
        for name in ("trained", "untrained"):
            sae = ex.SAE(d_in, tc.expansion * d_in, tc, 1.0, bench)
            sae.load_state_dict(torch.load(weights_dir / f"sae_{name}.pt"))
            out[name] = sae.eval()
        return out
    acts = train_activations(cfg, lm)
    torch.manual_seed(tc.seed)
    sae = ex.SAE(d_in, tc.expansion * d_in, tc, ex.input_scale(acts), bench)
    with torch.no_grad():
        sae.b_dec.data = acts[:50_000].float().mean(0) / sae.input_scale
    untrained = ex.SAE(d_in, tc.expansion * d_in, tc, 1.0, bench)
    untrained.load_state_dict(sae.state_dict())
    batches = saekit.ActivationBatches(acts, tc.batch_size, tc.seed, device=cfg.device)
    ex.train(sae, batches, tc, max(1, int(tc.epochs * len(batches) / tc.batch_size)))
    return {"trained": sae.eval(), "untrained": untrained.eval()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights-dir", type=Path, default=None)
    args = parser.parse_args()
    cfg = load_config(TEMPLATE / "experiment_config.yaml")
    lm = load_language_model(cfg)
    start = time.perf_counter()
    dirs = prepare_sparse_probing(cfg, lm)
    print(f"probing sets ready in {time.perf_counter() - start:.0f} s: {', '.join(dirs)}")
    saes = baseline_saes(cfg, lm, args.weights_dir)
    results, seconds = {}, {}
    for name, sae in saes.items():
        start = time.perf_counter()
        with into_log(Path("/dev/null")):
            results[name] = run_sparse_probing_eval(sae, cfg, dirs)
        seconds[name] = time.perf_counter() - start
    sp = cfg.sparse_probing
    print(f"\n{len(dirs)} datasets, {sp.train_per_class} train / {sp.test_per_class} test texts per class, "
          f"max {sp.max_tokens} tokens")
    first = next(iter(results.values()))["eval_result_metrics"]
    rows = [("LM", first["llm"], "llm")] + [(f"{n} SAE", r["eval_result_metrics"]["sae"], "sae") for n, r in results.items()]
    print(f"{'':14s} {'top-1':>15s} {'top-5':>15s} {'all':>15s}")
    for label, m, p in rows:
        cells = [f"{m[f'{p}_{k}test_accuracy']:.3f} ± {m[f'{p}_{k}test_accuracy_stderr']:.3f}" for k in ("top_1_", "top_5_", "")]
        print(f"{label:14s} " + " ".join(f"{c:>15s}" for c in cells))
    print("\nper dataset, top-1 (± s.e.):")
    for i, detail in enumerate(next(iter(results.values()))["eval_result_details"]):
        cells = [f"LM {detail['llm_top_1_test_accuracy']:.3f} ± {detail['llm_top_1_test_accuracy_stderr']:.3f}"]
        for n, r in results.items():
            d = r["eval_result_details"][i]
            cells.append(f"{n} {d['sae_top_1_test_accuracy']:.3f} ± {d['sae_top_1_test_accuracy_stderr']:.3f}")
        print(f"  {detail['dataset_name']:28s} " + "   ".join(cells))
    print("\nseconds per SAE eval (warm run cost): " + ", ".join(f"{n} {s:.0f}" for n, s in seconds.items()))


if __name__ == "__main__":
    main()
