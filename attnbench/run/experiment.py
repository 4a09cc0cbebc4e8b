"""One experiment, end to end: open the run, build, train, evaluate, log to MLflow.

`run_experiment(cfg)` takes a validated `RunConfig` (config.validate) and is the plain function
behind `attnbench run` and every sweep job; tests call it directly. The MLflow run is opened on a
thread as the job starts (with the job's start time, so durations in the UI are the job's) while
data loads and the model is built; a failure after that marks it FAILED (or KILLED on Ctrl-C)
with the reason as a tag. With `resume`, the cell is claimed first (`Tracker.claim`): a FINISHED
run with the same content hash is reused, one still training elsewhere is left to it, and an
interrupted one is reopened and trained on from the state it left (`run.resume`).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnbench import OPENMP_WAIT, __version__
from attnbench.config.schema import RunConfig
from attnbench.errors import AttnbenchError
from attnbench.store import schema as record
from attnbench.store.schema import RunIdentity, RunResult

OPEN_RUN_BY_S = 5.0  # the latest a job's MLflow run starts opening (see run_experiment)


@dataclass
class SweepContext:
    """What a sweep job needs to know about its sweep (written by the sweep callback)."""

    parent_run_id: str
    experiment_name: str
    # Keys the sweep varies besides attention/backbone/task/seed: tagged, and shown in run names.
    swept: list[str] = field(default_factory=list)
    stage: str | None = None  # a tuned sweep's stage (run.tune): tagged on the job's run
    tags: dict[str, str] = field(default_factory=dict)  # `sweep --name/--tag/--note` (run.sweep)


def identity(cfg: RunConfig, swept: Sequence[str] = ()) -> RunIdentity:
    return RunIdentity(cfg.attention.name, cfg.backbone.name, cfg.task.name, cfg.seed,
                       record.swept_values(cfg.to_dict(), swept))


def run_experiment(
    cfg: RunConfig,
    *,
    overrides: Sequence[str] = (),
    sweep: SweepContext | None = None,
    show_progress: bool = False,
    parallel_jobs: int = 1,
    tags: Mapping[str, str] | None = None,
) -> RunResult:
    """Train and evaluate one validated config."""
    import yaml

    from attnbench.config.build import build
    from attnbench.console import RichProgress
    from attnbench.run import provenance
    from attnbench.run import record_logs as logs
    from attnbench.store import scratch
    from attnbench.store.handle import Tracker
    from attnbench.training.device import resolve
    from attnbench.training.loop import fit
    from attnbench.training.optimizers import prefetch
    from attnbench.training.seeding import seed_everything, set_threads

    started_ms = int(time.time() * 1000)
    warm = prefetch()  # torch.optim's first use imports torch._dynamo (~1 s): off the critical path
    device = resolve(cfg.trainer)  # ConfigError when this machine cannot (pre-flight said so)
    ident = identity(cfg, sweep.swept if sweep else ())
    name = ident.run_name
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    threads = set_threads(cfg.trainer.threads, parallel_jobs)
    plain = cfg.to_dict()
    tracker = Tracker(cfg.tracking.uri, cfg.runs_dir)
    exp_name = sweep.experiment_name if sweep else cfg.default_experiment
    code = f"{__version__}+{provenance.code_hash(cfg)}"
    token, folder = scratch.new()
    last = LastCheckpoint(folder / scratch.LAST)
    run_tags = {**(sweep.tags if sweep else {}), **ident.tags(),
                **_run_tags(cfg, code, threads, token, device), **(tags or {})}
    parent = sweep.parent_run_id if sweep else None

    def open_run(extra: Mapping[str, Any] | None = None) -> str:
        exp_id = tracker.experiment_id(exp_name)
        if sweep is None:  # a sweep's callback already did, for the whole sweep
            tracker.mark_stale_runs([exp_id])
        run_id = tracker.start_run(exp_id, name, {**run_tags, **(extra or {})}, parent, started_ms)
        try:
            tracker.heartbeat(run_id)
            tracker.log_params(run_id, logs.defining_params(plain))
            tracker.log_text(run_id, yaml.safe_dump(plain, sort_keys=False), record.CONFIG_ARTIFACT)
            tracker.log_text(run_id, yaml.safe_dump(list(overrides)), record.OVERRIDES_ARTIFACT)
        except BaseException as err:
            _close(tracker, run_id, "FAILED", _reason(err), last)
            raise
        return run_id

    built = None
    resume_from = None
    if cfg.resume:  # the content hash needs the data: load it, then claim the cell
        built = build(cfg)
        chash = record.config_hash(plain, code, built.data.fingerprint)
        claimed = _claim_cell(tracker, cfg, built, chash, ident, parent, exp_name,
                              lambda: open_run({record.CONFIG_HASH_TAG: chash}), run_tags, last)
        if isinstance(claimed, RunResult):
            scratch.remove(token)
            return claimed
        run_id, resume_from = claimed
        opening = tracker.open_run(lambda: run_id, background=False)
    else:
        # MLflow's import and the run's creation (2-4 s of CPU) wait for the first training
        # step (`fit(after_first_step=...)`): they would only compete for the GIL with
        # torch.optim's one-time import (`warm`) the first step waits for, and there they stay
        # out of the timed training and the memory figure. A job whose data takes longer than
        # OPEN_RUN_BY_S to load opens its run then. The run keeps the job's start time; metrics
        # wait in the sink until it exists.
        opening = tracker.open_run(open_run)
        opening.start_by(OPEN_RUN_BY_S)
    try:
        with _closed_on_error(tracker, opening, last):
            if built is None:
                built = build(cfg)
            opening.cancel_timer()  # from here on fit opens it, where the memory meter allows
            data = built.data
            chash = record.config_hash(plain, code, data.fingerprint)
            _log_data(tracker, opening, cfg, built, chash)
            progress = RichProgress(name) if show_progress and cfg.trainer.progress else None
            result = fit(
                built.model, data, built.trainer, cfg.seed, tracker.sink(opening), progress,
                on_epoch_end=last.mark_epoch, before_eval=opening.result, device=device,
                warm=warm, last_path=last.path, resume_from=resume_from,
                after_first_step=opening.result,
            )
            run_id = opening.result()
            final = _finish(tracker, run_id, built, result, last)
            primary = record.split_metric(record.BEST_VAL, data.primary_metric)
            return RunResult(name, "FINISHED", run_id, final, primary=primary,
                             identity=ident.tags(), experiment=exp_name)
    finally:
        scratch.remove(token)


def _log_data(tracker: Any, opening: Any, cfg: RunConfig, built: Any, chash: str) -> None:
    """What the data is, logged once the run exists, and its notes shown now (`record_logs`)."""
    from attnbench.run import record_logs as logs

    data = built.data
    opening.then(lambda run_id: logs.data(tracker, run_id, cfg, data, chash))
    logs.report_notes(data)
    if built.match is not None:
        logs.match_note(built.match)
        opening.then(lambda run_id: logs.match(tracker, run_id, built.match))


@contextlib.contextmanager
def _closed_on_error(tracker: Any, opening: Any, last: LastCheckpoint) -> Iterator[None]:
    """A failure once the run may exist closes it: KILLED on Ctrl-C, else FAILED with the reason
    (`_close`); the error goes on (with the run id, for the sweep table)."""
    try:
        yield
    except KeyboardInterrupt:
        run_id = _opened(opening)
        if run_id is not None:
            _close(tracker, run_id, "KILLED", "interrupted (Ctrl-C)", last)
        raise
    except BaseException as err:
        run_id = _opened(opening)
        if run_id is None:  # the run could not be opened: nothing to close
            raise
        _close(tracker, run_id, "FAILED", _reason(err), last)
        with contextlib.suppress(AttributeError):  # the sweep table matches failure to run
            err.attnbench_run_id = run_id  # type: ignore[attr-defined]
        raise


def _claim_cell(
    tracker: Any, cfg: RunConfig, built: Any, chash: str, ident: RunIdentity,
    parent: str | None, exp_name: str, open_run: Callable[[], str],
    run_tags: Mapping[str, Any], last: LastCheckpoint,
) -> RunResult | tuple[str, Path | None]:
    """`--resume`: under the cell's claim (`Tracker.claim`), the SKIPPED result of a cell done or
    being trained elsewhere, else (run id, state to resume from): the interrupted run of this
    cell reopened, or a new RUNNING run (the claim for other processes)."""
    from attnbench.run.resume import continuation, skip_if_done

    with tracker.claim(chash):
        exp_id = tracker.experiment_id(exp_name)
        skipped = skip_if_done(tracker, exp_id, chash, ident, parent)
        if skipped is not None:
            return skipped
        cont = continuation(tracker, exp_id, chash, last.path.parent, cfg=cfg,
                            model=built.model, parent_run_id=parent)
        if cont is None:
            return open_run(), None
        last.continued = True
        return _reopen(tracker, cont, run_tags), cont.state


def _reason(err: BaseException) -> str:
    return err.one_line() if isinstance(err, AttnbenchError) else f"{type(err).__name__}: {err}"


def _opened(opening: Any) -> str | None:
    """The id of a run that may still be opening (waits for it); None if it could not open
    (its own error closed whatever it had created)."""
    try:
        return opening.result()
    except Exception:  # noqa: BLE001 - reported by the caller's error
        return None


@dataclass
class LastCheckpoint:
    path: Path  # the resumable training state fit writes (trainer.checkpoint_every)
    continued: bool = False  # the run went on from its checkpoints/last.pt (`--resume`)

    def mark_epoch(self, epoch: int, best_state: dict[str, Any]) -> None:
        """`fit`'s end-of-epoch hook: the epoch whose state last.pt holds (written by fit)."""
        self.path.with_suffix(".epoch").write_text(str(epoch))


def _run_tags(cfg: RunConfig, code: str, threads: int, token: str, device: Any) -> dict[str, Any]:
    """What a run records about how and where it ran (besides its identity)."""
    from attnbench.run import provenance
    from attnbench.store.liveness import process_tags
    from attnbench.training.device import device_info

    env = provenance.environment()
    git = provenance.git_state()
    hardware = device_info(device)
    return {
        record.VERSION_TAG: __version__,
        record.CODE_HASH_TAG: code,
        record.THREADS_TAG: threads,
        record.OPENMP_WAIT_TAG: OPENMP_WAIT,
        record.TORCH_VERSION_TAG: env["torch"],
        record.CUDA_VERSION_TAG: env["cuda"],
        record.PYTHON_VERSION_TAG: env["python"],
        record.PLATFORM_TAG: env["platform"],
        record.SCRATCH_TAG: token,
        record.DEVICE_TAG: hardware["device"],
        record.DEVICE_NAME_TAG: hardware["device_name"],
        record.PRECISION_TAG: cfg.trainer.precision,
        **({record.GIT_COMMIT_TAG: git["commit"], record.GIT_DIRTY_TAG: git["dirty"]}
           if git else {}),
        **process_tags(),  # pid + host: a run left RUNNING by a killed process is found stale
    }


def _reopen(tracker: Any, cont: Any, run_tags: Mapping[str, Any]) -> str:
    """Reopen the interrupted run a `resume.Continuation` names: the same run goes on, tagged
    with this process (and the step it goes on from)."""
    steps = [*cont.run.tags.get(record.RESUMED_AT_TAG, "").split(), str(cont.step)]
    tracker.continue_run(cont.run.run_id, {**run_tags, record.RESUMED_AT_TAG: " ".join(steps)})
    tracker.heartbeat(cont.run.run_id)
    return str(cont.run.run_id)


def _finish(tracker: Any, run_id: str, built: Any, result: Any, last: LastCheckpoint
            ) -> dict[str, float]:
    """Log what a trained run ends with (test and cost metrics, diagnostics, best weights, the
    reusable model) and mark it FINISHED; returns the final metrics. A continued run already has
    what its first process logged: values at steps it has are dropped (`Tracker.continue_run`),
    files are written again, and the state it went on from is removed."""
    from attnbench.run import record_logs as logs
    from attnbench.training.checkpoint import save_checkpoint

    data = built.data
    final = {record.split_metric("test", k): v for k, v in result.test.items()}
    # "the" val figure: the best-validation checkpoint's, the one test used (val/* is the
    # history of every validation, whose latest may be a later, worse epoch)
    final |= {record.split_metric(record.BEST_VAL, k): v for k, v in result.val.items()}
    final |= {record.split_metric("cost", k): v for k, v in result.cost.items()}
    final |= logs.diagnostics(built.model, data, built.trainer, tracker, run_id)
    logs.classification(built.model, data, built.trainer, tracker, run_id)
    tracker.log_metrics(run_id, final, result.steps)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "best.pt"
        save_checkpoint(result.best_state, ckpt)
        tracker.log_artifact(run_id, ckpt, record.CHECKPOINT_DIR)
    logs.model(tracker, run_id, result.best_state, data)
    tracker.set_tags(run_id, {record.BEST_EPOCH_TAG: result.best_epoch,
                              **({record.STOPPED_BY_TAG: result.stopped_by}
                                 if result.stopped_by else {})})
    if last.continued:  # the state it went on from is spent
        with contextlib.suppress(Exception):
            tracker.delete_artifact(run_id, record.LAST_CHECKPOINT)
    tracker.end_run(run_id, "FINISHED")
    return final


def _close(tracker: Any, run_id: str, status: str, reason: str, last: LastCheckpoint) -> None:
    """End a run that did not finish: the reason as a tag, the last epoch's weights kept. A
    continued run that fails before writing a state of its own drops the one it went on from:
    the next `--resume` retrains the cell instead of failing on it again."""
    try:
        tracker.set_tags(run_id, {record.ERROR_TAG: reason.splitlines()[0] if reason else status})
        if last.path.is_file():
            with contextlib.suppress(Exception):  # the status matters more than the weights
                tracker.log_artifact(run_id, last.path, record.CHECKPOINT_DIR)
                epoch = last.path.with_suffix(".epoch")
                if epoch.is_file():
                    tracker.set_tags(run_id, {record.LAST_EPOCH_TAG: epoch.read_text()})
        elif last.continued and status == "FAILED":
            with contextlib.suppress(Exception):
                tracker.delete_artifact(run_id, record.LAST_CHECKPOINT)
    finally:
        tracker.end_run(run_id, status)
