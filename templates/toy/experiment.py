"""Toy sparse-coding experiment: a tiny SAE recovers known features from synthetic data.

Runs in about a second on one CPU core with numpy alone. It exists so that the harness
can be tested (and demonstrated) end to end without a language model; its results are
shaped like the SAE template's (SAEBench-style nesting), on a much smaller problem.

Usage: python experiment.py --out_dir=run_1 [--seed=S]
(the harness passes --seed to rerun the same code with other seeds; keep that option)
"""

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Config:
    d_in: int = 16            # dimension of the observed data
    n_true: int = 24          # ground-truth features that generate it
    d_sae: int = 32           # latents of the sparse autoencoder
    p_active: float = 0.08    # chance that a true feature is active in a sample
    l1_coeff: float = 0.02    # weight of the L1 sparsity penalty
    lr: float = 0.01
    steps: int = 600
    batch: int = 256
    seed: int = 0


def make_data(cfg, rng, n):
    """Samples are sparse non-negative combinations of unit-norm true features."""
    feats = rng.normal(size=(cfg.n_true, cfg.d_in))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    codes = (rng.random((n, cfg.n_true)) < cfg.p_active) * rng.uniform(0.5, 1.5, (n, cfg.n_true))
    return codes @ feats, feats


class SAE:
    """ReLU sparse autoencoder: f = relu((x - b_dec) W_enc + b_enc), x_hat = f W_dec + b_dec."""

    def __init__(self, cfg, rng):
        self.W_enc = rng.normal(scale=0.1, size=(cfg.d_in, cfg.d_sae))
        self.W_dec = self.W_enc.T.copy()
        self.W_dec /= np.linalg.norm(self.W_dec, axis=1, keepdims=True)
        self.b_enc = np.zeros(cfg.d_sae)
        self.b_dec = np.zeros(cfg.d_in)

    def encode(self, x):
        return np.maximum((x - self.b_dec) @ self.W_enc + self.b_enc, 0.0)

    def decode(self, f):
        return f @ self.W_dec + self.b_dec


def train(cfg, sae, data, rng):
    """Adam on MSE + L1, decoder rows kept at unit norm."""
    params = ["W_enc", "W_dec", "b_enc", "b_dec"]
    m = {p: np.zeros_like(getattr(sae, p)) for p in params}
    v = {p: np.zeros_like(getattr(sae, p)) for p in params}
    for step in range(1, cfg.steps + 1):
        x = data[rng.integers(0, len(data), cfg.batch)]
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        f = np.maximum(pre, 0.0)
        x_hat = f @ sae.W_dec + sae.b_dec
        err = x_hat - x
        # gradients of mean(sum(err^2)) + l1 * mean(sum(f))
        g_xhat = 2 * err / cfg.batch
        g_f = g_xhat @ sae.W_dec.T + cfg.l1_coeff / cfg.batch
        g_pre = g_f * (pre > 0)
        grads = {
            "W_dec": f.T @ g_xhat,
            "b_dec": g_xhat.sum(0) - (g_pre @ sae.W_enc.T).sum(0),
            "W_enc": (x - sae.b_dec).T @ g_pre,
            "b_enc": g_pre.sum(0),
        }
        for p in params:
            m[p] = 0.9 * m[p] + 0.1 * grads[p]
            v[p] = 0.999 * v[p] + 0.001 * grads[p] ** 2
            m_hat, v_hat = m[p] / (1 - 0.9 ** step), v[p] / (1 - 0.999 ** step)
            setattr(sae, p, getattr(sae, p) - cfg.lr * m_hat / (np.sqrt(v_hat) + 1e-8))
        sae.W_dec /= np.linalg.norm(sae.W_dec, axis=1, keepdims=True)
    return float((err ** 2).sum(1).mean())


def evaluate(sae, data, true_feats):
    f = sae.encode(data)
    x_hat = sae.decode(f)
    resid = ((data - x_hat) ** 2).sum(1).mean()
    total = ((data - data.mean(0)) ** 2).sum(1).mean()
    cos = (sae.W_dec @ true_feats.T)  # unit rows on both sides
    return {
        "core evaluation results": {"eval_result_metrics": {
            "reconstruction_quality": {"explained_variance": float(1 - resid / total), "mse": float(resid)},
            "sparsity": {"l0": float((f > 0).sum(1).mean()), "l1": float(f.sum(1).mean())},
            "misc": {"frac_dead": float(((f > 0).sum(0) == 0).mean())},
        }},
        "feature recovery": {"mean_max_cosine": float(cos.max(0).mean())},
    }


def main(out_dir, seed=0):
    cfg = Config()
    cfg.seed = seed  # the harness's --seed (0 when not given)
    rng = np.random.default_rng(cfg.seed)
    data, true_feats = make_data(cfg, rng, 20_000)
    sae = SAE(cfg, rng)
    t0 = time.time()
    final_loss = train(cfg, sae, data[:16_000], rng)
    results = evaluate(sae, data[16_000:], true_feats)
    results["training results"] = {"config": asdict(cfg), "final_loss": final_loss,
                                   "train_seconds": round(time.time() - t0, 3)}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "final_info.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    print(json.dumps(results["core evaluation results"]["eval_result_metrics"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.out_dir, args.seed)
