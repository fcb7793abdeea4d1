"""The sources in the order they are tried, with a disk cache in front of the online ones.

A source that is down (its retries spent, or unreachable) is skipped for the rest of the
session, so one outage costs its retries once and not on every query. When every online
source is down the offline index answers, and the user is told so once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError
from harness.ideation.literature.offline import OfflineIndex
from harness.ideation.literature.online import HttpSettings, OpenAlex, SemanticScholar
from harness.ideation.literature.paper import Paper, SourceDown
from harness.records.files import write_json

SOURCES = ("semantic_scholar", "openalex", "offline")
DEFAULT_URLS = {"semantic_scholar": "https://api.semanticscholar.org", "openalex": "https://api.openalex.org"}
URL_VARS = {"semantic_scholar": "SAE_HARNESS_S2_URL", "openalex": "SAE_HARNESS_OPENALEX_URL"}
KEY_VARS = {"semantic_scholar": ("S2_API_KEY", "SEMANTIC_SCHOLAR_API_KEY"),
            "openalex": ("OPENALEX_API_KEY", "OPENALEX_EMAIL")}


@dataclass(frozen=True)
class LiteratureSettings:
    sources: tuple[str, ...] = SOURCES
    cache_dir: Path | None = None
    """None: no cache. Online answers only; the offline index is fast and changes with the .bib."""
    urls: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    attempts: int = 4
    retry_wait: float = 2.0


def settings_from_env(sources: str | None, env: dict[str, str] | None = None) -> LiteratureSettings:
    """Base URLs and keys from the environment (SAE_HARNESS_S2_URL, S2_API_KEY, ...); `sources`
    is a comma list of semantic_scholar, openalex, offline in the order to try them."""
    env = dict(os.environ) if env is None else env
    names = tuple(s.strip() for s in (sources or ",".join(SOURCES)).split(",") if s.strip())
    bad = [s for s in names if s not in SOURCES]
    if bad or not names:
        raise UserError(f"--sources: unknown source {', '.join(bad) or '(none)'}; use a comma list of {', '.join(SOURCES)}")
    urls = {s: env.get(URL_VARS[s]) or DEFAULT_URLS[s] for s in URL_VARS}
    keys = {s: next((env[v] for v in KEY_VARS[s] if env.get(v)), "") for s in KEY_VARS}
    cache = Path(env.get("SAE_HARNESS_LITERATURE_CACHE") or Path.home() / ".cache" / "sae_harness" / "literature")

    def number(var: str, default: float) -> float:
        try:
            return float(env.get(var) or default)
        except ValueError:
            raise UserError(f"{var} must be a number of seconds, got {env[var]!r}") from None

    return LiteratureSettings(sources=names, cache_dir=cache, urls=urls, keys=keys,
                              timeout=number("SAE_HARNESS_LITERATURE_TIMEOUT", 10.0),
                              retry_wait=number("SAE_HARNESS_LITERATURE_RETRY_WAIT", 2.0))


@dataclass
class SearchResult:
    query: str
    source: str
    papers: list[Paper]
    cached: bool = False


class Literature:
    def __init__(self, settings: LiteratureSettings, say: Callable[[str], None] = print):
        self.settings = settings
        self.say = say
        self.sources = []
        for name in settings.sources:
            if name == "offline":
                self.sources.append(OfflineIndex())
            else:
                http = HttpSettings(base_url=settings.urls.get(name, DEFAULT_URLS[name]),
                                    api_key=settings.keys.get(name, ""), timeout=settings.timeout,
                                    attempts=settings.attempts, retry_wait=settings.retry_wait)
                self.sources.append((SemanticScholar if name == "semantic_scholar" else OpenAlex)(http))
        self.down: dict[str, str] = {}
        self._told_offline = False

    def _cache_path(self, source: str, query: str, limit: int) -> Path | None:
        if self.settings.cache_dir is None:
            return None
        digest = hashlib.sha256(f"{query.strip().lower()}\n{limit}".encode()).hexdigest()[:24]
        return self.settings.cache_dir / source.replace(" ", "_").lower() / f"{digest}.json"

    def search(self, query: str, limit: int = 8) -> SearchResult:
        for source in self.sources:
            if source.name in self.down:
                continue
            if isinstance(source, OfflineIndex):
                if not self._told_offline and len(self.sources) > 1:
                    # each down source was named when it failed; this says what answers instead, once
                    self.say(f"literature: using the offline index ({len(source.papers)} papers): "
                             f"no online source answered")
                    self._told_offline = True
                return SearchResult(query, source.name, source.search(query, limit))
            path = self._cache_path(source.name, query, limit)
            if path is not None and path.exists():
                try:
                    saved = json.loads(path.read_text(encoding="utf-8"))
                    return SearchResult(query, source.name, [Paper.from_dict(p) for p in saved["papers"]], cached=True)
                except (ValueError, KeyError, TypeError):
                    pass  # a damaged cache file is asked again
            try:
                papers = source.search(query, limit)
            except SourceDown as exc:
                self.down[source.name] = str(exc)
                self.say(f"literature: {exc}; skipping {source.name} for the rest of this session")
                continue
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json(path, {"query": query, "source": source.name, "papers": [p.to_dict() for p in papers]})
            return SearchResult(query, source.name, papers)
        raise SourceDown("no literature source answered: " + "; ".join(f"{n}: {w}" for n, w in self.down.items())
                         + " (add offline to --sources to fall back on the shipped index)")
