"""The numbers a LaTeX paper states, and the runs it names.

The claims check (stages/verify.py) must see the numbers a reader takes as results,
not the ones LaTeX uses for layout and bookkeeping. Rules, in the order applied:

Masked out before any number is read (replaced by spaces, so offsets and line
numbers stay those of the original file):
  - comments, verbatim environments and \\verb;
  - everything outside \\begin{document} ... \\end{document} (preamble, packages,
    page geometry);
  - arguments that hold keys, paths, sizes or column specs: \\label, \\ref and its
    kin, every \\cite variant, \\includegraphics, \\input, \\url, \\href's address,
    \\vspace/\\hspace, \\setlength, \\resizebox, \\multicolumn/\\multirow spans,
    \\cmidrule, \\cline, \\tag, \\begin{tabular}{...} and similar, colour specs;
  - the optional [..] argument of commands that take one (\\\\[2pt], \\item[..],
    \\includegraphics[width=...], \\begin{figure}[t], ...).

Not claims (skipped where found):
  - numbers glued to a name: a letter, `_`, `#`, `^` or `@` right before (L0, fp16,
    x_1, 2^{10}'s 10, \\#3), or `Word-` before (GPT-2, Gemma-2-2B, top-5);
  - numbers glued to letters after them (2nd, 135M, 16pt, 0.5ex) except the
    factor `x` (3x) and the thousands `k` (16k);
  - dimensions written against a length (0.8\\linewidth);
  - versions (2.13.0; and after "version", "v", "Python", "PyTorch", "CUDA");
  - references to parts of the paper: after Section, Figure, Table, Equation,
    Appendix, Algorithm, Line, Step, page and their abbreviations;
  - small integers 0..10 written without a decimal point, percent sign or factor
    mark (counts, list items, layer indices: never where a made-up result hides);
  - four-digit integers 1900..2039 (years: "Bricken et al. (2023)").

"Run N" (also Runs 1--3, Runs 4 and 5, run\\_2) is read as a run mention, not as a
number; see RunMention. Everything else that looks like a number is a claim: plain
text, tables, captions and math alike ($\\lambda = 0.04$ states a setting).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

# --- masking -------------------------------------------------------------------------

# command -> how many mandatory {..} arguments hold no claims (None: all that follow)
_MASK_ARGS: dict[str, int | None] = {
    **{c: 1 for c in ("label", "ref", "eqref", "pageref", "autoref", "cref", "Cref", "nameref",
                      "vref", "cite", "citet", "citep", "citealt", "citealp", "citeauthor",
                      "citeyear", "citeyearpar", "Citet", "Citep", "Citealt", "Citealp",
                      "citetext", "nocite", "includegraphics", "input", "include", "url",
                      "href", "bibliography", "bibliographystyle", "graphicspath", "hypersetup",
                      "usepackage", "documentclass", "vspace", "hspace", "vskip", "hskip",
                      "color", "pagecolor", "textcolor", "colorbox", "linespread", "cline",
                      "tag", "scalebox", "raisebox", "thispagestyle", "pagestyle",
                      "numberwithin", "hyperlink", "hypertarget")},
    **{c: 2 for c in ("setlength", "addtolength", "setcounter", "addtocounter", "rule",
                      "resizebox", "multicolumn", "multirow", "fontsize", "newcommand",
                      "renewcommand", "providecommand", "DeclareRobustCommand",
                      "newenvironment", "renewenvironment", "fcolorbox")},
    **{c: 3 for c in ("definecolor",)},
}
# commands whose [..] right after the name is an option, not text
_OPT_ARG_CMDS = set(_MASK_ARGS) | {"\\", "item", "sqrt", "section", "subsection", "subsubsection",
                                  "paragraph", "caption", "footnote", "newline", "linebreak",
                                  "pagebreak", "bibitem", "begin", "twocolumn", "centering",
                                  "subcaption", "subfloat", "newpage", "cmidrule", "toprule",
                                  "midrule", "bottomrule", "makebox", "framebox", "parbox",
                                  "addlinespace", "hyperref"}
# environments whose first {..} arguments are specs (column layout, widths)
_ENV_SPEC_ARGS = {"tabular": 1, "tabular*": 2, "tabularx": 2, "tabulary": 2, "array": 1,
                  "longtable": 1, "minipage": 1, "subfigure": 1, "subtable": 1, "wrapfigure": 2,
                  "wraptable": 2, "multicols": 1, "adjustbox": 1, "threeparttable": 0}
_VERBATIM_ENVS = ("verbatim", "verbatim*", "lstlisting", "minted", "Verbatim", "comment")
_MATH_ENVS = ("equation", "equation*", "align", "align*", "gather", "gather*", "multline",
              "multline*", "eqnarray", "eqnarray*", "math", "displaymath", "flalign", "flalign*",
              "alignat", "alignat*")

_CMD = re.compile(r"\\([A-Za-z]+\*?|\\)")


def _blank(chars: list[str], start: int, end: int) -> None:
    for i in range(max(0, start), min(end, len(chars))):
        if chars[i] != "\n":
            chars[i] = " "


def _group_end(text: str, i: int) -> int:
    """Index after the {..} or [..] group that opens at text[i] (nesting-aware; a ]
    inside braces does not close a [..] group)."""
    open_c = text[i]
    close_c = "}" if open_c == "{" else "]"
    depth, j, n = 0, i, len(text)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if open_c == "[" and c == "{":
            j = _group_end(text, j)
            continue
        if c == open_c:
            depth += 1
        elif c == close_c:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return n


def _skip_space(text: str, i: int) -> int:
    """Past spaces and a single line break (a blank line ends an argument list)."""
    n = len(text)
    while i < n and (text[i] in " \t" or (text[i] == "\n" and not text.startswith("\n\n", i))):
        i += 1
    return i


def _mask_comments(chars: list[str]) -> None:
    i, n = 0, len(chars)
    while i < n:
        if chars[i] == "%":
            k, slashes = i - 1, 0
            while k >= 0 and chars[k] == "\\":
                slashes += 1
                k -= 1
            if slashes % 2 == 0:
                j = i
                while j < n and chars[j] != "\n":
                    chars[j] = " "
                    j += 1
                i = j
                continue
        i += 1


def _mask_outside_body(chars: list[str], text: str) -> None:
    b = re.search(r"\\begin\s*\{document\}", text)
    if b:
        _blank(chars, 0, b.end())
    e = re.search(r"\\end\s*\{document\}", text)
    if e:
        _blank(chars, e.start(), len(chars))


def _mask_verbatim(chars: list[str], text: str) -> None:
    for env in _VERBATIM_ENVS:
        pat = re.compile(r"\\begin\{" + re.escape(env) + r"\}.*?\\end\{" + re.escape(env) + r"\}", re.S)
        for m in pat.finditer(text):
            _blank(chars, m.start(), m.end())
    for m in re.finditer(r"\\verb\*?(.)(.*?)\1", text):
        _blank(chars, m.start(), m.end())


def _mask_command_args(chars: list[str]) -> None:
    text = "".join(chars)
    for m in _CMD.finditer(text):
        name = m.group(1)
        base = name.rstrip("*")
        i = m.end()
        if base == "begin":
            # \begin{env}: the name, then the env's own spec arguments
            j = _skip_space(text, i)
            if j >= len(text) or text[j] != "{":
                continue
            end = _group_end(text, j)
            env = text[j + 1:end - 1].strip()
            _blank(chars, j, end)
            i, todo = end, _ENV_SPEC_ARGS.get(env, 0)
            while True:
                j = _skip_space(text, i)
                if j < len(text) and text[j] == "[":
                    end = _group_end(text, j)
                    _blank(chars, j, end)
                    i = end
                elif j < len(text) and text[j] == "{" and todo > 0:
                    end = _group_end(text, j)
                    _blank(chars, j, end)
                    i, todo = end, todo - 1
                else:
                    break
            continue
        if base == "cmidrule":
            cm = re.match(r"\s*(\([^)]*\))?\s*\{[^}]*\}", text[i:])
            if cm:
                _blank(chars, i, i + cm.end())
            continue
        todo = _MASK_ARGS.get(base, _MASK_ARGS.get(name))
        takes_opt = base in _OPT_ARG_CMDS or name in _OPT_ARG_CMDS
        if todo is None and not takes_opt:
            continue
        todo = todo or 0
        first = True
        while True:
            # an option must follow the name directly (\left[ is a delimiter, not an option)
            j = i if first and base not in _MASK_ARGS else _skip_space(text, i)
            first = False
            if j < len(text) and text[j] == "[" and takes_opt:
                end = _group_end(text, j)
                _blank(chars, j, end)
                i = end
            elif j < len(text) and text[j] == "{" and todo > 0:
                end = _group_end(text, j)
                _blank(chars, j, end)
                i, todo = end, todo - 1
            else:
                break


def mask(tex: str) -> str:
    """tex with everything that holds no claim replaced by spaces (same length, same
    line breaks)."""
    chars = list(tex)
    _mask_comments(chars)
    _mask_verbatim(chars, "".join(chars))
    _mask_outside_body(chars, "".join(chars))
    _mask_command_args(chars)
    return "".join(chars)


def math_spans(masked: str) -> list[tuple[int, int]]:
    """(start, end) of inline and display math in an already masked text."""
    spans: list[tuple[int, int]] = []
    for env in _MATH_ENVS:
        pat = re.compile(r"\\begin\{" + re.escape(env) + r"\}.*?\\end\{" + re.escape(env) + r"\}", re.S)
        spans += [(m.start(), m.end()) for m in pat.finditer(masked)]
    spans += [(m.start(), m.end()) for m in re.finditer(r"\\\[.*?\\\]|\\\(.*?\\\)", masked, re.S)]
    i, n = 0, len(masked)
    while i < n:
        c = masked[i]
        if c == "\\":
            i += 2
            continue
        if c == "$":
            delim = "$$" if masked.startswith("$$", i) else "$"
            j = i + len(delim)
            while j < n:
                if masked[j] == "\\":
                    j += 2
                    continue
                if masked.startswith(delim, j):
                    break
                j += 1
            spans.append((i, min(n, j + len(delim))))
            i = j + len(delim)
            continue
        i += 1
    return sorted(spans)


# --- tokens --------------------------------------------------------------------------

@dataclass(frozen=True)
class NumberToken:
    start: int
    end: int
    """Span in the original text, sign and percent sign included."""
    text: str
    value: float
    """As written: 85.3 for "85.3\\%", 16 for "16k", 3.2e-4 for "3.2\\times 10^{-4}"."""
    ulp: float
    """One unit of the last printed digit, in the units of value."""
    percent: bool = False
    factor: bool = False
    """Written as a multiple: 3x, 3$\\times$."""
    kilo: bool = False
    """Written with a k suffix (16k): value is in thousands (or 1024s)."""
    in_math: bool = False


@dataclass(frozen=True)
class RunMention:
    start: int
    end: int
    text: str
    runs: tuple[int, ...]


_NUM = re.compile(r"(?P<num>\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?:\.\d+)?(?!\d)|\d*\.\d+|\d+)"
                  r"(?P<exp>[eE][-+−]?\d+(?![A-Za-z]))?")
_SCI = re.compile(r"\s*(?:\\times|\\cdot|×)\s*10\s*\^\s*\{?\s*(?P<e>[-+−]?\d+)\s*\}?")
_POW10 = re.compile(r"\^\s*\{?\s*(?P<e>[-+−]?\d+)\s*\}?")
_PERCENT = re.compile(r"(?:\s|~|\\,|\\ |\{\})*(?:\\%|\s*percent(?:age)?(?:\s+points?)?\b|\s*pp\b)")
# "3x", "3$\\times$", "3×" in text; in math only a \\times that ends the formula ($3\\times$),
# since inside a formula \\times multiplies (2 \\times 4096).
_FACTOR_TEXT = re.compile(r"(?:\s|~|\\,)*(?:\$\s*\\times\s*\$|×)|x(?![A-Za-z0-9])")
_FACTOR_MATH = re.compile(r"\s*\\times\s*(?=\$)")
_LENGTH = re.compile(r"\\(?:text|line|column|paper)(?:width|height)\b|\\hsize\b|\\baselineskip\b")
_STRUCT_WORDS = re.compile(
    r"\b(?:section|sections|sec\.|secs\.|figure|figures|fig\.|figs\.|table|tables|tab\.|equation|"
    r"equations|eq\.|eqs\.|appendix|appendices|algorithm|alg\.|line|lines|listing|chapter|step|"
    r"steps|stage|phase|page|pages|p\.|pp\.|theorem|lemma|definition|proposition|corollary|"
    r"footnote|version|v|python|pytorch|cuda)(?:\s|~|\\ )*$", re.I)
_SIGN_BEFORE = set(" \t\n([{$=,;:&~<>")
_RUN_SEP = r"(?:,\s*(?:and\s+|or\s+)?|\s+and\s+|\s+or\s+|\s*--?\s*|\s*–\s*|\s+to\s+|\s+through\s+|\s*\\&\s*)"
_RUN_WORD = r"(?:[Rr]uns?(?:\s|~|\\ |\\_|_)*)?"
_RUN = re.compile(
    r"(?<![A-Za-z\\])[Rr][Uu][Nn][Ss]?(?:\s|~|\\ |\\_|_|\\,)*(?P<first>\d+)(?!\d|\.\d)"
    r"(?P<more>(?:" + _RUN_SEP + _RUN_WORD + r"\d+(?!\d|\.\d))*)")


def _run_numbers(first: str, more: str) -> tuple[int, ...]:
    runs = [int(first)]
    for sep, num in re.findall(r"(" + _RUN_SEP + r")" + _RUN_WORD + r"(\d+)", more):
        n = int(num)
        if sep.strip() in ("--", "-", "–", "to", "through") and runs[-1] < n <= runs[-1] + 50:
            runs += list(range(runs[-1] + 1, n + 1))
        else:
            runs.append(n)
    return tuple(dict.fromkeys(runs))


def _in_spans(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= pos < b for a, b in spans)


def scan(tex: str) -> tuple[list[NumberToken], list[RunMention]]:
    """Every number claim and run mention in a LaTeX document, in text order."""
    masked = mask(tex)
    runs: list[RunMention] = []
    chars = list(masked)
    for m in _RUN.finditer(masked):
        runs.append(RunMention(m.start(), m.end(), tex[m.start():m.end()],
                               _run_numbers(m.group("first"), m.group("more") or "")))
        _blank(chars, m.start(), m.end())
    masked = "".join(chars)
    maths = math_spans(masked)

    numbers: list[NumberToken] = []
    pos = 0
    while True:
        m = _NUM.search(masked, pos)
        if not m:
            break
        pos = m.end()
        tok = _read_number(tex, masked, m, maths)
        if tok is not None:
            numbers.append(tok)
            pos = max(pos, tok.end)
    return numbers, runs


def _read_number(tex: str, masked: str, m: re.Match, maths: list[tuple[int, int]]) -> NumberToken | None:
    start, end = m.start(), m.end()
    raw = m.group("num")
    in_math = _in_spans(start, maths)
    pre = masked[start - 1] if start >= 1 else " "
    pre2 = masked[start - 2] if start >= 2 else " "
    post = masked[end] if end < len(masked) else " "

    # glued to a name or an index
    if pre.isalpha() or pre in "_#@^" or (pre == "{" and pre2 in "^_"):
        return None
    if pre.isdigit() or (pre == "." and pre2.isdigit()):
        return None  # the tail of a version or of a number read differently
    if pre == "-" and pre2.isalpha() and not in_math:
        return None  # GPT-2, top-5
    if post == "." and end + 1 < len(masked) and masked[end + 1].isdigit():
        return None  # 2.13.0
    if _LENGTH.match(masked, end):
        return None
    before = masked[max(0, start - 40):start]
    if pre == "-":
        before = before[:-1]
    if _STRUCT_WORDS.search(before):
        return None

    decimals = len(raw.split(".")[1]) if "." in raw else 0
    value = float(re.sub(r",|\{,\}|\\,", "", raw))
    exp = 0
    if m.group("exp"):
        exp = int(m.group("exp")[1:].replace("−", "-"))
    tail = end
    sci = _SCI.match(masked, end)
    if sci:
        exp, tail = int(sci.group("e").replace("−", "-")), sci.end()
    elif raw == "10" and post == "^":
        p = _POW10.match(masked, end)
        if p:  # 10^{-3}
            e = int(p.group("e").replace("−", "-"))
            value, decimals, exp, tail = 1.0, 6, e, p.end()
    elif post == "^":
        return None  # a power's base: 2^{10}
    value *= 10.0 ** exp
    ulp = 10.0 ** (exp - decimals)
    is_int = "." not in raw and not m.group("exp") and not sci and tail == end

    percent = factor = kilo = False
    nxt = masked[tail] if tail < len(masked) else " "
    after = masked[tail + 1] if tail + 1 < len(masked) else " "
    pm = _PERCENT.match(masked, tail)
    fm = None if pm else (_FACTOR_MATH if in_math else _FACTOR_TEXT).match(masked, tail)
    if pm:
        percent, tail = True, pm.end()
    elif fm:
        factor, tail = True, fm.end()
    elif nxt in "kK" and not after.isalpha():
        kilo, tail = True, tail + 1
    elif nxt.isalpha():
        return None  # 2nd, 135M, 16pt, 0.5ex

    # a minus right before the digits is a sign when it starts a term, not when it
    # joins a range (0.91--0.93, 1-2) or a name (handled above)
    if pre in "-−" and (start < 2 or pre2 in _SIGN_BEFORE):
        start -= 1
        value = -value

    if is_int and not (percent or factor or kilo):
        if abs(value) <= 10:
            return None
        if 1900 <= value <= 2039 and len(raw) == 4:
            return None
    return NumberToken(start=start, end=tail, text=tex[start:tail], value=value, ulp=ulp,
                       percent=percent, factor=factor, kilo=kilo, in_math=in_math)


_SENTENCE_END = re.compile(
    r"[.!?](?=\s+[A-Z\\$])"       # a full stop before the next sentence
    r"|\n[ \t]*\n"                 # a blank line (new paragraph)
    r"|\\\\|&"                     # table row and cell ends
    r"|\\(?:par|item|caption|(?:sub)*section|paragraph)\b")


def sentence_breaks(tex: str) -> list[int]:
    """Offsets where a sentence, table cell, caption or paragraph ends; numbers between
    the same two breaks are compared with each other by the text around them."""
    return [m.start() for m in _SENTENCE_END.finditer(mask(tex))]


# --- lenient reading for source files ------------------------------------------------

_PLAIN_NUM = re.compile(r"(?<![\w.])(?P<sign>[-−])?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d*\.\d+|\d+)"
                        r"(?P<exp>[eE][-+]?\d+)?(?P<suffix>\s*%|k\b|K\b)?")


def plain_numbers(text: str) -> list[tuple[float, int, str]]:
    """(value, line, kind) for every number in plain text (notes, idea strings): no
    structural rules here, a source may hold any number. kind is "", "%" or "k"."""
    out = []
    line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    for m in _PLAIN_NUM.finditer(text):
        try:
            v = float(m.group("num").replace(",", "") + (m.group("exp") or ""))
        except ValueError:
            continue
        sign_at = m.start("sign")
        if m.group("sign") and not (sign_at > 0 and text[sign_at - 1].isalnum()):
            v = -v  # "0.91-0.93" is a range, not a negative number
        suffix = (m.group("suffix") or "").strip()
        kind = "%" if suffix == "%" else "k" if suffix in ("k", "K") else ""
        out.append((v, bisect.bisect_right(line_starts, m.start()), kind))
    return out
