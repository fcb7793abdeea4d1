"""Feature absorption on the first-letter task, with sae_bench's absorption functions.

sae_bench's `run_eval` loads its model from the hub, runs the full model over the whole
vocabulary (~2.5 h on 2 cores for SmolLM2) and writes into site-packages. Here the same functions
are called directly, with these changes of setting, not of method:

- the vocabulary is the tokenizer's whole-word tokens (a leading space, then at least two
  letters only), or a seeded sample of them, sorted first because the tokenizer's own order
  changes from process to process;
- the model only runs up to the hook layer (`HookModel`): nothing after it is read;
- the activations of the prompts used to score absorption depend on the prompts alone, so they
  are memoised by prompt text in the cache; prompts are rebuilt identically in every run because
  the random state is reseeded first;
- the k-sparse probe's batch is the training split over `k_sparse_probe_steps_per_epoch`, not a
  fixed 4,096 (which left a 3,200-word split one Adam step per epoch);
- fewer than `min_letters` letters whose LM probe passes `min_probe_f1`: no score (NaN, and
  `not_scored` says why), where sae_bench would average whatever letters there are.

sae_bench projects the raw activation, mean included, on each letter's probe. On SmolLM2 layer 3
the mean projects at -6 to -10 on every probe, which moves words toward "absorbed" whenever the
main latent is silent; the score is still reported exactly as sae_bench defines it.

Everything that depends on the SAE (k-sparse probes on its latents, feature splits, absorption
fractions) is recomputed every run, by sae_bench's steps with their per-word Python loops done on
whole tensors (absorption_scoring.py: same random draws, same numbers, checked against sae_bench).
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import time
import uuid
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from .. import cache
from ..config import ExperimentConfig
from ..lm import LanguageModel
from ..logs import into_log
from ..timing import LM_FORWARD

PROMPT_TEMPLATE = "{word} has the first letter:"
PROMPT_TOKEN_POS = -6  # the word's position in the template above
MEMO_FILE = "prompt_acts.pt"
ICL_EXAMPLES = 10  # in-context examples per scoring prompt, as in sae_bench


class HookModel:
    """A HookedTransformer that never runs past the hook, and remembers prompts it has seen.

    `run_with_cache` is the only model call sae_bench's absorption code makes. The memo keeps the
    activation at `keep_pos` only; other positions come back as NaN, so that code reading them
    would fail loudly rather than silently use wrong numbers.
    """

    def __init__(self, lm: LanguageModel, memo: dict[str, torch.Tensor] | None = None, keep_pos: int = PROMPT_TOKEN_POS):
        self._lm = lm
        self.memo = memo
        self.keep_pos = keep_pos
        self.added = 0

    def __getattr__(self, name):  # cfg, tokenizer, to_tokens ... from the real model
        return getattr(self._lm.model, name)

    def _forward(self, prompts: list[str]) -> torch.Tensor:
        model = self._lm.model
        with LM_FORWARD.timing():
            resid = model(prompts, stop_at_layer=self._lm.hook_layer + 1)
        return resid.float()

    @torch.no_grad()
    def run_with_cache(self, prompts, names_filter=None, **_):
        hook = self._lm.hook_name
        assert names_filter in (None, hook, [hook]), f"only {hook} is available"
        if self.memo is None:
            return None, {hook: self._forward(prompts)}
        missing = [p for p in prompts if p not in self.memo]
        if missing:
            acts = self._forward(missing)
            for p, a in zip(missing, acts):
                # a view would keep the whole [batch, tokens, d] tensor alive in the memo file
                self.memo[p] = a[self.keep_pos].detach().cpu().clone()
            self.added += len(missing)
        length = self._lm.model.to_tokens(prompts[:1]).shape[1]
        out = torch.full((len(prompts), length, self._lm.d_model), float("nan"))
        out[:, self.keep_pos] = torch.stack([self.memo[p] for p in prompts])
        return None, {hook: out.to(self._lm.model.cfg.device)}


def whole_word_vocab(tokenizer, size: int, seed: int, per_letter: int) -> list[str]:
    """Every whole-word token (size 0), or a seeded sample of `size` of them with at least
    `per_letter` words for every first letter the tokenizer has: sae_bench's probes need every
    letter in the training split."""
    from sae_bench.evals.absorption.vocab import get_alpha_tokens

    words = sorted(w for w in get_alpha_tokens(tokenizer) if w.startswith(" ") and len(w) >= 3)
    if size == 0 or size >= len(words):
        return words
    rng = random.Random(seed)
    by_letter: dict[str, list[str]] = {}
    for w in words:
        by_letter.setdefault(w[1].lower(), []).append(w)
    chosen = {w for ws in by_letter.values() for w in rng.sample(ws, min(per_letter, len(ws)))}
    rest = [w for w in words if w not in chosen]
    chosen |= set(rng.sample(rest, max(0, min(size - len(chosen), len(rest)))))
    return sorted(chosen)


# Settings that only change how each run scores its SAE, not the cached LM probe and prompt
# activations: every other absorption setting must be part of absorption_key.
SCORING_ONLY = frozenset({
    "enabled", "max_k_value", "f1_jump_threshold", "min_probe_f1", "min_letters",
    "k_sparse_probe_num_epochs", "k_sparse_probe_steps_per_epoch",
})


def absorption_key(cfg: ExperimentConfig) -> dict:
    a = cfg.absorption
    return {
        "what": "absorption probe",
        "model": cfg.model,
        "hook": cfg.hook_name,
        "llm_dtype": cfg.llm_dtype,
        "vocab_size": a.vocab_size,
        "min_words_per_letter": a.min_words_per_letter,
        "template": PROMPT_TEMPLATE,
        "icl_examples": ICL_EXAMPLES,
        "seed": cfg.seed,
        "format": 3,  # 3: vocab_size 0 means the whole vocabulary; memo entries are compact
    }


def _build_probe(cfg: ExperimentConfig, lm: LanguageModel, out: Path) -> None:
    """The LM's own first-letter probe (sae_bench's create_and_train_probe), trained once."""
    from sae_bench.evals.absorption.prompting import first_letter_formatter

    from .absorption_scoring import create_and_train_probe

    vocab = whole_word_vocab(lm.tokenizer, cfg.absorption.vocab_size, cfg.seed, cfg.absorption.min_words_per_letter)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    create_and_train_probe(
        model=HookModel(lm),
        formatter=first_letter_formatter(),
        hook_point=lm.hook_name,
        probes_dir=out,
        vocab=vocab,
        batch_size=64,
        num_epochs=50,
        lr=1e-2,
        base_template=PROMPT_TEMPLATE,
        pos_idx=PROMPT_TOKEN_POS,
    )


def prepare_absorption(cfg: ExperimentConfig, lm: LanguageModel) -> Path:
    def build(out: Path) -> None:
        with into_log(out / "build.log"):
            _build_probe(cfg, lm, out)

    return cache.cached_dir("absorption", absorption_key(cfg), build)


def _load_memo(probe_dir: Path) -> dict[str, torch.Tensor]:
    path = probe_dir / MEMO_FILE
    return torch.load(path) if path.exists() else {}


def _save_memo(probe_dir: Path, memo: dict[str, torch.Tensor]) -> None:
    if not cache.writable(probe_dir):
        return  # the shared cache is read-only to this run; the memo only saves time
    tmp = probe_dir / f".{MEMO_FILE}.{uuid.uuid4().hex[:8]}"
    torch.save(memo, tmp)
    tmp.replace(probe_dir / MEMO_FILE)  # atomic: a concurrent reader sees the old or the new file
    cache.record_file(probe_dir, MEMO_FILE)  # part of the artefact now: checked like the rest


def k_sparse_probe_batch_size(probe_dir: Path, model_name: str, layer: int, steps_per_epoch: int) -> int:
    """The training split (as the LM probe's build stored it) divided into `steps_per_epoch` batches."""
    import numpy as np

    with np.load(probe_dir / model_name / f"layer_{layer}" / "data.npz") as data:
        n_train = len(data["y_train"])
    return max(1, math.ceil(n_train / steps_per_epoch))


def run_absorption_eval(sae, lm: LanguageModel, cfg: ExperimentConfig, probe_dir: Path, probe_seed: int | None = None) -> dict:
    """`probe_seed` (default: the config's seed) seeds the k-sparse probes only: rerunning with
    other seeds measures the metric's noise. The scoring prompts always follow the config's seed."""
    from sae_bench.evals.absorption import feature_absorption as fa
    from sae_bench.evals.absorption.common import load_probe
    from sae_bench.evals.absorption.eval_config import AbsorptionEvalConfig
    from sae_bench.evals.absorption.eval_output import (
        EVAL_TYPE_ID_ABSORPTION,
        AbsorptionEvalOutput,
        AbsorptionMeanMetrics,
        AbsorptionMetricCategories,
        AbsorptionResultDetail,
    )
    from sae_bench.evals.absorption.feature_absorption_calculator import FeatureAbsorptionCalculator
    from sae_bench.evals.absorption.prompting import first_letter_formatter
    from sae_bench.sae_bench_utils import get_sae_bench_version, get_sae_lens_version
    from sklearn.exceptions import UndefinedMetricWarning

    from . import absorption_scoring as scoring

    a = cfg.absorption
    device = str(lm.model.cfg.device)
    memo = _load_memo(probe_dir)
    model = HookModel(lm, memo)
    sae_name = "custom_sae"
    batch_size = k_sparse_probe_batch_size(probe_dir, model.cfg.model_name, lm.hook_layer, a.k_sparse_probe_steps_per_epoch)
    probe_seed = cfg.seed if probe_seed is None else probe_seed
    random.seed(probe_seed)
    torch.manual_seed(probe_seed)
    with warnings.catch_warnings():
        # letters with no test word make sklearn warn that F1 / AUC are undefined; those letters
        # are then not scored (probe F1 0), as in sae_bench
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        # sae_bench's run_k_sparse_probing_experiment and load_and_run_calculate_projections_and_cos_sims,
        # step by step, with their per-word loops done on whole tensors (absorption_scoring.py)
        probe = load_probe(model.cfg.model_name, lm.hook_layer, probe_dir, device=device)
        def split(name: str):
            return scoring.load_probe_data_split(lm.tokenizer, probe_dir, model.cfg.model_name, lm.hook_layer, name)

        train_acts, train_data = split("train")
        k_probes = scoring.KSparseProbes(
            sae, [label for _, label in train_data], train_acts, batch_size=batch_size,
            num_epochs=a.k_sparse_probe_num_epochs,
        )
        test_acts, test_data = split("test")
        scores = scoring.score_test_words(sae, probe, test_acts, test_data)
        metrics_df = scoring.feature_splits(scores, k_probes, a.max_k_value, a.f1_jump_threshold)
        calculator = FeatureAbsorptionCalculator(
            model=model,
            icl_word_list=whole_word_vocab(lm.tokenizer, a.vocab_size, cfg.seed, a.min_words_per_letter),
            max_icl_examples=ICL_EXAMPLES,
            base_template=PROMPT_TEMPLATE,
            answer_formatter=first_letter_formatter(),
            word_token_pos=PROMPT_TOKEN_POS,
            full_absorption_probe_cos_sim_threshold=fa.FULL_ABSORPTION_PROBE_COS_THRESHOLD,
            absorption_fraction_probe_cos_sim_threshold=fa.ABSORPTION_FRACTION_PROBE_COS_THRESHOLD,
            probe_projection_proportion_threshold=fa.ABSORPTION_PROBE_PROJECTION_PROPORTION_THRESHOLD,
            absorption_fraction_max_absorbing_latents=fa.ABSORPTION_FRACTION_MAX_ABSORBING_LATENTS,
            batch_size=32,
        )
        random.seed(cfg.seed)  # the prompts, hence the memo keys, are fixed by this seed
        rows = []
        for letter, cands in scoring.candidates(scores, metrics_df).items():
            direction = probe.weights[scoring.LETTERS.index(letter)]
            rows += scoring.absorption_rows(calculator, sae, direction, letter, cands, lm.hook_name)
    if model.added:
        _save_memo(probe_dir, memo)

    qualified = set(metrics_df.loc[metrics_df["f1_probe"] > a.min_probe_f1, "letter"])
    not_scored = None
    if len(qualified) < a.min_letters:
        not_scored = (
            f"only {len(qualified)} letters have an LM probe F1 above {a.min_probe_f1} "
            f"(at least min_letters = {a.min_letters} needed): absorption is not scored"
        )
        print(f"absorption: {not_scored}", file=sys.__stderr__, flush=True)
        qualified = set()
    agg = scoring.aggregate(rows)
    details, fractions, full_rates, splits = [], [], [], []
    for _, row in agg[agg["letter"].isin(qualified)].iterrows():
        fractions.append(row["mean_absorption_fraction"])
        full_rates.append(row["full_absorption_rate"])
        splits.append(row["num_split_feats"])
        details.append(
            AbsorptionResultDetail(
                first_letter=row["letter"],
                mean_absorption_fraction=row["mean_absorption_fraction"],
                full_absorption_rate=row["full_absorption_rate"],
                num_full_absorption=int(row["num_full_absorption"]),
                num_probe_true_positives=int(row["num_probe_true_positives"]),
                num_split_features=int(row["num_split_feats"]),
            )
        )
    def mean(xs):  # an unscored run gets NaN, which the harness flags
        return statistics.mean(xs) if xs else float("nan")

    def stdev(xs):
        return statistics.stdev(xs) if len(xs) > 1 else float("nan")

    output = AbsorptionEvalOutput(
        eval_type_id=EVAL_TYPE_ID_ABSORPTION,
        eval_config=AbsorptionEvalConfig(
            model_name=cfg.model,
            random_seed=cfg.seed,
            f1_jump_threshold=a.f1_jump_threshold,
            max_k_value=a.max_k_value,
            prompt_template=PROMPT_TEMPLATE,
            prompt_token_pos=PROMPT_TOKEN_POS,
            llm_batch_size=32,
            k_sparse_probe_batch_size=batch_size,
            llm_dtype=cfg.llm_dtype,
            k_sparse_probe_num_epochs=a.k_sparse_probe_num_epochs,
            min_GT_probe_f1=a.min_probe_f1,
            precalc_k_sparse_probe_sae_acts=True,
        ),
        eval_id=str(uuid.uuid4()),
        datetime_epoch_millis=int(time.time() * 1000),
        eval_result_metrics=AbsorptionMetricCategories(
            mean=AbsorptionMeanMetrics(
                mean_absorption_fraction_score=mean(fractions),
                mean_full_absorption_score=mean(full_rates),
                mean_num_split_features=mean(splits),
                std_dev_absorption_fraction_score=stdev(fractions),
                std_dev_full_absorption_score=stdev(full_rates),
                std_dev_num_split_features=stdev(splits),
            )
        ),
        eval_result_details=details,
        eval_result_unstructured={
            "num_letters_scored": len(fractions),
            "letters_scored": sorted(qualified),
            "not_scored": not_scored,
            "vocab_words": len(calculator.icl_word_list),
            "min_words_per_letter": a.min_words_per_letter,
            "k_sparse_probe_batch_size": batch_size,
            "probe_seed": probe_seed,
            "note": (
                f"letters whose LM probe F1 is at most min_GT_probe_f1 are not scored; fewer than "
                f"{a.min_letters} scored letters give no score. The probe projection includes the "
                "activation mean, as in sae_bench."
            ),
        },
        sae_bench_commit_hash=get_sae_bench_version(),
        sae_lens_id=sae_name,
        sae_lens_release_id=f"{cfg.model}_{cfg.hook_name}",
        sae_lens_version=get_sae_lens_version(),
        sae_cfg_dict=sae.cfg.to_dict(),
    )
    return asdict(output)
