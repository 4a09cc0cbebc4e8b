"""`run/sweep ... --resume`: every cell ends as one run, and a sweep as one parent run.

- A cell with a FINISHED run of the same content hash (`store.names.config_hash`: resolved
  config + package version + data fingerprint) is skipped; so is one another process is training
  now. A skipped cell makes no new run: when the run belongs to another sweep, it is tagged
  `RESUMED_BY_TAG` with this sweep's parent run id (a space-separated list when several sweeps
  reuse it), and `store.queries.resumed_runs(parent)` finds it again.
- A cell whose run was interrupted continues that same MLflow run (`continuation`): reopened,
  trained on from its `checkpoints/last.pt`, its curve one curve. A state that does not fit the
  cell (truncated, foreign) or a run whose metrics stop short of its state is passed over with a
  one-line note, and the cell retrains from scratch as a new run.
- The sweep continues its own parent run (`sweep_to_continue`) when launched with the same
  overrides; the end-of-sweep table then shows each cell once (`session_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnbench.store.names import (
    BEST_VAL,
    CONFIG_HASH_TAG,
    EPOCH_METRIC,
    KIND_TAG,
    LAST_CHECKPOINT,
    NOT_TRAINED,
    NOT_TRAINED_PARAMS,
    OVERRIDES_TAG,
    PARENT_RUN_TAG,
    PRIMARY_METRIC_TAG,
    RESUMED_BY_TAG,
    SWEEP_KIND,
    TRAIN_LOSS,
    RunIdentity,
    RunResult,
    split_metric,
)
from attnbench.store.queries import finished_run
from attnbench.store.tracker import RunInfo, Tracker


def skip_if_done(
    tracker: Tracker, experiment_id: str, config_hash: str, identity: RunIdentity,
    parent_run_id: str | None,
) -> RunResult | None:
    """`skip_if_finished`, or a SKIPPED result when another process is training the same cell
    right now (a RUNNING run with this hash whose heartbeat is fresh). Call it holding the cell's
    claim (`Tracker.claim`), so two resumed sweeps never both decide to train the cell."""
    done = skip_if_finished(tracker, experiment_id, config_hash, identity, parent_run_id)
    if done is not None:
        return done
    tracker.mark_stale_runs([experiment_id])  # a dead claim is no claim
    running = tracker.search(
        [experiment_id],
        f"tags.`{CONFIG_HASH_TAG}` = '{config_hash}' and attributes.status = 'RUNNING'",
    )
    if not running:  # it may have finished between the two looks: look again
        return skip_if_finished(tracker, experiment_id, config_hash, identity, parent_run_id)
    from attnbench.console import console

    other = running[0]
    mark_reused(tracker, other, parent_run_id)  # the sweep counts the cell once it finishes
    console.print(f"skip {identity.run_name}: being trained by run {other.run_id} "
                  f"(same config hash {config_hash})", highlight=False, markup=False)
    return RunResult(identity.run_name, "SKIPPED", other.run_id,
                     error=f"being trained by run {other.run_id[:8]}", identity=identity.tags())


def mark_reused(tracker: Tracker, run: RunInfo, parent_run_id: str | None) -> None:
    """Count `run` in the sweep `parent_run_id` too (`RESUMED_BY_TAG`), unless it is its own
    child. Call holding the cell's claim (the tag is read, then written)."""
    if not parent_run_id or parent_run_id == run.tags.get(PARENT_RUN_TAG):
        return
    ids = run.tags.get(RESUMED_BY_TAG, "").split()
    if parent_run_id not in ids:
        tracker.set_tags(run.run_id, {RESUMED_BY_TAG: " ".join([*ids, parent_run_id])})


def skip_if_finished(
    tracker: Tracker, experiment_id: str, config_hash: str, identity: RunIdentity,
    parent_run_id: str | None,
) -> RunResult | None:
    """A SKIPPED result pointing at the FINISHED run to reuse instead of training, or None.

    The reused run is tagged with the resuming sweep's parent. Its metrics are the stored final
    ones, with the best-validation checkpoint's `best_val/*` (what a finished job reports, and
    what an optimising sweeper such as Optuna reads).
    """
    from attnbench.console import console

    run = finished_run(tracker, experiment_id, config_hash)
    if run is None:
        return None
    mark_reused(tracker, run, parent_run_id)
    name = identity.run_name
    console.print(
        f"skip {name}: already FINISHED as run {run.run_id} (same config hash {config_hash})",
        highlight=False,
        markup=False,
    )
    metrics = dict(run.metrics)
    metric = run.tags.get(PRIMARY_METRIC_TAG, "acc")
    primary = split_metric(BEST_VAL, metric)
    if primary not in metrics:  # a run from before best_val/*: its best validation history
        history = [v for _, v in tracker.metric_history(run.run_id, split_metric("val", metric))]
        if history:
            metrics[primary] = max(history)
    return RunResult(name, "SKIPPED", run.run_id, metrics, primary=primary,
                     identity=identity.tags(), experiment=tracker.experiments().get(experiment_id))


@dataclass
class Continuation:
    """An interrupted run of the cell to continue: reopened (`Tracker.continue_run`), trained on
    from `state` (its `checkpoints/last.pt`, downloaded), so it ends as one run, one curve."""

    run: RunInfo
    state: Path
    step: int


def continuation(
    tracker: Tracker, experiment_id: str, config_hash: str, folder: Path, *, cfg: Any,
    model: Any, parent_run_id: str | None,
) -> Continuation | None:
    """The newest KILLED or FAILED run with this hash that can be continued: its training state
    (`checkpoints/last.pt`) fits this cell (`training.state.unusable`), and its metrics are
    complete up to that state (`missing_metrics`). A run that cannot is passed over with a
    one-line note (the cell then trains from scratch, as a new run); one with no state, silently.
    Call holding the cell's claim."""
    from attnbench.console import console
    from attnbench.training.state import load_state, unusable

    runs = tracker.search(
        [experiment_id], f"tags.`{CONFIG_HASH_TAG}` = '{config_hash}'",
        order_by=["attributes.start_time DESC"],
    )
    for run in (r for r in runs if r.status in ("KILLED", "FAILED")):
        try:
            path = tracker.download_artifact(run.run_id, LAST_CHECKPOINT, folder)
        except Exception:  # noqa: BLE001 - MlflowException / OSError: no state left
            continue
        target = folder / "resume.pt"
        path.replace(target)
        problem = unusable(target, cfg=cfg.trainer, seed=cfg.seed, model=model)
        progress = load_state(target)["progress"] if problem is None else {}
        missing = missing_metrics(tracker, run.run_id, progress) if problem is None else []
        if missing:
            problem = f"its metrics stop short of its training state: no {', '.join(missing)}"
        if problem is not None:
            target.unlink(missing_ok=True)
            console.print(f"note: cannot continue run {run.run_id[:8]} ({run.name}): "
                          f"checkpoints/last.pt {problem}; retraining the cell from scratch",
                          highlight=False, markup=False)
            continue
        step, epoch = int(progress["step"]), int(progress["epoch"])
        mark_reused(tracker, run, parent_run_id)
        console.print(f"continue {run.name} (run {run.run_id}) from step {step} (epoch {epoch})",
                      highlight=False, markup=False)
        return Continuation(run, target, step)
    return None


def missing_metrics(tracker: Tracker, run_id: str, progress: dict[str, Any]) -> list[str]:
    """The metrics a run should have logged up to the training state `progress` and has not:
    every validation metric and `epoch` at its last validation, `train/loss` at its last log
    (the losses after it are kept in the state and logged when training goes on)."""
    needed: dict[str, int] = {}
    last_val = int(progress["last_val_step"])
    if last_val > 0:
        needed |= {split_metric("val", k): last_val for k in progress["best_val"]}
        needed[EPOCH_METRIC] = last_val
    logged_at = int(progress["step"]) - len(progress["window"])
    if logged_at > 0:
        needed[TRAIN_LOSS] = logged_at
    return [key for key, step in needed.items()
            if step not in {s for s, _ in tracker.metric_history(run_id, key)}]


def sweep_to_continue(
    tracker: Tracker, experiment_id: str, overrides: list[str], tags: dict[str, str]
) -> str | None:
    """`sweep ... --resume`: the newest sweep of the experiment launched with the same overrides
    (those that say where it logs, and `resume`, aside), reopened with `tags`
    (`Tracker.continue_run`), so the resumed sweep is the same parent run and `compare` sees its
    whole grid. None when there is none, or when it
    is RUNNING (another resumed sweep continues it: this one opens its own parent, and both count
    every cell, `mark_reused`)."""
    import hashlib

    grid = _grid(overrides)
    key = hashlib.sha256(f"{experiment_id}\n{grid}".encode()).hexdigest()[:16]
    with tracker.claim(f"sweep-{key}"):  # two resumed sweeps never both reopen it
        sweeps = tracker.search([experiment_id], f"tags.`{KIND_TAG}` = '{SWEEP_KIND}'",
                                order_by=["attributes.start_time DESC"])
        same = [s for s in sweeps if _grid(s.tags.get(OVERRIDES_TAG, "").split(" ")) == grid]
        if not same or same[0].status == "RUNNING":
            return None
        tracker.continue_run(same[0].run_id, tags)
        return same[0].run_id


def _grid(overrides: list[str]) -> str:
    """The overrides that say what a sweep trains (not where it logs, nor `resume`)."""

    def trains(override: str) -> bool:
        key = override.lstrip("+~").partition("=")[0]
        return not (key.split(".")[0].split("/")[0] in NOT_TRAINED
                    or key.startswith(NOT_TRAINED_PARAMS))

    return " ".join(o for o in overrides if o and trains(o))


def session_rows(
    rows: list[dict[str, Any]], results: list[RunResult]
) -> list[dict[str, Any]]:
    """The end-of-sweep rows of a continued sweep, one per cell: a run an earlier session left
    for a cell this session ran again (continued, retrained, or skipped in favour of another run)
    is left out, and a run an earlier session finished that this one reused is SKIPPED."""
    from attnbench.analysis.sweep_table import identity_row

    def cell(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row.get(k) for k in ("attention", "backbone", "task", "seed", "cell"))

    now = {r.run_id for r in results if r.run_id}
    cells = {cell(identity_row(r.identity)) for r in results}
    reused = {r.run_id for r in results if r.status == "SKIPPED"}
    out = []
    for row in rows:
        if row["run_id"] not in now and cell(row) in cells:
            continue
        if row["run_id"] in reused and row["status"] == "FINISHED":
            row = row | {"status": "SKIPPED", "resumed": True,
                         "error": f"already finished (run {row['run_id'][:8]})"}
        out.append(row)
    return out
