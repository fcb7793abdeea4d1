"""The few metrics saekit computes itself rather than taking from sae_bench, and why.

sae_bench 0.6.0's `explained_variance` measures total variance about zero instead of about the
mean: it accumulates E[x_d^2] where E[x_d] was meant and then collapses the dimensions to a
scalar (fixed upstream in SAELens PR #665, issue #659). On this model's residual stream, where one
dimension has a large mean, that inflates the figure; predicting the mean alone would score well
above 0. saekit therefore reports the conventional definition under `explained_variance` and keeps
sae_bench's own number as `explained_variance_saebench_0_6_0`.

One dimension of the hooked residual stream carries about half of its variance, so a good-looking
explained variance can hide a poor reconstruction of everything else: the variant with that
dimension left out is reported too.
"""

from __future__ import annotations

import torch


class VarianceAccumulator:
    """Streams sums over tokens so that batches can be added one at a time (float64 throughout)."""

    def __init__(self, d: int):
        self.n = 0
        self.sum_x = torch.zeros(d, dtype=torch.float64)
        self.sum_x2 = torch.zeros(d, dtype=torch.float64)
        self.sum_resid2 = torch.zeros(d, dtype=torch.float64)

    def add(self, x: torch.Tensor, x_hat: torch.Tensor) -> None:
        """x, x_hat: [tokens, d] (already restricted to the tokens that count)."""
        x = x.double().cpu()
        r = x - x_hat.double().cpu()
        self.n += x.shape[0]
        self.sum_x += x.sum(0)
        self.sum_x2 += x.pow(2).sum(0)
        self.sum_resid2 += r.pow(2).sum(0)

    def variance_per_dim(self) -> torch.Tensor:
        mean = self.sum_x / self.n
        return self.sum_x2 / self.n - mean.pow(2)

    def dominant_dim(self) -> int:
        return int(self.variance_per_dim().argmax())

    def explained_variance(self, exclude: list[int] | None = None) -> float:
        """1 - sum_d E[(x_d - x_hat_d)^2] / sum_d Var(x_d), over the dimensions not excluded."""
        keep = torch.ones_like(self.sum_x, dtype=torch.bool)
        if exclude:
            keep[list(exclude)] = False
        resid = (self.sum_resid2 / self.n)[keep].sum()
        total = self.variance_per_dim()[keep].sum()
        return float(1 - resid / total)


def explained_variance(x: torch.Tensor, x_hat: torch.Tensor, exclude: list[int] | None = None) -> float:
    acc = VarianceAccumulator(x.shape[-1])
    acc.add(x.reshape(-1, x.shape[-1]), x_hat.reshape(-1, x.shape[-1]))
    return acc.explained_variance(exclude)


def frac_dead(feature_density: list[float] | torch.Tensor) -> float:
    """Latents that never fired on the evaluation tokens."""
    density = torch.as_tensor(feature_density, dtype=torch.float64)
    return float((density <= 0).double().mean())
