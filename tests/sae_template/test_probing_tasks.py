"""The sparse-probing task set (saekit/labelled.py) and the standard errors reported beside
sae_bench's accuracies (saekit/evals/sparse_probing.py)."""

import math
import random
import shutil

import pytest
import torch

from saekit import labelled
from saekit.config import ExperimentConfig
from saekit.evals.sparse_probing import dataset_key, mean_stderr, probe_stderr, run_sparse_probing_eval

WORD_LIST_TASKS = ["letter_case", "numerals", "word_language"]


# --- standard errors -----------------------------------------------------------------------
def test_probe_stderr_is_the_binomial_error_of_the_mean_accuracy():
    # two probes on 100 test texts each: sqrt(0.8*0.2/100 + 0.6*0.4/100) / 2
    assert probe_stderr({"a": 0.8, "b": 0.6}, 100) == pytest.approx(math.sqrt(0.004) / 2)
    assert probe_stderr({"a": 1.0, "b": 0.0}, 50) == 0.0
    assert mean_stderr([0.03, 0.04]) == pytest.approx(0.025)


def test_probe_stderr_matches_the_spread_of_resampled_test_sets():
    """Simulated probes of known accuracy scored on fresh test sets: the spread of their mean
    accuracy across repeats is what the formula predicts from a single repeat."""
    rng = random.Random(0)
    truth = {f"p{i}": a for i, a in enumerate([0.55, 0.7, 0.8, 0.9, 0.97])}
    n_test, means, predicted = 120, [], []
    for _ in range(2000):
        measured = {p: sum(rng.random() < a for _ in range(n_test)) / n_test for p, a in truth.items()}
        means.append(sum(measured.values()) / len(measured))
        predicted.append(probe_stderr(measured, n_test))
    mu = sum(means) / len(means)
    spread = math.sqrt(sum((m - mu) ** 2 for m in means) / (len(means) - 1))
    assert sum(predicted) / len(predicted) == pytest.approx(spread, rel=0.1)


def test_eval_reports_stderrs_beside_sae_benchs_keys(tmp_path, linear_sae):
    """The full eval on a stored probing set: every accuracy gets a matching _stderr key, at the
    top level and per dataset, computed from the per-probe accuracies it reports."""
    cfg = ExperimentConfig()
    cfg.sparse_probing.test_per_class = 12
    cfg.sparse_probing.train_per_class = 20
    cfg.sparse_probing.k_values = [1, 2]
    torch.manual_seed(0)
    classes = ["a", "b", "c"]
    d = 6
    dirs = {}
    for name, shift in (("easy", 3.0), ("hard", 0.3)):
        acts = {}
        for split, n in (("train", 20), ("test", 12)):
            acts[split] = {}
            for i, cls in enumerate(classes):
                lengths = torch.randint(1, 5, (n,))
                flat = torch.randn(int(lengths.sum()), d)
                flat[:, i] += shift  # class i lives along dimension i
                acts[split][cls] = {"acts": flat.half(), "lengths": lengths}
        llm = {"llm_test_accuracy": {c: 0.9 for c in classes}}
        for k in (1, 2):
            llm[f"llm_top_{k}_test_accuracy"] = {c: 0.75 for c in classes}
        (tmp_path / name).mkdir()
        torch.save({"acts": acts, "llm_results": llm, "texts": {}}, tmp_path / name / "probing.pt")
        dirs[name] = tmp_path / name
    sae = linear_sae(torch.eye(d), torch.eye(d))
    sae.cfg.to_dict = lambda: {}
    out = run_sparse_probing_eval(sae, cfg, dirs)
    n_test = 2 * cfg.sparse_probing.test_per_class
    per_dataset = {}
    for detail in out["eval_result_details"]:
        per_class = out["eval_result_unstructured"][detail["dataset_name"]]
        for key, accs in per_class.items():
            assert detail[f"{key}_stderr"] == pytest.approx(probe_stderr(accs, n_test))
            per_dataset.setdefault(key, []).append(detail[f"{key}_stderr"])
    metrics = out["eval_result_metrics"]
    for group in ("llm", "sae"):
        measured = [k for k, v in metrics[group].items() if v is not None and not k.endswith("_stderr")]
        assert len(measured) == 3  # all latents / dimensions, top-1, top-2
        for key in measured:
            assert metrics[group][f"{key}_stderr"] == pytest.approx(mean_stderr(per_dataset[key]))
    assert metrics["llm"]["llm_top_1_test_accuracy_stderr"] == pytest.approx(math.sqrt(2 * 3 * 0.1875 / 24 / 9) / 2)
    assert metrics["sae"]["sae_top_1_test_accuracy"] > 0.6  # the easy set's class dimension is found
    assert 0 < metrics["sae"]["sae_top_1_test_accuracy_stderr"] < 0.1


# --- the task set --------------------------------------------------------------------------
@pytest.mark.parametrize("name", WORD_LIST_TASKS)
def test_word_list_tasks_split_into_disjoint_classes_fixed_by_seed(name):
    split = labelled.build(name, seed=3, n_train=40, n_test=20)
    texts = [t for part in split.values() for ts in part.values() for t in ts]
    assert len(texts) == len(set(texts))  # no text in two classes or in both splits
    assert all(len(ts) == 40 for ts in split["train"].values())
    assert split == labelled.build(name, seed=3, n_train=40, n_test=20)
    assert split != labelled.build(name, seed=4, n_train=40, n_test=20)


def test_letter_case_classes_differ_only_in_case():
    split = labelled.build("letter_case", seed=0, n_train=10, n_test=5)["train"]
    assert all(t.islower() for t in split["lower"])
    assert all(t.isupper() for t in split["upper"])
    assert all(t == t.title() and not t.isupper() for t in split["title"])


def test_line_kinds_are_what_pythons_tokenizer_says():
    import io
    import tokenize

    split = labelled.build("line_kind", seed=0, n_train=30, n_test=10)["train"]
    assert all(t.startswith("#") for t in split["comment"])
    assert all(t.startswith(("import ", "from ")) for t in split["import"])
    assert all(t.startswith(("def ", "class ", "async def ")) for t in split["def"])
    for text in split["string"]:
        first = next(tokenize.generate_tokens(io.StringIO(text).readline))
        assert first.type == tokenize.STRING and first.end[1] == len(text)
    assert not any(t.lstrip().startswith("#") for t in split["code"])


def test_unknown_task_is_a_one_line_error_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown sparse_probing.datasets \['nope'\]; known: .*line_kind"):
        labelled.build("nope", seed=0, n_train=1, n_test=1)


def test_probing_cache_key_changes_when_a_task_changes(tmp_path, monkeypatch):
    cfg = ExperimentConfig()
    before = dataset_key(cfg, "letter_case")
    assert dataset_key(cfg, "letter_case") == before
    assert dataset_key(cfg, "numerals") != before
    # the code that makes the texts changed
    edited = tmp_path / "labelled.py"
    shutil.copy(labelled.__file__, edited)
    edited.write_text(edited.read_text() + "\n# a different task set\n")
    monkeypatch.setattr(labelled, "__file__", str(edited))
    assert dataset_key(cfg, "letter_case") != before
    monkeypatch.undo()
    # the files it reads changed
    words = tmp_path / "words"
    words.write_text("alpha beta gamma\n")
    task = labelled.TASKS["letter_case"]
    monkeypatch.setitem(labelled.TASKS, "letter_case", labelled.ProbingTask(task.texts, lambda: [words]))
    assert dataset_key(cfg, "letter_case") != before


def test_probing_cache_key_is_the_same_in_two_clones(tmp_path, monkeypatch):
    """Source files are named relative to site-packages, so two venvs holding the same packages
    (two clones of the project) share the probing sets instead of building one each."""
    fingerprints = []
    for clone in ("a", "b"):
        site = tmp_path / clone / "site-packages"
        (site / "torch" / "include").mkdir(parents=True)
        for name, text in (("x.h", "int x;\n"), ("y.h", "int yy;\n")):
            (site / "torch" / "include" / name).write_text(text)
        monkeypatch.setattr(labelled, "_site_packages", lambda site=site: site)
        fingerprints.append(labelled._files_fingerprint(tuple(sorted((site / "torch").rglob("*.h")))))
    assert fingerprints[0] == fingerprints[1]
    (site / "torch" / "include" / "y.h").write_text("int changed_size;\n")
    labelled._files_fingerprint.cache_clear()  # a process computes it once; a new one sees the change
    assert labelled._files_fingerprint(tuple(sorted((site / "torch").rglob("*.h")))) != fingerprints[0]
