"""A local stand-in for the Semantic Scholar and OpenAlex search APIs, on 127.0.0.1.

Only the transport is faked: the harness's real httpx clients, retries and cache talk to it
over real HTTP. Each API answers from a queue of HTTP statuses (200 gives canned papers in
that API's own JSON shape), so a test can script "429, then success" or "always 503".
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

S2_PAPER = {"paperId": "s2-topk-paper", "title": "Scaling and Evaluating Sparse Autoencoders", "year": 2024,
            "venue": "ICLR", "abstract": "TopK sparse autoencoders trained at scale with few dead latents.",
            "authors": [{"name": "Leo Gao"}], "externalIds": {"ArXiv": "2406.04093"},
            "url": "https://www.semanticscholar.org/paper/s2-topk-paper"}
OPENALEX_WORK = {"id": "https://openalex.org/W4399999999", "display_name": "Gated Sparse Autoencoders",
                 "publication_year": 2024, "doi": "https://doi.org/10.48550/arXiv.2404.16014",
                 "abstract_inverted_index": {"Gating": [0], "separates": [1], "detection": [2], "from": [3],
                                             "magnitude": [4]},
                 "primary_location": {"source": {"display_name": "arXiv"}},
                 "authorships": [{"author": {"display_name": "Senthooran Rajamanoharan"}}]}


class FakeLiterature:
    def __init__(self, s2: list[int] | None = None, openalex: list[int] | None = None):
        self.queues = {"s2": list(s2 or []), "openalex": list(openalex or [])}
        self.requests: list[tuple[str, dict]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, api: str) -> int:
        return sum(1 for a, _ in self.requests if a == api)

    def __enter__(self) -> FakeLiterature:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                api = "s2" if url.path == "/graph/v1/paper/search" else "openalex" if url.path == "/works" else "?"
                fake.requests.append((api, {k: v[0] for k, v in parse_qs(url.query).items()}))
                queue = fake.queues.get(api, [404])
                status = queue.pop(0) if queue else 200
                if api == "?":
                    status = 404
                body = {"s2": {"total": 1, "data": [S2_PAPER]},
                        "openalex": {"results": [OPENALEX_WORK]}}.get(api, {}) if status == 200 else {"error": status}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def closed_port_url() -> str:
    """A base URL nothing listens on: connections are refused at once (a source that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
