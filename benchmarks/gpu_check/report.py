"""The kit's output: OUTDIR/gpu-figures.json and OUTDIR/gpu-figures.md, rewritten after every
step (write to a temporary file, then rename), so a run stopped at any point leaves every figure
it had measured."""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.markdown import render

JSON_NAME = "gpu-figures.json"
MD_NAME = "gpu-figures.md"
LOG_NAME = "gpu-check.log"
SCHEMA = 1


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Report:
    """The figures document, saved as JSON and Markdown after every change."""

    def __init__(self, outdir: Path, kit: dict[str, Any]) -> None:
        self.outdir = outdir
        outdir.mkdir(parents=True, exist_ok=True)
        self.log = outdir / LOG_NAME
        self.t0 = time.perf_counter()
        self.doc: dict[str, Any] = {
            "schema": SCHEMA,
            "kit": {**kit, "started": now_iso(), "finished": None, "elapsed_s": 0.0},
            "device": {},
            "packages": {},
            "plan": [],
            "stages": {},
        }

    def save(self) -> None:
        self.doc["kit"]["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        _atomic_write(self.outdir / JSON_NAME, json.dumps(self.doc, indent=2, default=str) + "\n")
        _atomic_write(self.outdir / MD_NAME, render(self.doc))

    def note(self, text: str) -> None:
        """A line for the console and the log."""
        print(text, flush=True)
        with self.log.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")

    @contextlib.contextmanager
    def stage(self, name: str, budget_s: float) -> Iterator[dict[str, Any]]:
        """The stage's section, marked running, then done, or failed with the error's last line
        (the traceback goes to the log): a stage that breaks never stops the ones after it."""
        section = self.doc["stages"].setdefault(name, {})
        section.update(status="running", budget_s=round(budget_s), started=now_iso())
        self.save()
        t0 = time.perf_counter()
        self.note(f"== {name} (budget {budget_s:.0f} s)")
        try:
            yield section
            if section["status"] == "running":
                section["status"] = "done"
        except Exception as exc:  # noqa: BLE001 - recorded, and the next stage runs
            section["status"] = "failed"
            section["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            with self.log.open("a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
            self.note(f"   {name} failed: {section['error']}")
        except BaseException:  # the kit was stopped: what the stage measured is kept
            section["status"] = "interrupted"
            raise
        finally:
            section["elapsed_s"] = round(time.perf_counter() - t0, 1)
            self.note(f"   {name}: {section['status']} in {section['elapsed_s']} s")
            self.save()

    def skip(self, name: str, why: str) -> None:
        self.doc["stages"].setdefault(name, {}).update(status="skipped", why=why)
        self.note(f"== {name}: skipped ({why})")
        self.save()

    def finish(self, stopped: str | None = None) -> None:
        self.doc["kit"]["finished"] = now_iso()
        if stopped:
            self.doc["kit"]["stopped"] = stopped
        self.save()
