"""Offline labelled text for sparse probing: real texts with real labels, five classes each.

SAEBench's probing sets (bias_in_bios, amazon reviews, github-code, ag_news, europarl) live on the
hub. These stand in for them with text that set-up puts on every machine:

- code_language:     the language of a source line: Python (standard library), C++ (torch's
                     headers), CMake (torch's package files), Cython and R (sources shipped
                     inside the experiment environment's packages);
- docstring_package: the standard-library package a docstring paragraph comes from;
- word_language:     the language of a run of four words from the Debian word lists
                     (apt packages wamerican wngerman wfrench wspanish witalian).

Texts seen in more than one class are dropped, so that no text carries two labels.
"""

from __future__ import annotations

import ast
import random
import sysconfig
from pathlib import Path
from typing import Callable

from .corpus import stdlib_files, stdlib_root

WORD_LISTS = {
    "english": ("/usr/share/dict/american-english", "wamerican"),
    "german": ("/usr/share/dict/ngerman", "wngerman"),
    "french": ("/usr/share/dict/french", "wfrench"),
    "spanish": ("/usr/share/dict/spanish", "wspanish"),
    "italian": ("/usr/share/dict/italian", "witalian"),
}
DOCSTRING_PACKAGES = ["asyncio", "email", "importlib", "logging", "xml"]
WORDS_PER_TEXT = 4


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _source_lines(paths: list[Path]) -> list[str]:
    """Stripped lines with some words in them (no blank lines, lone braces or separators)."""
    out = []
    for path in sorted(paths):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if 16 <= len(line) <= 160 and sum(c.isalpha() for c in line) >= 8:
                out.append(line)
    return out


def code_language_texts() -> dict[str, list[str]]:
    site = _site_packages()
    torch_dir = site / "torch"
    return {
        "python": _source_lines(stdlib_files()),
        "cpp": _source_lines(list((torch_dir / "include").rglob("*.h"))),
        "cmake": _source_lines(list(site.rglob("*.cmake"))),
        "cython": _source_lines(list(site.rglob("*.pyx"))),
        "r": _source_lines(list(site.rglob("*.R"))),
    }


def _docstring_paragraphs(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            for para in (doc or "").split("\n\n"):
                para = " ".join(para.split())
                if len(para) >= 40 and sum(c.isalpha() for c in para) >= 25:
                    out.append(para)
    return out


def docstring_package_texts() -> dict[str, list[str]]:
    root = stdlib_root()
    files = stdlib_files(root)
    return {
        pkg: [p for f in files if f.relative_to(root).parts[0] == pkg for p in _docstring_paragraphs(f)]
        for pkg in DOCSTRING_PACKAGES
    }


def word_language_texts(seed: int, n_texts: int) -> dict[str, list[str]]:
    words: dict[str, list[str]] = {}
    for lang, (path, package) in WORD_LISTS.items():
        if not Path(path).exists():
            raise FileNotFoundError(
                f"{path} is missing: the word_language probing set needs the Debian package {package} "
                f"(apt-get install wamerican wngerman wfrench wspanish witalian), or drop word_language "
                "from sparse_probing.datasets in experiment_config.yaml"
            )
        lines = Path(path).read_text(encoding="utf-8", errors="replace").split()
        words[lang] = sorted({w for w in lines if len(w) >= 3 and w.isalpha()})
    # a word in two lists says nothing about the language
    seen: dict[str, int] = {}
    for ws in words.values():
        for w in ws:
            seen[w] = seen.get(w, 0) + 1
    rng = random.Random(seed)
    texts = {}
    for lang, ws in words.items():
        unique = [w for w in ws if seen[w] == 1]
        texts[lang] = [" ".join(rng.sample(unique, WORDS_PER_TEXT)) for _ in range(n_texts)]
    return texts


def build(name: str, seed: int, n_train: int, n_test: int) -> dict[str, dict[str, list[str]]]:
    """{"train": {class: [text]}, "test": {class: [text]}}, disjoint, fixed by seed."""
    makers: dict[str, Callable[[], dict[str, list[str]]]] = {
        "code_language": code_language_texts,
        "docstring_package": docstring_package_texts,
        "word_language": lambda: word_language_texts(seed, 2 * (n_train + n_test)),
    }
    if name not in makers:
        raise ValueError(f"unknown sparse-probing dataset {name!r}; known: {sorted(makers)}")
    raw = makers[name]()
    owners: dict[str, set[str]] = {}
    for cls, texts in raw.items():
        for t in texts:
            owners.setdefault(t, set()).add(cls)
    rng = random.Random(f"{seed}:{name}")
    split: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for cls, texts in raw.items():
        unique = sorted({t for t in texts if len(owners[t]) == 1})
        rng.shuffle(unique)
        if len(unique) < n_train + n_test:
            raise RuntimeError(
                f"sparse probing {name}/{cls}: {len(unique)} distinct texts, need {n_train + n_test}; "
                "lower train_per_class / test_per_class in experiment_config.yaml"
            )
        split["train"][cls] = unique[:n_train]
        split["test"][cls] = unique[n_train : n_train + n_test]
    return split


def fingerprint(name: str) -> str:
    """Identity of a dataset's sources (file names and sizes), for the cache key."""
    from .cache import file_fingerprint

    site = _site_packages()
    if name == "code_language":
        paths = (
            stdlib_files()
            + list((site / "torch" / "include").rglob("*.h"))
            + list(site.rglob("*.cmake"))
            + list(site.rglob("*.pyx"))
            + list(site.rglob("*.R"))
        )
    elif name == "docstring_package":
        paths = stdlib_files()
    else:
        paths = [Path(p) for p, _ in WORD_LISTS.values() if Path(p).exists()]
    return file_fingerprint([p.resolve() for p in paths], Path("/"))
