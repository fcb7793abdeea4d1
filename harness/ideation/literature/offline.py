"""The offline index: the project's curated bibliography (latex_template/references.bib)
searched with BM25 (bm25s). It always answers, so the novelty check never stalls on the
network; its reach is what the bibliography holds (its size is said with every answer).

Every entry carries our own one-or-two-sentence summary in its `abstract` field; BM25 scores
the title, the summary and the keywords together.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from harness.config import resource_dir
from harness.errors import UserError
from harness.ideation.literature.paper import Paper

BIBLIOGRAPHY = resource_dir("latex_template") / "references.bib"
_ENTRY = re.compile(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", re.S)
_FIELD = re.compile(r"(\w+)\s*=\s*", re.S)


def _braced(text: str, start: int) -> tuple[str, int]:
    """The value starting at text[start] ({...} with nesting, "..." or a bare word) and where it ends."""
    if text[start] == "{":
        depth, i = 0, start
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start + 1:i], i + 1
            i += 1
        raise ValueError("unbalanced braces")
    if text[start] == '"':
        end = text.index('"', start + 1)
        return text[start + 1:end], end + 1
    m = re.match(r"[\w.-]+", text[start:])
    return (m.group(0), start + m.end()) if m else ("", start)


def parse_bibtex(text: str) -> dict[str, dict[str, str]]:
    """key -> {field: value} for every @type{key, field = {value}, ...} entry (comments skipped)."""
    entries: dict[str, dict[str, str]] = {}
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("%"))
    for m in _ENTRY.finditer(text):
        pos, fields = m.end(), {"ENTRYTYPE": m.group(1).lower()}
        while True:
            f = _FIELD.match(text, pos + len(text[pos:]) - len(text[pos:].lstrip()))
            if not f:
                break
            value, pos = _braced(text, f.end())
            fields[f.group(1).lower()] = " ".join(value.split())
            rest = text[pos:].lstrip()
            pos = len(text) - len(rest)
            if rest.startswith(","):
                pos += 1
            else:
                break
        entries[m.group(2)] = fields
    return entries


def _plain(tex: str) -> str:
    return re.sub(r"[{}\\]", "", tex).replace("--", "–")


def _arxiv_of(fields: dict[str, str]) -> str:
    if fields.get("eprint"):
        return fields["eprint"]
    m = re.search(r"arxiv\.org/abs/([0-9]{4}\.[0-9]{4,5})", fields.get("url", "")) or \
        re.search(r"arXiv:([0-9]{4}\.[0-9]{4,5})", fields.get("journal", ""))
    return m.group(1) if m else ""


def papers_of(path: Path) -> list[Paper]:
    out = []
    for key, f in parse_bibtex(path.read_text(encoding="utf-8")).items():
        arxiv = _arxiv_of(f)
        year = f.get("year", "")
        out.append(Paper(
            id=key, title=_plain(f.get("title", "")), year=int(year) if year.isdigit() else None,
            venue=_plain(f.get("booktitle") or f.get("journal") or ("arXiv" if arxiv else "")),
            authors=[_plain(a).strip() for a in f.get("author", "").split(" and ") if a.strip()],
            summary=_plain(f.get("abstract", "")), arxiv=arxiv, doi=f.get("doi", ""),
            url=f.get("url") or (f"https://arxiv.org/abs/{arxiv}" if arxiv else "")))
    return out


class OfflineIndex:
    name = "offline index"

    def __init__(self, path: Path = BIBLIOGRAPHY):
        if not path.is_file():
            raise UserError(f"offline index {path} does not exist; restore latex_template/references.bib")
        self.path = path
        self.papers = papers_of(path)
        self._retriever = _build(str(path), path.stat().st_mtime)

    def search(self, query: str, limit: int) -> list[Paper]:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return []
        k = min(limit, len(self.papers))
        docs, scores = self._retriever.retrieve(tokens, k=k, show_progress=False)
        return [self.papers[int(d)] for d, s in zip(docs[0], scores[0]) if s > 0]


@lru_cache(maxsize=2)
def _build(path: str, mtime: float):
    import bm25s

    papers = papers_of(Path(path))
    corpus = [" ".join([p.title, p.title, p.summary, " ".join(p.authors)]) for p in papers]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)
    return retriever
