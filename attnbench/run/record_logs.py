"""What a run logs besides its training metrics: the params that define it, what its data is
(tags, a dataset input, split overlap), the attention diagnostics and heatmap, the per-class report
and confusion matrix of a classifier, and the reusable model (`attnbench evaluate`)."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attnbench.config.run_config import RunConfig, flatten
from attnbench.store import names as record

log = logging.getLogger(__name__)


def defining_params(plain: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config as flat params, limited to what defines the experiment (not where
    results go, nor how progress is shown)."""
    kept = flatten({k: v for k, v in plain.items() if k not in record.NOT_TRAINED})
    return {k: v for k, v in kept.items() if not k.startswith(record.NOT_TRAINED_PARAMS)}


def data(tracker: Any, run_id: str, cfg: RunConfig, data: Any, chash: str) -> None:
    """What the data is (tags, and an MLflow dataset input naming its source and digest)."""
    tracker.set_tags(run_id, {
        record.CONFIG_HASH_TAG: chash,
        record.DATA_FINGERPRINT_TAG: data.fingerprint,
        record.PRIMARY_METRIC_TAG: data.primary_metric,
        **({record.TOKENIZER_TAG: data.extra["tokenizer"]} if "tokenizer" in data.extra else {}),
    })
    params = cfg.task.params
    source: Any = params.get("path") or params.get("hf_dataset") or {
        "generator": f"attnbench.tasks.{cfg.task.name}", "seed": str(cfg.seed),
        **{k: str(v) for k, v in params.items()},
    }
    tracker.log_dataset(run_id, cfg.task.name, source, data.fingerprint, "train")
    overlap = overlap_metrics(data)
    if overlap:
        tracker.log_metrics(run_id, overlap, 0)


def model(tracker: Any, run_id: str, weights: Mapping[str, Any], data: Any) -> None:
    """The reusable model (see `store.names.MODEL_DIR`): weights, task JSON, test split."""
    from dataclasses import asdict

    from attnbench.training.checkpoint import save_checkpoint

    task = {
        "spec": asdict(data.spec),
        "metrics": list(data.metrics),
        "primary_metric": data.primary_metric,
        "target_itos": list(data.target_itos) if data.target_itos is not None else None,
        "encoder": data.extra.get("encoder"),  # how a file task turns new text into ids
        # the test split's raw reference sentences (translation's BLEU), None when it has none
        "test_references": (list(data.test.references)
                            if data.test.references is not None else None),
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / record.MODEL_DIR
        save_checkpoint(weights, folder / Path(record.MODEL_WEIGHTS).name)
        save_checkpoint({"inputs": data.test.inputs, "targets": data.test.targets},
                        folder / Path(record.MODEL_TEST_SPLIT).name)
        (folder / Path(record.MODEL_TASK).name).write_text(json.dumps(task), encoding="utf-8")
        for path in sorted(folder.iterdir()):
            tracker.log_artifact(run_id, path, record.MODEL_DIR)


def diagnostics(
    model: Any, data: Any, trainer: Any, tracker: Any, run_id: str
) -> dict[str, float]:
    """The attention diagnostics on the test split (training.diagnostics), the heatmap logged as
    an artifact; returns the metrics to log."""
    from attnbench.training.diagnostics import attention_diagnostics, heatmap_examples

    metrics = attention_diagnostics(
        model, data, data.test, trainer.eval_batch_size, trainer.limit_eval_batches
    )
    if metrics is None:
        return {}
    try:
        from attnbench.analysis.plots import attention_heatmap

        examples = heatmap_examples(model, data, data.test)
        artifact = Path(record.HEATMAP_ARTIFACT)
        with tempfile.TemporaryDirectory() as tmp:
            path = attention_heatmap(examples, Path(tmp) / artifact.name)
            tracker.log_artifact(run_id, path, str(artifact.parent))
    except Exception as err:  # noqa: BLE001 - a plot must not fail a trained run
        tracker.set_tags(run_id, {record.DIAGNOSTICS_ERROR_TAG: f"{type(err).__name__}: {err}"})
    return metrics


def match(tracker: Any, run_id: str, chosen: Any) -> None:
    """What `match_params` chose (`config.build.Match`), as a tag (JSON)."""
    tracker.set_tags(run_id, {record.MATCH_TAG: json.dumps(chosen.as_dict())})


def match_note(chosen: Any) -> None:
    """What `match_params` chose, one note line on stderr (once per sweep: `_show_once`)."""
    _show_once(f"note: {chosen.note()}")


def report_notes(data: Any) -> None:
    """The task's notes (e.g. which columns were detected) and a warning when val/test examples
    also occur in train: in the job's log, and on stderr where the user sees them once per sweep
    (`_show_once`), not once per job."""
    from attnbench.tasks.overlap import overlap_warning

    for note in data.extra.get("notes") or ():
        log.info(note)  # every job's own log (the data may have been read by the pre-flight)
        _show_once(f"note: {note}")
    warning = overlap_warning(data.extra)
    if warning:
        _show_once(f"warning: {warning}")


def _show_once(line: str) -> None:
    """Print `line` on stderr unless another job of the same sweep already did. The jobs of a
    sweep share Hydra's sweep folder whatever launches them (this process, joblib's worker
    processes, SLURM or Ray machines): the first job to create the line's marker file there
    (atomically, O_EXCL) prints it. Outside a sweep (a `run`, a test) it is always printed."""
    import hashlib
    import os

    from attnbench.console import err_console

    folder = _sweep_folder()
    if folder is not None:
        marks = folder / NOTES_DIR
        name = hashlib.sha256(line.encode()).hexdigest()[:24]
        try:
            marks.mkdir(parents=True, exist_ok=True)
            os.close(os.open(marks / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        except OSError:
            pass  # an unwritable folder: better twice than never
    err_console.print(line, highlight=False, markup=False)


NOTES_DIR = ".attnbench_notes"  # in Hydra's sweep folder: one empty file per line shown


def _sweep_folder() -> Path | None:
    """The folder every job of this Hydra sweep shares (a tuned sweep's stages share the one
    above theirs); None outside a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from hydra.utils import to_absolute_path

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    folder = Path(to_absolute_path(str(hc.sweep.dir)))
    callback = (hc.get("callbacks") or {}).get("attnbench_sweep") or {}
    return folder.parent if callback.get("stage") else folder


def overlap_metrics(data: Any) -> dict[str, float]:
    """`overlap/val_exact`, `overlap/test_exact` (counts) and their shares of the split; for
    translation `overlap/{val,test}_source[_frac]` (sources seen with another target only); with
    `task.val_dedup`, `overlap/val_dropped`."""
    overlap = data.extra.get("overlap") or {}
    out = {}
    for split in ("val", "test"):
        if split in overlap:
            out[f"overlap/{split}_exact"] = float(overlap[split])
            out[f"overlap/{split}_frac"] = float(overlap[f"{split}_frac"])
    for key in ("val_source", "val_source_frac", "test_source", "test_source_frac",
                "val_dropped"):  # translation's sources seen with another target; val_dedup
        if key in overlap:
            out[f"overlap/{key}"] = float(overlap[key])
    return out


def classification(model: Any, data: Any, trainer: Any, tracker: Any, run_id: str) -> None:
    """For a classifier with named classes: the per-class report (JSON) and the confusion
    matrix (PNG and JSON) on the test split, as artifacts under `report/`."""
    labels = data.extra.get("labels")
    if data.spec.kind != "classify" or data.spec.target_per_position or not labels:
        return
    import torch

    from attnbench.analysis.plots import confusion_matrix_plot
    from attnbench.tasks.metrics import classification_report

    model.eval()
    device = next(model.parameters()).device
    preds = []
    with torch.no_grad():
        for start in range(0, len(data.test), trainer.eval_batch_size):
            x = data.test.inputs[start : start + trainer.eval_batch_size].to(device)
            preds.append(model(x).logits.argmax(-1).cpu())
    report, matrix = classification_report(torch.cat(preds), data.test.targets, list(labels))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "classification_report.json").write_text(json.dumps(report, indent=2))
        (folder / "confusion_matrix.json").write_text(
            json.dumps({"labels": list(labels), "counts": matrix.tolist()}))
        confusion_matrix_plot(matrix, list(labels), folder / "confusion_matrix.png",
                              "test split: rows = true class, columns = predicted")
        for path in sorted(folder.iterdir()):
            tracker.log_artifact(run_id, path, record.REPORT_DIR)
