"""The writeup stage and the preflight, end to end: real aider, real latexmk, scripted model.

The scripted replies fill latex/template.tex the way an agent would, by replacing each
placeholder block; the numbers they state are the toy template's (seeded, deterministic)
results for the baseline and l1_coeff = 0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import IDEA, REPO, edit, l1_edit

TEMPLATE = (REPO / "latex_template" / "template.tex").read_text()
TEX = "latex/template.tex"
SECTION_HEADINGS = ["Introduction", "Related Work", "Background", "Method", "Experimental Setup",
                    "Results", "Conclusion"]

FILLER = ("Sparse autoencoders decompose the activations of a network into a larger set of "
          "directions, each meant to be active on few inputs and to stand for one feature. "
          "The penalty on the latent activations trades the fidelity of the reconstruction "
          "against how few latents fire, and where a study sets this penalty decides what "
          "the dictionary can show. A reader comparing dictionaries needs both sides of that "
          "trade in view, not one number alone. ")


def block(part: str) -> str:
    """The template's placeholder block for `part`: its comment lines and the macro line."""
    lines = TEMPLATE.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"% PLACEHOLDER {part}:"))
    end = next(i for i in range(start, len(lines)) if f"\\placeholder{{{part}}}" in lines[i])
    return "\n".join(lines[start:end + 1])


def fill(part: str, text: str) -> str:
    return edit(TEX, block(part), text)


def prose(paragraphs: int) -> str:
    return "\n\n".join(FILLER * 3 for _ in range(paragraphs))


RESULTS = r"""
Table~\ref{tab:core} lists the headline metrics of the baseline and of Run~1, which raises
the L1 coefficient from 0.02 to 0.1.

\begin{table}[t]
  \centering
  \caption{Headline metrics per run.}
  \label{tab:core}
  \begin{tabular}{lrrr}
    \toprule
    Run & Explained variance & L0 & MMCS \\
    \midrule
    Baseline & 0.9959 & 14.99 & 0.7455 \\
    Run 1 & 0.9695 & 7.258 & 0.9489 \\
    \bottomrule
  \end{tabular}
\end{table}

The average number of active latents falls from 14.99 to 7.258, a reduction of 51.6\% relative
to the baseline, while explained variance drops from 0.9959 to 0.9695. Recovery of the true
features improves from 0.7455 to 0.9489 (Figure~\ref{fig:metrics}).

\begin{figure}[t]
  \centering
  \includegraphics[width=0.9\linewidth]{metrics_by_run.png}
  \caption{Explained variance, L0 and feature recovery for the baseline and Run~1.}
  \label{fig:metrics}
\end{figure}
"""


def _upstream():
    notes = edit("notes.txt", "# Notes on the experiments (filled in by the agent, read by the writeup)",
                 "# Notes on the experiments (filled in by the agent, read by the writeup)\n\n"
                 "Run 1: l1_coeff raised from 0.02 to 0.1.\n\n"
                 "## Figures\nmetrics_by_run.png: explained variance, L0 and MMCS for the baseline and run 1.")
    labels = 'labels = {\n    "run_0": "baseline",\n}'
    return [l1_edit("0.02", "0.1"), {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"},
            {"expect": "Edit `plot.py`", "reply": edit("plot.py", labels, labels[:-1] + '    "run_1": "L1 = 0.1",\n}')},
            {"expect": "metrics_by_run.png", "reply": notes}]


def _sections(texts: dict[str, str]) -> list:
    """Write + refine replies for every section, then related work and citations."""
    ok = "I checked the section against the list; it passes, so I changed nothing."
    replies = []
    order = [("title and abstract", ["title", "abstract"]), ("introduction", ["introduction"]),
             ("background", ["background"]), ("method", ["method"]),
             ("experimental setup", ["experimental setup"]), ("results", ["results"]),
             ("conclusion", ["conclusion"])]
    for name, parts in order:
        reply = "".join(edit(TEX, r"\title{\placeholder{title}}", texts["title"]) if p == "title"
                        else fill(p, texts[p]) for p in parts)
        replies += [{"expect": f"Now: the {name}", "reply": reply}, {"expect": "critically", "reply": ok}]
    replies += [{"expect": "related work section", "reply": fill("related work", texts["related work"])},
                {"expect": "Add citations", "reply": edit(TEX, "RELATEDANCHOR", texts["cite"])}]
    return replies


def _good_texts() -> dict[str, str]:
    return {
        "title": r"\title{A Stronger L1 Penalty on a Toy Sparse Autoencoder}",
        "abstract": "We raise the L1 coefficient of a toy sparse autoencoder from 0.02 to 0.1. "
                    "Explained variance goes from 0.9959 to 0.9695 while L0 falls from 14.99 to 7.258.",
        "introduction": prose(3),
        "background": prose(3),
        "method": prose(2) + "\n\n\\[ \\mathcal{L} = \\lVert x - \\hat{x} \\rVert_2^2 + "
                  "\\lambda \\lVert f(x) \\rVert_1 \\]\n\n" + prose(1),
        "experimental setup": prose(3),
        "results": RESULTS + "\n" + prose(2),
        "conclusion": prose(2),
        "related work": "RELATEDANCHOR\n\n" + prose(2),
        "cite": r"Dictionary learning on language model activations was introduced by "
                r"\citet{bricken2023monosemanticity} and \citet{cunningham2023sparse}.",
    }


def _run_writeup(harness, texts: dict[str, str], after: list):
    llm = harness.serve(_upstream() + _sections(texts) + after)
    r = harness.run("--idea", str(harness.idea_path), "--stop-after", "writeup")
    assert r.returncode == 0, r.stderr + r.stdout
    return r, llm


def test_runs_become_a_compiled_paper_with_the_figure_and_no_unmatched_claims(harness):
    # declared before the runs: the first prompt says so, the writeup is told whether it held
    harness.idea_path.write_text(json.dumps(IDEA | {"Primary_Metric": "l0", "Expected_Direction": "lower"}))
    r, llm = _run_writeup(harness, _good_texts(), [])
    ws = r.workspace
    assert llm.remaining == 0
    prompts = [c["prompt"] for c in r.chat()]
    assert "## Declared before the runs\nThe idea is judged on L0 (active latents) (lower is better) and expects " \
           "it to be lower than the baseline's." in prompts[0]
    section = next(p for p in prompts if "Now: the title and abstract" in p)
    assert re.search(r"The run that moved it furthest that way is run_1 \([\d.]+ against the baseline's [\d.]+\): "
                     r"the expectation held\.", section), section
    assert r.state()["stages"]["writeup"] == "done", r.state()["writeup"]
    pdf = ws / "paper.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert "paper.pdf" in r.repo().git.ls_files().split()
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True,
                                                            text=True).stdout).group(1))
    assert pages >= 3
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    for heading in SECTION_HEADINGS + ["Abstract", "References"]:
        assert heading in text, heading
    assert "to be written" not in text and "Bricken" in text
    if shutil.which("pdfimages"):
        images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True).stdout
        assert len(images.strip().splitlines()) >= 3  # two header lines, then one row per image
    assert "metrics_by_run.png" in (ws / "latex" / "template.log").read_text(errors="replace")
    claims = json.loads((ws / "claims.json").read_text())
    assert claims["claims"] >= 10 and claims["unmatched"] == 0, claims
    log = r.log()
    assert any(s.startswith("[writeup] LaTeX template copied") for s in log)
    assert any(s.startswith("[writeup] results, write (turn 11): agent edit of latex/template.tex") for s in log)
    assert any(s.startswith("[writeup] paper.pdf; claims check: 0 of") for s in log)
    # sections are separate conversations: no prompt carries the whole paper's history
    calls = [c for c in r.chat() if c["stage"] == "writeup"]
    assert len(calls) == 16
    assert any(q["kind"] == "preflight" for q in llm.requests)


def test_a_made_up_number_and_a_run_that_never_ran_stay_flagged_after_one_correction(harness):
    texts = _good_texts()
    texts["abstract"] = ("Raising the L1 coefficient gives an explained variance of 0.9123, "
                         "and Run 7 confirms it.")
    correction = {"expect": "do not trace to the run files", "reply": "I am confident in these values; no change."}
    r, llm = _run_writeup(harness, texts, [correction])
    assert llm.remaining == 0
    claims = json.loads((r.workspace / "claims.json").read_text())
    flagged = {c["text"] for c in claims["results"] if c["status"] != "ok"}
    assert flagged == {"0.9123", "Run 7"}, claims
    assert claims["unmatched"] == 2
    assert (r.workspace / "paper.pdf").exists()
    assert "unmatched 2 before correction, 2 after" in r.state()["writeup"]["outcome"]


def test_no_pdflatex_fails_in_preflight_before_any_model_call(harness, tmp_path):
    hidden = {"pdflatex", "latexmk"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in os.environ.get("PATH", "/usr/bin").split(os.pathsep):
        if not Path(d).is_dir():
            continue
        for exe in Path(d).iterdir():
            if exe.name not in hidden and not (bin_dir / exe.name).exists():
                (bin_dir / exe.name).symlink_to(exe)
    llm = harness.serve(["never sent"])
    env = harness.env() | {"PATH": str(bin_dir)}
    proc = subprocess.run(harness.args("--idea", str(harness.idea_path), "--stop-after", "writeup"),
                          cwd=harness.tmp, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "latexmk, pdflatex not found" in lines[0] and "setup.sh" in lines[0], lines
    assert llm.requests == []
    assert harness.workspace() is None


def test_a_stopped_writeup_resumes_at_the_first_section_turn_not_committed(harness):
    replies = _upstream() + _sections(_good_texts())
    cut = len(_upstream()) + 5  # title, introduction and the background's write turn
    harness.serve(replies[:cut] + [{"status": 503, "reply": "down"}])
    cfg = harness.write_config({"api_retry_wait": 0.05, "api_attempts": 1})
    r = harness.run("--idea", str(harness.idea_path), "--stop-after", "writeup", "--config", str(cfg))
    assert r.returncode == 1, r.stderr
    assert r.state()["stages"]["writeup"] == "stopped" and r.state()["writeup"]["steps_done"] == 5
    llm = harness.serve(replies[cut:])  # starts with the background's refine turn
    r2 = harness.run("--resume", str(r.workspace), "--api-base", llm.url)
    assert r2.returncode == 0, r2.stderr
    assert llm.remaining == 0 and r2.state()["stages"]["writeup"] == "done"
    log = r2.log()
    assert sum(s.startswith("[writeup] LaTeX template copied") for s in log) == 1
    assert sum(s.startswith("[writeup] background, write") for s in log) == 1
    assert (r2.workspace / "paper.pdf").exists()
