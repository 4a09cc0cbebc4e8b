"""Every task YAML under conf/task/ (found by glob): its keys are the constructor's, its values
the defaults, and the data it loads is consistent with its spec and deterministic in the seed."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch
import yaml

from attnbench.registry import check_params, params_of
from attnbench.tasks import TASKS
from attnbench.tasks.base import EOS, IGNORE, PAD, Task, TaskData
from attnbench.tasks.metrics import METRIC_NAMES

CONF = Path(__file__).resolve().parents[2] / "conf" / "task"
YAMLS = sorted(CONF.glob("*.yaml"))


def _load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_sample_file(tmp_path: Path, kind: str) -> str:
    """A small data file for a file task of ``kind``: a text,label CSV or a pairs TSV."""
    if kind == "classify":
        lines = ["text,label"]
        for i in range(60):
            label = ["neg", "pos", "neutral"][i % 3]
            lines.append(f"sample {label} text number {i} with words w{i % 7},{label}")
        path = tmp_path / "data.csv"
    else:
        lines = []
        for i in range(60):
            lines.append(f"go {i} now .\tva {i} maintenant !\tCC-BY 2.0 (France) #{i} (user)")
        path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def yaml_params(path: Path, tmp_path: Path) -> dict:
    cfg = _load_yaml(path)
    params = {k: v for k, v in cfg.items() if k != "name"}
    cls = TASKS.get(cfg["name"])
    if "path" in params and params["path"] is None:  # a file task: give it a small file
        params["path"] = write_sample_file(tmp_path, cls.kind)
    return params


def check_task_data(data: TaskData, kind: str) -> None:
    """Shapes, ranges and vocabularies agree with ``data.spec`` and the base.py contract."""
    spec = data.spec
    assert spec.kind == kind
    assert re.fullmatch(r"[0-9a-f]{16}", data.fingerprint)
    assert data.primary_metric in data.metrics
    assert set(data.metrics) <= set(METRIC_NAMES)
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        x, y = split.inputs, split.targets
        n = len(split)
        assert n > 0, name
        assert x.dtype == torch.long and y.dtype == torch.long
        assert x.shape[1] <= spec.max_len  # a test split drawn longer sets spec.max_len
        if spec.channels == 1:
            assert x.dim() == 2
        else:
            assert x.dim() == 3 and x.shape[2] == spec.channels
        assert int(x.min()) >= 0 and int(x.max()) < spec.vocab_size
        first = x[..., 0] if x.dim() == 3 else x
        assert bool((first != PAD).any(dim=1).all()), "every row has a real token"
        if kind == "classify":
            assert spec.num_classes >= 2
            if spec.target_per_position:
                assert y.shape == (n, x.shape[1])
                scored = y != IGNORE
                assert bool(scored.any(dim=1).all())
                assert int(y[scored].min()) >= 0 and int(y[scored].max()) < spec.num_classes
            else:
                assert y.shape == (n,)
                assert int(y.min()) >= 0 and int(y.max()) < spec.num_classes
        else:
            assert y.shape[0] == n and y.shape[1] <= spec.max_target_len
            assert int(y.min()) >= 0 and int(y.max()) < spec.target_vocab_size
            is_eos = y == EOS
            assert bool((is_eos.sum(dim=1) == 1).all()), "exactly one EOS per target"
            eos_at = is_eos.long().argmax(dim=1)
            pos = torch.arange(y.shape[1])
            assert bool((y[pos > eos_at[:, None]] == PAD).all()), "only PAD after EOS"
            assert bool((y[pos < eos_at[:, None]] != PAD).all()), "no PAD before EOS"
            assert data.target_itos is not None
            assert len(data.target_itos) == spec.target_vocab_size
        if split.align is not None:
            assert split.align.shape == y.shape[:2]
            assert int(split.align.min()) >= -1 and int(split.align.max()) < spec.max_len
    widths = [getattr(data, s).inputs.shape[1] for s in ("train", "val", "test")]
    assert max(widths) == spec.max_len, "the spec's length is the longest split's"
    itos = data.extra.get("input_itos")
    if itos is not None:
        assert len(itos) == spec.vocab_size


def test_task_yamls_exist_for_every_task() -> None:
    assert {p.stem for p in YAMLS} == set(TASKS.names())


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_yaml_matches_constructor(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ") and f"Use: task={path.stem}" in lines[0]
    cfg = _load_yaml(path)
    assert cfg["name"] == path.stem
    cls = TASKS.get(cfg["name"])
    params = {k: v for k, v in cfg.items() if k != "name"}
    assert set(params) == set(params_of(cls)), "YAML keys are exactly the constructor kwargs"
    assert check_params(cls, params, "task") == []
    for key, p in params_of(cls).items():
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, key
        assert p.default == params[key], f"{key}: YAML {params[key]!r} != default {p.default!r}"
    assert cls.kind in ("classify", "transduce")
    assert set(cls.metrics) <= set(METRIC_NAMES)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_yaml_task_loads_consistent_deterministic_data(path: Path, tmp_path: Path) -> None:
    cls = TASKS.get(_load_yaml(path)["name"])
    task = cls(**yaml_params(path, tmp_path))
    assert isinstance(task, Task)
    a, b, c = task.load(0), task.load(0), task.load(1)
    check_task_data(a, cls.kind)
    assert tuple(a.metrics) == tuple(cls.metrics)
    assert a.fingerprint == b.fingerprint
    for name in ("train", "val", "test"):
        sa, sb = getattr(a, name), getattr(b, name)
        assert torch.equal(sa.inputs, sb.inputs) and torch.equal(sa.targets, sb.targets)
    if "split_seed" in params_of(cls):  # file tasks: the seed never reshuffles the data
        assert c.fingerprint == a.fingerprint
        assert torch.equal(a.train.inputs, c.train.inputs)
    else:  # synthetic tasks: generated from the seed by design
        assert c.fingerprint != a.fingerprint
        assert not torch.equal(a.train.inputs, c.train.inputs)


def test_check_params_reports_bad_types_and_keys() -> None:
    problems = check_params(
        TASKS.get("text"), {"tokenizer": "sentencepiece", "max_len": "5", "maxlen": 3}, "task"
    )
    assert problems == [
        "'task.tokenizer' = 'sentencepiece' should be one of 'whitespace', 'punct', 'char', 'bpe'",
        "'task.max_len' = '5' should be int",
        problems[2],
    ]
    assert problems[2].startswith("Unknown key 'task.maxlen'. Valid keys: bpe_vocab_size")
