"""Train/eval overlap counts of the file tasks (issue 14: a carved split of a phrase corpus leaks)
and the warning built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnbench.tasks import TASKS
from attnbench.tasks.overlap import normalise, overlap_counts, overlap_warning


def test_normalise() -> None:
    assert normalise("  It's   a GOOD,\tfilm! ") == "it s a good film"
    assert normalise("it 's a good film .") == "it s a good film"  # pre-tokenised SST style
    assert normalise("Café — déjà vu") == "café déjà vu"
    assert normalise("?!") == ""


def test_overlap_counts_by_hand() -> None:
    train = ["A fine film.", "a dull plot", "...", "the end"]
    val = ["a FINE film", "new text", "!!"]  # 1 of 3 (punctuation-only never counts)
    test = ["the end!", "A dull   plot", "fine film", "a fine"]  # 2 of 4: substrings do not count
    assert overlap_counts(train, val, test) == {
        "val": 1,
        "test": 2,
        "val_frac": pytest.approx(1 / 3),
        "test_frac": 0.5,
    }
    assert overlap_counts(train, [], [])["val_frac"] == 0.0


def test_warning_above_threshold_only() -> None:
    assert overlap_warning({}) is None
    extra = {"overlap": {"val": 1, "test": 30, "val_frac": 0.01, "test_frac": 0.3}}
    message = overlap_warning(extra)
    assert message is not None and "\n" not in message
    assert "30.0% of test (30 examples)" in message and "of val" not in message
    assert overlap_warning(extra, threshold=0.5) is None
    assert "1.0% of val" in (overlap_warning(extra, threshold=0.0) or "")


def test_text_task_reports_a_leaking_carved_split(tmp_path: Path) -> None:
    """Each sentence's sub-phrases are training rows of their own, as in SST."""
    rows = ["text,label"]
    for i in range(40):
        rows += [f"film {i} was good and long,1", f"Film {i} was good!,1", f"plot {i} was dull,0"]
    path = tmp_path / "phrases.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    data = TASKS.get("text")(path=str(path)).load(0)
    overlap = data.extra["overlap"]
    assert set(overlap) == {"val", "test", "val_frac", "test_frac"}
    assert overlap["val"] == 0 and overlap["test"] == 0  # every row is distinct when normalised
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join(rows + rows[1:]) + "\n", encoding="utf-8")  # each row twice
    data = TASKS.get("text")(path=str(dup)).load(0)
    overlap = data.extra["overlap"]
    assert overlap["val"] > 0 and overlap["val_frac"] == overlap["val"] / len(data.val)
    assert overlap_warning(data.extra) is not None


def test_given_split_files_and_translation_sources(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"go {i}.\tva {i} !\n" for i in range(20)), encoding="utf-8")
    test = tmp_path / "test.tsv"
    test.write_text("Go 3\tautre\nstay\treste\n", encoding="utf-8")  # source 'go 3' leaks
    data = TASKS.get("translation")(path=str(train), test_path=str(test)).load(0)
    assert data.extra["overlap"]["test"] == 1 and data.extra["overlap"]["test_frac"] == 0.5
    assert data.extra["overlap"]["val"] == 0
