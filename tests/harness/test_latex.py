"""latexmk / chktex / poppler wrappers, against the real tools (envs/tex.sh installs them)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from harness.paper.latex import (
    ERRORS_BUDGET,
    PDF_TOOLS,
    REQUIRED_TOOLS,
    LatexToolError,
    check_tex_tools,
    chktex_warnings,
    compile_pdf,
    compile_template_check,
    pdf_pages,
    pdf_text,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "latex_template"
SECTIONS = ("Introduction", "Related Work", "Background", "Method", "Experimental Setup",
            "Results", "Conclusion")

needs_tex = pytest.mark.skipif(bool(check_tex_tools(tools=REQUIRED_TOOLS + PDF_TOOLS)),
                               reason="TeX tools missing: run envs/tex.sh")


def write_png(path: Path, width: int = 120, height: int = 80) -> None:
    """A real RGB PNG (a colour gradient) from the standard library alone."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (2 * x % 256, 3 * y % 256, 128))
                    for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def paper_dir(tmp_path: Path) -> Path:
    """A copy of our template with every placeholder filled and one figure."""
    build = tmp_path / "latex"
    shutil.copytree(TEMPLATE, build)
    tex = (build / "template.tex").read_text()
    tex = tex.replace(r"\title{\placeholder{title}}", r"\title{Momentum for Sparse Autoencoders}")
    tex, filled = re.subn(r"^\\placeholder\{([^}\n]*)\}$",
                          lambda m: f"Text of the {m.group(1)} part, citing \\citet{{bricken2023monosemanticity}}.",
                          tex, flags=re.M)
    assert filled == 8 and "\\placeholder{" not in tex
    figure = ("\\begin{figure}[t]\n  \\centering\n  \\includegraphics[width=0.6\\linewidth]{ev_by_run.png}\n"
              "  \\caption{Explained variance by run.}\\label{fig:ev}\n\\end{figure}\n"
              "Figure~\\ref{fig:ev} shows the runs.\n")
    tex = tex.replace(r"\section{Conclusion}", figure + r"\section{Conclusion}")
    (build / "template.tex").write_text(tex)
    write_png(build / "ev_by_run.png")
    return build


def test_missing_tool_reported_with_install_hint(tmp_path):
    # a PATH with every tool but pdflatex (links to the real ones, nothing uninstalled)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("latexmk", "bibtex", "chktex"):
        (bin_dir / tool).symlink_to("/bin/true" if shutil.which(tool) is None else shutil.which(tool))
    missing = check_tex_tools(path=str(bin_dir))
    assert [m.name for m in missing] == ["pdflatex"]
    assert "apt-get install" in missing[0].hint and "\n" not in str(missing[0])
    assert str(missing[0]).startswith("pdflatex not found: ")

    empty = tmp_path / "empty"
    empty.mkdir()
    assert [m.name for m in check_tex_tools(path=str(empty))] == list(REQUIRED_TOOLS)


def test_missing_tool_seen_through_environment_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert {m.name for m in check_tex_tools()} == set(REQUIRED_TOOLS)
    result = compile_pdf(tmp_path / "x.tex", timeout_s=5)
    assert not result.ok and result.errors[0].startswith("latexmk not found")
    with pytest.raises(LatexToolError, match="pdftotext not found"):
        pdf_text(tmp_path / "x.pdf")


@needs_tex
def test_paper_with_figure_compiles_and_reads_back(tmp_path):
    build = paper_dir(tmp_path)
    result = compile_pdf(build / "template.tex", timeout_s=120)
    assert result.ok and result.clean, result.message()
    assert result.pdf == build / "template.pdf" and result.pdf.is_file()
    assert pdf_pages(result.pdf) >= 1 and result.pages == pdf_pages(result.pdf)

    text = pdf_text(result.pdf)
    for heading in SECTIONS + ("References", "Momentum for Sparse Autoencoders"):
        assert heading in text, heading
    assert "Explained variance by run." in text and "Bricken et al." in text
    assert "to be written" not in text
    # the PNG is in the PDF as an image of its own size, not just a caption
    images = subprocess.run(["pdfimages", "-list", str(result.pdf)], capture_output=True, text=True).stdout
    rows = [ln.split() for ln in images.splitlines()[2:]]
    assert [(r[3], r[4]) for r in rows] == [("120", "80")]


@needs_tex
def test_template_compiles_clean_with_every_reference(tmp_path):
    build = tmp_path / "latex"
    shutil.copytree(TEMPLATE, build)
    tex = (build / "template.tex").read_text()
    (build / "template.tex").write_text(tex.replace(r"\bibliographystyle", "\\nocite{*}\n\\bibliographystyle"))
    result = compile_pdf(build / "template.tex", timeout_s=120)
    assert result.clean, result.message()
    log = (build / "template.log").read_text()
    assert "Warning" not in log.replace("Package natbib Warning: Empty", "")
    text = pdf_text(result.pdf)
    for heading in SECTIONS:
        assert heading in text
    for author in ("Bricken", "Cunningham", "Gao", "Rajamanoharan", "Chanin", "Karvonen", "Olshausen",
                   "Elhage", "Bussmann", "Templeton", "Lieberum", "Marks", "Kingma", "Allal", "Biderman"):
        assert author in text, author
    assert chktex_warnings(build / "template.tex") == []
    # the preflight form: a copy in a temporary folder, nothing left behind
    pre = compile_template_check(TEMPLATE, timeout_s=120)
    assert pre.ok and pre.pdf is None
    assert not (TEMPLATE / "template.pdf").exists() and not (TEMPLATE / "template.aux").exists()


BROKEN = r"""\documentclass{article}
\usepackage{graphicx}
\usepackage{natbib}
\begin{document}
\section{Intro}\label{sec:intro}
Some text \undefinedmacro{x} here.
We cite \citet{nosuchkey2024} and \citet{bricken2023monosemanticity}.
See Figure~\ref{fig:none} and Section~\ref{sec:later}.
\includegraphics{missing_plot.png}
\begin{itemize}
\item one
\end{enumerate}
\section{Later}\label{sec:later}
\bibliographystyle{plainnat}
\bibliography{references}
\end{document}
"""


@needs_tex
def test_broken_tex_errors_name_file_and_line(tmp_path):
    (tmp_path / "paper.tex").write_text(BROKEN)
    shutil.copy(TEMPLATE / "references.bib", tmp_path)
    result = compile_pdf(tmp_path / "paper.tex", timeout_s=120)
    assert not result.ok
    joined = "\n".join(result.errors)
    # every independent error of the pass, each at its line, in one round
    assert re.search(r"^paper\.tex:6: Undefined control sequence.*\\undefinedmacro", joined, re.M)
    assert re.search(r"^paper\.tex:9: missing figure file missing_plot\.png", joined, re.M)
    assert re.search(r"^paper\.tex:12: .*\\begin\{itemize\}.*ended by \\end\{enumerate\}", joined, re.M)
    assert re.search(r"^paper\.tex:7: citation `nosuchkey2024' is not in references\.bib", joined, re.M)
    assert re.search(r"^paper\.tex:8: \\ref\{fig:none\}", joined, re.M)
    # keys and labels that do exist are not reported, though bibtex never ran
    assert "bricken2023monosemanticity" not in joined and "sec:later" not in joined
    assert len(result.message()) <= ERRORS_BUDGET + 200

    # fixed, the same folder compiles clean (latexmk reruns bibtex and pdflatex)
    fixed = (BROKEN.replace(r"\undefinedmacro{x}", "x").replace(r"\citet{nosuchkey2024} and ", "")
             .replace(r"Figure~\ref{fig:none} and ", "").replace(r"\includegraphics{missing_plot.png}", "")
             .replace(r"\end{enumerate}", r"\end{itemize}"))
    (tmp_path / "paper.tex").write_text(fixed)
    again = compile_pdf(tmp_path / "paper.tex", timeout_s=120)
    assert again.clean, again.message()
    assert "Bricken et al." in pdf_text(again.pdf)


@needs_tex
def test_error_list_is_bounded(tmp_path):
    body = "\n".join(f"Line {i} uses \\nosuchmacro{i}." for i in range(200))
    (tmp_path / "many.tex").write_text("\\documentclass{article}\n\\begin{document}\n" + body + "\n\\end{document}\n")
    result = compile_pdf(tmp_path / "many.tex", timeout_s=120)
    assert not result.ok
    assert sum(len(e) for e in result.errors) <= ERRORS_BUDGET + 50
    assert result.errors[0].startswith("many.tex:3: Undefined control sequence")
    assert re.fullmatch(r"\.\.\. and \d+ more", result.errors[-1])


@needs_tex
def test_bib_syntax_error_names_bib_line(tmp_path):
    (tmp_path / "paper.tex").write_text(BROKEN.split(r"\section{Intro}")[0] + "\\citet{a2020}\n"
                                        "\\bibliographystyle{plainnat}\n\\bibliography{refs}\n\\end{document}\n")
    (tmp_path / "refs.bib").write_text("@article{a2020,\n  title={A}\n  author={B},\n  year={2020}\n}\n")
    result = compile_pdf(tmp_path / "paper.tex", timeout_s=120)
    assert not result.ok
    assert any(e.startswith("refs.bib:3: bibtex:") for e in result.errors), result.errors


@needs_tex
def test_runaway_compile_is_stopped(tmp_path):
    (tmp_path / "loop.tex").write_text("\\documentclass{article}\n\\begin{document}\n"
                                       "\\def\\spin{\\spin}\\spin\n\\end{document}\n")
    t0 = time.monotonic()
    result = compile_pdf(tmp_path / "loop.tex", timeout_s=3)
    assert time.monotonic() - t0 < 15
    assert result.timed_out and not result.ok and "did not finish within 3 s" in result.errors[0]
    # the whole process group is gone: no pdflatex left spinning in that folder
    time.sleep(0.2)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc / "cwd")) == tmp_path:
                cmd = (proc / "cmdline").read_bytes()
                assert b"pdflatex" not in cmd and b"latexmk" not in cmd
        except OSError:
            continue


@needs_tex
def test_chktex_keeps_only_visible_mistakes(tmp_path):
    (tmp_path / "style.tex").write_text(
        "\\documentclass{article}\n\\begin{document}\n"
        "He said \"hello\" on pages 1-2 (see Fig. 3 ) ...\n"
        "The power $x^10$ and \\LaTeX is here.\n"
        "\\end{document}\n")
    warnings = chktex_warnings(tmp_path / "style.tex")
    assert len(warnings) == 3, warnings
    assert any(w.startswith("style.tex:3:") and "``" in w for w in warnings)       # straight quotes
    assert any(w.startswith("style.tex:4:") and "{}" in w for w in warnings)       # x^10
    assert any(w.startswith("style.tex:4:") and "terminated with space" in w for w in warnings)
    # dash length, ellipsis and parenthesis spacing are style opinions, not reported
    assert not any("dash" in w or "ldots" in w or "parenthesis" in w for w in warnings)


@needs_tex
def test_pdf_helpers_fail_clearly(tmp_path):
    (tmp_path / "not.pdf").write_text("not a pdf")
    with pytest.raises(LatexToolError, match="pdfinfo"):
        pdf_pages(tmp_path / "not.pdf")
    with pytest.raises(LatexToolError, match="pdftotext"):
        pdf_text(tmp_path / "missing.pdf")
