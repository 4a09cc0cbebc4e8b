"""Header rows of CSV/TSV data files (attnbench.tasks._files): a column named twice and a header
line repeated mid-file (files concatenated) each get one `warning:` line on stderr; the repeated
header is skipped, not read as a data row (it would become a class named after the label
column). A file that cannot be read is a one-line DataError naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from attnbench.errors import DataError
from attnbench.tasks import _files

COLUMNS = [("text", "text_column"), ("label", "label_column")]


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    _files.warn.cache_clear()  # warnings print once per process


def _warnings(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


@pytest.mark.parametrize("fmt,sep", [("csv", ","), ("tsv", "\t")])
def test_a_repeated_header_row_is_skipped_with_a_warning(
    tmp_path: Path, fmt: str, sep: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["text|label", "good film|pos", "bad film|neg", "text|label", "fine|pos", "dull|neg"]
    path = tmp_path / f"joined.{fmt}"
    path.write_text("\n".join(r.replace("|", sep) for r in rows) + "\n")
    read = _files.read_columns(str(path), fmt, COLUMNS, "path")
    assert read.column(1) == ["pos", "neg", "pos", "neg"]  # no class called 'label'
    assert read.lines == [2, 3, 5, 6]
    (line,) = _warnings(capsys)
    assert line.startswith(f"warning: {path}: ")
    assert "header row appears again at line(s) 4" in line and "1 such row(s) skipped" in line


def test_a_column_named_twice_names_the_column(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("text,label,text\nhello,pos,a\nbye,neg,b\n")
    read = _files.read_columns(str(path), "csv", COLUMNS, "path")
    assert read.column(0) == ["hello", "bye"]  # the first 'text' column
    (line,) = _warnings(capsys)
    assert "column 'text' appears 2 times in the header (columns 1, 3)" in line
    _files.read_columns(str(path), "csv", COLUMNS, "path")  # read again (the job): no repeat
    assert _warnings(capsys) == []


def test_a_clean_file_warns_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("text,label\nhello,pos\nbye,neg\n")
    _files.read_columns(str(path), "csv", COLUMNS, "path")
    assert _warnings(capsys) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "secret.csv"
    path.write_text("text,label\nhello,pos\n")
    path.chmod(0)
    with pytest.raises(DataError, match=r"secret.csv: cannot read the file \(Permission denied\)"):
        _files.read_bytes(str(path), "path")


def test_a_read_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same path as a permission error, for any user (root included)."""
    path = tmp_path / "data.csv"
    path.write_text("text,label\nhello,pos\n")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(DataError, match=r"data.csv: cannot read the file \(Permission denied\) "
                                        r"\(task.path\)"):
        _files.read_bytes(str(path), "path")
