"""Configuration, cache and offline data: the parts every run stands on."""

import json
from pathlib import Path

import pytest

from saekit import cache, labelled
from saekit.config import CONFIG_NAME, ExperimentConfig, cache_root, config_path, load_config
from saekit.corpus import split_files, stdlib_files, stdlib_root


# --- configuration -------------------------------------------------------------------------
def test_template_config_loads_and_matches_defaults(template_dir):
    cfg = load_config(template_dir / CONFIG_NAME)
    assert cfg == ExperimentConfig()  # the YAML and the dataclass defaults say the same thing
    assert cfg.hook_name == "blocks.3.hook_resid_post"


def test_workspace_copy_wins_over_template_copy(tmp_path, monkeypatch, template_dir):
    monkeypatch.chdir(tmp_path)
    assert config_path() == template_dir / CONFIG_NAME
    (tmp_path / CONFIG_NAME).write_text("train_tokens: 1234\ncore:\n  batch_size_prompts: 2\n")
    assert config_path() == tmp_path / CONFIG_NAME
    cfg = load_config()
    assert cfg.train_tokens == 1234 and cfg.core.batch_size_prompts == 2
    assert cfg.core.n_eval_reconstruction_batches == ExperimentConfig().core.n_eval_reconstruction_batches


@pytest.mark.parametrize(
    "text, message",
    [
        ("train_tokenz: 5\n", "unknown key 'train_tokenz'"),
        ("core:\n  batch_size: 2\n", "unknown key 'core.batch_size'"),
        ("train_tokens: lots\n", "train_tokens must be an integer"),
        ("sparse_probing:\n  enabled: 1\n", "sparse_probing.enabled must be true or false"),
        ("model: gpt-5\n", "model 'gpt-5' is not one of"),
        ("sparse_probing:\n  k_values: [1, two]\n", r"k_values\[1\] must be an integer"),
        ("absorption:\n  vocab_size: 1000\n", r"min_words_per_letter 60 x 26 letters is more than vocab_size 1000"),
    ],
)
def test_config_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / CONFIG_NAME
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(path)


def test_cache_root_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("SAE_HARNESS_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("SAE_HARNESS_CACHE")
    assert cache_root() == Path("~/.cache/sae_harness/activations").expanduser()


# --- cache ---------------------------------------------------------------------------------
def test_cached_dir_builds_once_and_keys_by_content(tmp_path):
    calls = []

    def build(out: Path):
        calls.append(out)
        (out / "data.txt").write_text("x")

    key = {"model": "m", "n_tokens": 10}
    first = cache.cached_dir("kind", key, build, root=tmp_path)
    again = cache.cached_dir("kind", dict(reversed(list(key.items()))), build, root=tmp_path)
    other = cache.cached_dir("kind", {**key, "n_tokens": 11}, build, root=tmp_path)
    assert first == again != other
    assert len(calls) == 2
    assert json.loads((first / cache.KEY_FILE).read_text()) == key
    assert [p.name for p in (tmp_path / "kind").iterdir() if p.name.startswith(".tmp")] == []


def test_failed_build_leaves_nothing_behind(tmp_path):
    def build(out: Path):
        (out / "half.txt").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.cached_dir("kind", {"a": 1}, build, root=tmp_path)
    # no artefact and no half-built folder; only the empty file the builders lock stays
    left = list((tmp_path / "kind").iterdir())
    assert [p for p in left if not p.name.startswith(".lock-")] == []
    assert all(p.stat().st_size == 0 for p in left)


# --- offline text --------------------------------------------------------------------------
def test_corpus_split_is_fixed_and_disjoint():
    root = stdlib_root()
    files = stdlib_files(root)
    assert len(files) > 300
    assert not any("test" in p.relative_to(root).parts for p in files)
    a, b = split_files(files, root, seed=42), split_files(files, root, seed=42)
    assert a == b
    assert set(a["train"]).isdisjoint(a["eval"])
    assert 0.05 < len(a["eval"]) / len(files) < 0.15
    assert split_files(files, root, seed=7)["eval"] != a["eval"]


@pytest.mark.parametrize("name", ["code_language", "docstring_package", "word_language"])
def test_labelled_sets_have_real_distinct_texts(name):
    data = labelled.build(name, seed=42, n_train=30, n_test=10)
    assert set(data["train"]) == set(data["test"]) and len(data["train"]) == 5
    owner = {}
    for split in ("train", "test"):
        for cls, texts in data[split].items():
            assert len(texts) == (30 if split == "train" else 10)
            for t in texts:
                assert owner.setdefault(t, (split, cls)) == (split, cls), f"{t!r} appears twice"
    assert labelled.build(name, seed=42, n_train=30, n_test=10) == data


def test_missing_word_list_names_the_package(monkeypatch):
    monkeypatch.setitem(labelled.WORD_LISTS, "german", ("/nonexistent/ngerman", "wngerman"))
    with pytest.raises(FileNotFoundError, match="wngerman"):
        labelled.word_language_texts(seed=0, n=4)


def test_code_language_labels_come_from_the_file_type():
    texts = labelled.code_language_texts(seed=0, n=0)
    assert any(line.startswith("#include") for line in texts["cpp"])
    assert any(line.startswith(("cdef ", "cpdef ")) for line in texts["cython"])
    assert any("<-" in line for line in texts["r"])
    assert any(line.lower().startswith(("set(", "if(", "find_package(")) for line in texts["cmake"])
    assert any(line.startswith("def ") for line in texts["python"])
