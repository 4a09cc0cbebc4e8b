"""Train/eval overlap counts of the file tasks (issue 14: a carved split of a phrase corpus leaks)
and the warning built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attnbench.errors import DataError
from attnbench.tasks import TASKS
from attnbench.tasks.overlap import normalise, overlap_counts, overlap_notes, overlap_warning


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
    assert message.endswith("give a task.test_path file disjoint from training")
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
    """A pair counts as a leak only when source and target were both seen; a source seen with
    another target is counted apart (issue 24: Tatoeba repeats sources with other translations)."""
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"go {i}.\tva {i} !\n" for i in range(20)), encoding="utf-8")
    test = tmp_path / "test.tsv"
    # 'Go 3 / autre': source seen, other target; 'GO 4! / Va 4': the pair seen; 'stay': new
    test.write_text("Go 3\tautre\nGO 4!\tVa 4\nstay\treste\nGo 5\tva 5\n", encoding="utf-8")
    data = TASKS.get("translation")(path=str(train), test_path=str(test)).load(0)
    overlap = data.extra["overlap"]
    assert (overlap["test"], overlap["test_source"]) == (2, 1)
    assert overlap["test_frac"] == 0.5 and overlap["test_source_frac"] == 0.25
    assert overlap["val"] == 0 and overlap["val_source"] == 0


def test_translation_warning_counts_same_target_apart() -> None:
    train = [("I run.", "Je cours."), ("I run.", "Je courrai."), ("Hi.", "Salut.")]
    test = [("I run!", "Je cours !"), ("i run", "Je cours vite."), ("Bye.", "Au revoir.")]
    overlap = overlap_counts(train, [("Hi", "Salut")], test)
    assert overlap == {
        "val": 1, "test": 1, "val_source": 0, "test_source": 1,
        "val_frac": 1.0, "test_frac": pytest.approx(1 / 3),
        "val_source_frac": 0.0, "test_source_frac": pytest.approx(1 / 3),
    }
    message = overlap_warning({"overlap": overlap})
    assert message is not None and "33.3% of test (1 pairs)" in message
    assert "source and target" in message and "task.val_dedup=true" in message
    assert "task.test_path" in message  # both splits leak: both remedies
    (note,) = overlap_notes({**overlap, "val_source_frac": 0.0})
    assert note.startswith("33.3% of test sources (1 pairs) occur in the training split with a "
                           "different target only")
    only_sources = {**overlap, "val": 0, "test": 0, "val_frac": 0.0, "test_frac": 0.0}
    assert overlap_warning({"overlap": only_sources}) is None  # a seen source is not a leak


def test_val_dedup_drops_validation_texts_seen_in_training(tmp_path: Path) -> None:
    rows = ["text,label"] + [f"Film {i} was good!,{i % 2}" for i in range(40)]
    rows += [f"film {i} was GOOD,{i % 2}" for i in range(10)]  # 10 texts twice (normalised)
    path = tmp_path / "dup.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    plain = TASKS.get("text")(path=str(path), val_fraction=0.2).load(0)
    leaked = plain.extra["overlap"]["val"]
    assert leaked > 0
    data = TASKS.get("text")(path=str(path), val_fraction=0.2, val_dedup=True).load(0)
    assert len(data.val) == len(plain.val) - leaked
    assert data.extra["overlap"]["val"] == 0 and data.extra["overlap"]["val_dropped"] == leaked
    assert torch.equal(data.train.targets, plain.train.targets)  # train and test untouched
    assert len(data.test) == len(plain.test)
    (note,) = data.extra["notes"]
    assert note == (f"task.val_dedup: dropped {leaked} of {len(plain.val)} validation examples "
                    "whose text occurs in the training split (lower case, no punctuation); "
                    f"{len(data.val)} left")
    assert data.fingerprint != plain.fingerprint
    every = tmp_path / "same.csv"
    every.write_text("text,label\n" + "same text,a\nsame text,b\n" * 20, encoding="utf-8")
    with pytest.raises(DataError, match=r"same.csv: all 4 validation examples occur in the "
                                        r"training split \(task.val_dedup=true"):
        TASKS.get("text")(path=str(every), val_fraction=0.1, val_dedup=True).load(0)


def test_val_dedup_of_translation_drops_seen_pairs_only(tmp_path: Path) -> None:
    train = tmp_path / "train.tsv"
    train.write_text("".join(f"go {i}.\tva {i} !\n" for i in range(20)), encoding="utf-8")
    val = tmp_path / "val.tsv"
    # a seen pair (dropped), a seen source with another target (kept), a new pair (kept)
    val.write_text("GO 3\tVa 3.\nGo 4\tpars 4\nstay\treste\n", encoding="utf-8")
    task = TASKS.get("translation")
    data = task(path=str(train), val_path=str(val), val_dedup=True).load(0)
    assert data.val.references == ["pars 4", "reste"]
    assert data.extra["overlap"]["val_dropped"] == 1 and data.extra["overlap"]["val"] == 0
    assert data.extra["overlap"]["val_source"] == 1
    assert data.extra["notes"][0].startswith("task.val_dedup: dropped 1 of 3 validation examples "
                                             "whose source and target pair occurs in the training")
    assert len(task(path=str(train), val_path=str(val)).load(0).val) == 3
