"""Write docs/RESULTS.md from attnbench's own sweeps and compares, one section per sweep.

    python -m benchmarks.results heads_ablation vaswani_scaling   # run the presets, then write
    python -m benchmarks.results default default_tuned   # the quickstart sweep, untuned and tuned
    python -m benchmarks.results --no-run heads_ablation   # reuse the last sweep of that name
    python -m benchmarks.results --no-run --runs-dir DIR --sweep ID default_tuned   # made elsewhere
    python -m benchmarks.results   # rewrite the page alone: every section kept, today's commands

A section is a preset of conf/experiment/ (`attnbench sweep experiment=<preset>`), or `default`:
the quickstart sweep (`attention=none,dot,scaled,additive,multihead seed=0,1,2`, no preset). Each
sweep runs on the store in --runs-dir, named after its section (`sweep --name`), then
`attnbench compare --sweep <parent> --format markdown` groups it by the preset's grid keys (a
tuned sweep by compare's own grouping, `suite` with `--across task`), and the section gives the
exact commands, the commit (and whether the code that ran had uncommitted changes), the machine,
the sweep's wall time and load average, the table and the plots. A reused sweep (--no-run) with
no record of its run gives the commit its runs were tagged with and its parent run's wall time.
Peak memory changed meaning at commit `MEMORY_MEASURE`: a section whose sweep ran before it says
so under its table (regenerated, not hand-written, each time the page is written). The verdict
(does it agree with the paper, and why it might not) is a person's judgement: it is read from
docs/verdicts/<section>.md when that file exists. Only the sections named are regenerated: the
others are kept as they are, each with the commit it was measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

from attnbench.config.groups import conf_dir
from attnbench.store.tracker import Tracker
from benchmarks.frontier import frontier_plot

DOCS = Path("docs")
TEXT_PRESETS = {"text_pooling"}
# Sections that are not a preset: the overrides of their sweep. `default` is the quickstart's.
PLAIN_SWEEPS: dict[str, list[str]] = {
    "default": ["attention=none,dot,scaled,additive,multihead", "seed=0,1,2"],
}
# The page's order; a section not listed follows in the order it was first written.
ORDER = ("default", "default_tuned", "suite", "length_generalization")
# Presets whose grid varies a size: one frontier per value of that key, the metric against
# training time and against peak memory (results/<preset>-frontier.png), so variants compete at
# one length.
FRONTIER_BY: dict[str, str] = {"efficiency_frontier": "task.max_len"}
# How compare groups, when not by the grid keys (--by): a tuned sweep by compare's own grouping
# (the grid plus the tuned key, final runs only), the multi-task suite across tasks.
GROUPING: dict[str, list[str]] = {
    "default_tuned": [],
    "suite": ["--across", "task"],
}
# compare options beyond --sweep and the grouping, per section: the test its verdict rests on.
COMPARE_ARGS: dict[str, list[str]] = {
    # the claim is about the largest pair count: every cell against softmax multi-head there
    "recall_gap": ["--baseline", "attention=multihead,task.num_pairs=64"],
}
# cost/peak_mem_mb is the tensor memory of allocation events from this commit on (before: the
# process's resident set, several times larger); sections measured before it get a note.
MEMORY_MEASURE = "9b18092"
MEMORY_NOTE = "> **Old memory measure.**"


def grid_keys(preset: str) -> list[str]:
    if preset in PLAIN_SWEEPS:
        return sorted({o.split("=")[0] for o in PLAIN_SWEEPS[preset]} - {"seed"})
    cfg = yaml.safe_load((conf_dir() / "experiment" / f"{preset}.yaml").read_text())
    return [k for k in cfg["hydra"]["sweeper"]["params"] if k != "seed"]


def grouping(preset: str) -> list[str]:
    if preset in GROUPING:
        return GROUPING[preset]
    keys = grid_keys(preset)
    return ["--by", ",".join(keys if "attention" in keys else ["attention", *keys])]


def sweep_overrides(preset: str) -> list[str]:
    return PLAIN_SWEEPS.get(preset, [f"experiment={preset}"])


def attnbench(*args: str) -> None:
    cmd = [sys.executable, "-m", "attnbench", *args]
    print("$ attnbench", " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def loadavg() -> str:
    """The 1-minute load average (the machine may be shared), or '?' without /proc."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_sweep(args: list[str]) -> str:
    """Run `attnbench ARGS`; as a phrase: wall time, the load average before and after, and the
    CPU time of the sweep's processes (workers included once reaped), which a shared machine's
    load does not inflate: CPU / cores bounds the wall time on an idle machine from below."""
    before, cpu0 = loadavg(), _children_cpu_s()
    t0 = time.perf_counter()
    attnbench(*args)
    minutes = (time.perf_counter() - t0) / 60
    cpu = (_children_cpu_s() - cpu0) / 60
    return (
        f"the sweep took {minutes:.1f} min wall at load average {before} → {loadavg()}, "
        f"{cpu:.1f} CPU-min"
    )


def find_sweep(tracker: Tracker, preset: str, sweep: str | None) -> str:
    """The sweep's full id: `sweep` (an id, a prefix or a name), else the newest sweep named
    after the section, else (sweeps from before they were named) the newest in the preset's
    experiment."""
    from attnbench.errors import TrackingError

    for key in (k for k in (sweep, preset) if k):
        try:
            return tracker.get_run(key).run_id
        except TrackingError:
            if key == sweep:
                raise
    exp = tracker.client.get_experiment_by_name(preset)
    if exp is None:
        raise SystemExit(f"no sweep named {preset!r} in {tracker.uri}: run it, or give --sweep")
    runs = tracker.search(
        [exp.experiment_id],
        "tags.attnbench.kind = 'sweep'",
        order_by=["attributes.start_time DESC"],
    )
    return runs[0].run_id


def machine() -> str:
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def commit() -> str:
    """Short HEAD, and a note when code that runs (attnbench/, conf/) had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "attnbench", "conf"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "`unknown`"
    if not dirty:
        return f"`{head}`"
    return f"`{head}` (plus uncommitted changes to {len(dirty)} files under attnbench/ and conf/)"


def from_store(tracker: Tracker, parent: str) -> dict[str, str]:
    """What a sweep with no record of its run says about itself: the commit its runs were tagged
    with (and whether the tree was dirty), the wall time of its parent run, what it overrode."""
    run = tracker.get_run(parent)
    tagged = [r for r in [run, *tracker.children(run)] if "mlflow.source.git.commit" in r.tags]
    commit_tag = "`unknown`"
    if tagged:
        dirty = any(r.tags.get("attnbench.git_dirty") == "true" for r in tagged)
        commit_tag = f"`{tagged[0].tags['mlflow.source.git.commit'][:7]}`" + (
            " (with uncommitted changes)" if dirty else ""
        )
    wall = ""
    if run.end_time:
        started = datetime.fromtimestamp(run.start_time / 1000).strftime("%Y-%m-%d")
        wall = f"the sweep took {(run.end_time - run.start_time) / 60000:.1f} min wall ({started})"
    overrides = " ".join(
        o for o in run.tags.get("attnbench.overrides", "").split() if not o.startswith("runs_dir=")
    )
    return {"sweep": parent, "commit": commit_tag, "timing": wall, "overrides": overrides}


def provenance(info: dict[str, str]) -> str:
    if not info:
        return f"Written at commit {commit()} (the sweep's own commit was not recorded)"
    line = f"Sweep run at commit {info['commit']}, page written at commit {commit()}"
    if info.get("overrides"):
        line += f" · reused sweep, its overrides: `{info['overrides']}`"
    return line


def memory_note(text: str, preset: str) -> str:
    """`text` with the old-memory note (re)placed under its provenance line when the commit that
    line names predates MEMORY_MEASURE (or cannot be read): computed, never typed."""
    lines = [ln for ln in text.split("\n") if not ln.startswith(MEMORY_NOTE)]
    found = re.search(r"(?:Sweep run|Written) at commit `([0-9a-f]+)`", text)
    if found and _contains(found.group(1), MEMORY_MEASURE):
        return "\n".join(lines)
    at = next(i for i, ln in enumerate(lines) if re.match(r"(Sweep run|Written) at commit", ln))
    note = (
        f"{MEMORY_NOTE} This sweep ran before commit `{MEMORY_MEASURE}`: its `peak MB` is the "
        "process's resident set, not today's `cost/peak_mem_mb` (the tensor memory a training "
        "step and an evaluation batch allocate, docs/training.md#memory), and several times "
        f"larger. `python -m benchmarks.results {preset}` regenerates this section with today's "
        "measure."
    )
    return "\n".join([*lines[: at + 1], "", note, *lines[at + 1 :]])


def _contains(commit_id: str, ancestor: str) -> bool:
    return (
        subprocess.run(
            ["git", "merge-base", "--is-ancestor", ancestor, commit_id],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


def section(preset: str, runs_dir: Path, extra: list[str], run: bool, sweep: str | None) -> str:
    sweep_args = ["sweep", *sweep_overrides(preset), f"runs_dir={runs_dir}", *extra]
    # What ran is recorded beside the table, so a later --no-run (a new verdict) keeps it.
    record = DOCS / "results" / f"{preset}.sweep.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(None, runs_dir)
    if run:
        ran_at = commit()
        timing = timed_sweep([*sweep_args, "--name", preset])
        parent = find_sweep(tracker, preset, None)
        info = {"sweep": parent, "commit": ran_at, "timing": timing}
        record.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    else:
        parent = find_sweep(tracker, preset, sweep)
        known = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
        info = known if known.get("sweep") == parent else from_store(tracker, parent)
    table = DOCS / "results" / f"{preset}.md"
    table.parent.mkdir(parents=True, exist_ok=True)
    options = [*grouping(preset), *COMPARE_ARGS.get(preset, [])]
    attnbench(
        "compare",
        "--sweep",
        parent,
        *options,
        "--format",
        "markdown",
        "-o",
        str(table),
        "--runs-dir",
        str(runs_dir),
    )
    shown = figures(preset, runs_dir, tracker.get_run(parent).name)
    verdict = DOCS / "verdicts" / f"{preset}.md"
    lines = [
        f"## {preset}",
        "",
        *commands(preset, options),
        "",
        f"{provenance(info)} · {machine()} · sweep `{parent}` (its runs carry the package "
        "version and data fingerprint as tags)"
        + (f" · {info['timing']}" if info.get("timing") else ""),
        "",
        table.read_text(encoding="utf-8").strip(),
        "",
        *shown,
        "",
        verdict.read_text(encoding="utf-8").strip()
        if verdict.exists()
        else "_Verdict not written yet (docs/verdicts/" + preset + ".md)._",
        "",
    ]
    return "\n".join(lines)


def commands(preset: str, options: list[str]) -> list[str]:
    """The section's commands as a reader runs them from an empty folder: the sweep (named after
    the section) in a block that tests/test_docs.py checks with `--dry-run` (the grid itself is
    trained, smoke-sized, by tests/test_presets.py), then the compare that made the table."""
    setup, data = [], []
    if preset in TEXT_PRESETS:
        setup = [
            "python -c 'from pathlib import Path; from benchmarks.figures import write_reviews; "
            'write_reviews(Path("reviews.csv"))\'',
        ]
        data = ["task.path=reviews.csv"]
    sweep = ["attnbench sweep", *sweep_overrides(preset), *data, "--name", preset]
    compare = ["attnbench compare --sweep", preset, *options]
    return [
        "<!-- run: slow dry -->",
        "```bash",
        *setup,
        " ".join(sweep),
        "```",
        "",
        f"Table: `{' '.join(compare)} --format markdown`.",
    ]


def figures(preset: str, runs_dir: Path, sweep_name: str) -> list[str]:
    """Copy the plots of the sweep's newest report into docs/results/ (and draw the frontier
    where the preset has one); their Markdown image lines."""
    reports = sorted(
        (p.parent for p in (runs_dir / "reports").glob(f"*-{sweep_name}/*/table.json")),
        key=lambda p: p.stat().st_mtime,
    )
    if not reports:
        return []
    plots = sorted(reports[-1].glob("*.png"))
    shown = []
    if preset in FRONTIER_BY and plots:
        dst = frontier_plot(
            reports[-1] / "table.json",
            FRONTIER_BY[preset],
            DOCS / "results" / f"{preset}-frontier.png",
        )
        shown.append(f"![frontier](results/{dst.name})")
    for png in plots:
        dst = DOCS / "results" / f"{preset}-{png.name}"
        shutil.copy(png, dst)
        shown.append(f"![{png.stem}](results/{dst.name})")
    return shown


HEADER = (
    "# Results, reproduced with attnbench\n\n"
    "Generated by `python -m benchmarks.results SECTION...` (see its docstring; never edited by "
    "hand): each section is one sweep, the commands that made it, and its table, which is "
    "`attnbench compare --format markdown` on that sweep: mean ± 95 % CI over seeds, the effect "
    "and the test against the best group (docs/comparison.md explains the marks). `default` is "
    "the quickstart sweep; `default_tuned` the same grid, each variant at its own learning rate "
    "chosen on validation; `suite` the ten variants on four tasks; `length_generalization` the "
    "positional schemes tested past their training length; the rest are the classic presets of "
    "`attnbench list`. The verdicts are a person's reading of the tables "
    "(docs/verdicts/SECTION.md).\n\n"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "presets", nargs="*", metavar="section",
        help="sections to regenerate (none: rewrite the page, every section kept as measured)",
    )
    parser.add_argument("--runs-dir", default="runs/results")
    parser.add_argument("--no-run", action="store_true", help="reuse each section's latest sweep")
    parser.add_argument(
        "--sweep", help="with --no-run and one section: the sweep to reuse (id, prefix or name)"
    )
    parser.add_argument(
        "--text-path",
        help="text_pooling: the CSV/TSV to classify "
        "(default: the synthetic reviews file the figures benchmark writes)",
    )
    ns = parser.parse_args(argv)
    if ns.sweep and (not ns.no_run or len(ns.presets) != 1):
        parser.error("--sweep needs --no-run and exactly one section")
    runs_dir = Path(ns.runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    out = DOCS / "RESULTS.md"
    existing = out.read_text(encoding="utf-8") if out.exists() else ""
    sections = dict(_split(existing))
    for preset in ns.presets:
        extra: list[str] = []
        if preset in TEXT_PRESETS:
            from benchmarks.figures import write_reviews

            path = Path(ns.text_path) if ns.text_path else write_reviews(runs_dir / "reviews.csv")
            extra.append(f"task.path={path.resolve()}")
        sections[preset] = section(preset, runs_dir, extra, not ns.no_run, ns.sweep)
    order = [k for k in ORDER if k in sections] + [k for k in sections if k not in ORDER]
    body = "\n".join(memory_note(current_commands(with_verdict(sections[k], k), k), k)
                     for k in order)
    out.write_text(HEADER + body, encoding="utf-8")
    print(f"wrote {out}")
    return 0


def with_verdict(text: str, preset: str) -> str:
    """A kept section with its verdict read again (docs/verdicts/<section>.md), so a verdict
    written after the sweep needs no store: its measurements stay as they were."""
    verdict = DOCS / "verdicts" / f"{preset}.md"
    placeholder = "_Verdict not written yet (docs/verdicts/" + preset + ".md)._"
    if not verdict.exists() or placeholder not in text:
        return text
    return text.replace(placeholder, verdict.read_text(encoding="utf-8").strip())


def current_commands(text: str, preset: str) -> str:
    """A kept section with its commands in today's form (`commands`): its measurements stay as
    they were, the block a reader copies is the one tests/test_docs.py checks."""
    options = [*grouping(preset), *COMPARE_ARGS.get(preset, [])]
    block = re.compile(
        r"(?:<!-- run: [\w ]+ -->\n)?```bash\n.*?```\n(?:\nTable: `[^`]*`\.\n)?", re.S
    )
    return block.sub(lambda _: "\n".join(commands(preset, options)) + "\n", text, count=1)


def _split(text: str) -> list[tuple[str, str]]:
    parts = text.split("\n## ")[1:]
    return [(p.split("\n", 1)[0].strip(), "## " + p.rstrip() + "\n") for p in parts]


if __name__ == "__main__":
    raise SystemExit(main())
