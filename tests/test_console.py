"""What a terminal shows of `attnbench run`: the live progress bar, the finished bar drawn exactly
once, then the summary (issue 14). Without a terminal there is no bar: tests/test_cli.py.

The CLI runs in-process with a pseudo-terminal as its stdout and stderr (a subprocess would spend
10-15 s more importing torch and MLflow on a 2-core machine), and the bytes the terminal received
are read back twice: as a stream (every drawing of the bar, each ended by a carriage return or a
line feed) and as the screen a terminal shows once they are applied.
"""

from __future__ import annotations

import logging
import os
import pty
import re
import select
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import SMOKE

CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
NAME = "scaled-transformer-assoc_recall-s0"
# 64 examples in batches of 16 for 2 epochs: 8 steps, a validation after each epoch
RUN = ["run", *SMOKE, "trainer.epochs=2", "trainer.max_steps=0", "task.n_train=64"]
TOTAL = 8


def drawings(raw: str) -> list[str]:
    """Every line drawn, as text: escape sequences removed, split at carriage returns and line
    feeds (rich redraws a live line as carriage return, erase line, the line)."""
    return [part for part in re.split(r"[\r\n]", CSI.sub("", raw)) if part.strip()]


def screen(raw: str) -> list[str]:
    """The lines a terminal shows after `raw`: carriage return, line feed, erase line (CSI 2K)
    and cursor up (CSI nA) applied; colours and cursor visibility ignored."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for match in re.finditer(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]", raw):
        token = match.group(0)
        csi = CSI.fullmatch(token)
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            lines.extend([] for _ in range(row + 1 - len(lines)))
        elif csi and csi.group(2) == "K":
            lines[row] = []
        elif csi and csi.group(2) == "A":
            row = max(0, row - int(csi.group(1) or 1))
        elif not csi:
            line = lines[row]
            line.extend(" " * (col - len(line)))
            line[col:col + 1] = [token]
            col += 1
    return ["".join(line).rstrip() for line in lines if "".join(line).strip()]


def test_screen_applies_redraws() -> None:
    raw = "\x1b[?25l\r\x1b[2Ka 0/2\r\x1b[2Ka 1/2\r\x1b[2K\x1b[1ma\x1b[0m 2/2\r\n\x1b[?25hdone\r\n"
    assert screen(raw) == ["a 2/2", "done"]
    assert drawings(raw) == ["a 0/2", "a 1/2", "a 2/2", "done"]


@contextmanager
def terminal() -> Iterator[bytearray]:
    """sys.stdout and sys.stderr on a pseudo-terminal 100 columns wide; yields the bytes it
    received (complete once the block ends)."""
    master, slave = pty.openpty()
    stream = open(slave, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed below
    received = bytearray()
    done = threading.Event()

    def drain() -> None:  # the terminal must be read while the run writes, or writes block
        while True:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    received.extend(os.read(master, 65536))
                except OSError:
                    return
            elif done.is_set():
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("COLUMNS", "100")  # rich sizes the bar from it (the pty reports 0x0)
            mp.setenv("TERM", "xterm-256color")
            for name in ("TTY_INTERACTIVE", "TTY_COMPATIBLE", "NO_COLOR"):
                mp.delenv(name, raising=False)
            mp.setattr(sys, "stdout", stream)
            mp.setattr(sys, "stderr", stream)
            yield received
    finally:
        stream.flush()
        done.set()
        reader.join(timeout=10)
        for handler in list(logging.root.handlers):  # Hydra's job logging points at the pty
            if getattr(handler, "stream", None) is stream:
                logging.root.removeHandler(handler)
        stream.close()
        os.close(master)


def test_run_in_a_terminal_draws_the_finished_bar_once_then_the_summary(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last validation takes a while (0.3 s, faked): a bar still live then is redrawn ten
    times a second, each time a copy of the finished bar in the terminal's stream."""
    from attnbench.cli import app
    from attnbench.training import loop

    evaluate = loop.evaluate

    def slow_evaluate(*args: object, **kwargs: object) -> dict[str, float]:
        time.sleep(0.3)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", slow_evaluate)
    monkeypatch.chdir(runs_dir.parent)
    with terminal() as received, pytest.raises(SystemExit) as exit_:
        app([*RUN, f"runs_dir={runs_dir}"], prog_name="attnbench")
    raw = received.decode("utf-8", errors="replace")
    assert exit_.value.code == 0, raw

    bars = [line for line in drawings(raw) if line.startswith(NAME + " ")]
    full = [line for line in bars if re.search(rf" {TOTAL}/{TOTAL} ", line)]
    assert len(bars) > len(full), raw  # the bar was live while training (not only drawn at the end)
    assert len(full) == 1, full  # the finished bar, drawn once
    assert re.fullmatch(rf"{NAME} ━+ {TOTAL}/{TOTAL} epoch 2/2 loss \d+\.\d{{4}} \d:\d\d:\d\d",
                        full[0]), full[0]

    shown = screen(raw)
    assert [line for line in shown if line.startswith(NAME + " ")] == full, shown
    summary = shown.index(full[0]) + 1
    assert shown[summary].startswith(f"finished: {NAME} (run "), shown
    assert shown[summary + 1].lstrip().startswith("best_val/acc "), shown


BAR = re.compile(rf"{NAME} [━╸╺]+ (\d+)/(\d+|\?) (.*?)\s*\d+:\d\d:\d\d")


def test_the_bar_names_each_phase_before_training(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up never shows a silent `0/N` (issue 26): from the job's start the status names
    what it waits for, drawn the moment it begins: the model being built (its step count still
    `0/?`), the first step (with the kernels' and the optimiser's one-time set-up), the MLflow
    run being opened after it; then the losses."""
    from attnbench.cli import app
    from attnbench.run import experiment

    monkeypatch.setattr(experiment, "OPEN_RUN_BY_S", 600.0)  # the run opens after the first step
    monkeypatch.chdir(runs_dir.parent)
    with terminal() as received, pytest.raises(SystemExit) as exit_:
        app([*RUN, f"runs_dir={runs_dir}"], prog_name="attnbench")
    raw = received.decode("utf-8", errors="replace")
    assert exit_.value.code == 0, raw

    drawn = [m.groups() for line in drawings(raw) if (m := BAR.fullmatch(line))]
    statuses = list(dict.fromkeys(status for _, _, status in drawn))
    phases = [s for s in statuses if " loss " not in s]
    assert phases == ["building the model", "first step", "opening the MLflow run"], statuses
    counts = {status: f"{done}/{total}" for done, total, status in drawn}
    assert counts["building the model"] == "0/?"  # before the loop knows its total
    assert counts["first step"] == f"0/{TOTAL}"
    assert counts["opening the MLflow run"] == f"1/{TOTAL}"  # (smoke logs every step)
    assert all(status for _, _, status in drawn), drawn  # never a bare count
    assert statuses[-1].startswith("epoch 2/2 loss ")
