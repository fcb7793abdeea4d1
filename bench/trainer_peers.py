"""Our TopK trainer beside other libraries' on the same cached activations (run with the
experiment interpreter):

    .venvs/sae/bin/python bench/trainer_peers.py [--quick] [--peers ours,sparsify,...]

Every trainer gets the same data and settings: the template's cached training activations
(SmolLM2 layer 3, d_in 576; build them with one run of the template first), d_sae 2304, k 32,
batch 2048, Adam at lr 4e-3, one pass over the tokens (--quick: 100k tokens), the same shuffled
batches. Held-out explained variance is measured on the core-eval activations (another split of
the corpus, position 0 and special tokens left out), each SAE through its own library's forward.

Peers, each in its own virtual environment under .venvs/peers/<name>, built on first use:
  sparsify             EleutherAI's eai-sparsify 1.3.3 (fused top-k encoder, sparse decoder)
  dictionary_learning  dictionary-learning 0.1.0, its TopKTrainer
  sae_lens             SAELens as installed in .venvs/sae (TopKTrainingSAE)
A peer's environment holds only its own package and the small packages it imports that the
experiment environment lacks, installed with --no-deps; a .pth file puts .venvs/sae's
site-packages behind it, so every trainer runs on the same pinned torch 2.13.0 (pip never
resolves torch, so it cannot upgrade it).

Prints tokens/s and held-out EV per trainer, our ratio to the best peer, and our ratio to the
FLOP limit: fp32 matmul GFLOP/s measured here at the encoder's shape, divided by the FLOPs a
TopK step needs per token when only the selected latents get gradient (the encoder matmul,
2 * d_in * d_sae, plus 6 * k * d_in for the sparse decode and the two sparse gradients).
Load matters on a shared machine: the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "sae_variants"
PEERS = {
    # name: (packages installed --no-deps into its environment)
    "sparsify": ["eai-sparsify==1.3.3", "natsort", "schedulefree"],
    "dictionary_learning": ["dictionary-learning==0.1.0"],
}
D_SAE_EXPANSION, K, BATCH, LR, AUX_COEF = 4, 32, 2048, 4e-3, 1 / 32
QUICK_TOKENS = 100_000


def fail(msg: str) -> None:
    sys.exit(f"trainer_peers: {msg}")


# ------------------------------------------------------------------------------------------
# Driver (experiment interpreter): data, environments, one worker process per trainer
# ------------------------------------------------------------------------------------------
def cached_paths() -> tuple[Path, Path]:
    """The template's default training activations and core-eval data, as saekit caches them."""
    sys.path.insert(0, str(TEMPLATE))
    from saekit import cache
    from saekit.activations import TRAIN_FILE, core_eval_key, train_key
    from saekit.config import load_config

    cfg = load_config(TEMPLATE / "experiment_config.yaml")
    train = cache.artefact_dir("activations", train_key(cfg)) / TRAIN_FILE
    core = cache.artefact_dir("core_eval", core_eval_key(cfg)) / "core_eval.pt"
    for p in (train, core):
        if not p.exists():
            fail(f"no cached activations at {p.parent}; run the template once first "
                 f"(cd templates/sae_variants && {sys.executable} experiment.py --out_dir=/tmp/run_0)")
    return train, core


def peer_python(name: str, root: Path) -> Path:
    """The peer's environment, built on first use."""
    env = root / name
    python = env / "bin" / "python"
    if (env / ".built").exists():
        return python
    print(f"building {env} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_experiment_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", *PEERS[name]],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"installing {' '.join(PEERS[name])} into {env} failed: {proc.stderr.strip().splitlines()[-1:]}")
    (env / ".built").write_text("ok\n")
    return python


def matmul_gflops(seconds: float = 3.0) -> float:
    import torch

    d_in, d_sae = 576, D_SAE_EXPANSION * 576
    x, w, b = torch.randn(BATCH, d_in), torch.randn(d_in, d_sae), torch.randn(d_sae)
    for _ in range(3):
        torch.addmm(b, x, w)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.addmm(b, x, w)
        n += 1
    return 2 * BATCH * d_in * d_sae * n / (time.perf_counter() - start) / 1e9


def run_worker(python: Path, name: str, args: argparse.Namespace, train: Path, core: Path) -> dict:
    cmd = [str(python), __file__, "--worker", name, "--train", str(train), "--core", str(core),
           "--tokens", str(args.tokens)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"trainer": name, "error": tail}
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"train on {QUICK_TOKENS:,} tokens (a smoke run)")
    ap.add_argument("--tokens", type=int, default=0, help="training tokens (default: all cached ones)")
    ap.add_argument("--peers", default="ours,sparsify,dictionary_learning,sae_lens")
    ap.add_argument("--venvs", type=Path, default=REPO / ".venvs" / "peers", help="where peer environments live")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--train", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--core", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.train, args.core, args.tokens)), flush=True)
        return
    if args.quick and not args.tokens:
        args.tokens = QUICK_TOKENS
    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    unknown = [n for n in names if n not in ("ours", "sae_lens", *PEERS)]
    if unknown:
        fail(f"unknown trainer {unknown[0]!r}; choose from ours, sae_lens, {', '.join(PEERS)}")
    train, core = cached_paths()
    gflops = matmul_gflops()
    flop_per_token = 2 * 576 * D_SAE_EXPANSION * 576 + 6 * K * 576
    limit = gflops * 1e9 / flop_per_token
    results = []
    for name in names:
        python = peer_python(name, args.venvs) if name in PEERS else Path(sys.executable)
        print(f"training {name} ...", flush=True)
        results.append(run_worker(python, name, args, train, core))
    load = os.getloadavg()
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; "
          f"fp32 addmm [{BATCH}x576]x[576x{D_SAE_EXPANSION * 576}]: {gflops:.0f} GFLOP/s "
          f"-> FLOP limit {limit:,.0f} tokens/s at {flop_per_token / 1e6:.2f} MFLOP/token")
    print(f"{'trainer':22s} {'tokens/s':>10s} {'EV held-out':>12s} {'L0':>6s} {'tokens':>9s}  note")
    for r in results:
        if "error" in r:
            print(f"{r['trainer']:22s} {'-':>10s} {'-':>12s} {'-':>6s} {'-':>9s}  failed: {r['error'][:90]}")
        else:
            print(f"{r['trainer']:22s} {r['tokens_per_s']:10,.0f} {r['ev']:12.4f} {r['l0']:6.1f} {r['tokens']:9,d}  {r['note']}")
    ours = next((r for r in results if r["trainer"] == "ours" and "error" not in r), None)
    peers = [r for r in results if r["trainer"] != "ours" and "error" not in r]
    if ours:
        if peers:
            best = max(peers, key=lambda r: r["tokens_per_s"])
            print(f"ours / fastest peer ({best['trainer']}): {ours['tokens_per_s'] / best['tokens_per_s']:.2f}x")
        print(f"ours / FLOP limit: {ours['tokens_per_s'] / limit:.1%}")


# ------------------------------------------------------------------------------------------
# Worker (runs inside a trainer's environment): train one SAE, measure it
# ------------------------------------------------------------------------------------------
class Batches:
    """The same shuffled batches for every trainer: a seeded permutation of the cached rows."""

    def __init__(self, acts, n_tokens: int):
        import torch

        self.acts = acts[:n_tokens].clone()
        self.order = torch.randperm(len(self.acts), generator=torch.Generator().manual_seed(0))
        self.n_steps = len(self.acts) // BATCH

    def __iter__(self):
        for i in range(self.n_steps):
            yield self.acts[self.order[i * BATCH:(i + 1) * BATCH]].float()


def lr_factor(step: int, n_steps: int) -> float:
    """Our template's schedule, used by every trainer here: 10 warm-up steps, linear decay over
    the last 20%."""
    if step < 10:
        return (step + 1) / 10
    decay_start = 0.8 * n_steps
    return max(0.0, (n_steps - step) / (n_steps - decay_start)) if step >= decay_start else 1.0


def worker(name: str, train: Path, core: Path, n_tokens: int) -> dict:
    import numpy as np
    import torch

    torch.manual_seed(0)
    # the template's acts.npy, read without saekit (whose imports the peer environments need not
    # carry); float16, the default config's activation_dtype, which cached_paths reads
    acts = torch.from_numpy(np.load(train, mmap_mode="c"))
    n_tokens = n_tokens or len(acts)
    data = torch.load(core, mmap=True)
    keep = torch.ones_like(data["tokens"], dtype=torch.bool)
    keep[:, 0] = False
    keep &= ~torch.isin(data["tokens"], torch.tensor([0, 1, 2]))  # SmolLM2's special ids
    held = data["acts"][keep].float()
    scale = acts[:50_000].float().pow(2).sum(-1).mean().div(acts.shape[1]).sqrt().item()
    batches = Batches(acts, n_tokens)
    train_step, reconstruct, l0, note = TRAINERS[name](acts.shape[1], batches.n_steps, scale, acts[:50_000].float())
    for i, x in enumerate(batches):  # two warm-up steps outside the timing, as every trainer gets
        if i == 2:
            break
        train_step(x, i)
    start = time.perf_counter()
    for i, x in enumerate(batches):
        train_step(x, i)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        err = (held - reconstruct(held)).pow(2).sum()
        ev = 1 - err / (held - held.mean(0)).pow(2).sum()
    return {"trainer": name, "tokens_per_s": batches.n_steps * BATCH / seconds, "ev": ev.item(),
            "l0": l0(held[:4096]), "tokens": batches.n_steps * BATCH, "seconds": seconds, "note": note}


def train_ours(d_in, n_steps, scale, sample):
    import torch

    sys.path.insert(0, str(TEMPLATE))
    from types import SimpleNamespace

    import experiment

    tc = experiment.TrainConfig(k=K, batch_size=BATCH, lr=LR, expansion=D_SAE_EXPANSION)
    torch.manual_seed(tc.seed)
    bench = SimpleNamespace(cfg=SimpleNamespace(model="smollm2-135m", hook_layer=3, device="cpu", context_length=128))
    sae = experiment.SAE(d_in, D_SAE_EXPANSION * d_in, tc, scale, bench)
    with torch.no_grad():
        sae.b_dec.data = sample.mean(0) / sae.input_scale
    opt = torch.optim.Adam(sae.parameters(), lr=tc.lr, betas=(0.9, 0.999))
    since_fired = torch.zeros(sae.cfg.d_sae)

    def step(x, i):
        nonlocal since_fired
        for g in opt.param_groups:
            g["lr"] = LR * lr_factor(i, n_steps)
        loss, fired, _ = experiment.sae_loss(sae, x, tc, 0.0, since_fired >= tc.dead_after_tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        experiment.project_out_parallel_grad(sae)
        opt.step()
        experiment.normalise_decoder(sae)
        since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + len(x))

    return step, sae, lambda x: (sae.encode(x) > 0).sum(-1).float().mean().item(), "templates/sae_variants/experiment.py"


def train_sparsify(d_in, n_steps, scale, sample):
    import torch
    from sparsify import SaeConfig, SparseCoder

    sae = SparseCoder(d_in, SaeConfig(expansion_factor=D_SAE_EXPANSION, k=K), device="cpu")
    with torch.no_grad():
        sae.b_dec.data = sample.mean(0)
    opt = torch.optim.Adam(sae.parameters(), lr=LR)
    since_fired = torch.zeros(sae.num_latents, dtype=torch.long)

    def step(x, i):
        nonlocal since_fired
        for g in opt.param_groups:
            g["lr"] = LR * lr_factor(i, n_steps)
        out = sae(x, dead_mask=since_fired >= 200_000)
        loss = out.fvu + AUX_COEF * out.auxk_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        sae.set_decoder_norm_to_unit_norm()
        fired = torch.zeros(sae.num_latents, dtype=torch.bool)
        fired[out.latent_indices.flatten()] = True
        since_fired = torch.where(fired, 0, since_fired + len(x))

    def l0(x):
        return (sae.encode(x).top_acts > 0).sum(-1).float().mean().item()

    return step, lambda x: sae(x).sae_out, l0, "eai-sparsify 1.3.3, its SparseCoder forward + AuxK"


def train_dictionary_learning(d_in, n_steps, scale, sample):
    from dictionary_learning.trainers.top_k import TopKTrainer

    # its schedule insists on decay_start > warmup_steps, which a --tokens smoke run can break
    trainer = TopKTrainer(steps=n_steps, activation_dim=d_in, dict_size=D_SAE_EXPANSION * d_in, k=K, layer=3,
                          lm_name="smollm2-135m", lr=LR, warmup_steps=10, decay_start=max(int(0.8 * n_steps), 11),
                          threshold_start_step=n_steps, seed=0, device="cpu")
    ae = trainer.ae

    def l0(x):
        return (ae.encode(x) > 0).sum(-1).float().mean().item()

    return lambda x, i: trainer.update(i, x), ae, l0, "dictionary-learning 0.1.0, TopKTrainer.update"


def train_sae_lens(d_in, n_steps, scale, sample):
    import sae_lens
    import torch
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    cfg = TopKTrainingSAEConfig(d_in=d_in, d_sae=D_SAE_EXPANSION * d_in, k=K, dtype="float32", device="cpu",
                                aux_loss_coefficient=AUX_COEF)
    sae = TopKTrainingSAE(cfg)
    with torch.no_grad():
        sae.b_dec.data = sample.mean(0)
    opt = torch.optim.Adam(sae.parameters(), lr=LR, betas=(0.9, 0.999))
    coefficients = {k: (v.value if hasattr(v, "value") else v) for k, v in sae.get_coefficients().items()}
    since_fired = torch.zeros(cfg.d_sae)

    def step(x, i):
        nonlocal since_fired
        for g in opt.param_groups:
            g["lr"] = LR * lr_factor(i, n_steps)
        out = sae.training_forward_pass(TrainStepInput(sae_in=x, coefficients=coefficients,
                                                       dead_neuron_mask=since_fired >= 200_000,
                                                       n_training_steps=i, is_logging_step=False))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        fired = (out.feature_acts > 0).any(0)
        since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + len(x))

    def l0(x):
        return (sae.encode(x) > 0).sum(-1).float().mean().item()

    return step, sae, l0, f"sae-lens {sae_lens.__version__}, TopKTrainingSAE.training_forward_pass"


TRAINERS = {"ours": train_ours, "sparsify": train_sparsify, "dictionary_learning": train_dictionary_learning,
            "sae_lens": train_sae_lens}

if __name__ == "__main__":
    main()
