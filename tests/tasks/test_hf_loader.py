"""The Hugging Face `datasets` loader (task.hf_dataset), for real, offline.

`datasets.load_dataset` takes a Hub name or a local folder of split files; with no network here
the tests give it a folder the test writes (train.csv, test.csv), in offline mode and with its
cache in a temporary HF_HOME, and run `attnbench run task=text task.hf_dataset=<folder>` end to
end. Bad names, splits and columns must each be one error line. `datasets` is the optional extra
attnbench[hf] (also in [dev]); without it these tests skip.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from tests.conftest import all_runs

pytest.importorskip("datasets")

WORDS = {"pos": ["good", "great", "fine", "happy", "nice"], "neg": ["bad", "awful", "sad", "poor"]}


@pytest.fixture
def hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A corpus folder as `load_dataset` reads it (one CSV per split), offline, private cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_home" / "datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    folder = tmp_path / "corpus"
    folder.mkdir()
    rng = random.Random(0)
    for split, n in (("train", 240), ("test", 60)):
        with (folder / f"{split}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["sentence", "label"])
            for _ in range(n):
                label = rng.choice(sorted(WORDS))
                words = rng.choices(WORDS[label], k=4) + rng.choices(["the", "a", "film"], k=3)
                rng.shuffle(words)
                writer.writerow([" ".join(words), label])
    return folder


def test_load_split_reads_rows_columns_and_fingerprint(hf_offline: Path) -> None:
    from attnbench.tasks._hf import load_split

    rows = load_split(str(hf_offline), None, "train", "sentence", "label")
    assert len(rows) == 240 and rows.lines[:2] == [1, 2]
    with (hf_offline / "train.csv").open(encoding="utf-8") as fh:
        first = next(iter(csv.DictReader(fh)))
    assert rows.fields[0] == (first["sentence"], first["label"])
    assert rows.origin == f"{hf_offline}[train]"
    assert rows.content.startswith(f"hf:{hf_offline}:None:train:".encode())
    assert len(rows.content) > len(f"hf:{hf_offline}:None:train:")  # + datasets' fingerprint


def test_run_on_a_datasets_corpus_trains_and_logs(cli, runs_dir: Path, hf_offline: Path) -> None:
    result = cli(
        "run", "task=text", "backbone=rnn", "attention=additive",
        f"task.hf_dataset={hf_offline}", "task.text_column=sentence", "trainer.epochs=3",
    )
    assert result.exit_code == 0, result.output
    (run,) = all_runs(runs_dir)
    assert run.status == "FINISHED"
    assert run.params["task.hf_dataset"] == str(hf_offline)
    assert run.tags["attnbench.data_fingerprint"]
    assert 0.0 <= run.metrics["test/acc"] <= 1.0 and "test/f1" in run.metrics
    assert run.metrics["test/acc"] > 0.6  # the two classes use disjoint words: easy to learn


@pytest.mark.parametrize(("extra", "says"), [
    (["task.hf_test_split=validation"], ["[validation]", "Unknown split", "'train', 'test'"]),
    (["task.text_column=text"], ["[train]: no column 'text'", "'sentence', 'label'"]),
    ([], ["no column 'text' (task.text_column)"]),
])
def test_bad_split_or_column_is_one_line(
    cli, runs_dir: Path, hf_offline: Path, extra: list[str], says: list[str]
) -> None:
    args = ["run", "task=text", f"task.hf_dataset={hf_offline}", *extra]
    if "task.text_column=text" not in extra and extra:
        args.append("task.text_column=sentence")
    result = cli(*args)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in says:
        assert fragment in lines[0], lines[0]
    assert all_runs(runs_dir) == []


def test_unreachable_hub_name_is_one_line(cli, runs_dir: Path, hf_offline: Path) -> None:
    result = cli("run", "task=text", "task.hf_dataset=nobody/no-such-corpus")
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    assert "nobody/no-such-corpus[train]: cannot load from the Hugging Face Hub" in lines[0]
    assert all_runs(runs_dir) == []
