"""Reference SAEs: dictionaries built by hand, whose place on each headline metric is known in
advance, so that a metric that stops telling good from bad shows up as a wrong order.

Each is built from the cached data of a `Bench` (no training except the baseline, which the
caller trains with the template's own experiment.py and passes in):

  pca           latents +v and -v for every principal direction: exact reconstruction, L0 = d
  dense         ReLU latents that all fire on every token, decoded by the pseudo-inverse: exact
                reconstruction at the largest possible L0
  untrained     random unit directions, tied, TopK: the template's SAE before its first step
  trained       the caller's trained baseline
  dead          no latent ever fires; decodes the mean
  perfect_letter  latents 0-25 fire exactly when the LM's own first-letter probe fires, with the
                probe's direction for encoder and decoder (so sae_bench's absorption sees nothing
                missing); the other latents are random TopK filler
  absorbing     perfect_letter, except that for three quarters of the tokens (chosen by a fixed hash
                of the activation) each letter latent is silenced and one of many token-specific
                latents, each covering a small share, carries the letter instead: absorption by
                construction
  aligned       one latent per sparse-probing class, whose encoder direction is that class's
                token-level mean minus the other classes' mean, firing above the midpoint of the
                two; the other latents are random TopK filler

`EXPECTED` writes down, per headline metric, the pairs whose order a working metric must keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

FILLER_K = 32  # active filler latents per token, as the template's baseline
ABSORBED_SHARE = 0.75  # of the hash buckets, hence of the tokens, whose letter the absorbing SAE hides
ABSORBER_BUCKETS = 64  # token groups; each letter gets one absorbing latent per hidden group
# The bucket is the fractional part of a scaled random projection, which is close to uniform
# whatever the activations' shape. (An argmax over random directions, tried first, is not: the
# activations' anisotropy sent most tokens to a few buckets, so on the default setting the
# reference hid the letter on ~30 % of words instead of 50 % and a single absorber covered
# enough words for the k-sparse probe to take it as a split feature: 0.294 measured.)
HASH_SCALE = 100.0


def _sae_class():
    from sae_bench.custom_saes.base_sae import BaseSAE

    class DictionarySAE(BaseSAE):
        """f = pre * [pre > threshold] with pre = (x - b_dec) W_enc + b_enc (threshold >= 0, so a
        JumpReLU), then TopK over the `topk` latents if k is set; x_hat = f W_dec + b_dec."""

        def __init__(self, d_in: int, d_sae: int, model_name: str, hook_layer: int, k: int | None = None):
            super().__init__(d_in, d_sae, model_name, hook_layer, torch.device("cpu"), torch.float32)
            self.k = k
            self.register_buffer("threshold", torch.zeros(d_sae))
            self.register_buffer("topk", torch.ones(d_sae, dtype=torch.bool))
            self.cfg.architecture_str = "reference"

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            pre = (x - self.b_dec) @ self.W_enc + self.b_enc
            f = pre * (pre > self.threshold)
            if self.k is not None:
                pool = f[..., self.topk]
                kept = torch.zeros_like(pool).scatter_(-1, pool.topk(self.k, dim=-1).indices, 1.0)
                f[..., self.topk] = pool * kept
            return f

        def decode(self, f: torch.Tensor) -> torch.Tensor:
            return f @ self.W_dec + self.b_dec

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decode(self.encode(x))

    return DictionarySAE


@dataclass
class Stats:
    """What the references need of the training activations."""

    mean: torch.Tensor  # [d]
    components: torch.Tensor  # [d, d], principal directions as rows, largest variance first


def activation_stats(train_acts: torch.Tensor, n: int = 50_000) -> Stats:
    x = train_acts[:n].double()
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / (len(x) - 1)
    _, vecs = torch.linalg.eigh(cov)
    return Stats(mean=mean.float(), components=vecs.flip(-1).T.float().contiguous())


def _new(d: int, d_sae: int, bench, k: int | None = None):
    return _sae_class()(d, d_sae, bench.cfg.model, bench.cfg.hook_layer, k=k)


def _random_units(n: int, d: int, gen: torch.Generator) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=gen), dim=-1)


@torch.no_grad()
def pca(bench, stats: Stats):
    d = bench.d_model
    sae = _new(d, 2 * d, bench)
    V = stats.components
    sae.W_dec.copy_(torch.cat([V, -V]))
    sae.W_enc.copy_(sae.W_dec.T)
    sae.b_dec.copy_(stats.mean)
    return sae


@torch.no_grad()
def dense(bench, stats: Stats, d_sae: int, seed: int = 0):
    """Every latent fires on every token and the decoder undoes the encoder exactly.

    The encoder's columns come in +r / -r pairs, so the all-equal bias vector lies in its null
    space: the pseudo-inverse decoder maps the bias to zero, and a bias larger than any projection
    keeps every latent positive.
    """
    d = bench.d_model
    gen = torch.Generator().manual_seed(seed)
    sae = _new(d, d_sae, bench)
    half = _random_units(d_sae // 2, d, gen)
    R = torch.cat([half, -half]).T  # [d, d_sae]
    if d_sae % 2:
        R = torch.cat([R, torch.zeros(d, 1)], dim=1)
    reach = bench.train_acts[:10_000].float().sub(stats.mean).norm(dim=-1).max().item()
    sae.W_enc.copy_(R)
    sae.b_enc.fill_(2.0 * reach)  # > |(x - mean) . r| on every token seen, twice over
    sae.W_dec.copy_(torch.linalg.pinv(R))
    sae.b_dec.copy_(stats.mean)
    return sae


@torch.no_grad()
def untrained(bench, stats: Stats, d_sae: int, seed: int = 0):
    d = bench.d_model
    sae = _new(d, d_sae, bench, k=FILLER_K)
    W = _random_units(d_sae, d, torch.Generator().manual_seed(seed))
    sae.W_dec.copy_(W)
    sae.W_enc.copy_(W.T)
    sae.b_dec.copy_(stats.mean)
    return sae


@torch.no_grad()
def dead(bench, stats: Stats, d_sae: int, seed: int = 0):
    sae = untrained(bench, stats, d_sae, seed)
    sae.W_enc.zero_()
    sae.b_enc.fill_(-1.0)
    sae.k = None
    return sae


@torch.no_grad()
def _with_detectors(bench, stats: Stats, d_sae: int, directions: torch.Tensor, offsets: torch.Tensor,
                    thresholds: torch.Tensor, seed: int):
    """Latents 0..n-1 are the given detectors, f_i = pre_i * [pre_i > threshold_i] with
    pre_i = x . u_i + offset_i (outside the TopK); the rest are untrained filler."""
    sae = untrained(bench, stats, d_sae, seed)
    n = len(directions)
    u = F.normalize(directions.float(), dim=-1)
    sae.W_enc[:, :n] = u.T
    sae.W_dec[:n] = u
    sae.b_enc[:n] = stats.mean @ u.T + offsets  # pre is (x - b_dec) W_enc + b_enc: undo the centring
    sae.threshold[:n] = thresholds.clamp_min(0.0)
    sae.topk[:n] = False
    return sae


def letter_probe(bench):
    """The LM's own first-letter probe (weights [26, d], biases [26]) from the absorption cache."""
    from sae_bench.evals.absorption.common import load_probe

    probe = load_probe(bench.lm.model.cfg.model_name, bench.lm.hook_layer, bench.absorption_dir, torch.float32, "cpu")
    return probe.weights.detach().float(), probe.biases.detach().float()


@torch.no_grad()
def perfect_letter(bench, stats: Stats, d_sae: int, seed: int = 0):
    """Latent i's value is the activation's projection on probe i's unit direction, exactly when
    the probe fires (x . w + b > 0): sae_bench's absorption then finds nothing unexplained."""
    w, b = letter_probe(bench)
    norm = w.norm(dim=-1)
    return _with_detectors(bench, stats, d_sae, w, torch.zeros(26), -b / norm, seed)


def _absorbing_class():
    base = _sae_class()

    class AbsorbingSAE(base):
        """perfect_letter with each letter latent hidden on the tokens of some hash buckets, where
        a bucket-specific latent with the letter's direction mixed in takes its place."""

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            f = super().encode(x)
            letters = f[..., :26]
            spread = torch.remainder((x - self.b_dec) @ self.hash_dir * HASH_SCALE, 1.0)
            bucket = (spread * ABSORBER_BUCKETS).long().clamp(max=ABSORBER_BUCKETS - 1)  # [...]
            hidden = bucket < self.n_hidden
            slot = bucket.clamp(max=self.n_hidden - 1)
            # the absorber's value makes its probe projection equal to the hidden latent's
            carried = letters / self.absorber_cos[slot]  # [..., 26]
            absorbers = torch.zeros(*f.shape[:-1], 26, self.n_hidden, dtype=f.dtype, device=f.device)
            absorbers.scatter_(-1, slot[..., None, None].expand(*slot.shape, 26, 1), carried[..., None])
            absorbers = absorbers * hidden[..., None, None]
            f = f.clone()
            f[..., :26] = letters * ~hidden[..., None]
            f[..., 26 : 26 + 26 * self.n_hidden] = absorbers.flatten(-2)
            return f

    return AbsorbingSAE


@torch.no_grad()
def absorbing(bench, stats: Stats, d_sae: int, seed: int = 0):
    n_hidden = int(ABSORBER_BUCKETS * ABSORBED_SHARE)
    if d_sae < 26 + 26 * n_hidden + FILLER_K:
        raise ValueError(f"absorbing reference needs d_sae >= {26 + 26 * n_hidden + FILLER_K}")
    plain = perfect_letter(bench, stats, d_sae, seed)
    sae = _absorbing_class()(bench.d_model, d_sae, bench.cfg.model, bench.cfg.hook_layer, k=FILLER_K)
    sae.load_state_dict(plain.state_dict())
    gen = torch.Generator().manual_seed(seed + 1)
    d = bench.d_model
    sae.register_buffer("hash_dir", torch.randn(d, generator=gen))
    sae.n_hidden = n_hidden
    letters = sae.W_dec[:26].clone()  # unit probe directions
    noise = _random_units(n_hidden, d, gen)  # one per bucket, shared by the letters
    dirs = F.normalize(letters[:, None, :] + noise[None, :, :], dim=-1)  # [26, n_hidden, d]
    cos = (dirs * letters[:, None, :]).sum(-1)  # [26, n_hidden]
    sae.register_buffer("absorber_cos", cos.T.contiguous())  # [n_hidden, 26]
    rows = slice(26, 26 + 26 * n_hidden)
    sae.W_dec[rows] = dirs.reshape(-1, d)
    sae.W_enc[:, rows] = dirs.reshape(-1, d).T
    sae.topk[rows] = False  # set by encode itself, not by TopK
    sae.threshold[rows] = float("inf")
    return sae


@torch.no_grad()
def aligned(bench, stats: Stats, d_sae: int, seed: int = 0):
    """One latent per (probing dataset, class): direction = the class's mean token activation
    minus the other classes' (training split), threshold midway between the two projections."""
    dirs, offsets, names = [], [], []
    for name, path in bench.probing_dirs.items():
        data = torch.load(Path(path) / "probing.pt", weights_only=False)
        means = {cls: v["acts"].float().mean(0) for cls, v in data["acts"]["train"].items()}
        for cls, m in means.items():
            rest = torch.stack([o for c, o in means.items() if c != cls]).mean(0)
            u = F.normalize(m - rest, dim=0)
            dirs.append(u)
            offsets.append(-0.5 * (m + rest) @ u)  # fires where x . u passes the midpoint
            names.append(f"{name}/{cls}")
    if not dirs:
        raise ValueError("aligned reference: no sparse-probing datasets are configured")
    if len(dirs) + FILLER_K > d_sae:
        raise ValueError(f"aligned reference: {len(dirs)} classes need d_sae > {len(dirs) + FILLER_K}")
    sae = _with_detectors(bench, stats, d_sae, torch.stack(dirs), torch.stack(offsets), torch.zeros(len(dirs)), seed)
    sae.class_latents = names
    return sae


# Per headline metric: pairs (a, b) meaning "a must score better than b" in the metric's own
# direction (the `better` of template.yaml), by more than the metric's noise.
EXPECTED: dict[str, list[tuple[str, str]]] = {
    "explained_variance": [("pca", "trained"), ("dense", "trained"), ("trained", "untrained"), ("trained", "dead")],
    "explained_variance_excl_dominant_dim": [("pca", "trained"), ("dense", "trained"), ("trained", "untrained"), ("trained", "dead")],
    "l0": [("dead", "trained"), ("trained", "pca"), ("pca", "dense")],
    "ce_loss_score": [("pca", "trained"), ("dense", "trained"), ("trained", "untrained"), ("trained", "dead")],
    "kl_div_score": [("pca", "trained"), ("dense", "trained"), ("trained", "untrained"), ("trained", "dead")],
    "frac_dead": [("trained", "dead"), ("dense", "dead"), ("pca", "dead")],
    "sparse_probing_top1": [("aligned", "trained"), ("aligned", "untrained"), ("trained", "dead")],
    "absorption": [("perfect_letter", "trained"), ("trained", "absorbing")],
}

# Absolute bounds the brief fixes (metric, reference, op, value).
BOUNDS: list[tuple[str, str, str, float]] = [
    ("absorption", "perfect_letter", "<=", 0.05),
    ("explained_variance", "pca", ">=", 0.99),
    ("explained_variance", "dense", ">=", 0.99),
    ("frac_dead", "dead", ">=", 1.0),
    ("l0", "dead", "<=", 0.0),
]

ALL = ("pca", "dense", "untrained", "trained", "dead", "perfect_letter", "absorbing", "aligned")


def build(bench, trained, names: tuple[str, ...] = ALL, seed: int = 0) -> dict:
    """The named references for `bench`, at the trained baseline's width."""
    d_sae = trained.W_dec.shape[0]
    stats = activation_stats(bench.train_acts)
    makers = {
        "pca": lambda: pca(bench, stats),
        "dense": lambda: dense(bench, stats, d_sae, seed),
        "untrained": lambda: untrained(bench, stats, d_sae, seed),
        "trained": lambda: trained,
        "dead": lambda: dead(bench, stats, d_sae, seed),
        "perfect_letter": lambda: perfect_letter(bench, stats, d_sae, seed),
        "absorbing": lambda: absorbing(bench, stats, d_sae, seed),
        "aligned": lambda: aligned(bench, stats, d_sae, seed),
    }
    return {name: makers[name]() for name in names}


# --- scoring --------------------------------------------------------------------------------
def headline_paths(template_yaml: Path | None = None) -> dict[str, tuple[str, bool]]:
    """metric name -> (path in final_info.json, higher is better), as template.yaml declares."""
    import yaml

    spec = yaml.safe_load((template_yaml or Path(__file__).resolve().parents[1] / "template.yaml").read_text())
    return {m["name"]: (m["path"], m["better"] == "higher") for m in spec["metrics"]}


SECTIONS = {
    "core evaluation results": "core",
    "sparse probing evaluation results": "sparse_probing",
    "absorption evaluation results": "absorption",
}


def needed(metrics: list[str]) -> dict[str, set[str]]:
    """reference -> the metrics it takes part in (its pairs and bounds)."""
    out: dict[str, set[str]] = {}
    for m in metrics:
        for a, b in EXPECTED.get(m, []):
            out.setdefault(a, set()).add(m)
            out.setdefault(b, set()).add(m)
        for metric, ref, _, _ in BOUNDS:
            if metric == m:
                out.setdefault(ref, set()).add(m)
    return out


def score(sae, bench, metrics: set[str], out_dir: Path, probe_seed: int | None = None) -> dict[str, float]:
    """The named headline metrics of one SAE, running only the evals they come from."""
    import math

    from .evals.absorption import run_absorption_eval
    from .evals.core import run_core_eval
    from .evals.sparse_probing import run_sparse_probing_eval
    from .logs import into_log

    paths = headline_paths()
    evals = {SECTIONS[paths[m][0].split("/")[0]] for m in metrics}
    out_dir.mkdir(parents=True, exist_ok=True)
    sae.eval()
    info: dict[str, dict] = {}
    with into_log(out_dir / "saebench.log"):  # sae_bench prints a line per probe
        if "core" in evals:
            info["core evaluation results"] = run_core_eval(sae, bench.lm, bench.core_data, bench.cfg, out_dir)
        if "sparse_probing" in evals:
            info["sparse probing evaluation results"] = run_sparse_probing_eval(sae, bench.cfg, bench.probing_dirs)
        if "absorption" in evals:
            info["absorption evaluation results"] = run_absorption_eval(sae, bench.lm, bench.cfg, bench.absorption_dir, probe_seed)
    values = {}
    for m in metrics:
        node = info
        for key in paths[m][0].split("/"):
            node = node[key]
        values[m] = float(node) if node is not None else math.nan
    return values


@dataclass
class Verdict:
    metric: str
    claim: str  # e.g. "pca > trained" in the metric's better direction
    margin: float  # how far the claim holds (negative: it fails)
    noise: float
    ok: bool


def check(values: dict[str, dict[str, float]], noise: dict[str, float] | None = None) -> list[Verdict]:
    """Every expected order and bound that `values` (reference -> metric -> value) can test.

    An order holds when the better reference leads by more than the metric's noise (0 if unknown,
    so a tie never passes); a bound holds as written.
    """
    import math

    paths = headline_paths()
    noise = noise or {}
    verdicts = []
    for metric, pairs in EXPECTED.items():
        higher = paths[metric][1]
        for a, b in pairs:
            if metric not in values.get(a, {}) or metric not in values.get(b, {}):
                continue
            diff = values[a][metric] - values[b][metric]
            margin = diff if higher else -diff
            n = noise.get(metric, 0.0)
            ok = math.isfinite(margin) and margin > n
            verdicts.append(Verdict(metric, f"{a} {'>' if higher else '<'} {b}", margin, n, ok))
    for metric, ref, op, bound in BOUNDS:
        if metric not in values.get(ref, {}):
            continue
        v = values[ref][metric]
        margin = (bound - v) if op == "<=" else (v - bound)
        verdicts.append(Verdict(metric, f"{ref} {op} {bound}", margin, 0.0, math.isfinite(v) and margin >= 0))
    return verdicts
