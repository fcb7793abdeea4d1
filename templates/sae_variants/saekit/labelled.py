"""Offline labelled text for sparse probing: real texts with real labels, several classes each.

SAEBench's probing sets (bias_in_bios, amazon reviews, github-code, ag_news, europarl) live on the
hub. These stand in for them with text that set-up puts on every machine. sae_bench probes each
class against the others (one-vs-rest), so a task of C classes gives C binary probes.

On by default (experiment_config.yaml), because SmolLM2's own residual stream reaches a clearly
above-chance top-1 on them (mean 0.75 over the three; see README), so that the gap between an SAE
and the LM can stand out from the test noise:
- text_kind:         Python code, English prose (pydoc's topic help), C++ (torch's headers),
                     a run of English dictionary words, or a Python comment;
- word_language:     the language of a run of twelve words from the Debian word lists
                     (apt packages wamerican wngerman wfrench wspanish witalian);
- numerals:          a run of six English words, decimal numbers or hexadecimal numbers.
Also available (LM top-1 nearer chance):
- line_kind:         what a line of the Python standard library is: a comment, a docstring line,
                     a one-line string literal, an import, a def / class header, or other code;
- letter_case:       runs of English words in lower case, Title Case or UPPER CASE;
- code_language:     the language of a source line: Python, C++, CMake, Cython or R;
- docstring_package: the standard-library package a docstring paragraph comes from.
At layer 3, sae_bench's top-1 rule (largest class-mean difference) picks for the LM almost always
the one residual dimension with by far the largest variance, whose class separation is poor; other
single dimensions separate these classes far better, so LM top-1 understates what one direction
of the residual stream encodes.

Texts seen in more than one class are dropped, so that no text carries two labels.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import random
import sysconfig
import tokenize
from dataclasses import dataclass
from functools import lru_cache
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
WORDS_PER_TEXT = 12  # word runs: with 4 words a layer-3 direction barely tells the languages apart
LINE_CHARS = (16, 160)


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _wordy(text: str, letters: int = 8) -> bool:
    return LINE_CHARS[0] <= len(text) <= LINE_CHARS[1] and sum(c.isalpha() for c in text) >= letters


def _source_lines(paths: list[Path]) -> list[str]:
    """Stripped lines with some words in them (no blank lines, lone braces or separators)."""
    out = []
    for path in sorted(paths):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if _wordy(line):
                out.append(line)
    return out


CODE_LANGUAGES = ("python", "cpp", "cmake", "cython", "r")


@lru_cache(maxsize=None)
def _code_files(lang: str) -> tuple[Path, ...]:
    """One language's source files. Per language because text_kind needs only the C++ headers, and
    each of the others walks all of site-packages (about a second each)."""
    site = _site_packages()
    if lang == "python":
        return tuple(stdlib_files())
    if lang == "cpp":
        return tuple(sorted((site / "torch" / "include").rglob("*.h")))
    return tuple(sorted(site.rglob({"cmake": "*.cmake", "cython": "*.pyx", "r": "*.R"}[lang])))


def _code_language_sources() -> dict[str, list[Path]]:
    return {lang: list(_code_files(lang)) for lang in CODE_LANGUAGES}


def code_language_texts(seed: int, n: int) -> dict[str, list[str]]:
    return {lang: _source_lines(paths) for lang, paths in _code_language_sources().items()}


def _docstring_nodes(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                yield node, first


def _docstring_paragraphs(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return []
    out = []
    for node, _ in _docstring_nodes(tree):
        for para in (ast.get_docstring(node) or "").split("\n\n"):
            para = " ".join(para.split())
            if len(para) >= 40 and sum(c.isalpha() for c in para) >= 25:
                out.append(para)
    return out


def docstring_package_texts(seed: int, n: int) -> dict[str, list[str]]:
    root = stdlib_root()
    files = stdlib_files(root)
    return {
        pkg: [p for f in files if f.relative_to(root).parts[0] == pkg for p in _docstring_paragraphs(f)]
        for pkg in DOCSTRING_PACKAGES
    }


@lru_cache(maxsize=1)
def _python_line_kinds() -> dict[str, tuple[str, ...]]:
    """Lines of the standard library sorted by what they are, told apart by Python's own tokenizer
    and parser rather than by guessing from the text."""
    kinds: dict[str, list[str]] = {k: [] for k in ("comment", "docstring", "string", "import", "def", "code")}
    for path in stdlib_files():
        source = path.read_text(encoding="utf-8", errors="replace")
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
            tree = ast.parse(source)
        except (SyntaxError, tokenize.TokenError, ValueError):
            continue
        lines = source.splitlines()
        docstring_rows = {row for _, doc in _docstring_nodes(tree) for row in range(doc.lineno, doc.end_lineno + 1)}
        taken = set(docstring_rows)  # rows holding a comment or a string are no "code" line
        for tok in tokens:
            if tok.type == tokenize.COMMENT:
                taken.add(tok.start[0])
                if lines[tok.start[0] - 1].lstrip().startswith("#") and _wordy(tok.string):
                    kinds["comment"].append(tok.string.strip())
            elif tok.type == tokenize.STRING:
                taken.update(range(tok.start[0], tok.end[0] + 1))
                one_line = tok.start[0] == tok.end[0] and not tok.string.lstrip("rbufRBUF").startswith(('"""', "'''"))
                if one_line and tok.start[0] not in docstring_rows and _wordy(tok.string):
                    kinds["string"].append(tok.string)
        for row in sorted(docstring_rows):
            text = lines[row - 1].strip().strip("\"'").strip()
            if _wordy(text, 12):
                kinds["docstring"].append(text)
        for row, line in enumerate(lines, 1):
            text = line.strip()
            if row in taken or not _wordy(text):
                continue
            if text.startswith(("import ", "from ")):
                kinds["import"].append(text)
            elif text.startswith(("def ", "class ", "async def ")):
                kinds["def"].append(text)
            else:
                kinds["code"].append(text)
    return {k: tuple(v) for k, v in kinds.items()}


def line_kind_texts(seed: int, n: int) -> dict[str, list[str]]:
    return {k: list(v) for k, v in _python_line_kinds().items()}


def _pydoc_topics_path() -> Path:
    return stdlib_root() / "pydoc_data" / "topics.py"


def _prose_paragraphs() -> list[str]:
    """English prose from pydoc's topic help (the language reference), code examples left out."""
    namespace: dict = {}
    exec(compile(_pydoc_topics_path().read_text(encoding="utf-8"), "topics.py", "exec"), namespace)
    out = []
    for text in namespace["topics"].values():
        for para in text.split("\n\n"):
            if para.startswith(" "):  # indented: a code example or a grammar rule
                continue
            para = " ".join(para.split())
            if len(para) >= 40 and not para.startswith(("*", "=", "-")):
                out.append(para[:200])
    return out


def _words(lang: str) -> list[str]:
    path, package = WORD_LISTS[lang]
    if not Path(path).exists():
        raise FileNotFoundError(
            f"{path} is missing: the word-list probing sets need the Debian package {package} "
            f"(apt-get install wamerican wngerman wfrench wspanish witalian), or drop word_language, "
            "text_kind and letter_case from sparse_probing.datasets in experiment_config.yaml"
        )
    return sorted({w for w in Path(path).read_text(encoding="utf-8", errors="replace").split() if len(w) >= 3 and w.isalpha()})


def _english_lower() -> list[str]:
    return [w for w in _words("english") if w.islower()]


def word_language_texts(seed: int, n: int) -> dict[str, list[str]]:
    words = {lang: _words(lang) for lang in WORD_LISTS}
    # a word in two lists (in any case) says nothing about the language
    seen: dict[str, int] = {}
    for ws in words.values():
        for w in ws:
            seen[w.lower()] = seen.get(w.lower(), 0) + 1
    rng = random.Random(seed)
    texts = {}
    for lang, ws in words.items():
        unique = [w for w in ws if seen[w.lower()] == 1]
        texts[lang] = [" ".join(rng.sample(unique, WORDS_PER_TEXT)) for _ in range(n)]
    return texts


def letter_case_texts(seed: int, n: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    words = _english_lower()
    runs = [rng.sample(words, 6) for _ in range(3 * n)]
    return {
        "lower": [" ".join(run) for run in runs[:n]],
        "title": [" ".join(w.title() for w in run) for run in runs[n : 2 * n]],
        "upper": [" ".join(w.upper() for w in run) for run in runs[2 * n :]],
    }


def numerals_texts(seed: int, n: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    words = _english_lower()
    return {
        "words": [" ".join(rng.sample(words, 6)) for _ in range(n)],
        "decimal": [" ".join(str(rng.randint(0, 99_999)) for _ in range(6)) for _ in range(n)],
        "hex": [" ".join(hex(rng.randint(0, 2**24)) for _ in range(6)) for _ in range(n)],
    }


def text_kind_texts(seed: int, n: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    words = _english_lower()
    kinds = _python_line_kinds()
    return {
        "python": list(kinds["code"]),
        "prose": _prose_paragraphs(),
        "cpp": _source_lines(list(_code_files("cpp"))),
        "words": [" ".join(rng.sample(words, 8)) for _ in range(n)],
        "comment": list(kinds["comment"]),
    }


@dataclass(frozen=True)
class ProbingTask:
    texts: Callable[[int, int], dict[str, list[str]]]  # (seed, texts wanted per class) -> {class: texts}
    sources: Callable[[], list[Path]]  # the files the texts come from, for the cache key


def _word_list_paths() -> list[Path]:
    return [Path(p) for p, _ in WORD_LISTS.values() if Path(p).exists()]


TASKS: dict[str, ProbingTask] = {
    "line_kind": ProbingTask(line_kind_texts, stdlib_files),
    "text_kind": ProbingTask(
        text_kind_texts, lambda: stdlib_files() + list(_code_files("cpp")) + _word_list_paths()
    ),
    "letter_case": ProbingTask(letter_case_texts, _word_list_paths),
    "numerals": ProbingTask(numerals_texts, _word_list_paths),
    "word_language": ProbingTask(word_language_texts, _word_list_paths),
    "code_language": ProbingTask(
        code_language_texts, lambda: [p for paths in _code_language_sources().values() for p in paths]
    ),
    "docstring_package": ProbingTask(docstring_package_texts, stdlib_files),
}


def check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(
            f"experiment_config.yaml: unknown sparse_probing.datasets {unknown}; known: {sorted(TASKS)}"
        )


def build(name: str, seed: int, n_train: int, n_test: int) -> dict[str, dict[str, list[str]]]:
    """{"train": {class: [text]}, "test": {class: [text]}}, disjoint, fixed by seed."""
    check_names([name])
    # generated tasks draw twice what they need: duplicates and cross-class texts are dropped below
    raw = TASKS[name].texts(seed, 2 * (n_train + n_test))
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
    """Identity of a task: its source files (names and sizes) and the code that makes its texts,
    so that changing what a task is also changes the cache key of its probing set."""
    check_names([name])
    files = _files_fingerprint(tuple(TASKS[name].sources()))
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return f"{files}:{code}"


@lru_cache(maxsize=16)
def _files_fingerprint(paths: tuple[Path, ...]) -> str:
    """Names and sizes of a task's source files. Names are taken relative to site-packages or
    the standard library where they lie there, so that two clones (two venvs) of the same
    packages share a cache entry. Cached: text_kind reads ~10k C++ headers, and every process
    asks for the key more than once. Each folder is resolved once (286 for text_kind's 10k
    files), with plain strings: resolving every file through pathlib took 0.7 s of each run's start."""
    roots = [(os.path.realpath(_site_packages()), "site-packages"), (os.path.realpath(stdlib_root()), "stdlib")]

    def portable(real: str) -> str:
        for root, tag in roots:
            if real == root or real.startswith(root + os.sep):
                return tag + real[len(root):]
        return real

    folders: dict[str, str] = {}
    named = []
    for p in map(os.fspath, paths):
        folder, name = os.path.split(p)
        if os.path.islink(p):
            full = portable(os.path.realpath(p))
        else:
            if folder not in folders:
                folders[folder] = portable(os.path.realpath(folder))
            full = f"{folders[folder]}/{name}"
        named.append(f"{full}:{os.stat(p).st_size}\n")
    return hashlib.sha256("".join(sorted(named)).encode()).hexdigest()[:16]
