"""`attnbench evaluate RUN_ID [task.test_path=FILE ...]`: score a trained model again.

The run's reusable model (`store.names.MODEL_DIR`: best weights, the task's spec, metrics and
vocabularies as JSON, its test split as tensors) and its saved config rebuild the model without
the training file and without pickle (every tensor file loads with ``weights_only=True``).
Without overrides the model is scored on the run's own test split (the same numbers as the run's
`test/*` metrics on CPU); with ``task.test_path=FILE`` (and the task's column settings) the task
encodes FILE with the run's own vocabulary (`Task.encode_test`). The result is logged as a child
run of RUN_ID, tagged `EVALUATES_TAG`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attnbench.errors import ConfigError
from attnbench.store import names as record


def parse_task_overrides(args: Sequence[str]) -> dict[str, Any]:
    """`task.KEY=VALUE` arguments as {KEY: value} (values read as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq or not key.startswith("task.") or key.count(".") != 1:
            raise ConfigError(
                f"'{arg}': evaluate takes task settings only, as task.KEY=VALUE "
                "(e.g. task.test_path=dev.tsv task.test_text_column=content)"
            )
        out[key.split(".", 1)[1]] = yaml.safe_load(value) if value else value
    return out


def evaluate_run(
    run_id: str,
    args: Sequence[str] = (),
    *,
    runs_dir: str | Path = "runs",
    tracking_uri: str | None = None,
) -> dict[str, float]:
    """Score run `run_id`'s best weights; log and return the metrics (`test/<metric>`)."""
    import torch

    from attnbench.config.build import build_model
    from attnbench.config.validate import validate
    from attnbench.console import console
    from attnbench.run.reproduce import saved_config
    from attnbench.store.queries import open_store
    from attnbench.tasks.base import Split, TaskData, TaskSpec
    from attnbench.training.checkpoint import load_checkpoint
    from attnbench.training.steps import evaluate

    overrides = parse_task_overrides(args)
    tracker = open_store(runs_dir, tracking_uri)
    original = tracker.get_run(run_id)  # a unique prefix works; one line for an unknown id
    run_id = original.run_id
    if original.status != "FINISHED":
        raise ConfigError(f"Run {run_id} is {original.status}: only FINISHED runs have a model")
    plain, _ = saved_config(tracker, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            task_json = json.loads(tracker.download_artifact(
                run_id, record.MODEL_TASK, tmp).read_text(encoding="utf-8"))
            weights = load_checkpoint(tracker.download_artifact(run_id, record.MODEL_WEIGHTS, tmp))
            saved_test = load_checkpoint(
                tracker.download_artifact(run_id, record.MODEL_TEST_SPLIT, tmp))
        except Exception as err:  # noqa: BLE001 - MlflowException / OSError: no such artifact
            raise ConfigError(
                f"Run {run_id} has no reusable model ({record.MODEL_DIR}/): it was trained by an "
                "older attnbench; re-run it (attnbench reproduce) to get one"
            ) from err
    cfg = validate({**plain, "runs_dir": str(tracker.runs_dir),
                    "tracking": {"uri": tracking_uri}, "resume": False})
    spec = TaskSpec(**task_json["spec"])
    if overrides:
        from attnbench.config.build import build_task
        from attnbench.config.run_config import ComponentConfig
        from attnbench.registry import check_params
        from attnbench.tasks import TASKS

        params = {**cfg.task.params, **overrides}
        problems = check_params(TASKS.get(cfg.task.name), params, "task")
        if problems:
            raise ConfigError(problems[0], problems)
        task = build_task(ComponentConfig(cfg.task.name, tuple(params.items())))
        encode = getattr(task, "encode_test", None)
        if encode is None or not task_json.get("encoder"):
            raise ConfigError(
                f"task '{cfg.task.name}' cannot encode another file with a saved vocabulary: "
                "evaluate it without overrides (its own test split)"
            )
        test = encode(task_json["encoder"], spec)
        source = str(overrides.get("test_path", ""))
    else:
        test = Split(saved_test["inputs"], saved_test["targets"],
                     references=task_json.get("test_references"))
        source = "the run's own test split"
    empty = Split(test.inputs[:0], test.targets[:0])
    data = TaskData(spec, empty, empty, test, task_json["primary_metric"],
                    tuple(task_json["metrics"]), task_json.get("target_itos"))
    model = build_model(cfg.attention, cfg.backbone, data, cfg.seed, cfg.match_params)
    model.load_state_dict(weights)
    with torch.no_grad():
        scores = evaluate(model, data, test, cfg.trainer)
    metrics = {record.split_metric("test", k): v for k, v in scores.items()}
    child = tracker.start_run(
        original.experiment_id, f"evaluate-{original.name}",
        {**{k: v for k, v in original.tags.items() if k in record.IDENTITY_TAGS},
         record.EVALUATES_TAG: run_id, record.KIND_TAG: record.EVALUATE_KIND,
         "attnbench.test_source": source},
        parent_run_id=run_id,
    )
    tracker.log_params(child, {f"task.{k}": v for k, v in overrides.items()})
    tracker.log_metrics(child, metrics, 0)
    tracker.end_run(child, "FINISHED")
    console.print(f"evaluated {original.name} ({run_id}) on {source}: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                  + f"; logged as run {child}", highlight=False, markup=False)
    return metrics
