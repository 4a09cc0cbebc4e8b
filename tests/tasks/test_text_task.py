"""The text classification loader on small files written here: formats, labels, splits,
tokenisers and one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from attnbench.errors import DataError
from attnbench.tasks import TASKS
from attnbench.tasks.base import PAD, UNK

Text = TASKS.get("text")


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def csv_rows(n: int = 30) -> str:
    rows = ["text,label"]
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        rows.append(f'"{label} review {i}, with a comma",{label}')
    return "\n".join(rows) + "\n"


def sst2_rows(n: int = 30) -> str:
    rows = ["sentence\tlabel"]
    for i in range(n):
        rows.append(f'a "quoted" sentence number {i} \t{i % 2}')
    return "\n".join(rows) + "\n"


def decode(data, split, row: int) -> list[str]:
    itos = data.extra["input_itos"]
    return [itos[i] for i in getattr(data, split).inputs[row].tolist() if i != PAD]


def test_csv_with_quoted_commas(tmp_path: Path) -> None:
    data = Text(path=write(tmp_path, "train.csv", csv_rows())).load(0)
    assert data.extra["labels"] == ["neg", "pos"] and data.spec.num_classes == 2
    assert (len(data.train), len(data.val), len(data.test)) == (24, 3, 3)
    for split in ("train", "val", "test"):
        s = getattr(data, split)
        for row in range(len(s)):
            words = decode(data, split, row)
            assert words[1:3] == ["review", words[2]] and words[3:] == ["with", "a", "comma"]
            label = data.extra["labels"][int(s.targets[row])]
            assert words[0] in (label, "<unk>")


def test_sst2_style_tsv_keeps_quotes(tmp_path: Path) -> None:
    path = write(tmp_path, "train.tsv", sst2_rows())
    data = Text(path=path, text_column="sentence").load(0)
    assert data.extra["labels"] == ["0", "1"]
    words = decode(data, "train", 0)
    assert words[:2] == ["a", '"quoted"']
    assert data.spec.max_len == 5 and data.primary_metric == "acc"


def test_jsonl_labels_sorted_numerically(tmp_path: Path) -> None:
    labels = [2, 10, 1]
    lines = [
        json.dumps({"text": f"lab{labels[i % 3]} item{i}", "label": labels[i % 3], "id": i})
        for i in range(30)
    ]
    data = Text(path=write(tmp_path, "d.jsonl", "\n".join(lines) + "\n\n")).load(0)
    assert data.extra["labels"] == ["1", "2", "10"]
    itos = data.extra["input_itos"]
    for split in (data.train, data.val, data.test):
        for row in range(len(split)):
            label = data.extra["labels"][int(split.targets[row])]
            assert itos[int(split.inputs[row, 0])] == f"lab{label}"


def test_separate_val_and_test_files(tmp_path: Path) -> None:
    train = write(tmp_path, "train.tsv", sst2_rows(20))
    val = write(tmp_path, "dev.tsv", "sentence\tlabel\nunseen words here\t1\n")
    test = write(tmp_path, "test.tsv", "sentence\tlabel\na sentence\t0\nnumber\t1\n")
    data = Text(path=train, val_path=val, test_path=test, text_column="sentence").load(0)
    assert (len(data.train), len(data.val), len(data.test)) == (20, 1, 2)
    assert data.val.inputs[0, :3].tolist() == [UNK, UNK, UNK]
    assert data.test.targets.tolist() == [0, 1]


def test_split_seed_fixes_the_split(tmp_path: Path) -> None:
    path = write(tmp_path, "train.csv", csv_rows())
    a, b = Text(path=path, split_seed=None).load(0), Text(path=path, split_seed=None).load(1)
    assert not torch.equal(a.test.inputs, b.test.inputs), "None: the run's seed carves"
    c, d = Text(path=path, split_seed=7).load(0), Text(path=path, split_seed=7).load(1)
    assert torch.equal(c.test.inputs, d.test.inputs) and c.fingerprint == d.fingerprint
    assert not torch.equal(c.test.inputs, Text(path=path).load(0).test.inputs)


def test_three_seeds_share_split_vocabulary_and_parameter_count(tmp_path: Path) -> None:
    """Issue 14: with the default split_seed, `seed` varies initialisation only, never the data."""
    from attnbench.backbones import BACKBONES
    from attnbench.config.build import attention_factory
    from attnbench.config.run_config import ComponentConfig

    rows = ["text,label"] + [f"review {i} says w{i % 11} and w{i % 7},{i % 3}" for i in range(90)]
    path = write(tmp_path, "train.csv", "\n".join(rows) + "\n")
    loads = [Text(path=path).load(seed) for seed in (0, 1, 2)]
    first = loads[0]
    params = []
    for data in loads:
        assert data.spec == first.spec and data.extra["input_itos"] == first.extra["input_itos"]
        assert data.fingerprint == first.fingerprint
        for split in ("train", "val", "test"):
            s, f = getattr(data, split), getattr(first, split)
            assert torch.equal(s.inputs, f.inputs) and torch.equal(s.targets, f.targets)
        model = BACKBONES.get("rnn")(
            data.spec, attention_factory(ComponentConfig("additive")), embed_dim=8, hidden=8
        )
        params.append(sum(p.numel() for p in model.parameters()))
    assert len(set(params)) == 1


def test_truncation_lowercase_and_empty_text(tmp_path: Path) -> None:
    rows = "text,label\nOne Two Three Four Five,a\n,b\n" + "x y,a\nz,b\n" * 5
    data = Text(path=write(tmp_path, "t.csv", rows), max_len=3, split_seed=0).load(0)
    all_rows = [s.inputs for s in (data.train, data.val, data.test)]
    assert data.spec.max_len == 3
    itos = data.extra["input_itos"]
    assert "One" not in itos
    assert any(r.tolist() == [UNK, PAD, PAD] for x in all_rows for r in x), "empty text -> UNK"


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_char_and_bpe_tokenizers(tmp_path: Path, tokenizer: str) -> None:
    path = write(tmp_path, "train.csv", csv_rows(60))
    task = Text(path=path, tokenizer=tokenizer, bpe_vocab_size=60)
    data = task.load(0)
    itos = data.extra["input_itos"]
    assert itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert "\u2581" in itos or any(s.startswith("\u2581") for s in itos)
    if tokenizer == "bpe":
        assert data.spec.vocab_size <= 60
    pieces = decode(data, "train", 0)
    assert "".join(pieces).replace("\u2581", " ").strip().split()[1] == "review"
    assert task.load(0).fingerprint == data.fingerprint


# -- errors: one line, naming the file and (where there is one) the line ----------------------


def assert_one_line(err: pytest.ExceptionInfo, path: str, *needles: str) -> None:
    message = str(err.value)
    assert "\n" not in message and path in message, message
    for needle in needles:
        assert needle in message, message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(DataError) as err:
        Text(path=missing).load(0)
    assert_one_line(err, missing, "file not found", "task.path")
    empty = write(tmp_path, "empty.csv", "")
    with pytest.raises(DataError) as err:
        Text(path=empty).load(0)
    assert_one_line(err, empty, "file is empty")
    header_only = write(tmp_path, "header.tsv", "sentence\tlabel\n")
    with pytest.raises(DataError) as err:
        Text(path=header_only, text_column="sentence").load(0)
    assert_one_line(err, header_only, "no data rows")


def test_missing_column_lists_columns(tmp_path: Path) -> None:
    rows = "id\tsentence\tlabel\n" + "".join(f"{i}\tsentence {i}\t{i % 2}\n" for i in range(9))
    path = write(tmp_path, "train.tsv", rows)
    with pytest.raises(DataError) as err:  # three columns: nothing is guessed
        Text(path=path).load(0)
    assert_one_line(err, path, "no column 'text'", "task.text_column", "'id', 'sentence', 'label'")
    sst2 = write(tmp_path, "sst2.tsv", sst2_rows())
    with pytest.raises(DataError) as err:  # a column named by the user is never replaced
        Text(path=sst2, text_column="review").load(0)
    assert_one_line(err, sst2, "no column 'review'", "'sentence', 'label'")
    jsonl = write(tmp_path, "d.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(DataError) as err:
        Text(path=jsonl).load(0)
    assert_one_line(err, jsonl, f"{jsonl}:2:", "no field 'label'", "'text'")


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", b"text,label\ngood,1\ncaf\xe9 latin-1,0\n")
    with pytest.raises(DataError) as err:
        Text(path=path).load(0)
    assert_one_line(err, path, f"{path}:3:", "not valid UTF-8", "0xe9")


def test_ragged_rows(tmp_path: Path) -> None:
    tsv = write(tmp_path, "r.tsv", "sentence\tlabel\nfine\t1\n\ntoo\tmany\t0\n")
    with pytest.raises(DataError) as err:
        Text(path=tsv, text_column="sentence").load(0)
    assert_one_line(err, tsv, f"{tsv}:4:", "expected 2 TSV fields", "got 3")
    csv = write(tmp_path, "r.csv", 'text,label\n"multi\nline",1\nshort\n')
    with pytest.raises(DataError) as err:
        Text(path=csv).load(0)
    assert_one_line(err, csv, f"{csv}:4:", "expected 2 CSV fields", "got 1")


def test_one_class_only(tmp_path: Path) -> None:
    path = write(tmp_path, "one.csv", "text,label\na,pos\nb,pos\nc,pos\n")
    with pytest.raises(DataError) as err:
        Text(path=path).load(0)
    assert_one_line(err, path, "one class only ('pos')")


def test_unparsable_jsonl_line(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n')
    with pytest.raises(DataError) as err:
        Text(path=path).load(0)
    assert_one_line(err, path, f"{path}:2:", "not valid JSON")
    path = write(tmp_path, "e.jsonl", '["a", 1]\n')
    with pytest.raises(DataError) as err:
        Text(path=path).load(0)
    assert_one_line(err, path, f"{path}:1:", "expected a JSON object")


def test_unknown_label_in_val_file(tmp_path: Path) -> None:
    train = write(tmp_path, "train.csv", csv_rows())
    val = write(tmp_path, "val.csv", "text,label\nx,pos\ny,maybe\n")
    with pytest.raises(DataError) as err:
        Text(path=train, val_path=val).load(0)
    assert_one_line(err, val, f"{val}:3:", "label 'maybe'", "'neg', 'pos'")


def test_unknown_extension_and_too_few_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "data.txt", "text,label\na,1\n")
    with pytest.raises(DataError) as err:
        Text(path=path).load(0)
    assert_one_line(err, path, "task.format")
    path = write(tmp_path, "two.csv", "text,label\na,1\nb,0\n")
    with pytest.raises(DataError) as err:
        Text(path=path).load(0)
    assert_one_line(err, path, "too few")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({}, "'task.path' is required"),
        (dict(path="a.csv", hf_dataset="imdb"), "set only one of them"),
        (dict(path="a.csv", val_fraction=0.0), "'task.val_fraction' = 0.0"),
        (dict(path="a.csv", val_fraction=0.5, test_fraction=0.5), "must be < 1"),
        (dict(path="a.csv", max_len=0), "'task.max_len' = 0"),
        (dict(path="a.csv", min_freq=0), "'task.min_freq' = 0"),
        (dict(path="a.csv", tokenizer="sentencepiece"), "whitespace, punct, char, bpe"),
        (dict(path="a.csv", format="xml"), "auto, csv, tsv, jsonl"),
    ],
)
def test_bad_arguments(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        Text(**kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_hf_dataset_without_the_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    with pytest.raises(DataError, match=r"pip install 'attnbench\[hf\]'"):
        Text(hf_dataset="imdb").load(0)


# -- columns per file and detected columns (issue 14) -----------------------------------------


def test_sst2_train_tsv_works_as_is(tmp_path: Path) -> None:
    """GLUE SST-2's train.tsv (columns sentence, label): the text column is detected and said."""
    path = write(tmp_path, "train.tsv", sst2_rows())
    data = Text(path=path).load(0)
    named = Text(path=path, text_column="sentence").load(0)
    assert torch.equal(data.train.inputs, named.train.inputs)
    assert data.extra["labels"] == ["0", "1"]
    [note] = data.extra["notes"]
    assert path in note and "'sentence'" in note and "'label'" in note and "task.path" in note
    assert named.extra["notes"] == []


def test_split_files_with_their_own_column_names_one_override_each(tmp_path: Path) -> None:
    train = write(tmp_path, "train.tsv", sst2_rows(20))
    # val: three columns, so nothing can be detected: one override names its text column
    val = write(tmp_path, "dev.csv", "id,review,label\n1,a sentence,1\n2,number,0\n")
    # test: a different label column name too (one override names it; the text is inherited)
    test = write(tmp_path, "test.tsv", "sentence\tpolarity\tsource\na sentence\t0\tx\n")
    task = Text(
        path=train,
        text_column="sentence",
        val_path=val,
        test_path=test,
        val_text_column="review",
        test_label_column="polarity",
    )
    data = task.load(0)
    assert (len(data.val), len(data.test)) == (2, 1)
    assert data.val.targets.tolist() == [1, 0] and data.test.targets.tolist() == [0]
    assert decode(data, "val", 0) == ["a", "sentence"]
    assert data.extra["notes"] == []
    with pytest.raises(DataError) as err:  # without the override: the knob to set is named
        Text(path=train, text_column="sentence", val_path=val).load(0)
    assert_one_line(err, val, "no column 'sentence'", "task.val_text_column", "'review'")


def test_split_file_columns_are_detected(tmp_path: Path) -> None:
    """A dev file whose text column is `content` needs no override: detected and noted."""
    train = write(tmp_path, "train.tsv", sst2_rows(20))
    dev = write(tmp_path, "dev.tsv", "content\tlabel\nunseen words here\t1\nnumber\t0\n")
    test = write(tmp_path, "test.jsonl", '{"Sentiment": 1, "body": "a sentence"}\n')
    data = Text(path=train, text_column="sentence", test_path=dev, val_path=test).load(0)
    assert data.test.targets.tolist() == [1, 0] and data.val.targets.tolist() == [1]
    assert decode(data, "val", 0) == ["a", "sentence"]
    notes = data.extra["notes"]
    assert len(notes) == 2
    assert "task.val_path" in notes[0] and "'body'" in notes[0] and "'Sentiment'" in notes[0]
    assert "task.test_path" in notes[1] and "'content'" in notes[1]


def test_split_column_without_its_file_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'task.test_text_column' = 'content'.*task.test_path"):
        Text(path="a.csv", test_text_column="content")


# -- encode_test: a trained run's saved encoder on another file (attnbench evaluate) -----------

TEST_CSV = (
    "text,label\n"
    '"pos review 7, with a comma",pos\n'
    "Unseen WORDS in a rather long review that runs past the width,neg\n"
    ",pos\n"
    "neg zzz review,neg\n"
)


def saved(data) -> dict:  # noqa: ANN001 - TaskData
    """The encoder state as `attnbench evaluate` reads it back from model/task.json."""
    return json.loads(json.dumps(data.extra["encoder"]))


@pytest.mark.parametrize("tokenizer", ["whitespace", "char", "bpe"])
def test_encode_test_reproduces_the_runs_test_split(tmp_path: Path, tokenizer: str) -> None:
    train = write(tmp_path, "train.csv", csv_rows(60))
    test = write(tmp_path, "test.csv", TEST_CSV)
    settings = {"tokenizer": tokenizer, "bpe_vocab_size": 60, "max_len": 12}
    data = Text(path=train, test_path=test, **settings).load(0)
    state = saved(data)
    assert state["labels"] == ["neg", "pos"] and state["columns"] == ["text", "label"]
    assert state["input"]["itos"] == data.extra["input_itos"]
    assert (state["input"]["bpe"] is not None) == (tokenizer == "bpe")
    gone = str(tmp_path / "moved-away.csv")  # evaluate never needs the training file
    split = Text(path=gone, test_path=test, **settings).encode_test(state, data.spec)
    assert split.align is None and split.inputs.shape == (4, data.spec.max_len)
    assert torch.equal(split.inputs, data.test.inputs)
    assert torch.equal(split.targets, data.test.targets)
    assert UNK in split.inputs[1].tolist() or tokenizer == "char"
    # The same rows under another column name, chosen with task.test_text_column.
    renamed = write(tmp_path, "renamed.csv", TEST_CSV.replace("text,label", "content,label", 1))
    task = Text(path=gone, test_path=renamed, test_text_column="content", **settings)
    assert torch.equal(task.encode_test(state, data.spec).inputs, data.test.inputs)


def test_encode_test_sst2_columns_are_inherited(tmp_path: Path) -> None:
    """A training file read with detected columns (sentence/label): the test file is read with
    those columns, as load read it."""
    train = write(tmp_path, "train.tsv", sst2_rows())
    test = write(tmp_path, "test.tsv", "sentence\tlabel\nsentence number 3 new\t1\n")
    data = Text(path=train, test_path=test).load(0)
    assert saved(data)["columns"] == ["sentence", "label"]
    split = Text(path=train, test_path=test).encode_test(saved(data), data.spec)
    assert torch.equal(split.inputs, data.test.inputs)


def test_encode_test_errors_are_one_line(tmp_path: Path) -> None:
    train = write(tmp_path, "train.csv", csv_rows())
    data = Text(path=train).load(0)
    state = saved(data)
    other = write(tmp_path, "other.csv", "text,label\nfine,pos\nmeh,neutral\n")
    with pytest.raises(DataError) as err:
        Text(path=train, test_path=other).encode_test(state, data.spec)
    assert_one_line(err, other, f"{other}:3:", "label 'neutral'", "'neg', 'pos'")
    with pytest.raises(DataError, match="^evaluate on another file needs task.test_path=FILE$"):
        Text(path=train).encode_test(state, data.spec)
    with pytest.raises(DataError) as err:
        Text(path=train, test_path=other, tokenizer="char").encode_test(state, data.spec)
    assert "task.tokenizer='char' differs from the trained run's 'whitespace'" in str(err.value)
    with pytest.raises(DataError, match="task.hf_dataset=imdb: evaluate reads no other file"):
        Text(hf_dataset="imdb", test_path=other).encode_test(state, data.spec)
