"""saekit's whole-tensor absorption scoring gives sae_bench's own numbers (same seeds, random data)."""

import random

import numpy as np
import pandas as pd
import pytest
import torch

from saekit.evals import absorption_scoring as scoring

D_IN, D_SAE = 12, 40


@pytest.fixture
def sae(linear_sae):
    gen = torch.Generator().manual_seed(1)
    return linear_sae(torch.randn(D_IN, D_SAE, generator=gen), torch.randn(D_SAE, D_IN, generator=gen),
                      b_enc=-0.5 * torch.ones(D_SAE))


def _data(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    labels = [i % 26 for i in range(n)]
    acts = torch.randn(n, D_IN, generator=gen)
    acts[torch.arange(n), torch.tensor(labels) % D_IN] += 2.0  # make the letters learnable
    return acts, labels


def _theirs_k_sparse(sae, acts, labels, ks, batch_size, epochs):
    from sae_bench.evals.absorption.k_sparse_probing import train_k_sparse_probes

    train = [(f"w{i}", label) for i, label in enumerate(labels)]
    return train_k_sparse_probes(sae, train, acts, ks=ks, batch_size=batch_size, num_epochs=epochs,
                                 precalc_sae_acts=True)


def test_k_sparse_probes_match_sae_bench(sae):
    acts, labels = _data(300, 0)
    ks = [1, 2, 3]
    torch.manual_seed(7)
    theirs = _theirs_k_sparse(sae, acts, labels, ks, batch_size=64, epochs=4)
    after_theirs = torch.rand(1)
    torch.manual_seed(7)
    ours = scoring.KSparseProbes(sae, labels, acts, batch_size=64, num_epochs=4)
    assert torch.equal(torch.rand(1), after_theirs), "the global random state moved differently"
    for k in ks:
        for letter in range(26):
            feats, weight, bias = ours.get(k, letter)
            assert feats.tolist() == theirs[k][letter].feature_ids.tolist()
            assert torch.allclose(weight, theirs[k][letter].weight, atol=1e-6)
            assert float(bias) == pytest.approx(float(theirs[k][letter].bias), abs=1e-6)


def test_feature_splits_and_candidates_match_sae_bench(sae):
    from sae_bench.evals.absorption.k_sparse_probing import (
        add_feature_splits_to_metrics_df,
        build_metrics_df,
        eval_probe_and_sae_k_sparse_raw_scores,
        sae_k_sparse_metadata,
    )
    from sae_bench.evals.absorption.probing import LinearProbe

    acts, labels = _data(300, 0)
    max_k, jump = 4, 0.0
    torch.manual_seed(3)
    k_probes = _theirs_k_sparse(sae, acts, labels, list(range(1, max_k + 1)), batch_size=64, epochs=3)
    torch.manual_seed(3)
    ours_probes = scoring.KSparseProbes(sae, labels, acts, batch_size=64, num_epochs=3)
    probe = LinearProbe(D_IN, 26)
    test_acts, test_labels = _data(130, 5)
    test = [(f"t{i}", label) for i, label in enumerate(test_labels)]
    raw = eval_probe_and_sae_k_sparse_raw_scores(sae, probe, k_probes, test, test_acts)
    theirs = build_metrics_df(raw, sae_k_sparse_metadata(sae, probe, k_probes, "s", 0), max_k_value=max_k)
    add_feature_splits_to_metrics_df(theirs, max_k_value=max_k, f1_jump_threshold=jump)

    scores = scoring.score_test_words(sae, probe, test_acts, test)
    ours = scoring.feature_splits(scores, ours_probes, max_k, jump)
    assert np.allclose(ours["f1_probe"].to_numpy(), theirs["f1_probe"].to_numpy(), atol=1e-9)
    assert [list(x) for x in ours["split_feats"]] == [list(x) for x in theirs["split_feats"]]
    assert ours["num_split_features"].tolist() == theirs["num_split_features"].tolist()
    # not a trivial case: some letters split, some stop at k = 1, and F1 is not zero everywhere
    assert {0} < set(ours["num_split_features"]) and theirs["f1_sparse_sae_1"].max() > 0
    cands = scoring.candidates(scores, ours)
    for letter in scoring.LETTERS:
        expected = raw[(raw["answer_letter"] == letter) & (raw[f"score_probe_{letter}"] > 0)]["token"].tolist()
        assert cands[letter].words == expected
        assert cands[letter].split_feats == list(theirs.loc[theirs["letter"] == letter, "split_feats"].iloc[0])


class _PromptModel:
    """Residual activations at position -2 of 5-token prompts, a fixed random vector per word."""

    def __init__(self, words):
        gen = torch.Generator().manual_seed(11)
        self.acts = {w: torch.randn(D_IN, generator=gen) for w in words}

    def tokenizer(self, prompts):
        return {"input_ids": [[0] * 5 for _ in prompts]}

    def to_tokens(self, prompt):
        return torch.zeros(1, 5, dtype=torch.long)

    def run_with_cache(self, prompts, names_filter=None):
        out = torch.full((len(prompts), 5, D_IN), float("nan"))
        for i, p in enumerate(prompts):
            out[i, -2] = self.acts[p.rsplit("\n", 1)[-1].split(":")[0]]
        return None, {names_filter[0]: out}


def test_absorption_rows_match_the_calculator(sae):
    from sae_bench.evals.absorption.feature_absorption_calculator import FeatureAbsorptionCalculator

    words = [f"a{i}" for i in range(70)]
    calc = FeatureAbsorptionCalculator(
        model=_PromptModel(words + ["bee", "cat", "dog"]), icl_word_list=["bee", "cat", "dog"], max_icl_examples=2,
        base_template="{word}:", word_token_pos=-2, batch_size=16,
        absorption_fraction_probe_cos_sim_threshold=0.0,  # random latents: let some absorb
    )
    direction = torch.randn(D_IN, generator=torch.Generator().manual_seed(4))
    main = [3, 5]
    random.seed(9)
    theirs = calc.calculate_absorption(sae, words=words, probe_direction=direction, main_feature_ids=main,
                                       layer=0, show_progress=False).word_results
    state = random.getstate()
    random.seed(9)
    rows = scoring.absorption_rows(calc, sae, direction, "a", scoring.LetterCandidates(words, main), "blocks.0.hook_resid_post")
    assert random.getstate() == state  # the next letter's prompts are drawn as sae_bench draws them
    df = pd.DataFrame(rows)
    assert df["token"].tolist() == [r.word for r in theirs]
    assert np.allclose(df["absorption_fraction"], [r.absorption_fraction for r in theirs], atol=1e-6)
    assert df["is_full_absorption"].tolist() == [r.is_full_absorption for r in theirs]
    # the random SAE exercises every branch: none, partial and full absorption
    fractions = df["absorption_fraction"]
    assert (fractions == 0).any() and ((fractions > 0) & (fractions < 1)).any() and df["is_full_absorption"].any()


class _VocabModel:
    """A model whose hook activation at every position is a fixed random vector per prompt."""

    class cfg:
        model_name = "stub"
        d_model = D_IN

    class tokenizer:
        @staticmethod
        def convert_tokens_to_string(tokens):
            return "".join(tokens).upper()  # anything that shows both loaders call it

    def run_with_cache(self, prompts, names_filter=None):
        out = torch.stack([torch.randn(4, D_IN, generator=torch.Generator().manual_seed(sum(map(ord, p)))) for p in prompts])
        return None, {names_filter[0]: out}


def test_lm_probe_build_matches_sae_bench(tmp_path):
    from sae_bench.evals.absorption.common import create_and_train_probe
    from sae_bench.evals.absorption.prompting import first_letter_formatter

    vocab = [f" {chr(97 + i % 26)}{'xy'[i % 2] * (1 + i // 26)}" for i in range(120)]
    kwargs = dict(formatter=first_letter_formatter(), hook_point="blocks.0.hook_resid_post", vocab=vocab,
                  batch_size=16, num_epochs=3, lr=1e-2, base_template="{word} has the first letter:", pos_idx=-2)
    for where, build in (("theirs", create_and_train_probe), ("ours", scoring.create_and_train_probe)):
        random.seed(5)
        torch.manual_seed(5)
        extra = {"device": torch.device("cpu")} if where == "theirs" else {}
        build(model=_VocabModel(), probes_dir=tmp_path / where, **kwargs, **extra)
    probe = {w: torch.load(tmp_path / w / "stub" / "layer_0" / "probe.pth", weights_only=False) for w in ("theirs", "ours")}
    assert torch.equal(probe["ours"].weights, probe["theirs"].weights)
    assert torch.equal(probe["ours"].biases, probe["theirs"].biases)
    data = {w: np.load(tmp_path / w / "stub" / "layer_0" / "data.npz") for w in ("theirs", "ours")}
    for key in ("X_train", "X_test", "y_train", "y_test"):
        assert np.array_equal(data["ours"][key], data["theirs"][key]), key

    from sae_bench.evals.absorption.common import load_probe_data_split

    for split in ("train", "test"):
        acts, pairs = load_probe_data_split(_VocabModel(), 0, split, tmp_path / "theirs", device="cpu")
        our_acts, our_pairs = scoring.load_probe_data_split(_VocabModel.tokenizer, tmp_path / "theirs", "stub", 0, split)
        assert pairs and our_pairs == pairs
        assert our_acts.dtype == acts.dtype and torch.equal(our_acts, acts)


def test_aggregate_matches_sae_bench():
    from sae_bench.evals.absorption.main import _aggregate_results_df

    rng = random.Random(2)
    rows = []
    for letter, n in (("b", 3), ("a", 4), ("q", 1)):
        feats = list(range(rng.randint(1, 3)))
        rows += [{"letter": letter, "absorption_fraction": rng.choice([0.0, 1.0, rng.random()]),
                  "is_full_absorption": rng.random() < 0.5, "num_probe_true_positives": n + 2,
                  "split_feats": feats} for _ in range(n)]
    theirs = _aggregate_results_df(pd.DataFrame(rows)).set_index("letter")
    ours = scoring.aggregate(rows).set_index("letter")
    assert list(ours.index) == list(theirs.index) == ["a", "b", "q"]
    for col in ("mean_absorption_fraction", "full_absorption_rate", "num_full_absorption", "num_split_feats",
                "num_probe_true_positives"):
        assert np.allclose(ours[col].astype(float), theirs[col].astype(float)), col


def test_sae_bench_eval_imports_leave_the_pretrained_sae_directory_unparsed(template_dir):
    """saekit.evals defers sae_selection_utils (a large YAML parsed on import): importing what
    the three evals use must not parse it, and the real module must still work when asked."""
    import subprocess
    import sys

    code = (
        "import saekit, sae_bench.evals.core.main as core\n"
        "from saekit.evals import absorption, sparse_probing\n"
        "from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory as d\n"
        "assert d.cache_info().currsize == 0, 'parsed on import'\n"
        "from sae_bench.sae_bench_utils.sae_selection_utils import get_saes_from_regex\n"
        "assert get_saes_from_regex('.*', '.*') and core.sae_selection_utils.metadata_rows\n"
        "assert d.cache_info().currsize == 1\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=template_dir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
