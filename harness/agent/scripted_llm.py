"""A scripted OpenAI-compatible chat server on 127.0.0.1: the only stand-in in this project.

It replaces the language model, nothing else: aider, litellm, git and the experiment
processes all run for real against it. A script is a YAML list of replies served in
order, each either a string or a mapping:

    - reply: "text the model answers"
    - status: 500          # answer with this HTTP error instead (fault injection)
    - delay: 2.5           # seconds to wait before answering
      reply: "..."
    - expect: "Run 2"      # the last user message must contain this, else HTTP 400

aider's side requests (one-line commit messages, chat summaries) and the CLI's preflight
request are answered without consuming the script. A request identical to one already answered gets the same reply,
so a resumed harness that re-sends an interrupted turn sees what it would have seen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserError
from harness.records.files import write_json

PREFLIGHT_MARKER = "harness preflight: reply OK"
STAGE_HEADER = "X-Harness-Stage"
"""Sent by replayed requests of stages whose recorded replies form their own queue (SIDE_STAGES)."""
SIDE_STAGES = frozenset({"review"})
"""Stages a replay serves from their own queue. The review comes after the writeup, whose
claims correction round happens or not depending on the replayed runs' numbers: in one queue
that extra request would take the first reviewer's reply and shift every reply after it."""
"""The CLI's is-the-model-there request; answered without consuming the script."""


def is_edit_failure(message: str) -> bool:
    """aider's message after an edit that did not apply: '# N SEARCH/REPLACE block(s) failed to match!'."""
    return "SEARCH/REPLACE block" in message and "failed to match" in message


@dataclass
class Entry:
    reply: str = ""
    status: int = 200
    delay: float = 0.0
    expect: str = ""
    edit_failed: bool | None = None
    """Replays only: whether the recorded request reported a failed edit (None: unknown)."""
    origin: str = ""
    """Replays only: where the reply was recorded, for messages."""
    stage: str = ""
    """Replays only: the stage the reply was recorded in."""


def load_script(path: Path) -> list[Entry]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"script {path} does not exist; pass scripted:PATH to an existing YAML script") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None
    if isinstance(data, dict):
        data = data.get("replies")
    if not isinstance(data, list):
        raise UserError(f"{path}: a script is a YAML list of replies (or a mapping with 'replies:')")
    entries = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            entries.append(Entry(reply=item))
        elif isinstance(item, dict) and set(item) <= {"reply", "status", "delay", "expect"}:
            entries.append(Entry(reply=str(item.get("reply", "")), status=int(item.get("status", 200)),
                                 delay=float(item.get("delay", 0)), expect=str(item.get("expect", ""))))
        else:
            raise UserError(f"{path}: entry {i} must be a string or a mapping of reply/status/delay/expect")
    return entries


def _count_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class ScriptedLLM:
    """Holds the script and serves it over HTTP from a background thread."""

    def __init__(self, entries: list[Entry], host: str = "127.0.0.1", port: int = 0,
                 exhausted_reply: str | None = None):
        self.entries = [e for e in entries if e.stage not in SIDE_STAGES]
        self.side_entries = [e for e in entries if e.stage in SIDE_STAGES]
        """Replies recorded in a side stage, served only to requests that name it (STAGE_HEADER)."""
        self.position = 0
        self.side_position = 0
        self.exhausted_reply = exhausted_reply
        """Answer for requests after the last entry (replays); None: an HTTP 500 (scripts)."""
        self.beyond = 0
        self.requests: list[dict[str, Any]] = []
        self._answered: dict[str, str] = {}
        self._lock = threading.Lock()
        self._state_path: Path | None = None
        self._last_origin = "the start"
        self._server = _QuietServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def remaining(self) -> int:
        return len(self.entries) - self.position

    def start(self) -> ScriptedLLM:
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def persist(self, path: Path) -> None:
        """Keep the script position and the answered requests in `path`, so that a resumed
        idea continues the script where it stopped (and a re-sent turn gets its old reply)."""
        with self._lock:
            self._state_path = path
            if path.exists():
                saved = json.loads(path.read_text(encoding="utf-8"))
                self.position, self._answered = int(saved["position"]), dict(saved["answered"])
                self.side_position = int(saved.get("side_position", 0))
            else:
                self._save()

    def _save(self) -> None:
        if self._state_path is not None:
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self._state_path, {"position": self.position, "side_position": self.side_position,
                                          "answered": self._answered}, indent=None)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- choosing a reply ----------------------------------------------------
    def choose(self, messages: list[dict[str, Any]], stage: str = "") -> tuple[int, str, float, str]:
        """-> (http status, reply text, delay, kind); stage: the request's STAGE_HEADER, if any"""
        system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
        if "commit message" in system:
            return 200, "chore: agent edit", 0.0, "commit-message"
        if "summarize this partial conversation" in system.lower():
            return 200, "The user asked for code changes; the assistant made them.", 0.0, "summary"
        if any(PREFLIGHT_MARKER in str(m.get("content", "")) for m in messages):
            return 200, "OK", 0.0, "preflight"
        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key in self._answered:
                return 200, self._answered[key], 0.0, "repeat"
            if stage in SIDE_STAGES and self.side_entries:
                return self._side(key)
            if self.position >= len(self.entries):
                self.beyond += 1
                if self.exhausted_reply is not None:
                    return 200, self.exhausted_reply, 0.0, "beyond"
                return 500, f"scripted model: script exhausted after {len(self.entries)} replies", 0.0, "exhausted"
            entry = self.entries[self.position]
            self.position += 1
            last_user = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
            if entry.expect and entry.expect not in last_user:
                return 400, (f"scripted model: reply {self.position} expects a prompt containing "
                             f"{entry.expect!r}; got: {last_user[:300]!r}"), 0.0, "unexpected"
            if entry.edit_failed is not None and entry.edit_failed != is_edit_failure(last_user):
                # the request answers the previous reply, so that reply is where the paths part
                what = (f"the edit recorded at {self._last_origin} no longer applies to the files"
                        if not entry.edit_failed else
                        f"the edit recorded at {self._last_origin} failed then but applies now")
                return 400, (f"replay diverged from the recording: {what} (the template or the recording "
                             "changed); re-record this idea with a live model"), 0.0, "diverged"
            self._last_origin = entry.origin
            if entry.status == 200:
                self._answered[key] = entry.reply
            self._save()
            return entry.status, entry.reply, entry.delay, "script"

    def _side(self, key: str) -> tuple[int, str, float, str]:
        if self.side_position >= len(self.side_entries):
            self.beyond += 1
            return 200, self.exhausted_reply or "", 0.0, "beyond"
        entry = self.side_entries[self.side_position]
        self.side_position += 1
        self._answered[key] = entry.reply
        self._save()
        return 200, entry.reply, 0.0, "script"

    def _handler_class(self):
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send_json(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send_json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

            def do_POST(self):
                try:
                    self._answer()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a killed harness); nothing to answer

            def _answer(self):
                length = int(self.headers.get("Content-Length", 0))
                try:
                    req = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    return self._send_json(400, {"error": {"message": "bad JSON"}})
                messages = req.get("messages", [])
                status, text, delay, kind = llm.choose(messages, self.headers.get(STAGE_HEADER, ""))
                llm.requests.append({"messages": messages, "stream": bool(req.get("stream")),
                                     "kind": kind, "status": status})
                if delay:
                    time.sleep(delay)
                if status != 200:
                    return self._send_json(status, {"error": {"message": text, "type": "scripted_error",
                                                              "code": status}})
                usage = {"prompt_tokens": sum(_count_tokens(str(m.get("content", ""))) for m in messages),
                         "completion_tokens": _count_tokens(text)}
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                model = req.get("model", "scripted")
                if req.get("stream"):
                    return self._stream(model, text, usage)
                self._send_json(200, {
                    "id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()),
                    "model": model, "usage": usage,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                })

            def _stream(self, model: str, text: str, usage: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()

                def chunk(delta: dict, finish: str | None = None, **extra) -> None:
                    payload = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk",
                               "created": int(time.time()), "model": model,
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
                    self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())

                chunk({"role": "assistant", "content": ""})
                for i in range(0, len(text), 200):
                    chunk({"content": text[i:i + 200]})
                chunk({}, "stop", usage=usage)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description="Serve a scripted OpenAI-compatible chat model on 127.0.0.1.")
    ap.add_argument("script", type=Path)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    llm = ScriptedLLM(load_script(args.script), port=args.port).start()
    print(llm.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        llm.stop()


if __name__ == "__main__":
    main()
