"""What every literature source returns: a paper, as the novelty check shows it to the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Paper:
    id: str
    """The source's own id: a bib key (offline index), a Semantic Scholar paperId, an OpenAlex W-id."""
    title: str
    year: int | None = None
    venue: str = ""
    authors: list[str] = field(default_factory=list)
    summary: str = ""
    """Abstract (online sources) or our own summary (offline index); cut for the prompt."""
    arxiv: str = ""
    doi: str = ""
    url: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Paper:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def reference(self) -> dict:
        """The short form stored as evidence in an idea file."""
        out = {"id": self.id, "title": self.title, "year": self.year}
        for key in ("venue", "arxiv", "doi", "url"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


class SourceDown(Exception):
    """A source did not answer (after its retries): the chain moves on to the next one."""
