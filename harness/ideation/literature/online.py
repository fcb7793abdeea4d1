"""The online sources: Semantic Scholar's and OpenAlex's search APIs over HTTP (httpx).

Rate limits (429), server errors and timeouts are retried with exponential back-off
(tenacity); when the retries are spent, or the host cannot be reached at all, the source
raises SourceDown and the chain tries the next one. Base URLs are settings, so that tests
point the clients at a local server and never at the internet.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from harness.ideation.literature.paper import Paper, SourceDown

SUMMARY_CHARS = 600
"""Abstracts are cut here: the model needs the gist of a hit, not the whole paper."""


class _Transient(Exception):
    pass


@dataclass(frozen=True)
class HttpSettings:
    base_url: str
    api_key: str = ""
    timeout: float = 10.0
    attempts: int = 4
    retry_wait: float = 2.0
    """First back-off in seconds; it doubles per attempt, capped at 30 s."""


class OnlineSource:
    name = ""

    def __init__(self, settings: HttpSettings):
        self.settings = settings

    def _request(self, path: str, params: dict, headers: dict) -> dict:
        s = self.settings

        def once() -> dict:
            try:
                resp = httpx.get(s.base_url.rstrip("/") + path, params=params, headers=headers, timeout=s.timeout)
            except httpx.TimeoutException as exc:
                raise _Transient(f"timed out after {s.timeout:g} s") from exc
            except httpx.TransportError as exc:
                # refused or unresolvable: retrying will not help, the next source might
                raise SourceDown(f"{self.name} unreachable at {s.base_url} ({type(exc).__name__})") from exc
            if resp.status_code == 429 or resp.status_code >= 500:
                raise _Transient(f"HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise SourceDown(f"{self.name} answered HTTP {resp.status_code}: {resp.text[:120]}")
            try:
                return resp.json()
            except ValueError as exc:
                raise SourceDown(f"{self.name} answered something that is not JSON") from exc

        try:
            for attempt in Retrying(retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(s.attempts),
                                    wait=wait_exponential(multiplier=s.retry_wait, max=30), reraise=True):
                with attempt:
                    return once()
        except _Transient as exc:
            raise SourceDown(f"{self.name}: {exc} after {s.attempts} attempts") from exc
        raise AssertionError("unreachable")

    def search(self, query: str, limit: int) -> list[Paper]:
        raise NotImplementedError


def _cut(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS].rsplit(" ", 1)[0] + " ..."


class SemanticScholar(OnlineSource):
    """api.semanticscholar.org/graph/v1/paper/search; a key (x-api-key) raises the rate limit."""

    name = "Semantic Scholar"
    FIELDS = "title,year,venue,authors,abstract,externalIds,url"

    def search(self, query: str, limit: int) -> list[Paper]:
        headers = {"x-api-key": self.settings.api_key} if self.settings.api_key else {}
        data = self._request("/graph/v1/paper/search", {"query": query, "limit": limit, "fields": self.FIELDS},
                             headers)
        papers = []
        for item in data.get("data") or []:
            ids = item.get("externalIds") or {}
            papers.append(Paper(id=str(item.get("paperId", "")), title=item.get("title") or "",
                                year=item.get("year"), venue=item.get("venue") or "",
                                authors=[a.get("name", "") for a in item.get("authors") or []],
                                summary=_cut(item.get("abstract")), arxiv=ids.get("ArXiv") or "",
                                doi=ids.get("DOI") or "", url=item.get("url") or ""))
        return papers


def _openalex_abstract(inverted: dict | None) -> str:
    """OpenAlex ships abstracts as word -> positions; put the words back in order."""
    if not inverted:
        return ""
    slots = sorted((pos, word) for word, positions in inverted.items() for pos in positions)
    return " ".join(word for _, word in slots)


class OpenAlex(OnlineSource):
    """api.openalex.org/works?search=; an email (mailto) or key puts requests in the polite pool."""

    name = "OpenAlex"

    def search(self, query: str, limit: int) -> list[Paper]:
        params = {"search": query, "per-page": limit}
        if self.settings.api_key:
            params["mailto" if "@" in self.settings.api_key else "api_key"] = self.settings.api_key
        data = self._request("/works", params, {})
        papers = []
        for item in data.get("results") or []:
            source = ((item.get("primary_location") or {}).get("source") or {})
            doi = (item.get("doi") or "").removeprefix("https://doi.org/")
            papers.append(Paper(id=str(item.get("id", "")).rsplit("/", 1)[-1],
                                title=item.get("display_name") or item.get("title") or "",
                                year=item.get("publication_year"), venue=source.get("display_name") or "",
                                authors=[(a.get("author") or {}).get("display_name", "")
                                         for a in item.get("authorships") or []],
                                summary=_cut(_openalex_abstract(item.get("abstract_inverted_index"))),
                                doi=doi, url=item.get("id") or ""))
        return papers
