"""Sizes the resource pre-flight models from the components' own facts (issue 23): each refused
by `attnbench run`/`sweep` with exit 2 and ONE line naming the setting, before anything is
written (no run in the store, no Hydra folder), by a process that stays small.

Placeholders in the arguments: {csv} = a small text-classification CSV, {tsv} = a small
translation TSV (file tasks are estimated once the file is read, before the model is built).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.errors.test_bad_input_corpus import (
    PEAK_LIMIT_MB,
    Case,
    _fill,
    _lines,
    case,
    refusing_peak_mb,
    run_count,
)

CASES = [
    case("size-ffn-mult", "run backbone.ffn_mult=100000", "'backbone.ffn_mult' = 100000",
         "activations", "memory available"),
    case("size-additive-hidden", "run attention=additive attention.hidden=100000000",
         "'attention.hidden' = 100000000", "memory available"),
    case("size-lowrank-max-len", "run attention=lowrank attention.max_len=8",
         "'attention.max_len' = 8", "this task's sequences give it 24", "attention.max_len>=24"),
    case("size-lowrank-max-len-seq2seq",
         "run task=reverse backbone=seq2seq attention=lowrank attention.max_len=16",
         "'attention.max_len' = 16", "attention.max_len>=20"),
    case("size-rnn-embed-dim", "run backbone=rnn backbone.embed_dim=10000000",
         "'backbone.embed_dim' = 10000000"),
    case("size-file-task-model", "run task=text task.path={csv} backbone.d_model=100000",
         "'backbone.d_model' = 100000", "parameters"),
    case("size-file-task-rnn", "run task=text task.path={csv} backbone=rnn "
         "backbone.embed_dim=100000000", "'backbone.embed_dim' = 100000000"),
    case("size-file-task-lowrank", "run task=translation task.path={tsv} attention=lowrank "
         "attention.max_len=3", "'attention.max_len' = 3", "attention.max_len>="),
    case("size-file-task-in-a-sweep", "sweep seed=0,1 task=text task.path={csv} backbone=rnn "
         "backbone.hidden=1000000", "'backbone.hidden' = 1000000"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("size_data")
    text = root / "train.csv"
    text.write_text("text,label\n" + "".join(
        f"a text number {i} about w{i % 9},{'pos' if i % 2 else 'neg'}\n" for i in range(60)),
        encoding="utf-8")
    pairs = root / "pairs.tsv"
    pairs.write_text("".join(f"go {i} now .\tva {i} maintenant !\n" for i in range(60)),
                     encoding="utf-8")
    return {"csv": text, "tsv": pairs}


def written(runs_dir: Path) -> list[str]:
    """What is under runs_dir besides the empty store the fixture put there."""
    return sorted(str(p.relative_to(runs_dir)) for p in runs_dir.rglob("*")
                  if not p.name.startswith("mlflow.db"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_size_is_refused_in_one_line_before_anything_is_written(
    case: Case, cli, runs_dir: Path, files: dict[str, Path]
) -> None:
    args = [_fill(a, **files) for a in case.args]
    result = cli(*args, smoke=case.smoke)
    output = result.output
    assert "Traceback" not in output
    lines = _lines(output)
    assert len(lines) == 1, output
    assert result.exit_code == 2, output
    assert lines[0].startswith("error: ")
    for fragment in case.says:
        assert fragment in lines[0], lines[0]
    assert run_count(runs_dir) == 0
    assert written(runs_dir) == []


@pytest.mark.slow  # ~12 s: a fresh interpreter reads the file and sizes the model
def test_refusing_a_file_task_model_stays_under_1_gb(runs_dir: Path, tmp_path: Path,
                                                     files: dict[str, Path]) -> None:
    """The file is read, the model of ~10¹¹ parameters is only sized (meta device), never
    built: the refusing process stays small."""
    args = ["run", "task=text", f"task.path={files['csv']}", "backbone.d_model=100000",
            "trainer=smoke", f"runs_dir={runs_dir}"]
    code, peak_mb, stderr = refusing_peak_mb(args, tmp_path)
    assert code == 2, stderr
    assert _lines(stderr)[-1].startswith("error: 'backbone.d_model' = 100000")
    assert peak_mb < PEAK_LIMIT_MB, f"the refusing process peaked at {peak_mb:.0f} MB"
    assert run_count(runs_dir) == 0 and written(runs_dir) == []
