"""sae_bench's absorption scoring (0.6.0) with whole-tensor operations instead of per-word loops.

On the whole vocabulary sae_bench's own path spends most of its time outside arithmetic: a
DataLoader that stacks 2,500-row batches one row at a time (500 steps), a raw-score table built
word by word with 260 k-sparse probe calls per word (~1.6 M tiny tensor calls), a dozen sklearn
metrics per letter and k of which absorption reads one (F1), parquet files written and read back,
and a second per-word loop in FeatureAbsorptionCalculator that tokenises every prompt again.
The functions below compute the quantities that the absorption score reads, in the same order,
with the same random draws and the same batch shapes for every matrix product, so the numbers
are those of sae_bench (tests/sae_template/test_absorption_scoring.py compares them with
sae_bench's functions). Nothing here changes what the metric means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

LETTERS = "abcdefghijklmnopqrstuvwxyz"  # sae_bench.evals.absorption.vocab.LETTERS
EPS = 1e-8  # sae_bench's "this latent did not fire" (feature_absorption_calculator.EPS)


class ShuffledBatches:
    """What torch's DataLoader(TensorDataset(x, y), batch_size, shuffle=True) yields, with the
    same draws from the global random state, but indexing whole batches at once.

    Per epoch the DataLoader's iterator draws a base seed (unused with no workers) and its
    RandomSampler draws the seed of a fresh generator for one randperm; collating rows one by one
    gives exactly x[indices]."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int):
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        torch.empty((), dtype=torch.int64).random_()  # the iterator's base seed
        seed = int(torch.empty((), dtype=torch.int64).random_().item())  # the sampler's
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(seed))
        for idx in order.split(self.batch_size):
            yield self.x[idx], self.y[idx]


def train_multi_probe(x: torch.Tensor, y: torch.Tensor, batch_size: int, num_epochs: int, l1_decay: float | None,
                      lr: float = 0.01, end_lr: float = 1e-5, weight_decay: float = 1e-6):
    """sae_bench's probing.train_multi_probe (with an L1 term: train_sparse_multi_probe) fed by
    ShuffledBatches; the training loop itself is sae_bench's."""
    from sae_bench.evals.absorption import probing

    y = y.to(dtype=x.dtype)
    probe = probing.LinearProbe(x.shape[-1], num_outputs=y.shape[-1]).to(x.device, dtype=x.dtype)
    probing._run_probe_training(
        probe,
        ShuffledBatches(x, y, batch_size),
        loss_fn=torch.nn.BCEWithLogitsLoss(pos_weight=probing._calc_pos_weights(y).to(x.device)),
        num_epochs=num_epochs,
        lr=lr,
        end_lr=end_lr,
        weight_decay=weight_decay,
        show_progress=False,
        optimizer_name="Adam",
        extra_loss_fn=None if l1_decay is None else lambda p, _x, _y: l1_decay * p.weights.abs().sum(dim=-1).mean(),
        verbose=False,
        device=x.device,
    )
    return probe


def create_and_train_probe(model, formatter, hook_point: str, probes_dir, vocab: list[str], batch_size: int,
                           num_epochs: int, lr: float, base_template: str, pos_idx: int) -> None:
    """sae_bench's common.create_and_train_probe (the LM's first-letter probe, built once per cache
    entry) with its 50 epochs of 64-row batches fed by ShuffledBatches: same files, same probe."""
    from pathlib import Path

    from sae_bench.evals.absorption import probing

    train_set, test_set = probing.create_dataset_probe_training(
        vocab=vocab, formatter=formatter, num_prompts_per_token=1, base_template=base_template
    )
    layer = int(hook_point.split(".")[1])
    path = Path(probes_dir) / f"{model.cfg.model_name}" / f"layer_{layer}"
    train_df, test_df, train_acts, test_acts = probing.gen_and_save_df_acts_probing(
        model=model, train_dataset=train_set, test_dataset=test_set, path=path, hook_point=hook_point,
        batch_size=batch_size, position_idx=pos_idx,
    )
    # train_linear_probe_for_task, step by step
    data = {
        "X_train": torch.from_numpy(train_acts).float(),
        "X_test": torch.from_numpy(test_acts).float(),
        "y_train": torch.from_numpy(np.array(train_df["answer_class"].values)).long(),
        "y_test": torch.from_numpy(np.array(test_df["answer_class"].values)).long(),
    }
    y_onehot = torch.nn.functional.one_hot(data["y_train"], num_classes=len(LETTERS))
    probe = train_multi_probe(data["X_train"].clone(), y_onehot.clone(), batch_size, num_epochs, l1_decay=None,
                              lr=lr, weight_decay=1e-4)
    probing.save_probe_and_data(probe, data, probing_path=path)


def load_probe_data_split(tokenizer, probes_dir, model_name: str, layer: int, split: str):
    """sae_bench's common.load_probe_data_split (activations as float32 on the CPU, and the
    (word, letter) pairs), reading the CSV's token column once instead of one .iloc row at a time
    (about 2 s on the whole vocabulary, in every run)."""
    import re
    from pathlib import Path

    folder = Path(probes_dir) / model_name / f"layer_{layer}"
    with np.load(folder / "data.npz") as data:
        acts, labels = torch.from_numpy(data[f"X_{split}"]).float(), data[f"y_{split}"].tolist()
    tokens = pd.read_csv(folder / f"{split}_df.csv", keep_default_na=False, na_values=[""])["token"].tolist()
    keep, pairs = [], []
    for idx, label in enumerate(labels):
        token = tokens[idx]
        if not isinstance(token, str) or re.match(r"[\d<>]", token):  # e.g. byte tokens like <0x6A>
            continue
        pairs.append((tokenizer.convert_tokens_to_string([token]), label))
        keep.append(idx)
    return acts[keep].clone(), pairs


def encode_batches(sae, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """sae.encode over x in sae_bench's batches (the batch shape can change the last bits)."""
    with torch.no_grad():
        return torch.cat([sae.encode(b.to(sae.device, sae.dtype)).cpu() for b in x.split(batch_size)])


class KSparseProbes:
    """sae_bench's k-sparse probes (train_k_sparse_probes with precalc_sae_acts=True), each
    logistic regression fitted only when asked for. Absorption reads a letter's probes only up to
    the first k whose F1 does not jump (add_feature_splits_to_metrics_df): usually 2-3 of the 10
    fits per letter that sae_bench makes, and the fits are most of its k-sparse probing time."""

    def __init__(self, sae, labels: list[int], acts: torch.Tensor, batch_size: int, num_epochs: int,
                 l1_decay: float = 0.01):
        with torch.no_grad():
            y_onehot = torch.nn.functional.one_hot(torch.tensor(labels))
            self.sae_acts = encode_batches(sae, acts.to(sae.device, dtype=sae.dtype), batch_size)
        self.l1_probe = train_multi_probe(self.sae_acts, y_onehot, batch_size, num_epochs, l1_decay).float().cpu()
        self.labels = np.array(labels)
        self._fitted: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def get(self, k: int, letter: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latent ids, weights, bias) of letter's k-sparse probe."""
        from sklearn.linear_model import LogisticRegression

        if (k, letter) not in self._fitted:
            with torch.no_grad():
                feats = self.l1_probe.weights[letter].topk(k).indices
                lr = LogisticRegression(max_iter=500, class_weight="balanced")
                lr.fit(self.sae_acts[:, feats].float().numpy(), (self.labels == letter).astype(np.int64))
            self._fitted[k, letter] = (feats, torch.tensor(lr.coef_[0]).float(), torch.tensor(lr.intercept_[0]).float())
        return self._fitted[k, letter]


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    """sklearn's f1_score for binary labels (0 where it is undefined, as sklearn returns)."""
    tp = int(np.sum(y & pred))
    fp = int(np.sum(~y & pred))
    fn = int(np.sum(y & ~pred))
    if tp == 0:
        return 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall)


@dataclass
class TestScores:
    answer: np.ndarray  # [words] letter index of each test word
    tokens: list[str]
    probe: torch.Tensor  # [words, 26] LM probe scores
    sae_acts: torch.Tensor  # [words, d_sae]


def score_test_words(sae, probe, acts: torch.Tensor, labels: list[tuple[str, int]], batch_size: int = 24) -> TestScores:
    """What eval_probe_and_sae_k_sparse_raw_scores computes per word, per batch of its size."""
    sae_acts, probe_scores = [], []
    with torch.no_grad():
        probe = probe.to(sae.device)
        for b in acts.split(batch_size):
            b = b.to(sae.device)
            sae_acts.append(encode_batches(sae, b, 4096).float())
            probe_scores.append(probe(b).float().cpu())
    return TestScores(np.array([a for _, a in labels]), [t for t, _ in labels], torch.cat(probe_scores), torch.cat(sae_acts))


def feature_splits(scores: TestScores, probes: KSparseProbes, max_k_value: int, f1_jump_threshold: float) -> pd.DataFrame:
    """Per letter, what absorption reads of sae_bench's build_metrics_df and
    add_feature_splits_to_metrics_df: the LM probe's F1 and the split latents, i.e. those of the
    last k-sparse probe whose F1 beat the previous best by more than f1_jump_threshold, k
    counting up from 1 and stopping at the first that does not."""
    rows = []
    probe_pos = (scores.probe > 0.0).numpy()
    for i, letter in enumerate(LETTERS):
        y = scores.answer == i
        best, split = -100.0, []
        for k in range(1, max_k_value + 1):
            feats, weight, bias = probes.get(k, i)
            f1 = _f1(y, ((scores.sae_acts[:, feats] @ weight + bias) > 0.0).numpy())
            if not f1 > best + f1_jump_threshold:
                break
            best, split = f1, feats.tolist()
        rows.append({"letter": letter, "f1_probe": _f1(y, probe_pos[:, i]), "split_feats": split,
                     "num_split_features": len(split) - 1})
    return pd.DataFrame(rows)


@dataclass
class LetterCandidates:
    words: list[str]  # test words of the letter that the LM probe gets right, in test order
    split_feats: list[int]


def candidates(scores: TestScores, metrics_df: pd.DataFrame) -> dict[str, LetterCandidates]:
    """sae_bench's get_stats_and_likely_false_negative_tokens, from the scores in memory."""
    out = {}
    for i, letter in enumerate(LETTERS):
        hit = (scores.answer == i) & (scores.probe[:, i] > 0).numpy()
        split = metrics_df.loc[metrics_df["letter"] == letter, "split_feats"].iloc[0]
        out[letter] = LetterCandidates([t for t, h in zip(scores.tokens, hit) if h], list(split))
    return out


def absorption_rows(calculator, sae, probe_direction: torch.Tensor, letter: str, cands: LetterCandidates,
                    hook: str) -> list[dict]:
    """FeatureAbsorptionCalculator.calculate_absorption for one letter, the per-word loop done on
    whole batches; returns the fields of sae_bench's per-word rows that _aggregate_results_df reads."""
    if not cands.words:
        return []
    prompts = calculator._build_prompts(cands.words)  # draws from `random` exactly as sae_bench does
    lengths = {len(ids) for ids in calculator.model.tokenizer([p.base for p in prompts])["input_ids"]}
    if len(lengths) > 1:
        raise ValueError("All prompts must have the same token length! Variable-length prompts are not yet supported.")
    main = torch.tensor(cands.split_feats, dtype=torch.long)
    rows = []
    with torch.inference_mode():
        direction = probe_direction / probe_direction.norm()
        cos = torch.nn.functional.cosine_similarity(direction.to(sae.device), sae.W_dec, dim=-1).float().cpu()
        absorber_ok = cos >= calculator.absorption_fraction_probe_cos_sim_threshold
        absorber_ok[main] = False
        cos64 = cos.double()
        for start in range(0, len(prompts), calculator.batch_size):
            batch = prompts[start : start + calculator.batch_size]
            acts = calculator.model.run_with_cache([p.base for p in batch], names_filter=[hook])[1][hook]
            acts = acts[:, calculator.word_token_pos, :]
            sae_acts = sae.encode(acts)
            proj = (sae_acts * cos.to(sae_acts.device)).cpu()
            act_proj = (acts @ direction.to(device=sae_acts.device, dtype=sae_acts.dtype)).cpu().double()
            sae_acts = sae_acts.cpu()
            main_proj = proj[:, main].sum(-1).double()
            absorbers = torch.where(absorber_ok & (proj > 0), proj, torch.tensor(float("-inf")))
            top = absorbers.topk(min(calculator.absorption_fraction_max_absorbing_latents, proj.shape[1]), dim=-1).values
            top_sum = torch.where(torch.isfinite(top), top, 0.0).sum(-1).double()
            top_feat = proj.argmax(-1)
            main_silent = (sae_acts[:, main] < EPS).all(-1)
            for j, prompt in enumerate(batch):
                a, m, t = act_proj[j].item(), main_proj[j].item(), top_sum[j].item()
                if m >= a or t / a < calculator.probe_projection_proportion_threshold:
                    fraction = 0.0
                elif m <= 0.0:
                    fraction = 1.0
                else:
                    absorbed = min(t, a - m)
                    fraction = float(np.clip(absorbed / (absorbed + m), 0.0, 1.0))
                f = int(top_feat[j])
                full = bool(
                    main_silent[j]
                    and cos[f].item() >= calculator.full_absorption_probe_cos_sim_threshold
                    and a >= 0
                    and sae_acts[j, f].item() * cos64[f].item() / a >= calculator.probe_projection_proportion_threshold
                )
                rows.append({"letter": letter, "token": prompt.word, "absorption_fraction": fraction,
                             "is_full_absorption": full, "num_probe_true_positives": len(cands.words),
                             "split_feats": cands.split_feats})
    return rows


def aggregate(rows: list[dict]) -> pd.DataFrame:
    """Per letter, as sae_bench's absorption.main._aggregate_results_df (whose module is not
    imported: it parses sae_lens's directory of pretrained SAEs on import): sums of the per-word
    fractions and full-absorption flags over the letter's probe true positives."""
    by_letter: dict[str, list[dict]] = {}
    for row in rows:
        by_letter.setdefault(row["letter"], []).append(row)
    columns = ["letter", "absorption_fraction", "is_full_absorption", "num_probe_true_positives", "split_feats",
               "num_split_feats", "mean_absorption_fraction", "num_full_absorption", "full_absorption_rate"]
    out = []
    for letter in sorted(by_letter):
        words = by_letter[letter]
        n = words[0]["num_probe_true_positives"]
        fraction = sum(w["absorption_fraction"] for w in words)
        full = sum(int(w["is_full_absorption"]) for w in words)
        out.append({
            "letter": letter, "absorption_fraction": fraction, "is_full_absorption": full,
            "num_probe_true_positives": n, "split_feats": words[0]["split_feats"],
            "num_split_feats": len(words[0]["split_feats"]), "mean_absorption_fraction": fraction / n,
            "num_full_absorption": full, "full_absorption_rate": full / n,
        })
    return pd.DataFrame(out, columns=columns)
