"""Bad inputs of the file tasks, through the CLI (issue 23): each exits 2 with ONE line naming the
file (and line and column where there is one), before any run is created. The shared corpus is
tests/errors/test_bad_input_corpus.py; these are the text/translation cases of the tasks stream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import all_runs
from tests.tasks.test_file_task_inputs import hub_at_a_closed_port

FILES: dict[str, bytes] = {
    "good.csv": b"text,label\n" + b"hello world,pos\nbad day,neg\n" * 10,
    "empty_texts.csv": b"text,label\n" + b' ,pos\n"",neg\n' * 10,
    "empty_texts.jsonl": b'{"text": "", "label": 1}\n{"text": "  ", "label": 0}\n' * 5,
    "nul.tsv": b"text\tlabel\nhello\tpos\nbad\x00\tneg\n",
    "utf16.csv": "text,label\nhello,pos\nbye,neg\n".encode("utf-16"),
    "pairs_nul.tsv": b"Go.\tVa !\nHi.\tSa\x00lut !\n",
    "twice.csv": b"text,label\n" + b"same words,pos\nsame words,neg\n" * 10,
}

TEXT = "run task=text backbone=rnn"
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    ("every-text-empty", f"{TEXT} task.path={{data}}/empty_texts.csv",
     ("{data}/empty_texts.csv: every text in column 'text' is empty (20 rows)",)),
    ("every-text-empty-jsonl", f"{TEXT} task.path={{data}}/empty_texts.jsonl",
     ("{data}/empty_texts.jsonl: every text in column 'text' is empty",)),
    ("text-column-is-label", f"{TEXT} task.path={{data}}/good.csv task.text_column=label",
     ("'task.text_column' = 'task.label_column' = 'label'", "its own label")),
    ("test-text-column-is-label",
     f"{TEXT} task.path={{data}}/good.csv task.test_path={{data}}/good.csv "
     "task.test_text_column=label",
     ("{data}/good.csv (task.test_path): 'task.test_text_column' = 'task.test_label_column'",)),
    ("nul-byte", f"{TEXT} task.path={{data}}/nul.tsv",
     ("{data}/nul.tsv:3: NUL byte (0x00) at column 4",)),
    ("utf16-file", f"{TEXT} task.path={{data}}/utf16.csv",
     ("{data}/utf16.csv:1: NUL byte", "UTF-16")),
    ("nul-byte-val-file", f"{TEXT} task.path={{data}}/good.csv task.val_path={{data}}/nul.tsv",
     ("{data}/nul.tsv:3: NUL byte",)),
    ("val-dedup-leaves-nothing", f"{TEXT} task.path={{data}}/twice.csv task.val_dedup=true",
     ("twice.csv: all 2 validation examples occur in the training split",)),
    ("translation-nul-byte",
     "run task=translation backbone=seq2seq task.path={data}/pairs_nul.tsv",
     ("{data}/pairs_nul.tsv:2: NUL byte (0x00) at column 7",)),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("file_task_data")
    for name, content in FILES.items():
        (root / name).write_bytes(content)
    return root


def one_line_refusal(result, runs_dir: Path) -> str:  # noqa: ANN001 - a CliRunner Result
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert "Traceback" not in result.output
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert all_runs(runs_dir) == [], "refused before any run is created"
    return lines[0]


@pytest.mark.parametrize(("args", "says"), [(a, s) for _, a, s in CASES],
                         ids=[c[0] for c in CASES])
def test_file_refused_in_one_line(cli, runs_dir: Path, data: Path, args: str,
                                  says: tuple[str, ...]) -> None:
    line = one_line_refusal(cli(*args.format(data=data).split()), runs_dir)
    for fragment in says:
        assert fragment.format(data=data) in line, line


def test_hub_corpus_without_a_network_is_one_line(
    cli, runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No retry lines from the Hub client: one connection attempt, then the cache alone."""
    port = hub_at_a_closed_port(monkeypatch, tmp_path)
    result = cli("run", "task=text", "backbone=rnn", "task.hf_dataset=nobody/no-such-corpus")
    line = one_line_refusal(result, runs_dir)
    assert ("nobody/no-such-corpus[train]: cannot load from the Hugging Face Hub: no connection "
            f"to 127.0.0.1:{port}") in line
