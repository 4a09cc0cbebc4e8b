"""Tables declared once (`analysis.columns`), fitted to a terminal (`analysis.layout`) and written
as LaTeX (`analysis.writers`): one number style per column, names shortened before any number
is cut, the end-of-sweep table at 100 and 80 columns, the exact booktabs structure."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest

from attnbench.analysis import render
from attnbench.analysis.columns import NAME, NUMBER, TEXT, Cell, Num, metric_style, round_names
from attnbench.analysis.comparison import compare_runs
from attnbench.analysis.layout import Fitted, fit, wrap
from attnbench.analysis.select import Selection
from attnbench.analysis.writers import tex
from attnbench.store.names import RunIdentity
from attnbench.store.tracker import RunInfo

T2_975 = math.sqrt(0.9025 * 2 / 0.0975)  # Student's t, 2 degrees of freedom, 0.975


# -- number styles ------------------------------------------------------------------------------
def test_one_number_style_per_metric() -> None:
    assert metric_style("test/acc") == Num(4) and metric_style("best_val/exact_match") == Num(4)
    assert metric_style("test/bleu") == Num(2) and metric_style("val/loss") == Num(4)
    assert metric_style("cost/train_s") == Num(1) and metric_style("cost/peak_mem_mb") == Num(1)
    assert metric_style("cost/params") == Num(0, integer=True)
    # a cost metric attnbench has no rule for: about three significant digits of its values
    assert metric_style("cost/mfu", [0.35, 0.12]) == Num(3)
    assert metric_style("cost/tokens_per_s", [12345.6, 800.0]) == Num(0)
    assert metric_style("cost/tokens_per_s", []) == Num(2)


def test_numbers_have_fixed_decimals_and_thousands_separators() -> None:
    assert Num(0)(1193.2) == "1,193" and Num(0)(1773.5) == "1,774"  # one style, one column
    assert Num(1)(0.1597) == "0.2" and Num(1)(17.31) == "17.3"
    assert Num(4, sign=True)(-0.0094) == "-0.0094" and Num(4).signed(0.005) == "+0.0050"
    assert Num(0, integer=True)(1371180.7) == "1,371,181"
    assert Num(0, integer=True).record(1371180.7) == 1371181  # a count is an int in CSV/JSON
    assert Num(1).record(17.31) == 17.31 and Num(2)(None) == "—"
    assert Num(2)(float("nan")) == "—"


def test_long_floats_are_rounded_but_kept_apart() -> None:
    shown = round_names(["0.0012345678901234567", "0.003", "dot", "100"])
    assert shown == {"0.0012345678901234567": "0.001235", "0.003": "0.003", "dot": "dot",
                     "100": "100"}
    close = round_names(["0.00123461234", "0.00123471234"])  # equal at 4 digits: 0.001235
    assert close == {"0.00123461234": "0.0012346", "0.00123471234": "0.0012347"}


def test_a_run_name_rounds_an_optuna_float() -> None:
    ident = RunIdentity("dot", "transformer", "reverse", 0,
                        {"trainer.lr": 0.0012345678901234567, "attention.heads": 4})
    assert ident.cell == "lr0.001235-heads4"
    assert ident.run_name == "dot-transformer-reverse-s0-lr0.001235-heads4"
    assert RunIdentity("dot", "t", "r", 1, {"trainer.lr": 0.01}).cell == "lr0.01"


# -- fitting a terminal -------------------------------------------------------------------------
def test_a_number_moves_its_parts_to_lines_of_their_own_never_splitting_one() -> None:
    mean = Cell(("0.8198", "[0.4494, 1.0000]"))
    assert wrap(mean, 23) == ["0.8198 [0.4494, 1.0000]"]
    assert wrap(mean, 20) == ["0.8198", "[0.4494, 1.0000]"]
    assert wrap(mean, 10, text=False) == ["0.8198", "[0.4494, 1.0000]"]  # never inside a part
    assert wrap(Cell(("inconclusive (n=3)",)), 12) == ["inconclusive", "(n=3)"]  # text: spaces


def test_names_are_abbreviated_last_kept_apart_and_never_with_a_digit() -> None:
    names = Fitted("name", NAME, [Cell((n,)) for n in ("local_window", "local_global", "dot")])
    lrs = Fitted("lr", NAME, [Cell((v,)) for v in ("0.001235", "0.01", "0.1")])
    means = Fitted("mean", NUMBER, [Cell(("0.9000", "± 0.0100"))] * 3)
    marks = Fitted("vs best", TEXT, [Cell(("inconclusive (n=3)",))] * 3)
    columns = [names, lrs, means, marks]
    assert fit(columns, 200) == [12, 8, 15, 18]  # natural: every cell on one line
    # 42 columns: the mark wraps and the mean stacks first; then the names give what is missing
    assert fit(columns, 42) == [8, 8, 8, 12]
    assert [names.lines(c, 8) for c in names.cells] == [["local_w…"], ["local_g…"], ["dot"]]
    assert [lrs.lines(c, 8) for c in lrs.cells] == [["0.001235"], ["0.01"], ["0.1"]]
    assert means.lines(means.cells[0], 8) == ["0.9000", "± 0.0100"]
    assert marks.lines(marks.cells[0], 12) == ["inconclusive", "(n=3)"]
    # narrower than that ('local_…' would be ambiguous, a number is never cut): nothing is cut,
    # one line per row at the natural widths
    assert fit(columns, 41) == [12, 8, 15, 18]


# -- the end-of-sweep table ---------------------------------------------------------------------
ERROR = "RuntimeError: injected fault: the accelerator fell over while training at step 3 of 100"


def sweep_rows() -> list[dict]:
    rows = []
    for i, attention in enumerate(("none", "dot", "scaled", "additive", "multihead")):
        for seed in range(3):
            rows.append({
                "attention": attention, "backbone": "transformer", "task": "assoc_recall",
                "seed": str(seed), "cell": "lr0.001235" if attention == "dot" else "",
                "run_id": f"r{i}{seed}", "name": "x", "status": "FINISHED", "metric": "acc",
                "test": 0.9 + i / 100 + seed / 1000, "val": 0.89 + i / 100,
                "params": 141408.0, "train_s": 8.04321, "error": ""})
    rows[4] |= {"status": "FAILED", "error": ERROR, "test": None, "val": None, "train_s": None}
    return rows


@pytest.mark.parametrize("width", [100, 80])
def test_the_sweep_table_fits_and_cuts_nothing(width: int, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from attnbench import console as term
    from attnbench.analysis.sweep_table import SweepSummary, print_sweep_table

    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setattr(term, "console", term.stdout_console())
    print_sweep_table(SweepSummary("864c7851abcdef", "", sweep_rows()))
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width, out
    assert "…" not in out  # FINISHED, the cell's lr and the error, whole
    assert lines[0] == "sweep 864c7851: 15 jobs, 1 failed (backbone transformer, task assoc_recall)"
    assert out.count("FINISHED") == 14 and out.count("lr0.001235") == 3
    assert f"FAILED: {ERROR}" in " ".join(out.split())  # wrapped at its spaces
    assert out.count("141,408") == 15 and out.count(" 8.0") == 14  # seconds: 1 decimal
    assert "0.9420" in out and "8.04" not in out
    header = " ".join(lines[1:4])
    assert "transformer" not in header and "backbone" not in header  # one value: in the title


# -- LaTeX --------------------------------------------------------------------------------------
def latex_runs() -> list[RunInfo]:
    values = {"scaled": [0.90, 0.92, 0.94], "dot_general": [0.85, 0.86, 0.90]}
    return [
        RunInfo(f"{a}{s}", "x", "FINISHED", "1",
                {"attention": a, "seed": str(s), "attnbench.primary_metric": "acc"},
                {"attention.name": a, "seed": str(s)},
                {"test/acc": v, "cost/params": 141408.0}, s, s)
        for a, vs in values.items() for s, v in enumerate(vs)
    ]


def test_latex_is_booktabs_with_the_best_in_bold_and_names_escaped() -> None:
    comp = compare_runs(Selection(latex_runs(), "sweep s1 (exp x_y)", "x_y-s1"))
    half_dot = T2_975 * math.sqrt(0.0007) / math.sqrt(3)  # sd of .85 .86 .90: sqrt(.0014 / 2)
    half_diff = T2_975 * 0.01 / math.sqrt(3)  # diffs -.05 -.06 -.04
    lines = render.to_latex(comp).splitlines()
    caption = lines.pop(4)
    assert lines == [
        "% sweep s1 (exp x_y): test/acc by attention",
        r"% needs \usepackage{booktabs}",
        r"\begin{table}[htbp]",
        r"  \centering",
        r"  \label{tab:attnbench-x-y-s1-test-acc}",
        r"  \begin{tabular}{lrrrrlr}",
        r"    \toprule",
        r"    attention & n & test/acc (mean $\pm$ 95\% CI) & $\Delta$ best (95\% CI) & p & "
        r"vs best & params \\",
        r"    \midrule",
        r"    \textbf{scaled} & \textbf{3} & \textbf{0.9200 $\pm$ 0.0497} &  &  & "
        r"\textbf{best} & \textbf{141,408} \\",
        rf"    dot\_general & 3 & 0.8700 $\pm$ {half_dot:.4f} & $-$0.0500 $\pm$ "
        rf"{half_diff:.4f} & 0.013 & worse & 141,408 \\",
        r"    \bottomrule",
        r"  \end{tabular}",
        r"\end{table}",
    ]
    assert caption.startswith(r"  \caption{test/acc: higher is better; test used: paired t-test")
    assert r"95 \% t-interval" in caption and r"p $\geq$ 0.05" in caption
    assert caption.endswith("}") and "%" not in caption.replace(r"\%", "")


def test_tex_escapes_what_latex_would_read() -> None:
    assert tex(r"a_b & 5% #1 {x} ~ ^ \ <0.001 |") == (
        r"a\_b \& 5\% \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{} "
        r"\textless{}0.001 \textbar{}")
    assert tex("-0.5 [-0.9, +0.1] Shapiro-Wilk 0.1--0.5") == (
        "$-$0.5 [$-$0.9, +0.1] Shapiro-Wilk 0.1--0.5")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex on this machine")
def test_the_latex_table_compiles(tmp_path: Path) -> None:
    comp = compare_runs(Selection(latex_runs(), "sweep s1 (exp x_y)", "x_y-s1"))
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n"
                   "\\usepackage{booktabs}\n\\begin{document}\n" + render.to_latex(comp)
                   + "\\end{document}\n", encoding="utf-8")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
