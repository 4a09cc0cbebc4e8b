"""Turning runs into tables: the end-of-sweep table and `attnbench compare`.

`compare` reads runs back from the MLflow store (a sweep, by default the latest one, or every
FINISHED run of an experiment), groups them by config keys, aggregates the metric over seeds and
tests every group against the best one (rules: `attnbench.stats`). Outputs: a rich table, and
Markdown / CSV / JSON tables plus three plots under ``<runs_dir>/reports/<name>/``, also logged as
artifacts (``report/``) on the sweep's parent run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from attnbench import stats
from attnbench.errors import ConfigError
from attnbench.tracking import RunInfo, Tracker

SWEEP_KIND_TAG = "attnbench.kind"
COST_COLUMNS = (
    ("cost/params", "params"),
    ("cost/train_s", "train s"),
    ("cost/samples_per_s", "samples/s"),
    ("cost/peak_mem_mb", "peak MB"),
)
# Metrics where smaller is better; all others (acc, f1, exact_match, bleu, ...) are maximised.
LOWER_IS_BETTER = {"cost/params", "cost/train_s", "cost/epoch_s", "cost/peak_mem_mb"}
# Params that say where results go, not what is trained: ignored when pairing runs.
NOT_IDENTITY = ("runs_dir", "tracking.", "experiment_name", "resume", "trainer.progress")
IDENTITY_TAGS = ("attention", "backbone", "task", "seed")
FORMATS = ("table", "markdown", "csv", "json")
PLOTS = ("metric_ci.png", "learning_curves.png", "cost_pareto.png")


def sweep_rows(tracker: Tracker, parent_run_id: str) -> list[dict[str, Any]]:
    """One row per cell of a sweep: runs reused by `--resume` (status SKIPPED, `resumed`), then
    the sweep's child runs in start order."""
    from attnbench.resume import resumed_runs

    parent = tracker.get_run(parent_run_id)
    reused = [
        run_row(r)
        | {"status": "SKIPPED", "resumed": True, "error": f"already finished (run {r.run_id[:8]})"}
        for r in resumed_runs(tracker, parent)
    ]
    return reused + [run_row(r) for r in tracker.children(parent)]


def run_row(run: RunInfo) -> dict[str, Any]:
    metric = run.tags.get("attnbench.primary_metric", "acc")
    return {
        "run_id": run.run_id,
        "name": run.name,
        "attention": run.tags.get("attention", "?"),
        "backbone": run.tags.get("backbone", "?"),
        "task": run.tags.get("task", "?"),
        "seed": run.tags.get("seed", "?"),
        "status": run.status,
        "metric": metric,
        "test": run.metrics.get(f"test/{metric}"),
        "val": run.metrics.get(f"val/{metric}"),
        "params": run.metrics.get("cost/params"),
        "train_s": run.metrics.get("cost/train_s"),
        "error": run.tags.get("attnbench.error", ""),
    }


def print_sweep_table(summary: Any) -> None:
    from attnbench.console import console, results_table

    rows = summary.rows
    metrics = {r["metric"] for r in rows if r["metric"]}
    m = metrics.pop() if len(metrics) == 1 else "primary"
    columns = [
        "attention",
        "backbone",
        "task",
        "seed",
        f"test/{m}",
        f"val/{m}",
        "params",
        "train s",
        "status",
    ]
    table_rows = [
        [
            r["attention"],
            r["backbone"],
            r["task"],
            r["seed"],
            r["test"],
            r["val"],
            r["params"],
            r["train_s"],
            r["status"] if r["status"] == "FINISHED" else f"{r['status']}: {r['error']}",
        ]
        for r in rows
    ]
    best: dict[int, int] = {}
    for col, key in ((4, "test"), (5, "val")):
        scored = [(r[key], i) for i, r in enumerate(rows) if r[key] is not None]
        if scored:
            best[col] = max(scored)[1]
    title = f"sweep {summary.parent_run_id[:8]}: {len(rows)} jobs, {len(summary.failed)} failed"
    resumed = [r for r in rows if r.get("resumed")]
    if resumed:
        title += f", skipped {len(resumed)} of {len(rows)} cells (already finished)"
    if len(summary.skipped) > len(resumed):
        title += f", {len(summary.skipped) - len(resumed)} skipped"
    cells = [_cell(r) for r in rows]
    if any(cells):  # the sweep varies more than attention/backbone/task/seed: show what
        columns.insert(4, "cell")
        for row, cell in zip(table_rows, cells, strict=True):
            row.insert(4, cell)
        best = {col + (col >= 4): i for col, i in best.items()}
    console.print(results_table(title, columns, table_rows, best))


def _cell(row: dict[str, Any]) -> str:
    """What a run name adds after `<attention>-<backbone>-<task>-s<seed>` (e.g. `heads4`)."""
    parts = str(row.get("name") or "").split("-")
    return "-".join(parts[4:])


# -- compare: which runs -----------------------------------------------------------------------
@dataclass
class Selection:
    runs: list[RunInfo]  # the job runs to compare (any status; compare keeps the FINISHED ones)
    label: str  # what was compared, for titles
    name: str  # the reports/ folder name
    parent: RunInfo | None = None  # the sweep's parent run (artifacts go there)
    note: str = ""  # what the user should know about the choice (printed on stderr)


def open_store(runs_dir: str | Path = "runs", tracking_uri: str | None = None) -> Tracker:
    """The store `run` would use with these settings; an error (not a new empty store) if the
    local store does not exist yet."""
    tracker = Tracker(tracking_uri, runs_dir)
    db = tracker.runs_dir / "mlflow.db"
    if tracker.local and not db.is_file():
        raise ConfigError(
            f"No MLflow store at {db}: run `attnbench sweep ...` first, or point --runs-dir / "
            "--tracking-uri at an existing store"
        )
    tracker.connect()
    return tracker


def select_runs(
    tracker: Tracker, experiment: str | None = None, sweep: str | None = None
) -> Selection:
    """The runs of sweep `sweep` (a parent run id), of experiment `experiment`, or of the latest
    sweep in the store (the default)."""
    from attnbench.resume import resumed_runs

    if experiment and sweep:
        raise ConfigError("Pass either --experiment or --sweep, not both")
    experiments = tracker.experiments()
    if experiment:
        exp_id = tracker.find_experiment(experiment)
        if exp_id is None:
            names = ", ".join(sorted(experiments.values())) or "none"
            raise ConfigError(
                f"Unknown experiment '{experiment}'. Experiments in the store: {names}"
            )
        runs = [
            r
            for r in tracker.search(
                [exp_id], "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"]
            )
            if r.tags.get(SWEEP_KIND_TAG) != "sweep"
        ]
        return Selection(runs, f"experiment {experiment}", experiment)
    note = ""
    if sweep:
        parent = tracker.get_run(sweep)
        if parent.tags.get(SWEEP_KIND_TAG) != "sweep":
            raise ConfigError(
                f"Run {sweep} is not a sweep (no {SWEEP_KIND_TAG}=sweep tag): pass a sweep's "
                "parent run id, or --experiment NAME"
            )
    else:
        sweeps = (
            tracker.search(
                list(experiments),
                f"tags.`{SWEEP_KIND_TAG}` = 'sweep'",
                order_by=["attributes.start_time DESC"],
            )
            if experiments
            else []
        )
        if not sweeps:
            names = ", ".join(sorted(experiments.values()))
            hint = f" (experiments: {names})" if names else ""
            raise ConfigError(
                f"No sweep in the store {tracker.uri}: run `attnbench sweep ...` first, or compare "
                f"the runs of an experiment with --experiment NAME{hint}"
            )
        # A sweep still running has half its cells: the default is the latest one that ended.
        ended = [s for s in sweeps if s.status != "RUNNING"]
        parent = ended[0] if ended else sweeps[0]
        if parent is not sweeps[0]:
            note = (
                f"the newest sweep, {sweeps[0].name} ({sweeps[0].run_id[:8]}), is still running: "
                f"comparing the latest finished one; --sweep {sweeps[0].run_id} compares it"
            )
    runs = {r.run_id: r for r in [*resumed_runs(tracker, parent), *tracker.children(parent)]}
    exp_name = experiments.get(parent.experiment_id, parent.experiment_id)
    return Selection(
        list(runs.values()),
        f"sweep {parent.name} ({parent.run_id[:8]}, experiment {exp_name})",
        f"{exp_name}-{parent.name}",
        parent,
        note,
    )


# -- compare: statistics -----------------------------------------------------------------------
@dataclass
class Group:
    key: dict[str, str]  # grouping key -> value, e.g. {"attention": "dot"}
    runs: list[RunInfo]
    values: dict[tuple, float]  # pairing key -> metric value
    summary: stats.Summary
    cost: dict[str, float | None]
    test: stats.PairedTest | None = None  # None for the best group
    status: str = "worse"  # best | tied | worse | ? (cannot tell)

    @property
    def label(self) -> str:
        return ", ".join(self.key.values())


@dataclass
class Comparison:
    label: str
    name: str
    metric: str
    by: list[str]
    higher_is_better: bool
    groups: list[Group]  # best first
    excluded: int = 0  # runs not FINISHED or without the metric
    duplicates: int = 0  # older runs of an identical config in the same group (latest kept)
    parent: RunInfo | None = None
    notes: list[str] = field(default_factory=list)
    correction: str = "none"  # multiple-comparison correction: one of stats.CORRECTIONS

    @property
    def rule(self) -> str:
        return stats.rule(self.correction)

    @property
    def caption(self) -> str:
        used = sorted({g.test.test for g in self.groups if g.test and g.test.test != "none"})
        direction = "higher" if self.higher_is_better else "lower"
        parts = [
            f"{self.metric}: {direction} is better",
            f"test used: {', '.join(used) or 'none'}",
            self.rule,
        ]
        if self.excluded:
            parts.append(f"{self.excluded} run(s) not FINISHED or without {self.metric} left out")
        if self.duplicates:
            parts.append(f"{self.duplicates} older duplicate run(s) ignored (latest kept)")
        return "; ".join(parts + self.notes)


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER and not metric.endswith("loss")


def lookup(run: RunInfo, key: str) -> str | None:
    """A grouping key's value: a run tag (attention, backbone, task, seed) or a config param."""
    if key in run.tags:
        return run.tags[key]
    if key in run.params:
        return run.params[key]
    return run.params.get(f"{key}.name")


def pairing_key(run: RunInfo, by: Sequence[str]) -> tuple:
    """What a run shares with its counterpart in another group: everything but the grouped keys
    (its seed and any other config difference), so runs pair only with their exact twin."""

    def grouped(name: str) -> bool:
        return any(name == k or name.startswith(f"{k}.") for k in by)

    tags = tuple((k, run.tags.get(k)) for k in IDENTITY_TAGS if not grouped(k))
    params = tuple(
        sorted(
            (k, v)
            for k, v in run.params.items()
            if not grouped(k) and not k.startswith(NOT_IDENTITY)
        )
    )
    return tags + params


def default_metric(runs: Sequence[RunInfo]) -> str:
    primaries = sorted({r.tags.get("attnbench.primary_metric") or "acc" for r in runs})
    if len(primaries) > 1:
        raise ConfigError(
            f"The runs have different primary metrics ({', '.join(primaries)}): pick one with "
            "--metric, e.g. --metric test/" + primaries[0]
        )
    return f"test/{primaries[0]}"


def check_correction(correction: str) -> None:
    if correction not in stats.CORRECTIONS:
        raise ConfigError(
            f"Unknown --correction '{correction}'. Choose one of: {', '.join(stats.CORRECTIONS)}"
        )


def compare_runs(
    selection: Selection,
    by: Sequence[str] = ("attention",),
    metric: str | None = None,
    correction: str = "none",
) -> Comparison:
    """Group, aggregate over seeds and test every group against the best (pure: no store access)."""
    check_correction(correction)
    by = [k.strip() for k in by if k.strip()] or ["attention"]
    finished = [
        r
        for r in selection.runs
        if r.status == "FINISHED" and r.tags.get(SWEEP_KIND_TAG) != "sweep"
    ]
    if not finished:
        raise ConfigError(f"No FINISHED runs to compare in {selection.label}")
    metric = metric or default_metric(finished)
    usable = [r for r in finished if metric in r.metrics and math.isfinite(r.metrics[metric])]
    if not usable:
        known = sorted({m for r in finished for m in r.metrics})
        raise ConfigError(
            f"Unknown metric '{metric}' in {selection.label}. Metrics: {', '.join(known)}"
        )
    for key in by:
        if all(lookup(r, key) is None for r in usable):
            raise ConfigError(
                f"Unknown --by key '{key}'. Group by a run tag ({', '.join(IDENTITY_TAGS)}) or a "
                "config param (e.g. trainer.lr, attention.heads)"
            )
    members: dict[tuple[str, ...], dict[tuple, RunInfo]] = {}
    duplicates = 0
    for run in sorted(usable, key=lambda r: r.start_time):
        gkey = tuple(lookup(run, k) or "—" for k in by)
        slot = members.setdefault(gkey, {})
        pkey = pairing_key(run, by)
        duplicates += pkey in slot
        slot[pkey] = run  # the latest run of an identical config wins
    groups = [
        _group(dict(zip(by, gkey, strict=True)), slot, metric) for gkey, slot in members.items()
    ]
    hib = higher_is_better(metric)
    groups.sort(key=lambda g: (-g.summary.mean if hib else g.summary.mean, -g.summary.n, g.label))
    best = groups[0]
    best.status = "best"
    for g in groups[1:]:
        g.test = stats.paired_test(best.values, g.values)
    if correction == "holm":
        tests = [g.test for g in groups[1:] if g.test is not None]
        adjusted = stats.holm([t.p_value for t in tests])
        for g, t, p in zip(groups[1:], tests, adjusted, strict=True):
            if p is not None:
                g.test = replace(t, p_adjusted=p, tied=p >= stats.ALPHA)
    for g in groups[1:]:
        assert g.test is not None
        g.status = {True: "tied", False: "worse", None: "?"}[g.test.tied]
    notes = []
    pooled = sorted({key for g in groups for key in pooled_keys(g.runs, by)})
    if pooled:
        notes.append(
            f"groups pool runs that differ in {', '.join(pooled)}: add "
            f"{'it' if len(pooled) == 1 else 'them'} to --by to split the groups"
        )
    return Comparison(
        selection.label,
        selection.name,
        metric,
        by,
        hib,
        groups,
        excluded=len(selection.runs) - len(usable),
        duplicates=duplicates,
        parent=selection.parent,
        notes=notes,
        correction=correction,
    )


def pooled_keys(runs: Sequence[RunInfo], by: Sequence[str]) -> list[str]:
    """Config keys other than the seed whose values differ between the runs of one group (their
    pairing keys: the grouped keys are already left out)."""
    values: dict[str, set] = {}
    for run in runs:
        for key, value in pairing_key(run, by):
            values.setdefault(key, set()).add(value)
    return [k for k, v in values.items() if len(v) > 1 and k != "seed"]


def _group(key: dict[str, str], slot: dict[tuple, RunInfo], metric: str) -> Group:
    runs = list(slot.values())
    values = {p: float(r.metrics[metric]) for p, r in slot.items()}
    cost: dict[str, float | None] = {}
    for name, _ in COST_COLUMNS:
        xs = [r.metrics[name] for r in runs if name in r.metrics]
        cost[name] = sum(xs) / len(xs) if xs else None
    return Group(key, runs, values, stats.summarize(list(values.values())), cost)


# -- compare: output ---------------------------------------------------------------------------
def records(comp: Comparison) -> list[dict[str, Any]]:
    """One flat record per group (the CSV/JSON rows)."""
    out = []
    for g in comp.groups:
        s = g.summary
        out.append(
            {
                **g.key,
                "n": s.n,
                "mean": s.mean,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "ci_half_width": s.half_width,
                "std": s.std,
                "min": s.min,
                "max": s.max,
                "delta_vs_best": s.mean - comp.groups[0].summary.mean,
                "p_value": g.test.p_value if g.test else None,
                "p_adjusted": g.test.p_adjusted if g.test else None,
                "test": g.test.test if g.test else "",
                "pairs": g.test.n_pairs if g.test else None,
                "status": g.status,
                **{
                    label.replace(" ", "_").replace("/", "_per_"): g.cost[name]
                    for name, label in COST_COLUMNS
                },
                "run_ids": " ".join(r.run_id for r in g.runs),
            }
        )
    return out


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _shown_p(test: stats.PairedTest, correction: str) -> float | None:
    return test.p_adjusted if correction != "none" and test.p_adjusted is not None else test.p_value


def table_rows(comp: Comparison) -> tuple[list[str], list[list[str]]]:
    """Column names and formatted cells shared by the rich and Markdown tables."""
    from attnbench.console import fmt

    columns = [
        *comp.by,
        "n",
        f"{comp.metric} (mean ± 95% CI)",
        "std",
        "min",
        "max",
        "Δ best",
        "p (Holm)" if comp.correction == "holm" else "p",
        "test",
        "vs best",
        *(label for _, label in COST_COLUMNS),
    ]
    best_mean = comp.groups[0].summary.mean
    rows = []
    for g in comp.groups:
        s = g.summary
        ci = f"{s.mean:.4f} ± {s.half_width:.4f}" if s.half_width is not None else f"{s.mean:.4f}"
        rows.append(
            [
                *g.key.values(),
                str(s.n),
                ci,
                _num(s.std),
                _num(s.min),
                _num(s.max),
                "" if g.status == "best" else f"{s.mean - best_mean:+.4f}",
                _p(_shown_p(g.test, comp.correction)) if g.test else "",
                g.test.test if g.test and g.test.test != "none" else "",
                {"best": "best", "tied": "tied", "worse": "worse", "?": "? (n<2)"}[g.status],
                *(
                    fmt(round(g.cost[name], 1)) if g.cost[name] is not None else "—"
                    for name, _ in COST_COLUMNS
                ),
            ]
        )
    return columns, rows


def rich_table(comp: Comparison) -> Any:
    from rich.table import Table

    columns, rows = table_rows(comp)
    table = Table(
        title=f"{comp.label}: {comp.metric} by {', '.join(comp.by)}",
        title_justify="left",
        caption=comp.caption,
        caption_justify="left",
    )
    for i, col in enumerate(columns):
        table.add_column(
            col, justify="left" if i < len(comp.by) or col in ("test", "vs best") else "right"
        )
    for g, row in zip(comp.groups, rows, strict=True):
        style = {"best": "bold green", "tied": "green"}.get(g.status)
        table.add_row(*row, style=style)
    return table


def to_markdown(comp: Comparison) -> str:
    columns, rows = table_rows(comp)
    esc = [[c.replace("|", "\\|") for c in row] for row in rows]
    lines = [
        f"### {comp.label}: {comp.metric} by {', '.join(comp.by)}",
        "",
        "| " + " | ".join(columns) + " |",
        "|"
        + "|".join(
            "---" if i < len(comp.by) or col in ("test", "vs best") else "---:"
            for i, col in enumerate(columns)
        )
        + "|",
        *("| " + " | ".join(row) + " |" for row in esc),
        "",
        f"_{comp.caption}_",
        "",
    ]
    return "\n".join(lines)


def to_csv(comp: Comparison) -> str:
    recs = records(comp)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(recs[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(recs)
    return buf.getvalue()


def to_json(comp: Comparison) -> str:
    doc = {
        "compared": comp.label,
        "metric": comp.metric,
        "by": comp.by,
        "higher_is_better": comp.higher_is_better,
        "rule": comp.rule,
        "correction": comp.correction,
        "sweep_run_id": comp.parent.run_id if comp.parent else None,
        "excluded_runs": comp.excluded,
        "duplicate_runs": comp.duplicates,
        "groups": records(comp),
    }
    return json.dumps(doc, indent=2) + "\n"


RENDER = {"markdown": to_markdown, "csv": to_csv, "json": to_json}
SUFFIX = {"markdown": "md", "csv": "csv", "json": "json"}


def curve_metrics(comp: Comparison) -> list[str]:
    """The histories to plot: train/loss (every `trainer.log_every` steps) and the validation
    history of the compared metric (once per epoch), or the metric itself when it is not a
    test/val metric (e.g. attn/entropy)."""
    split, _, name = comp.metric.partition("/")
    other = f"val/{name}" if split in ("test", "val") else comp.metric
    return list(dict.fromkeys(("train/loss", other)))


def write_report(
    tracker: Tracker, comp: Comparison, out_dir: Path, plots: bool = True
) -> list[Path]:
    """Tables (Markdown, CSV, JSON) and plots under `out_dir`; logged on the sweep's parent run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt_name, render in RENDER.items():
        path = out_dir / f"table.{SUFFIX[fmt_name]}"
        path.write_text(render(comp), encoding="utf-8")
        written.append(path)
    if plots:
        written += write_plots(tracker, comp, out_dir)
    if comp.parent is not None:
        for path in written:
            tracker.log_artifact(comp.parent.run_id, path, "report")
    return written


def write_plots(tracker: Tracker, comp: Comparison, out_dir: Path) -> list[Path]:
    from attnbench import plots

    points = [
        plots.GroupPoint(
            g.label,
            list(g.values.values()),
            g.summary.mean,
            (g.summary.ci_low, g.summary.ci_high) if g.summary.ci_low is not None else None,
            g.status,
            dict(g.cost),
        )
        for g in comp.groups
    ]
    title = f"{comp.label}\n{comp.metric} by {', '.join(comp.by)}"
    panels = {
        key: {g.label: [tracker.metric_history(r.run_id, key) for r in g.runs] for g in comp.groups}
        for key in curve_metrics(comp)
    }
    note = "status vs best: " + comp.rule
    return [
        plots.metric_ci(points, comp.metric, out_dir / PLOTS[0], title, note),
        plots.learning_curves(panels, out_dir / PLOTS[1], f"{comp.label}: learning curves"),
        plots.cost_pareto(points, comp.metric, out_dir / PLOTS[2], title, comp.higher_is_better),
    ]


def report_dir(runs_dir: str | Path, comp: Comparison) -> Path:
    from attnbench.naming import inside

    return inside(runs_dir, "reports", comp.name)


def output_format(fmt: str | None, output: Path | None) -> str:
    """The table format asked for: --format, else the -o file's suffix, else the rich table."""
    if fmt is not None:
        fmt = {"md": "markdown"}.get(fmt.lower(), fmt.lower())
        if fmt not in FORMATS:
            raise ConfigError(f"Unknown format '{fmt}'. Valid formats: {', '.join(FORMATS)}")
    if output is not None and fmt in (None, "table"):
        by_suffix = {".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".json": "json"}
        if output.suffix.lower() not in by_suffix:
            raise ConfigError(
                f"Cannot tell the format of '{output}' from its suffix: pass --format markdown, "
                "csv or json"
            )
        return by_suffix[output.suffix.lower()]
    return fmt or "table"


def compare(
    *,
    experiment: str | None = None,
    sweep: str | None = None,
    by: Sequence[str] = ("attention",),
    metric: str | None = None,
    fmt: str | None = None,
    output: Path | None = None,
    plots: bool = True,
    runs_dir: str | Path = "runs",
    tracking_uri: str | None = None,
    correction: str = "none",
) -> int:
    """`attnbench compare`: print the comparison, write tables and plots; returns the exit code."""
    import sys

    from attnbench.console import console, err_console

    fmt = output_format(fmt, output)
    check_correction(correction)
    tracker = open_store(runs_dir, tracking_uri)
    tracker.mark_stale_runs()  # runs left RUNNING by a killed process: FAILED, not compared
    selection = select_runs(tracker, experiment, sweep)
    if selection.note:
        err_console.print(f"note: {selection.note}", highlight=False, markup=False)
    comp = compare_runs(selection, by, metric, correction)
    out_dir = report_dir(runs_dir, comp)
    written = write_report(tracker, comp, out_dir, plots)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(RENDER[fmt](comp), encoding="utf-8")
    if fmt == "table" or output is not None:
        console.print(rich_table(comp))
    else:
        sys.stdout.write(RENDER[fmt](comp))
    names = ", ".join(p.name for p in written)
    where = f"; logged to sweep run {comp.parent.run_id} under report/" if comp.parent else ""
    err_console.print(f"report: {out_dir} ({names}){where}", highlight=False, markup=False)
    if output is not None:
        err_console.print(f"wrote {output}", highlight=False, markup=False)
    return 0
