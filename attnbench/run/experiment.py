"""One experiment, end to end: open the run, build, train, evaluate, log to MLflow.

`run_experiment(cfg)` takes a validated `RunConfig` (config.validate) and is the plain function
behind `attnbench run` and every sweep job; tests call it directly. Given the data validation
loaded (`loaded`, the pre-flight's hand-over), it loads nothing again: it builds the model once.
Its stages: `_start` (seeds, threads, identity, tags), `_run` (open the run, or claim the cell),
`_build` (data and model, each once), `_train` (`fit`, then `_finish` records the result). The
MLflow run is opened on a thread (with the job's start time, so durations in the UI are the
job's) after the first training step, or once data loading outlasts OPEN_RUN_BY_S; a failure
after that marks it FAILED (or KILLED on Ctrl-C) with the reason as a tag. With `resume`, the
cell is claimed first (`Tracker.claim`): a FINISHED run with the same content hash is reused,
one still training elsewhere is left to it, and an interrupted one is reopened and trained on
from the state it left (`run.resume`). In a terminal the progress bar names each phase before
training (`console.RichProgress`).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnbench import OPENMP_WAIT, __version__
from attnbench.config.run_config import RunConfig
from attnbench.errors import AttnbenchError
from attnbench.store import names as record
from attnbench.store.names import RunIdentity, RunResult

if TYPE_CHECKING:
    from attnbench.config.build import Built, Loaded

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
    continued: bool = False  # `--resume` reopened the same grid's earlier parent run


def run_experiment(
    cfg: RunConfig,
    *,
    loaded: Loaded | None = None,
    overrides: Sequence[str] = (),
    sweep: SweepContext | None = None,
    show_progress: bool = False,
    parallel_jobs: int = 1,
    tags: Mapping[str, str] | None = None,
) -> RunResult:
    """Train and evaluate one validated config: set up (`_start`), open the run or claim the
    cell (`_run`), load and build (`_build`), train and record (`_train`). `loaded`: its data as
    validation loaded it (the pre-flight's, `config.build.Loaded`), else it is read here."""
    from attnbench.console import RichProgress
    from attnbench.store import scratch
    from attnbench.training.device import resolve
    from attnbench.training.optimizers import prefetch

    started_ms = int(time.time() * 1000)
    warm = prefetch()  # torch.optim's first use imports torch._dynamo (~1 s): off the critical path
    device = resolve(cfg.trainer)  # ConfigError when this machine cannot (pre-flight said so)
    job = _start(cfg, sweep, parallel_jobs, tags, device, started_ms)
    progress = RichProgress(job.name) if show_progress and cfg.trainer.progress else None
    try:
        return _run(job, loaded, overrides, progress, device, warm)
    finally:
        if progress is not None:  # (a run that fails before training clears its phases)
            progress.stop()
        scratch.remove(job.token)


@dataclass
class _Job:
    """A job on its way: its config, where and as what it records, its scratch folder."""

    cfg: RunConfig
    plain: dict[str, Any]  # the config as recorded: config.yaml, params, the content hash
    ident: RunIdentity
    sweep: SweepContext | None
    tracker: Any
    experiment: str
    code: str  # package version + hash of the code that defines what it trains
    tags: dict[str, Any]  # what the run is tagged with when it opens
    token: str  # the scratch folder's (store.scratch)
    last: LastCheckpoint
    started_ms: int

    @property
    def name(self) -> str:
        return self.ident.run_name

    @property
    def parent(self) -> str | None:
        return self.sweep.parent_run_id if self.sweep else None


def identity(cfg: RunConfig, swept: Sequence[str] = (),
             plain: Mapping[str, Any] | None = None) -> RunIdentity:
    """The job's identity (its run name and identity tags); `swept`: the other keys its sweep
    varies, read from `plain` (the config as a dict, made here when not given)."""
    return RunIdentity(cfg.attention.name, cfg.backbone.name, cfg.task.name, cfg.seed,
                       record.swept_values(plain if plain is not None else cfg.to_dict(), swept))


def _start(cfg: RunConfig, sweep: SweepContext | None, parallel_jobs: int,
           tags: Mapping[str, str] | None, device: Any, started_ms: int) -> _Job:
    """Seeds and threads set; the job's identity, store, tags and scratch folder."""
    from attnbench.run import provenance
    from attnbench.store import scratch
    from attnbench.store.tracker import Tracker
    from attnbench.training.seeding import seed_everything, set_threads

    plain = cfg.to_dict()
    ident = identity(cfg, sweep.swept if sweep else (), plain)
    seed_everything(cfg.seed, cfg.trainer.deterministic)
    threads = set_threads(cfg.trainer.threads, parallel_jobs)
    code = f"{__version__}+{provenance.code_hash(cfg)}"
    token, folder = scratch.new()
    run_tags = {**(sweep.tags if sweep else {}), **ident.tags(),
                **_run_tags(cfg, code, threads, token, device), **(tags or {})}
    return _Job(cfg, plain, ident, sweep, Tracker(cfg.tracking.uri, cfg.runs_dir),
                sweep.experiment_name if sweep else cfg.default_experiment, code, run_tags,
                token, LastCheckpoint(folder / scratch.LAST), started_ms)


def _run(job: _Job, loaded: Loaded | None, overrides: Sequence[str], progress: Any,
         device: Any, warm: Any) -> RunResult:
    """The run opened (or, with `resume`, the cell claimed first), then built and trained; a
    failure once the run may exist closes it (`_closed_on_error`)."""
    built = resume_from = None
    if job.cfg.resume:  # the content hash needs the data: load it, then claim the cell
        built = _build(job.cfg, loaded, progress)
        claimed = _claim_cell(job, built, overrides)
        if isinstance(claimed, RunResult):
            return claimed
        run_id, resume_from = claimed
        opening = job.tracker.open_run(lambda: run_id, background=False)
    else:
        # MLflow's import and the run's creation (2-4 s of CPU) wait for the first training
        # step (`Measurement.after_first_step`): they would only compete for the GIL with
        # torch.optim's one-time import (`warm`) the first step waits for, and there they stay
        # out of the timed training and the memory figure. A job whose data takes longer than
        # OPEN_RUN_BY_S to load opens its run then. The run keeps the job's start time; metrics
        # wait in the sink until it exists.
        opening = job.tracker.open_run(lambda: _open_run(job, overrides))
        opening.start_by(OPEN_RUN_BY_S)
    with _closed_on_error(job.tracker, opening, job.last):
        if built is None:
            built = _build(job.cfg, loaded, progress)
        opening.cancel_timer()  # from here on fit opens it, where the memory meter allows
        return _train(job, built, opening, progress, device, warm, resume_from)


def _open_run(job: _Job, overrides: Sequence[str], extra: Mapping[str, Any] | None = None
              ) -> str:
    """Create the job's run with its tags, params and config files; its id."""
    import yaml

    from attnbench.run import record_logs as logs

    tracker = job.tracker
    exp_id = tracker.experiment_id(job.experiment)
    if job.sweep is None:  # a sweep's callback already did, for the whole sweep
        tracker.mark_stale_runs([exp_id])
    run_id = tracker.start_run(exp_id, job.name, {**job.tags, **(extra or {})}, job.parent,
                               job.started_ms)
    try:
        tracker.heartbeat(run_id)
        tracker.log_params(run_id, logs.defining_params(job.plain))
        tracker.log_text(run_id, yaml.safe_dump(job.plain, sort_keys=False),
                         record.CONFIG_ARTIFACT)
        tracker.log_text(run_id, yaml.safe_dump(list(overrides)), record.OVERRIDES_ARTIFACT)
    except BaseException as err:
        _close(tracker, run_id, "FAILED", _reason(err), job.last)
        raise
    return run_id


def _build(cfg: RunConfig, loaded: Loaded | None, progress: Any) -> Built:
    """The data (as validation loaded it, else read now) and the model, each once; the bar
    shows which."""
    from attnbench.config.build import build, load

    if loaded is None or loaded.seed != cfg.seed:
        if progress is not None:
            progress.phase("loading data")
        loaded = load(cfg)
    if progress is not None:
        progress.phase("building the model")
    return build(cfg, loaded)


def _train(job: _Job, built: Built, opening: Any, progress: Any, device: Any, warm: Any,
           resume_from: Path | None) -> RunResult:
    """Log what the data is, train (`fit`), record the result (`_finish`)."""
    from attnbench.training.loop import fit
    from attnbench.training.measurement import Measurement

    def open_after_first_step() -> None:
        if progress is not None and not opening.done():
            progress.phase("opening the MLflow run")
        opening.result()

    data = built.data
    chash = record.config_hash(job.plain, job.code, data.fingerprint)
    _log_data(job.tracker, opening, job.cfg, built, chash)
    measure = Measurement(warm=warm, after_first_step=open_after_first_step,
                          before_eval=opening.result)
    result = fit(built.model, data, built.trainer, job.cfg.seed, job.tracker.sink(opening),
                 progress, job.last.mark_epoch, measure=measure, device=device,
                 last_path=job.last.path, resume_from=resume_from)
    run_id = opening.result()
    final = _finish(job.tracker, run_id, built, result, job.last)
    primary = record.split_metric(record.BEST_VAL, data.primary_metric)
    return RunResult(job.name, "FINISHED", run_id, final, primary=primary,
                     identity=job.ident.tags(), experiment=job.experiment)


def _log_data(tracker: Any, opening: Any, cfg: RunConfig, built: Built, chash: str) -> None:
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


def _claim_cell(job: _Job, built: Built, overrides: Sequence[str]
                ) -> RunResult | tuple[str, Path | None]:
    """`--resume`: under the cell's claim (`Tracker.claim`), the SKIPPED result of a cell done or
    being trained elsewhere, else (run id, state to resume from): the interrupted run of this
    cell reopened, or a new RUNNING run (the claim for other processes)."""
    from attnbench.run.resume import continuation, skip_if_done

    tracker = job.tracker
    chash = record.config_hash(job.plain, job.code, built.data.fingerprint)
    with tracker.claim(chash):
        exp_id = tracker.experiment_id(job.experiment)
        skipped = skip_if_done(tracker, exp_id, chash, job.ident, job.parent)
        if skipped is not None:
            return skipped
        cont = continuation(tracker, exp_id, chash, job.last.path.parent, cfg=job.cfg,
                            model=built.model, parent_run_id=job.parent)
        if cont is None:
            return _open_run(job, overrides, {record.CONFIG_HASH_TAG: chash}), None
        job.last.continued = True
        return _reopen(tracker, cont, job.tags), cont.state


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
