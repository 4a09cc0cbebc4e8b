"""The schema of the run record: every tag, param, metric and artifact name attnbench writes to
MLflow, the run identity, the job result and the content hash. Nothing else spells these names.

Identity (attention, backbone, task, seed and the other swept values) is stored as tags and read
back as tags (`RunIdentity.from_tags`): a run name is for people and is never parsed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# -- identity tags (plain names: they are what a user filters on in the MLflow UI) -------------
ATTENTION_TAG = "attention"
BACKBONE_TAG = "backbone"
TASK_TAG = "task"
SEED_TAG = "seed"
IDENTITY_TAGS = (ATTENTION_TAG, BACKBONE_TAG, TASK_TAG, SEED_TAG)
SWEPT_TAG = "attnbench.swept"  # JSON {config key: value} of the other keys a sweep varies

# -- MLflow's own tags -------------------------------------------------------------------------
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
NOTE_TAG = "mlflow.note.content"  # a run's description in the MLflow UI (`sweep --note`)

# -- attnbench tags ----------------------------------------------------------------------------
KIND_TAG = "attnbench.kind"  # "sweep" on a sweep's parent run
SWEEP_KIND = "sweep"
BENCH_KIND = "bench"  # on the one run of an `attnbench bench` call
EVALUATE_KIND = "evaluate"  # an `attnbench evaluate` run: scores a trained run again
REPRODUCE_KIND = "reproduce"  # an `attnbench reproduce` run: re-trains a run to check it
OVERRIDES_TAG = "attnbench.overrides"
SWEEP_DIR_TAG = "attnbench.sweep_dir"
SWEEP_KEYS_TAG = "attnbench.sweep_keys"  # JSON list: every config key the sweep's grid varies
SWEEP_NAME_TAG = "attnbench.sweep_name"  # `sweep --name`: on the parent and its jobs' runs
SWEEP_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"  # what a sweep name may be (a regex)
CONFIG_HASH_TAG = "attnbench.config_hash"
VERSION_TAG = "attnbench.version"
DATA_FINGERPRINT_TAG = "attnbench.data_fingerprint"
THREADS_TAG = "attnbench.threads"
OPENMP_WAIT_TAG = "attnbench.openmp_wait"
PRIMARY_METRIC_TAG = "attnbench.primary_metric"
BEST_EPOCH_TAG = "attnbench.best_epoch"
ERROR_TAG = "attnbench.error"
DIAGNOSTICS_ERROR_TAG = "attnbench.diagnostics_error"
# Which process owns a RUNNING run: a run whose process is gone is stale (store.liveness).
PID_TAG = "attnbench.pid"
HOST_TAG = "attnbench.host"
# Refreshed every HEARTBEAT_S seconds while a run trains (unix seconds): a RUNNING run whose
# heartbeat is older than STALE_AFTER_S is stale on any host (a SIGKILLed SLURM job).
HEARTBEAT_TAG = "attnbench.heartbeat"
HEARTBEAT_S = 30
STALE_AFTER_S = 300
# When the process named by PID_TAG took the run (ms): a run reopened by `--resume` keeps its
# start time, and a process younger than the run is not mistaken for a recycled pid.
PID_SINCE_TAG = "attnbench.pid_since"
LAST_EPOCH_TAG = "attnbench.last_epoch"
# On a run `--resume` reopened: "step N" per continuation, space-separated (the curve is one).
RESUMED_AT_TAG = "attnbench.resumed_at"
# MLflow's UI shows an experiment with this kind in its model-training view (not the GenAI one).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
STOPPED_BY_TAG = "attnbench.stopped_by"  # "max_time" when the wall-clock budget ended training
DEVICE_TAG = "attnbench.device"  # e.g. cpu, cuda:0
DEVICE_NAME_TAG = "attnbench.device_name"  # the CPU model or GPU name
PRECISION_TAG = "attnbench.precision"
# Provenance: the code (a hash of the source files the run used; see run.provenance) and where
# it ran. The git commit goes in MLflow's own tag, so the UI shows it.
CODE_HASH_TAG = "attnbench.code_hash"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_DIRTY_TAG = "attnbench.git_dirty"
CUDA_VERSION_TAG = "cuda.version"
PYTHON_VERSION_TAG = "python.version"
PLATFORM_TAG = "platform"
TOKENIZER_TAG = "attnbench.tokenizer"
# match_params: JSON {key, configured, width, params, reference, reference_params, within}
MATCH_TAG = "attnbench.match_params"
# The folder (a random token under attnbench's own temporary root) holding a run's last.pt while
# it trains: never a path (see `Tracker.keep_last_checkpoint`).
SCRATCH_TAG = "attnbench.scratch"
RESUMED_BY_TAG = "attnbench.resumed_by"  # parent runs of the sweeps that reused this run
REPRODUCES_TAG = "reproduces"
LOADAVG_TAG = "attnbench.loadavg"  # bench runs: the machine's load when measured
TORCH_VERSION_TAG = "torch.version"  # the torch that trained / was timed
CPU_COUNT_PARAM = "cpu_count"  # bench runs: the machine's cores (a param)
SWEEPER_TAG = "attnbench.sweeper"  # on a sweep's parent: the Hydra sweeper class that made its jobs
# Tuned sweeps (`sweep --tune`, run.tune): the stage that trained a run, and on the parent the
# protocol as JSON {"params": {key: [values]}, "tune_seeds": [...], "seeds": [...]}.
STAGE_TAG = "attnbench.stage"
TUNE_STAGE = "tune"  # stage 1: every tuning value on the tuning seeds
FINAL_STAGE = "final"  # stage 2: each group's chosen value on the sweep's other seeds
TUNE_TAG = "attnbench.tune"

# -- metrics: `split/metric` with a step -------------------------------------------------------
TRAIN_LOSS = "train/loss"
TRAIN_SKIPPED_STEPS = "train/skipped_steps"  # precision 16: steps the gradient scaler skipped
EPOCH_METRIC = "epoch"
COST_PARAMS = "cost/params"
COST_TRAIN_S = "cost/train_s"
COST_EPOCH_S = "cost/epoch_s"
COST_SAMPLES_PER_S = "cost/samples_per_s"
COST_PEAK_MEM_MB = "cost/peak_mem_mb"
# "The" validation figure: the best-validation checkpoint's val metrics (the weights the test
# metrics come from), logged once at the last step as `best_val/<metric>` (and best_val/loss);
# `val/<metric>` is the history, one point per validation.
BEST_VAL = "best_val"
COST_STEPS = "cost/steps"  # optimiser steps the run trained (its budget, whatever stopped it)
# Cost that compares across devices (training/throughput.py): real (non-pad) tokens trained per
# second of training; model FLOPs of one training example (forward + backward, FLOP counter); the
# device's measured matmul rate in the compute dtype with the job's threads; and model FLOPs
# utilisation, in percent of that peak.
COST_TOKENS_PER_S = "cost/tokens_per_s"
COST_FLOPS_PER_SAMPLE = "cost/flops_per_sample"
COST_PEAK_GFLOPS = "cost/peak_gflops"
COST_MFU = "cost/mfu"
# The cost columns of tables: (metric, column label).
COST_COLUMNS = (
    (COST_PARAMS, "params"),
    (COST_TRAIN_S, "train s"),
    (COST_SAMPLES_PER_S, "samples/s"),
    (COST_TOKENS_PER_S, "tokens/s"),
    (COST_MFU, "MFU %"),
    (COST_PEAK_MEM_MB, "peak MB"),
)
COST_BASE_MEM_MB = "cost/base_mem_mb"  # the weights' memory under the peak (training/run_memory.py)
COST_PEAK_RSS_MB = "cost/peak_rss_mb"  # CPU, MPS: the process's resident set over the run
COST_BASE_RSS_MB = "cost/base_rss_mb"  # and what it held when the run started
# Measurements of the machine, not of the model: shown, never held against a reproduction.
TIMING_METRICS = (COST_TRAIN_S, COST_EPOCH_S, COST_SAMPLES_PER_S, COST_PEAK_MEM_MB,
                  COST_BASE_MEM_MB, COST_PEAK_RSS_MB, COST_BASE_RSS_MB, COST_TOKENS_PER_S,
                  COST_PEAK_GFLOPS, COST_MFU)

# -- which way is better, per metric (`metric_direction`): compare ranks and tests by it -------
ATTN_ENTROPY = "attn/entropy"
ATTN_ALIGNMENT = "attn/alignment"
ATTN_ALIGNMENT_PM1 = "attn/alignment_pm1"
HIGHER, LOWER, NO_DIRECTION = "higher", "lower", "none"
# Whole metric names whose direction is not what the rules below give.
METRIC_DIRECTIONS = {
    COST_PARAMS: LOWER,
    COST_TRAIN_S: LOWER,
    COST_EPOCH_S: LOWER,
    COST_PEAK_MEM_MB: LOWER,
    COST_BASE_MEM_MB: LOWER,
    COST_PEAK_RSS_MB: LOWER,
    COST_BASE_RSS_MB: LOWER,
    TRAIN_SKIPPED_STEPS: LOWER,
    COST_SAMPLES_PER_S: HIGHER,
    COST_TOKENS_PER_S: HIGHER,
    COST_MFU: HIGHER,
    COST_FLOPS_PER_SAMPLE: LOWER,  # a cheaper model, like cost/params
    COST_PEAK_GFLOPS: NO_DIRECTION,  # the machine's, not the model's
    ATTN_ALIGNMENT: HIGHER,  # share of attention mass on the correct source position
    ATTN_ALIGNMENT_PM1: HIGHER,  # the same within one position of it
    ATTN_ENTROPY: NO_DIRECTION,  # a diagnostic: sharper is not better
    EPOCH_METRIC: NO_DIRECTION,
}
NO_DIRECTION_PREFIXES = ("overlap/",)  # counts and diagnostics
LOWER_SUFFIXES = ("loss",)  # train/loss, val/loss, ...
HIGHER_SPLITS = ("train", "val", BEST_VAL, "test")  # task metrics: acc, f1, exact_match, bleu, ...


def metric_direction(name: str) -> str:
    """`higher`, `lower` or `none` (a diagnostic: shown, never ranked). The explicit table first,
    then: an `overlap/` prefix -> none; a name ending in `loss` -> lower; any other
    `train/`, `val/` or `test/` metric -> higher (every task metric is, see tasks.metrics);
    anything else -> none, so an unknown metric is never ranked by a guess."""
    if name in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[name]
    if name.startswith(NO_DIRECTION_PREFIXES):
        return NO_DIRECTION
    if name.endswith(LOWER_SUFFIXES):
        return LOWER
    if name.partition("/")[0] in HIGHER_SPLITS:
        return HIGHER
    return NO_DIRECTION


# -- the range of a bounded metric (`metric_range`): compare keeps every interval inside it ----
# By the metric's name after its split (`test/acc` -> acc) or by its whole name.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "acc": (0.0, 1.0),
    "token_acc": (0.0, 1.0),
    "exact_match": (0.0, 1.0),
    "f1": (0.0, 1.0),
    "precision": (0.0, 1.0),
    "recall": (0.0, 1.0),
    "bleu": (0.0, 100.0),
    ATTN_ALIGNMENT: (0.0, 1.0),
    ATTN_ALIGNMENT_PM1: (0.0, 1.0),
}


def metric_range(name: str) -> tuple[float, float] | None:
    """The (low, high) a metric cannot leave (accuracy [0, 1], BLEU [0, 100]), or None when it is
    unbounded (losses, seconds, counts). Whole names first, then a `train/`, `val/` or `test/`
    metric by its name after the split; a `bleu_...` variant (e.g. tokenised BLEU) is BLEU's."""
    if name in METRIC_RANGES:
        return METRIC_RANGES[name]
    split, _, base = name.partition("/")
    if split not in HIGHER_SPLITS:
        return None
    if base.startswith("bleu"):
        base = "bleu"
    return METRIC_RANGES.get(base)


def rerun_kind(tags: Mapping[str, str]) -> str | None:
    """`evaluate` or `reproduce` for a run that scores or re-trains another run (not a seed of a
    training config of its own: compare leaves it out of every group), else None. Runs logged
    before the kind tag are known by EVALUATES_TAG / REPRODUCES_TAG."""
    kind = tags.get(KIND_TAG)
    if kind in (EVALUATE_KIND, REPRODUCE_KIND):
        return kind
    if EVALUATES_TAG in tags:
        return EVALUATE_KIND
    if REPRODUCES_TAG in tags:
        return REPRODUCE_KIND
    return None


def split_metric(split: str, name: str) -> str:
    """`val/acc`, `test/exact_match`, `cost/params`."""
    return f"{split}/{name}"


# -- artifacts ---------------------------------------------------------------------------------
CONFIG_ARTIFACT = "config/config.yaml"
OVERRIDES_ARTIFACT = "config/overrides.yaml"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINT_DIR}/last.pt"  # a run that did not finish: its training state
HEATMAP_ARTIFACT = "plots/attention.png"
# A reusable model (`attnbench evaluate`): the best weights, what the model is built from (the
# task's spec, metrics and vocabularies, as JSON) and the test split it was scored on (tensors):
# no training file and no pickle needed to use it again.
MODEL_DIR = "model"
MODEL_WEIGHTS = "model/weights.pt"
MODEL_TASK = "model/task.json"
MODEL_TEST_SPLIT = "model/test_split.pt"
EVALUATES_TAG = "attnbench.evaluates"  # on an `evaluate` child run: the run it scored
REPORT_DIR = "report"

# Config keys that say where results go or how progress is shown, not what is trained: left
# out of the content hash and of the pairing of runs in `compare`.
NOT_TRAINED = ("tracking", "runs_dir", "resume", "experiment_name", "hydra")
NOT_TRAINED_PARAMS = ("runs_dir", "tracking.", "experiment_name", "resume", "trainer.progress")


@dataclass(frozen=True)
class RunIdentity:
    """What a job run is: its variant, backbone, task, seed and the other values its sweep
    varies (e.g. {"attention.heads": 4})."""

    attention: str
    backbone: str
    task: str
    seed: int
    swept: Mapping[str, Any] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        out = {ATTENTION_TAG: self.attention, BACKBONE_TAG: self.backbone,
               TASK_TAG: self.task, SEED_TAG: str(self.seed)}
        if self.swept:
            out[SWEPT_TAG] = json.dumps(dict(self.swept), sort_keys=True, default=str)
        return out

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> RunIdentity:
        seed = tags.get(SEED_TAG, "")
        try:
            swept = json.loads(tags.get(SWEPT_TAG) or "{}")
        except json.JSONDecodeError:
            swept = {}
        return cls(tags.get(ATTENTION_TAG, "?"), tags.get(BACKBONE_TAG, "?"),
                   tags.get(TASK_TAG, "?"), int(seed) if seed.isdigit() else -1, swept)

    @property
    def cell(self) -> str:
        """The swept values beyond attention/backbone/task/seed, e.g. `heads4` (may be ''); a
        float to 4 significant digits (an Optuna trial's lr `0.0012345678901234567`: `lr0.001235`;
        the exact value is in the params and the swept tag)."""
        return "-".join(f"{k.split('.')[-1]}{f'{v:.4g}' if isinstance(v, float) else v}"
                        for k, v in self.swept.items())

    @property
    def run_name(self) -> str:
        """`<attention>-<backbone>-<task>-s<seed>`, plus the cell (e.g. `-heads4`) so the runs of
        a sweep differ. For people: identity is read from the tags."""
        name = f"{self.attention}-{self.backbone}-{self.task}-s{self.seed}"
        return f"{name}-{self.cell}" if self.cell else name


@dataclass
class RunResult:
    """What one job reports to its sweep (and an optimising sweeper)."""

    name: str
    status: str  # FINISHED | FAILED | KILLED | SKIPPED
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    primary: str | None = None  # e.g. "best_val/acc": what an optimising sweeper (Optuna) maximises
    identity: dict[str, str] = field(default_factory=dict)  # RunIdentity.tags()
    experiment: str | None = None  # the MLflow experiment the run is in
    overrides: list[str] = field(default_factory=list)  # the job's Hydra overrides (a sweep's)


def config_hash(config: Mapping[str, Any], version: str, data_fingerprint: str) -> str:
    """Content hash of what is trained: resolved config (minus `NOT_TRAINED` keys and the
    progress switch) + package version + data fingerprint."""
    content = {k: v for k, v in config.items() if k not in NOT_TRAINED}
    content["trainer"] = {k: v for k, v in content["trainer"].items() if k != "progress"}
    blob = json.dumps([content, version, data_fingerprint], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def swept_values(config: Mapping[str, Any], swept: Sequence[str]) -> dict[str, Any]:
    """{key: value} in `config` for each swept dotted key (keys whose value is a node skipped)."""
    out: dict[str, Any] = {}
    for key in swept:
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and not isinstance(node, Mapping):
            out[key] = node
    return out
