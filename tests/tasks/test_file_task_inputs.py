"""The file tasks' shared settings (issue 25: one block, one reader per format) and the bad
inputs they refuse in one line naming the file (issue 23): every text empty, the text column
being the label column, a NUL byte, and a Hugging Face corpus with no network."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from attnbench.errors import DataError
from attnbench.registry import check_params, params_of
from attnbench.tasks import TASKS
from attnbench.tasks._files import read_columns
from attnbench.tasks._filetask import FileTask

Text, Translation = TASKS.get("text"), TASKS.get("translation")


def test_shared_settings_are_declared_once() -> None:
    shared = {f.name for f in dataclasses.fields(FileTask)}
    assert {"path", "val_path", "test_path", "val_fraction", "test_fraction", "split_seed",
            "val_dedup", "tokenizer", "lowercase", "min_freq", "max_vocab", "bpe_vocab_size",
            "max_len"} == shared
    for cls in (Text, Translation):
        assert issubclass(cls, FileTask) and shared <= set(params_of(cls))
        own = set(cls.__dict__.get("__annotations__", {}))
        assert not own & (shared - {"tokenizer", "lowercase", "max_len"}), "no shared key again"
    # translation keeps its own defaults for the three it redeclares
    defaults = {k: p.default for k, p in params_of(Translation).items()}
    assert (defaults["tokenizer"], defaults["lowercase"], defaults["max_len"]) == ("punct", False,
                                                                                 50)
    assert check_params(Translation, {"tokenizer": "sentencepiece"}, "task") == [
        "'task.tokenizer' = 'sentencepiece' should be one of 'whitespace', 'punct', 'char', 'bpe'"]


def test_one_reader_reads_columns_by_name_or_index(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("en\tfr\tnote\nGo.\tVa !\tx\n\nHi.\tSalut !\ty\n", encoding="utf-8")
    by_name = read_columns(str(path), "tsv", [("fr", "a"), ("en", "b")], "path")
    by_index = read_columns(str(path), "tsv", [(1, "a"), (0, "b")], "path", header=True)
    assert by_name.fields == by_index.fields == [("Va !", "Go."), ("Salut !", "Hi.")]
    assert by_name.lines == by_index.lines == [2, 4]
    raw = read_columns(str(path), "tsv", [(0, "a")], "path", header=False)
    assert raw.fields[0] == ("en",) and len(raw) == 3


def write(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def one_line(err: pytest.ExceptionInfo, *needles: str) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


def test_every_text_empty_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "empty_texts.csv", b"text,label\n" + b' ,pos\n"",neg\n' * 10)
    with pytest.raises(DataError) as err:
        Text(path=path).load(0)
    one_line(err, f"{path}: every text in column 'text' is empty (20 rows)")
    jsonl = write(tmp_path, "empty.jsonl", b'{"text": "", "label": 1}\n{"text": " ", "label": 0}\n')
    with pytest.raises(DataError, match="empty.jsonl: every text in column 'text' is empty"):
        Text(path=jsonl).load(0)
    some = write(tmp_path, "some.csv", b"text,label\n" + b",pos\nfine words,neg\n" * 10)
    assert len(Text(path=some).load(0).train) == 16  # an empty text among others stays allowed


def test_text_column_equal_to_the_label_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        Text(path="x.csv", text_column="label")
    one_line(err, "'task.text_column' = 'task.label_column' = 'label'",
             "the model would read its own label")
    train = write(tmp_path, "train.csv", b"text,label\n" + b"a b,x\nc d,y\n" * 10)
    val = write(tmp_path, "val.csv", b"review,stars\ngood,x\nbad,y\n")
    with pytest.raises(DataError) as err:
        Text(path=train, val_path=val, val_text_column="stars", val_label_column="stars").load(0)
    one_line(err, f"{val} (task.val_path): 'task.val_text_column' = 'task.val_label_column' = "
                  "'stars'")


@pytest.mark.parametrize(("name", "content", "where"), [
    ("nul.csv", b"text,label\nhello,pos\nbad\x00d,neg\n", "nul.csv:3: NUL byte (0x00) at column 4"),
    ("nul.tsv", b"text\tlabel\nhello\tpos\n\x00\tneg\n", "nul.tsv:3: NUL byte (0x00) at column 1"),
    ("nul.jsonl", b'{"text": "a\x00", "label": 1}\n', "nul.jsonl:1: NUL byte (0x00) at column 12"),
    ("utf16.csv", "text,label\nhello,pos\n".encode("utf-16"), "utf16.csv:1: NUL byte"),
])
def test_a_nul_byte_is_refused_with_its_line_and_column(
    tmp_path: Path, name: str, content: bytes, where: str
) -> None:
    with pytest.raises(DataError) as err:
        Text(path=write(tmp_path, name, content)).load(0)
    one_line(err, where, "save the file as UTF-8")


def test_a_nul_byte_in_translation_pairs_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "pairs.tsv", b"Go.\tVa !\nHi.\tSa\x00lut !\n")
    with pytest.raises(DataError) as err:
        Translation(path=path).load(0)
    one_line(err, "pairs.tsv:2: NUL byte (0x00) at column 7")


def hub_at_a_closed_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    """Point the Hugging Face client at a local port nothing listens on (online mode, an empty
    cache); returns the port."""
    pytest.importorskip("datasets")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for scheme in ("http", "https", "all"):  # no proxy from the environment in between
        for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    return port


def test_no_network_is_one_line_without_retries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A Hub name with the Hub unreachable: one connection attempt, then the cache alone (no
    retry lines from the Hub client)."""
    from attnbench.tasks import _hf

    port = hub_at_a_closed_port(monkeypatch, tmp_path)
    assert _hf.hub_unreachable("nobody/no-such-corpus").startswith(f"127.0.0.1:{port}: ")
    assert _hf.hub_unreachable(str(tmp_path)) is None  # a local folder needs no network
    with pytest.raises(DataError) as err:
        _hf.load_split("nobody/no-such-corpus", None, "train", "text", "label")
    one_line(err, "nobody/no-such-corpus[train]: cannot load from the Hugging Face Hub: no "
                  f"connection to 127.0.0.1:{port}", "not in the local cache")
    captured = capfd.readouterr()
    assert "Retry" not in captured.err + captured.out
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE is False  # offline mode was for that call only


def test_the_connection_check_goes_to_the_proxy(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """Behind a proxy the Hub is reached through it: the proxy is what must accept."""
    from attnbench.tasks import _hf

    port = hub_at_a_closed_port(monkeypatch, tmp_path)
    monkeypatch.delenv("HF_ENDPOINT")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    assert (_hf.hub_unreachable("imdb") or "").startswith(f"127.0.0.1:{port}: ")
