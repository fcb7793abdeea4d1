"""Sparse-probing selection and absorption arithmetic, on tensors small enough to check by hand."""

import random

import pandas as pd
import pytest
import torch

from saekit.evals.sparse_probing import _padded


# --- sparse probing ------------------------------------------------------------------------
def test_top_k_selection_picks_largest_class_mean_difference():
    from sae_bench.evals.sparse_probing.probe_training import apply_topk_mask_reduce_dim, get_top_k_mean_diff_mask

    acts = torch.tensor([[1.0, 0.0, 5.0], [3.0, 0.0, 5.0], [0.0, 2.0, 5.0], [0.0, 4.0, 5.0]])
    labels = torch.tensor([1, 1, 0, 0], dtype=torch.int)
    # class means: positive (2, 0, 5), negative (0, 3, 5); |difference| = (2, 3, 0)
    mask1 = get_top_k_mean_diff_mask(acts, labels, 1)
    assert (~mask1).nonzero().flatten().tolist() == [1]
    mask2 = get_top_k_mean_diff_mask(acts, labels, 2)
    assert sorted((~mask2).nonzero().flatten().tolist()) == [0, 1]
    assert apply_topk_mask_reduce_dim(acts, mask2).tolist() == [[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0]]


def test_ragged_store_pools_to_the_mean_over_real_tokens():
    from sae_bench.sae_bench_utils.activation_collection import create_meaned_model_activations

    flat = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [-1.0, 7.0], [2.0, 2.0], [0.5, 0.5]])
    lengths = torch.tensor([2, 3, 1])
    padded = _padded(flat.half(), lengths)
    assert padded.shape == (3, 3, 2)
    assert padded[0, 2].abs().sum() == 0 and padded[2, 1:].abs().sum() == 0
    pooled = create_meaned_model_activations({"c": padded})["c"]
    expected = torch.stack([flat[0:2].mean(0), flat[2:5].mean(0), flat[5:6].mean(0)])
    assert torch.allclose(pooled, expected, atol=1e-3)  # the store keeps float16


def test_sae_probe_on_separable_latent_is_accurate():
    """A latent that fires only for the positive class gives a top-1 probe near 100 %."""
    import sae_bench.evals.sparse_probing.probe_training as pt

    torch.manual_seed(0)
    random.seed(0)

    def make(n):
        a = torch.rand(n, 6) * 0.1
        a[:, 2] += 3.0  # class "a" latent
        b = torch.rand(n, 6) * 0.1
        return {"a": a, "b": b}

    _, acc = pt.train_probe_on_activations(make(50), make(20), select_top_k=1)
    assert acc["a"] == pytest.approx(1.0)


# --- absorption ----------------------------------------------------------------------------
class _StubModel:
    """Returns fixed residual activations per word at position -2 of a 5-token prompt."""

    def __init__(self, acts_by_word):
        self.acts = acts_by_word

    def to_tokens(self, prompt):
        return torch.zeros(1, 5, dtype=torch.long)

    def run_with_cache(self, prompts, names_filter=None):
        out = torch.zeros(len(prompts), 5, 6)
        for i, p in enumerate(prompts):
            word = p.rsplit("\n", 1)[-1].split(":")[0]
            out[i, -2] = self.acts[word]
        return None, {names_filter[0]: out}


class _StubSAE:
    """6-d residual space; the latents are the last 3 coordinates (relu). Decoder rows:
    latent 0 = e0 (the probe direction), latent 1 = 0.6 e0 + 0.8 e1, latent 2 = e2."""

    device = torch.device("cpu")
    dtype = torch.float32
    W_dec = torch.tensor([[1.0, 0, 0, 0, 0, 0], [0.6, 0.8, 0, 0, 0, 0], [0, 0, 1.0, 0, 0, 0]])

    def encode(self, x):
        return torch.relu(x[:, 3:6])


def test_absorption_fraction_by_hand():
    from sae_bench.evals.absorption.feature_absorption_calculator import FeatureAbsorptionCalculator

    acts = {
        # probe projection 1.5; latents (0.5, 2.0, 1.0) project (0.5, 1.2, 0) onto the probe.
        # main latent 0 explains 0.5; absorber latent 1 (cos 0.6) offers 1.2 >= 0.4 * 1.5, capped at
        # the 1.0 left unexplained: fraction 1.0 / (1.0 + 0.5) = 2/3; main fired, so not full
        "alpha": torch.tensor([1.5, 0, 0, 0.5, 2.0, 1.0]),
        # probe projection 1.0; main latent silent, latent 1 projects 0.54 >= 0.4: fraction 1, full
        "apple": torch.tensor([1.0, 0, 0, 0.0, 0.9, 0.0]),
        # main latent explains more than the probe projection: no absorption
        "axe": torch.tensor([0.4, 0, 0, 1.0, 2.0, 0.0]),
    }
    calc = FeatureAbsorptionCalculator(
        model=_StubModel(acts), icl_word_list=["bee", "cat", "dog"], max_icl_examples=1,
        base_template="{word}:", word_token_pos=-2, topk_feats=3,
    )
    random.seed(0)
    result = calc.calculate_absorption(
        _StubSAE(), words=list(acts), probe_direction=torch.tensor([2.0, 0, 0, 0, 0, 0]),
        main_feature_ids=[0], layer=0, show_progress=False,
    )
    by_word = {r.word: r for r in result.word_results}
    assert by_word["alpha"].absorption_fraction == pytest.approx(2 / 3)
    assert not by_word["alpha"].is_full_absorption
    assert by_word["apple"].absorption_fraction == pytest.approx(1.0)
    assert by_word["apple"].is_full_absorption
    assert by_word["axe"].absorption_fraction == 0.0
    assert not by_word["axe"].is_full_absorption


def test_absorption_aggregation_by_hand():
    from sae_bench.evals.absorption.main import _aggregate_results_df

    raw = pd.DataFrame({
        "letter": ["a", "a", "a", "b"],
        "absorption_fraction": [2 / 3, 1.0, 0.0, 0.5],
        "is_full_absorption": [False, True, False, False],
        "num_probe_true_positives": [4, 4, 4, 2],
        "split_feats": [[0], [0], [0], [3, 4]],
    })
    agg = _aggregate_results_df(raw).set_index("letter")
    assert agg.loc["a", "mean_absorption_fraction"] == pytest.approx((2 / 3 + 1.0) / 4)
    assert agg.loc["a", "full_absorption_rate"] == pytest.approx(1 / 4)
    assert agg.loc["b", "mean_absorption_fraction"] == pytest.approx(0.25)
    assert agg.loc["b", "num_split_feats"] == 2


def test_whole_word_vocab_is_sorted_sample_of_space_led_words_covering_every_letter():
    from saekit.evals.absorption import whole_word_vocab

    words = ["Ġcat", "Ġcow", "Ġcar", "Ġdog", "ing", "Ġa", "Ġ42", "Ġhouse", "Ġhat", "Ġhen", "ĠZoo"]

    class Tok:
        vocab = {w: i for i, w in enumerate(words)}

        def convert_tokens_to_string(self, tokens):
            return tokens[0].replace("Ġ", " ")

    sample = whole_word_vocab(Tok(), size=3, seed=0, per_letter=1)
    assert sample == sorted(sample)
    assert set(sample) <= {" cat", " cow", " car", " dog", " house", " hat", " hen", " Zoo"}  # whole words only
    assert {w[1].lower() for w in sample} == {"c", "d", "h", "z"}  # every letter, beyond `size` if needed
    assert whole_word_vocab(Tok(), size=3, seed=0, per_letter=1) == sample
    assert len(whole_word_vocab(Tok(), size=6, seed=0, per_letter=1)) == 6


def test_length_sorted_batches_give_the_same_activations_as_one_text_at_a_time(tiny_lm):
    from saekit.evals.sparse_probing import _ragged_activations

    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) % 10 + 1 for c in text]}

    tiny_lm.tokenizer = Tok()
    texts = ["abcdefg", "xy", "hello world", "q", "abcdefghijklmnopq"]
    flat, lengths = _ragged_activations(tiny_lm, texts, max_tokens=12, rows_per_pass=2)
    assert lengths.tolist() == [7, 2, 11, 1, 11]  # truncated to max_tokens - 1 after BOS
    offset = 0
    for text, n in zip(texts, lengths.tolist()):
        ids = torch.tensor([[0] + Tok()(text)["input_ids"][:11]])
        with torch.no_grad():
            alone = tiny_lm.model(ids, stop_at_layer=1)[0, 1:]
        assert torch.allclose(flat[offset : offset + n].float(), alone, atol=1e-2)  # float16 store
        offset += n
