"""Reading CSV, TSV and JSONL data files with one-line errors (``file:line: what was expected``).

One reader per format, shared by every file task: ``read_columns`` reads the chosen columns of a
CSV or TSV file (by header name, or by 0-based index with or without a header row) or the chosen
fields of a JSONL file. Every problem raises ``attnbench.errors.DataError`` whose message names
the file, the line when there is one, and what was expected. Blank lines are skipped. Files are
decoded as UTF-8 (a byte-order mark is allowed; a NUL byte, the mark of a binary or UTF-16 file,
is refused with its line and column). TSV is split on tabs without any quoting (GLUE's and
Tatoeba's convention: a ``"`` is an ordinary character); CSV follows RFC 4180 quoting (Python's
``csv``).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from attnbench.errors import DataError

Format = Literal["csv", "tsv", "jsonl"]
EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


@dataclass
class Rows:
    """Selected fields of the data rows of one source, with the line each row starts on."""

    origin: str  # the file path as given (or a dataset name), used in messages
    lines: list[int] = field(default_factory=list)
    fields: list[tuple[str, ...]] = field(default_factory=list)
    content: bytes = b""  # the raw file bytes, for the data fingerprint

    def __len__(self) -> int:
        return len(self.fields)

    def column(self, i: int) -> list[str]:
        return [f[i] for f in self.fields]

    def where(self, i: int) -> str:
        """``origin:line`` of row ``i``."""
        return f"{self.origin}:{self.lines[i]}"

    def subset(self, index: Sequence[int]) -> Rows:
        return Rows(
            self.origin,
            [self.lines[i] for i in index],
            [self.fields[i] for i in index],
            self.content,
        )


def read_bytes(path: str, knob: str) -> bytes:
    """The file's bytes; DataError if it is missing, not a file or empty."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{path}: file not found (task.{knob})")
    if not p.is_file():
        raise DataError(f"{path}: not a file (task.{knob} must name a data file)")
    try:
        data = p.read_bytes()
    except OSError as err:  # e.g. no read permission
        raise DataError(f"{path}: cannot read the file ({err.strerror}) (task.{knob})") from None
    if not data.strip():
        raise DataError(f"{path}: file is empty")
    return data


@functools.cache
def warn(message: str) -> None:
    """One `warning:` line on stderr, once per process (data is read again by every job)."""
    sys.stderr.write(f"warning: {message}\n")


def _header_warnings(path: str, header: Sequence[str], repeats: Sequence[int]) -> None:
    """A column name the header holds twice (only the first is read), and header rows repeated
    further down (a concatenation of files: those rows are skipped, not read as data)."""
    for name in dict.fromkeys(h for h in header if header.count(h) > 1):
        where = [i + 1 for i, h in enumerate(header) if h == name]
        warn(f"{path}: column {name!r} appears {len(where)} times in the header (columns "
             f"{', '.join(map(str, where))}); only column {where[0]} is read")
    if repeats:
        shown = ", ".join(map(str, repeats[:5])) + (", ..." if len(repeats) > 5 else "")
        warn(f"{path}: the header row appears again at line(s) {shown} (files concatenated?); "
             f"{len(repeats)} such row(s) skipped")


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column in bytes) of byte ``offset``."""
    return data.count(b"\n", 0, offset) + 1, offset - (data.rfind(b"\n", 0, offset) + 1) + 1


def decode(path: str, data: bytes) -> str:
    """The file's text; DataError naming the line and column of a NUL byte (a binary or UTF-16
    file: csv refuses it, TSV and JSONL would read it as part of a text) or invalid UTF-8."""
    nul = data.find(b"\x00")
    if nul >= 0:
        line, column = _position(data, nul)
        raise DataError(
            f"{path}:{line}: NUL byte (0x00) at column {column}: a binary or UTF-16 file, not "
            "UTF-8 text; save the file as UTF-8"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line, column = _position(data, err.start)
        raise DataError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{data[err.start]:02x} at column {column}); "
            "save the file as UTF-8"
        ) from None


def detect_format(path: str, fmt: str, knob: str = "format") -> Format:
    if fmt != "auto":
        return fmt  # type: ignore[return-value]
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise DataError(
            f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
            f"set task.{knob} to one of csv, tsv, jsonl"
        )
    return EXTENSIONS[suffix]


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) of the non-blank lines."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield number, line


def _delimited(path: str, text: str, fmt: Format) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of the non-blank rows of a CSV or TSV text."""
    if fmt == "tsv":
        for number, line in _lines(text):
            yield number, line.split("\t")
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield start, row
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({err})") from None


def _missing_column(path: str, name: str, knob: str, found: Sequence[str]) -> DataError:
    shown = ", ".join(repr(c) for c in found) or "(none)"
    return DataError(f"{path}: no column {name!r} (task.{knob}); columns found: {shown}")


Column = str | int  # a column by header name (CSV/TSV with a header, JSONL field) or 0-based index


def read_columns(
    path: str, fmt: Format, columns: Sequence[tuple[Column, str]], knob: str, header: bool = True
) -> Rows:
    """The chosen columns of every data row of a CSV/TSV/JSONL file: the one reader of each format.

    ``columns``: (column, the task knob that names it) pairs, for the messages. A column named by
    its header name needs the header row (CSV/TSV; every row then has the header's width) or a
    JSONL field; a column given by its 0-based index reads a CSV/TSV row by position (``header``
    false: no header row; extra fields are ignored).
    """
    data = read_bytes(path, knob)
    text = decode(path, data)
    rows = Rows(path, content=data)
    records = _jsonl(path, text, columns) if fmt == "jsonl" else _table(
        path, text, fmt, columns, header)
    for number, values in records:
        rows.lines.append(number)
        rows.fields.append(values)
    if not rows.fields:
        after = " after the header" if fmt != "jsonl" and header else ""
        raise DataError(f"{path}: no data rows{after}")
    return rows


def _jsonl(path: str, text: str, columns: Sequence[tuple[Column, str]]
           ) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(line number, the fields' values) of a JSONL text, one object per line."""
    for number, line in _lines(text):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno}); "
                "expected one JSON object per line"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(
                f"{path}:{number}: expected a JSON object per line, got {type(obj).__name__}"
            )
        values = []
        for name, col_knob in columns:
            if name not in obj:
                found = ", ".join(repr(k) for k in obj) or "(none)"
                raise DataError(
                    f"{path}:{number}: no field {name!r} (task.{col_knob}); fields: {found}"
                )
            value = obj[name]
            if value is None or isinstance(value, (dict, list)):
                raise DataError(
                    f"{path}:{number}: field {name!r} should be a string or number, "
                    f"got {json.dumps(value)[:40]}"
                )
            values.append(str(value))
        yield number, tuple(values)


def _table(path: str, text: str, fmt: Format, columns: Sequence[tuple[Column, str]],
           header: bool) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(line number, the chosen fields) of a CSV/TSV text (see ``read_columns``)."""
    body = _delimited(path, text, fmt)
    names: list[str] = []
    if header:
        first = next(body, None)
        if first is None:
            raise DataError(f"{path}: file is empty (expected a header row naming the columns)")
        names = [h.strip() for h in first[1]]
    index = []
    for column, col_knob in columns:
        if isinstance(column, int):
            index.append(column)
        elif column in names:
            index.append(names.index(column))
        else:
            raise _missing_column(path, column, col_knob, names)
    by_name = any(isinstance(column, str) for column, _ in columns)
    need = max(index) + 1
    repeats = []
    for number, row in body:
        if by_name and [c.strip() for c in row] == names:
            repeats.append(number)
            continue
        if by_name and len(row) != len(names):
            raise DataError(
                f"{path}:{number}: expected {len(names)} {fmt.upper()} fields "
                f"({', '.join(names)}), got {len(row)}"
            )
        if len(row) < need:
            sep = "tab-separated" if fmt == "tsv" else "comma-separated"
            raise DataError(
                f"{path}:{number}: expected at least {need} {sep} fields, got {len(row)}"
            )
        yield number, tuple(row[i] for i in index)
    if by_name:
        _header_warnings(path, names, repeats)


def column_names(path: str, fmt: Format, knob: str) -> list[str]:
    """The column names of a file ``read_columns`` can read: a CSV/TSV header row, or the fields
    of a JSONL file's first object ([] when there is none), to choose columns before reading.
    Malformed content is left for ``read_columns`` to report."""
    text = decode(path, read_bytes(path, knob))
    if fmt == "jsonl":
        for _, line in _lines(text):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                return []
            return [str(k) for k in obj] if isinstance(obj, dict) else []
        return []
    first = next(_delimited(path, text, fmt), None)
    return [] if first is None else [h.strip() for h in first[1]]


def required_test_path(test_path: str | None) -> str:
    """The file ``attnbench evaluate`` scores a trained model on (a task's ``encode_test``):
    ``task.test_path``, or a one-line DataError when it is not set."""
    if not test_path:
        raise DataError("evaluate on another file needs task.test_path=FILE")
    return test_path


def split_rows(rows: Rows, seed: int, fractions: dict[str, float]) -> tuple[Rows, dict[str, Rows]]:
    """Carve the splits named in ``fractions`` (e.g. {"val": 0.1}) out of ``rows`` at random.

    Each carved split gets ``round(fraction * n)`` rows, at least one; the rest is train, which
    must keep at least one row. Returns (train, {name: rows}).
    """
    n = len(rows)
    sizes = {name: max(1, round(f * n)) for name, f in fractions.items()}
    if n - sum(sizes.values()) < 1:
        shown = ", ".join(f"{name}_fraction={f}" for name, f in fractions.items())
        raise DataError(
            f"{rows.origin}: {n} rows are too few to split off {shown} and keep training rows"
        )
    order = np.random.default_rng(seed).permutation(n).tolist()
    out: dict[str, Rows] = {}
    start = 0
    for name, size in sizes.items():
        out[name] = rows.subset(sorted(order[start : start + size]))
        start += size
    return rows.subset(sorted(order[start:])), out


def assemble_splits(
    train: Rows,
    val: Rows | None,
    test: Rows | None,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> dict[str, Rows]:
    """train/val/test rows: given splits are used as they are, missing ones carved from train."""
    fractions = {
        name: f
        for name, f, given in (("val", val_fraction, val), ("test", test_fraction, test))
        if given is None
    }
    carved: dict[str, Rows] = {}
    if fractions:
        train, carved = split_rows(train, seed, fractions)
    return {
        "train": train,
        "val": val if val is not None else carved["val"],
        "test": test if test is not None else carved["test"],
    }
