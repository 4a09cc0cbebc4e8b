"""`attnbench compare`: read runs back from the store, compare them, print and write the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from attnbench.analysis.comparison import check_correction, check_margin, compare_runs
from attnbench.analysis.render import (
    RENDER,
    output_format,
    print_comparison,
    report_dir,
    report_name,
    write_report,
)
from attnbench.analysis.select import Selection, filter_runs, select_runs
from attnbench.analysis.tuning import read as read_selection
from attnbench.errors import ConfigError
from attnbench.store.queries import open_store
from attnbench.store.tracker import Tracker


def compare(
    *,
    experiment: str | None = None,
    sweep: str | None = None,
    by: Sequence[str] | None = None,
    metric: str | None = None,
    fmt: str | None = None,
    output: Path | None = None,
    plots: bool = True,
    runs_dir: str | Path = "runs",
    tracking_uri: str | None = None,
    correction: str = "none",
    baseline: str | None = None,
    strict: bool = False,
    margin: float | None = None,
    reruns: bool = False,
    across: str | None = None,
    filters: Sequence[str] = (),
    wide: bool = False,
) -> int:
    """`attnbench compare`: print the comparison, write tables and plots; returns the exit code.

    `by=None` groups by what the sweep varied (`model.default_by`); groups that pool runs of
    different configs get a warning line on stderr before the table, or with `strict` a
    one-line error and nothing written; so do groups that differ in steps or parameters by more
    than 10 % (a warning only). `across="task"`: the cross-task summary (`analysis.across`).
    `filters`: `key=value` items (`select.filter_runs`); `wide`: one terminal table, not two."""
    import sys

    from attnbench.console import console

    fmt = output_format(fmt, output)
    check_correction(correction)
    check_margin(margin)
    if across is not None:
        check_across(across, correction, baseline, margin)
    if output is not None:  # before anything is written or logged
        check_output(output)
    tracker = open_store(runs_dir, tracking_uri)
    # a copied runs/ folder still points at the original's artifacts (said after the table, so
    # an error stays the only line)
    moved = relocate_copied_store(tracker) if tracker.local else []
    tracker.mark_stale_runs()  # runs left RUNNING by a killed process: FAILED, not compared
    # a tuned sweep: its final runs; a search sweep: ranked on validation (analysis.tuning)
    reading = read_selection(select_runs(tracker, experiment, sweep), metric)
    # after the tuned sweep's choice: a filter narrows what is compared, never what was chosen
    selection = reading.selection = filter_runs(reading.selection, filters)
    if selection.note:
        say(f"note: {selection.note}")
    if across is not None:
        return compare_across(tracker, selection, across, by, metric, fmt, output, plots,
                              runs_dir, moved)
    comp = compare_runs(selection, reading.by(by), reading.metric, correction, baseline, margin)
    comp.show_reruns = reruns
    reading.annotate(comp)
    if comp.pooled:
        if strict:
            raise ConfigError(f"--strict: {comp.pooled_message}")
        say(f"warning: {comp.pooled_message}")
    if comp.budget_warning:
        say(f"warning: {comp.budget_warning}")
    out_dir = report_dir(runs_dir, comp)
    written = write_report(tracker, comp, out_dir, plots)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(RENDER[fmt](comp), encoding="utf-8")
    if fmt == "table" or output is not None:
        print_comparison(comp, console, wide)
    else:
        sys.stdout.write(RENDER[fmt](comp))
    if reruns and (fmt == "table" or output is not None):
        from attnbench.analysis import reruns as listed
        from attnbench.analysis.layout import print_tables

        console.print()
        print_tables([listed.table(comp)], console)
    names = ", ".join(p.name for p in written)
    where = (f"; logged to sweep run {comp.parent.run_id} under report/{out_dir.name}/"
             if comp.parent else "")
    for note in moved:
        say(f"note: {note}")
    say(f"report: {out_dir} ({names}){where}")
    if output is not None:
        say(f"wrote {output}")
    return 0


def check_across(across: str, correction: str, baseline: str | None, margin: float | None) -> None:
    """--across takes a grouping key and none of the options of a test against one reference."""
    if not across.strip():
        raise ConfigError("--across needs a key, e.g. --across task")
    for given, name in ((baseline, "--baseline"), (margin, "--margin"),
                        (None if correction == "none" else correction, "--correction")):
        if given is not None:
            raise ConfigError(
                f"{name} does not apply to --across: the cross-task summary ranks every variant "
                "(Friedman, Nemenyi); drop it, or compare one task without --across"
            )


def compare_across(
    tracker: Tracker,
    selection: Selection,
    key: str,
    by: Sequence[str] | None,
    metric: str | None,
    fmt: str,
    output: Path | None,
    plots: bool,
    runs_dir: str | Path,
    moved: list[str],
) -> int:
    """`compare --across KEY`: the cross-task summary, printed and written like a comparison."""
    import sys

    from attnbench.analysis import across_render
    from attnbench.analysis.across import across_runs
    from attnbench.analysis.layout import print_tables
    from attnbench.console import console
    from attnbench.naming import inside

    summary = across_runs(selection, key.strip(), by, metric)
    folder = report_name(f"across-{summary.key}" + (f"_{metric}" if metric else ""),
                         where=selection.where)
    out_dir = inside(runs_dir, "reports", summary.name, folder)
    written = across_render.write_report(tracker, summary, out_dir, plots)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(across_render.RENDER[fmt](summary), encoding="utf-8")
    if fmt == "table" or output is not None:
        print_tables([across_render.table(summary)], console, summary.caption)
    else:
        sys.stdout.write(across_render.RENDER[fmt](summary))
    for note in moved:
        say(f"note: {note}")
    where = (f"; logged to sweep run {summary.parent.run_id} under report/{out_dir.name}/"
             if summary.parent else "")
    names = ", ".join(p.name for p in written)
    say(f"report: {out_dir} ({names}){where}")
    if output is not None:
        say(f"wrote {output}")
    return 0


def say(text: str) -> None:
    """A line on stderr: in a terminal wrapped at its width, elsewhere one line (logs, grep)."""
    from attnbench.console import err_console

    err_console.print(text, highlight=False, markup=False, soft_wrap=not err_console.is_terminal)


def check_output(output: Path) -> None:
    """The -o file can be written: not a folder, in a folder that exists or can be created."""
    from attnbench.config.validate import folder_problem, shown

    if output.is_dir():
        raise ConfigError(f"--output {shown(str(output))} is a folder: give a file name, e.g. "
                          f"{output / 'results.md'}")
    reason = folder_problem(str(output.parent))
    if reason:
        raise ConfigError(f"--output {shown(str(output))}: its folder {output.parent} {reason}")


def relocate_copied_store(tracker: Tracker) -> list[str]:
    """A local store copied from another folder kept the original's absolute artifact paths:
    opening it (`Tracker.connect`, `store.confine`) pointed them at this folder's artifacts/, so
    the report is logged into the copy (a store naming any other folder is refused there);
    returns the notes that say so."""
    return list(tracker.relocated)
