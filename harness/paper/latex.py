"""latexmk, chktex and poppler wrappers for the writeup stage and the preflight.

Errors go back to a coding agent, so what this module returns is short and specific:
`file:line: message` items taken from the LaTeX log, not the log itself (a failed
pdflatex log runs to hundreds of lines, most of it font and package chatter).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.execution.sandbox import ETC_TEX, Sandbox, bwrap_works

REQUIRED_TOOLS = ("latexmk", "pdflatex", "bibtex", "chktex")
PDF_TOOLS = ("pdftotext", "pdfinfo")

_INSTALL = "apt-get install --no-install-recommends"
_HINTS = {
    "latexmk": f"{_INSTALL} latexmk (or run envs/tex.sh)",
    "pdflatex": f"{_INSTALL} texlive-latex-base texlive-latex-recommended (or run envs/tex.sh)",
    "bibtex": f"{_INSTALL} texlive-latex-base (bibtex comes with texlive-binaries; or run envs/tex.sh)",
    "chktex": f"{_INSTALL} chktex (or run envs/tex.sh)",
    "pdftotext": f"{_INSTALL} poppler-utils (or run envs/tex.sh)",
    "pdfinfo": f"{_INSTALL} poppler-utils (or run envs/tex.sh)",
}

_BUILD_EXTS = (".aux", ".log", ".fls", ".bbl", ".blg", ".out", ".toc")

ERRORS_BUDGET = 1500
"""Characters of error text handed to the agent per compile round."""

_ITEM_MAX = 220

# chktex warnings that point at visible mistakes in the PDF. The rest (spacing
# around parentheses, dash lengths, `~` before \cite, ...) are style opinions that
# cost a fix round each and change nothing a reader would notice.
CHKTEX_KEEP = {
    1: "command eats the following space (\\LaTeX is -> LaTeXis)",
    16: "math mode left open at the end of the file",
    18: 'straight double quote prints as a closing quote on both sides',
    25: "multi-digit exponent or index without braces (x^10 prints x^1 0)",
    31: "text after \\end{document} is ignored",
    32: "opening quote written as a closing one",
    33: "closing quote written as an opening one",
    35: "function name in math set in italics (use \\sin, \\log, ...)",
    45: "$$...$$ breaks amsmath spacing; use \\[...\\]",
}


class LatexToolError(RuntimeError):
    """A TeX or poppler tool is missing or failed; the message names the fix."""


@dataclass(frozen=True)
class MissingTool:
    name: str
    hint: str

    def __str__(self) -> str:
        return f"{self.name} not found: {self.hint}"


@dataclass
class CompileResult:
    ok: bool
    """latexmk finished without a LaTeX error and wrote the PDF."""
    pdf: Path | None
    """The PDF this compile wrote (also after an error, when pdflatex got that far)."""
    errors: list[str] = field(default_factory=list)
    """What to fix: LaTeX errors, missing figures, undefined citations and references,
    bibtex errors. Bounded to about ERRORS_BUDGET characters in total."""
    pages: int | None = None
    duration_s: float = 0.0
    timed_out: bool = False
    log_path: Path | None = None

    @property
    def clean(self) -> bool:
        """Compiled and nothing left to fix (no undefined citations or references)."""
        return self.ok and not self.errors

    def message(self) -> str:
        """The compile outcome as a few lines for the agent."""
        if self.clean:
            return f"LaTeX compiled: {self.pdf.name if self.pdf else 'PDF'}, {self.pages or '?'} pages."
        head = "LaTeX compiled with problems to fix:" if self.ok else "LaTeX failed to compile:"
        return "\n".join([head, *(f"- {e}" for e in self.errors)])


def check_tex_tools(path: str | None = None,
                    tools: tuple[str, ...] = REQUIRED_TOOLS) -> list[MissingTool]:
    """The tools the writeup stage needs that are not on PATH (or on `path`)."""
    return [MissingTool(t, _HINTS.get(t, f"install {t}"))
            for t in tools if shutil.which(t, path=path) is None]


def _tex_env() -> dict[str, str]:
    env = dict(os.environ)
    # kpathsea reads these from the environment: long log lines keep each error on one
    # line (the default wraps at 79 characters), no shell escape from agent-written
    # LaTeX, and no writing outside the build folder.
    env.update(max_print_line="10000", error_line="254", half_error_line="238",
               shell_escape="f", openout_any="p")
    return env


def tex_cage(level: str | None = None) -> Sandbox:
    """The sandbox TeX runs in: the namespace level wherever bubblewrap works, unless the
    config chose the process level (`level`, as the idea's sandbox has it)."""
    if level is None:
        level = "namespace" if bwrap_works() else "process"
    return Sandbox(level=level)


def _caged(cmd: list[str], cwd: Path, cage: Sandbox | None) -> tuple[list[str], dict[str, str]]:
    """cmd inside the cage: latex/ writable, the workspace around it readable (for
    ../results_table.tex and figures), its .git and .harness hidden, TeX's own trees; no
    home and no other file, so \\input{/etc/hostname} or ~/.ssh/... finds nothing."""
    env = _tex_env()
    if cage is None or cage.level != "namespace":
        return cmd, env
    root = cwd.parent
    env.update(HOME="/tmp", TMPDIR="/tmp", TEXMFVAR="/tmp/texmf-var", TEXMFCONFIG="/tmp/texmf-config")
    exe = shutil.which(cmd[0], path=env.get("PATH")) or cmd[0]
    argv = cage.wrap([exe, *cmd[1:]], cwd, readable=(root,), hide=(root / ".git", root / ".harness"), etc=ETC_TEX)
    return argv, env


def _run(cmd: list[str], cwd: Path, timeout_s: float, cage: Sandbox | None = None) -> tuple[int | None, str]:
    """Run cmd in its own process group; on timeout the whole group is killed (latexmk
    leaves pdflatex and bibtex behind otherwise). Returns (exit code or None, output)."""
    argv, env = _caged(cmd, cwd, cage)
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, out.decode("utf-8", errors="replace")
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
        return None, out.decode("utf-8", errors="replace")


def compile_pdf(tex_path: Path, timeout_s: int = 120, level: str | None = None) -> CompileResult:
    """Build tex_path into a PDF next to it with latexmk (pdflatex + bibtex as needed).

    pdflatex runs in nonstopmode *without* -halt-on-error: it then goes on past the
    first error and the log lists every independent error of this pass, so the agent
    can fix them all in one round instead of one per round. latexmk itself stops after
    a pass with errors (no -f), so a broken file costs one pass, not five.
    `level`: the sandbox level TeX runs under (None: namespace wherever bubblewrap works).
    """
    tex_path = Path(tex_path).resolve()
    cwd, stem = tex_path.parent, tex_path.stem
    pdf, log = cwd / f"{stem}.pdf", cwd / f"{stem}.log"
    if shutil.which("latexmk") is None:
        return CompileResult(ok=False, pdf=None, errors=[str(check_tex_tools(tools=("latexmk",))[0])])
    cmd = ["latexmk", "-pdf", "-norc", "-interaction=nonstopmode", "-file-line-error",
           "-no-shell-escape", tex_path.name]
    # -norc: a latexmkrc is Perl that latexmk executes; an agent-written one must not run.
    if not (cwd / f"{stem}.fdb_latexmk").is_file():
        # Without its database latexmk trusts leftover .log/.fls files (say, committed
        # or copied from another checkout) and may run bibtex on a stale .aux and stop
        # before pdflatex. Starting from the sources alone avoids that.
        for ext in _BUILD_EXTS:
            (cwd / f"{stem}{ext}").unlink(missing_ok=True)
    start = time.time()
    code, output = _run(cmd, cwd, timeout_s, tex_cage(level))
    duration = time.time() - start

    fresh_pdf = pdf if pdf.is_file() and (code == 0 or pdf.stat().st_mtime >= start - 1) else None
    # A log older than this call is from an earlier build; it only describes this one
    # when latexmk found everything up to date (exit 0 without running pdflatex).
    log_is_current = log.is_file() and (code == 0 or log.stat().st_mtime >= start - 1)
    log_text = log.read_text(encoding="utf-8", errors="replace") if log_is_current else ""
    blg = cwd / f"{stem}.blg"
    blg_text = blg.read_text(encoding="utf-8", errors="replace") if blg.is_file() else ""

    hard, soft = parse_log(log_text, tex_path.name, known_keys=_bib_keys(cwd), known_labels=_labels(cwd, stem))
    hard += parse_blg(blg_text)
    items: list[str] = []
    if code is None:
        items.append(f"latexmk did not finish within {timeout_s} s and was stopped "
                     "(an endless loop in a macro, or a very large figure?)")
    items += hard
    if code not in (0, None) and not hard:
        items.append(_latexmk_failure(output))
    items += soft
    ok = code == 0 and fresh_pdf is not None and not hard
    return CompileResult(ok=ok, pdf=fresh_pdf, errors=_bounded(items), pages=_pages_from_log(log_text),
                         duration_s=round(duration, 2), timed_out=code is None,
                         log_path=log if log.is_file() else None)


def compile_template_check(template_dir: Path, timeout_s: int = 120) -> CompileResult:
    """Compile a copy of the LaTeX template in a temporary folder (preflight): proves the
    TeX installation and the template work before any model call is paid for."""
    template_dir = Path(template_dir)
    with tempfile.TemporaryDirectory(prefix="tex-preflight-") as tmp:
        build = Path(tmp) / "latex"
        shutil.copytree(template_dir, build)
        result = compile_pdf(build / "template.tex", timeout_s)
        # the folder goes away with the context; keep the verdict, not dangling paths
        result.pdf = None
        result.log_path = None
        return result


# --- log parsing --------------------------------------------------------------------

# With -file-line-error an error reads "./dir/file.tex:12: message".
_FILE_LINE = re.compile(r"^(?:\./)?(?P<file>[^\s:][^:]*\.(?:tex|sty|cls|bbl|aux|ltx)):(?P<line>\d+): (?P<msg>.*)$")
_BANG = re.compile(r"^! (?P<msg>.*)$")
_CONTEXT = re.compile(r"^l\.(?P<line>\d+) (?P<text>.*)$")
_MISSING_FILE = re.compile(r"(?:LaTeX|Package pdftex\.def) Error: File `(?P<name>[^']+)' not found")
_UNDEF_CITE = re.compile(r"Citation `(?P<key>[^']*)' on page \S+ undefined on input line (?P<line>\d+)")
_UNDEF_REF = re.compile(r"Reference `(?P<key>[^']*)' on page \S+ undefined on input line (?P<line>\d+)")
_MULTI_LABEL = re.compile(r"Label `(?P<key>[^']*)' multiply defined")
_PAGES = re.compile(r"Output written on .*?\((?P<n>\d+) pages?")
# follow-on noise after the real error has been reported
_NOISE = ("Emergency stop", "==> Fatal error occurred", "Here is how much of TeX's memory")


def parse_log(log_text: str, main_file: str = "paper.tex", known_keys: set[str] | None = None,
              known_labels: set[str] | None = None) -> tuple[list[str], list[str]]:
    """(errors, problems) from a pdflatex log: errors stop a clean build; problems
    (undefined citations or references, duplicate labels) compile but read wrong.

    After a pass that stopped on errors, bibtex has not run yet and every citation
    reads as undefined; `known_keys` (the .bib keys) and `known_labels` keep those
    that will resolve out of the list.
    """
    errors: list[str] = []
    lines = log_text.splitlines()
    for i, raw in enumerate(lines):
        m = _FILE_LINE.match(raw)
        bang = _BANG.match(raw) if not m else None
        if not m and not bang:
            continue
        msg = (m or bang).group("msg").strip()
        if any(n in msg for n in _NOISE):
            continue
        where, near = (f"{m.group('file')}:{m.group('line')}" if m else main_file), ""
        for follow in lines[i + 1:i + 12]:
            c = _CONTEXT.match(follow)
            if c:
                near = c.group("text").strip()
                if not m:
                    where = f"{main_file}:{c.group('line')}"
                break
        fm = _MISSING_FILE.search(msg)
        if fm:
            name = fm.group("name")
            kind = "figure file" if re.search(r"\.(png|pdf|jpe?g|eps)$", name, re.I) or "." not in name else "file"
            errors.append(f"{where}: missing {kind} {name} (only files that exist can be included)")
            continue
        errors.append(f"{where}: {msg}" + (f" (near: {near})" if near else ""))

    problems: list[str] = []
    seen: set[str] = set()
    for m in _UNDEF_CITE.finditer(log_text):
        if known_keys is not None and m.group("key") in known_keys:
            continue
        if m.group("key") not in seen:
            seen.add(m.group("key"))
            problems.append(f"{main_file}:{m.group('line')}: citation `{m.group('key')}' is not in "
                            "references.bib (cite only existing keys)")
    for m in _UNDEF_REF.finditer(log_text):
        if known_labels is not None and m.group("key") in known_labels:
            continue
        if "ref:" + m.group("key") not in seen:
            seen.add("ref:" + m.group("key"))
            problems.append(f"{main_file}:{m.group('line')}: \\ref{{{m.group('key')}}} has no matching \\label")
    for m in _MULTI_LABEL.finditer(log_text):
        if "label:" + m.group("key") not in seen:
            seen.add("label:" + m.group("key"))
            problems.append(f"{main_file}: label `{m.group('key')}' is defined more than once")
    return _dedupe(errors), problems


_BLG_LINE = re.compile(r"^(?P<msg>.*?)---line (?P<line>\d+) of file (?P<file>\S+)", re.M)


def parse_blg(blg_text: str) -> list[str]:
    """bibtex syntax errors in the .bib (missing entries already show up as undefined
    citations in the LaTeX log)."""
    out = []
    for m in _BLG_LINE.finditer(blg_text):
        msg = m.group("msg").strip() or "syntax error"
        out.append(f"{m.group('file')}:{m.group('line')}: bibtex: {msg}")
    return _dedupe(out)


_BIB_KEY = re.compile(r"^\s*@(?!comment|string|preamble)\w+\s*[{(]\s*([^,\s]+)\s*,", re.I | re.M)
_LABEL = re.compile(r"\\(?:label|newlabel)\{([^}]*)\}")


def _bib_keys(folder: Path) -> set[str] | None:
    """Keys of the .bib files beside the paper; None when there are none to read."""
    keys: set[str] = set()
    bibs = list(folder.glob("*.bib"))
    for bib in bibs:
        keys |= set(_BIB_KEY.findall(bib.read_text(encoding="utf-8", errors="replace")))
    return keys if bibs else None


def _labels(folder: Path, stem: str) -> set[str]:
    """Labels the paper defines: the .aux of the last pass plus the .tex sources, so
    a label defined after its first \\ref does not count as missing."""
    found: set[str] = set()
    for path in [folder / f"{stem}.aux", *folder.glob("*.tex")]:
        if path.is_file():
            found |= set(_LABEL.findall(path.read_text(encoding="utf-8", errors="replace")))
    return found


def _pages_from_log(log_text: str) -> int | None:
    m = _PAGES.search(log_text)
    return int(m.group("n")) if m else None


def _latexmk_failure(output: str) -> str:
    """latexmk failed but the log shows no LaTeX error (e.g. bibtex crashed or a file
    latexmk needs is missing): its own last complaint is the best we have."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    picked = [ln for ln in lines if ln.startswith("Latexmk:") and ("rror" in ln or "ailure" in ln or "not" in ln)]
    tail = picked[-2:] or lines[-2:] or ["no output"]
    return "latexmk failed: " + " / ".join(tail)


def _dedupe(items: list[str]) -> list[str]:
    seen, out = set(), []
    for it in items:
        if it not in seen:
            seen.add(it)
            out.append(it)
    return out


def _bounded(items: list[str], budget: int = ERRORS_BUDGET) -> list[str]:
    """The first items that fit in `budget` characters (earlier = more important)."""
    out: list[str] = []
    used = 0
    for i, it in enumerate(items):
        it = it if len(it) <= _ITEM_MAX else it[:_ITEM_MAX - 3] + "..."
        if used + len(it) > budget:
            out.append(f"... and {len(items) - i} more")
            break
        out.append(it)
        used += len(it) + 3  # the "- " and newline of the rendered list
    return out


# --- chktex ---------------------------------------------------------------------------

def chktex_warnings(tex_path: Path, timeout_s: int = 60, keep: dict[int, str] | None = None,
                    level: str | None = None) -> list[str]:
    """chktex findings worth a fix round, as `file:line: message (near: ...)`."""
    tex_path = Path(tex_path)
    if shutil.which("chktex") is None:
        raise LatexToolError(str(check_tex_tools(tools=("chktex",))[0]))
    keep = CHKTEX_KEEP if keep is None else keep
    fmt = "%n\t%l\t%c\t%s\t%m\n"
    # -H0: skip the preamble (the template's, not the agent's); -I0: don't follow \input
    code, out = _run(["chktex", "-q", "-v0", "-H0", "-I0", "-f", fmt, tex_path.name],
                     tex_path.parent, timeout_s, tex_cage(level))
    if code is None:
        raise LatexToolError(f"chktex did not finish within {timeout_s} s")
    found = []
    for row in out.splitlines():
        parts = row.split("\t")
        if len(parts) != 5 or not parts[0].isdigit():
            continue
        num, line, _col, near, msg = parts
        if int(num) not in keep:
            continue
        found.append(f"{tex_path.name}:{line}: {msg.strip()}" + (f" (near: {near.strip()})" if near.strip() else ""))
    return _dedupe(found)


# --- PDF ------------------------------------------------------------------------------

def pdf_text(pdf: Path, timeout_s: int = 60) -> str:
    """The PDF's text in reading order (pdftotext)."""
    return _poppler(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], timeout_s)


def pdf_pages(pdf: Path, timeout_s: int = 30) -> int:
    info = _poppler(["pdfinfo", str(pdf)], timeout_s)
    m = re.search(r"^Pages:\s+(\d+)", info, re.M)
    if not m:
        raise LatexToolError(f"pdfinfo printed no page count for {pdf}")
    return int(m.group(1))


def _poppler(cmd: list[str], timeout_s: int) -> str:
    if shutil.which(cmd[0]) is None:
        raise LatexToolError(str(check_tex_tools(tools=(cmd[0],))[0]))
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LatexToolError(f"{cmd[0]} did not finish within {timeout_s} s") from None
    if res.returncode != 0:
        err = res.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise LatexToolError(f"{cmd[0]} failed on {cmd[-2] if cmd[-1] == '-' else cmd[-1]}: "
                             f"{err[-1] if err else 'exit ' + str(res.returncode)}")
    return res.stdout.decode("utf-8", errors="replace")
