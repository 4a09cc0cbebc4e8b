"""Kill-during-creation mode of the store stress benchmark (``python -m
benchmarks.stress_store --kill N``; see that module's docstring).

N times, on a fresh runs folder: start ``attnbench run trainer=smoke`` in its own process group,
wait until it starts on the store (its lock file appears), SIGKILL the group at a random instant
within ``window`` seconds, then run the same command again there and check that it finishes,
that its run is FINISHED in the store and that the file passes ``PRAGMA integrity_check``.
``in_place`` makes the killed process build the store in place, as MLflow itself does (through a
``sitecustomize`` on its PYTHONPATH), to measure what attnbench's temporary file prevents.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

IN_PLACE_SITECUSTOMIZE = '''
import attnbench.store.sqlite_file as sqlite_file


def _in_place(db, make_store):
    db.parent.mkdir(parents=True, exist_ok=True)
    make_store(f"sqlite:///{db}")


sqlite_file.create = _in_place
'''



def _env(scratch: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
        (scratch / "sitecustomize.py").write_text(IN_PLACE_SITECUSTOMIZE)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(scratch), env.get("PYTHONPATH")]))
    return env


def _last_problem(text: str) -> str:
    keep = ("Traceback", "error:", "Error", "locked", "FAILED")
    found = [ln.strip() for ln in text.splitlines() if any(k in ln for k in keep)]
    return (found[-1:] or ["?"])[0][:200]


@dataclass
class Kill:
    index: int
    delay: float = 0.0  # seconds after the store lock appeared
    landed: str = "?"  # where the kill landed in the store work (see `_landed`)
    exit_code: int | None = None  # of the command run after the kill
    usable: bool = False
    lost: int = 0  # runs of the command after the kill missing or not FINISHED
    note: str = ""


LANDED = ("no file yet", "temp store being built", "store in place")


def _landed(runs_dir: Path) -> str:  # in_place: a half-built store is "store in place"
    """Where the store work was when the kill came: the store lock held but no file yet (MLflow
    importing its store modules), MLflow migrating the temporary store, the store in place."""
    if any(runs_dir.glob(".mlflow.db.*.tmp*")):
        return LANDED[1]
    return LANDED[2] if (runs_dir / "mlflow.db").exists() else LANDED[0]


def kill_repeat(index: int, root: Path, window: float, rng: random.Random,
                timeout: float = 600, in_place: bool = False) -> Kill:
    """One kill during store creation on a fresh runs folder, then a normal run on it
    (`in_place`: the killed process creates the store the way MLflow does, in the file itself)."""
    import signal

    runs_dir = root / f"kill-{index}" / "runs"
    runs_dir.mkdir(parents=True)
    env = _env()
    killed_env = _env(runs_dir.parent / "killed") if in_place else env
    cmd = [sys.executable, "-m", "attnbench", "run", "trainer=smoke", "trainer.threads=1",
           f"runs_dir={runs_dir}"]
    out = Kill(index, delay=rng.uniform(0.0, window))
    proc = subprocess.Popen(cmd, cwd=runs_dir.parent, env=killed_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    lock = runs_dir / ".mlflow.db.lock"
    deadline = time.monotonic() + timeout
    while not lock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(out.delay)
    out.landed = _landed(runs_dir) if proc.poll() is None else "finished first"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    again = subprocess.run([*cmd[:-1], "seed=1", cmd[-1]], cwd=runs_dir.parent, env=env,
                           capture_output=True, text=True, timeout=timeout)
    out.exit_code = again.returncode
    if again.returncode != 0:
        out.note = _last_problem(again.stdout + again.stderr)
    db = runs_dir / "mlflow.db"
    try:
        with sqlite3.connect(db) as conn:
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
            finished = conn.execute(
                "SELECT count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                "WHERE t.key = 'seed' AND t.value = '1' AND r.status = 'FINISHED'"
            ).fetchone()[0]
    except sqlite3.Error as err:
        integrity, finished = f"corrupt: {err}", 0
        out.note = out.note or integrity
    out.lost = 1 - min(finished, 1)
    out.usable = again.returncode == 0 and integrity == "ok" and finished >= 1
    return out


def kill_summary(kills: list[Kill]) -> str:
    landed = {k: sum(x.landed == k for x in kills) for k in LANDED}
    return (f"{sum(k.usable for k in kills)}/{len(kills)} stores usable, "
            f"{sum(k.lost for k in kills)} runs lost (kills landed: "
            + ", ".join(f"{v} {k}" for k, v in landed.items()) + ")")


def kill_main(n: int, window: float, seed: int, root: Path | None, in_place: bool = False) -> int:
    from attnbench.console import console, results_table

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="attnbench-kill-") as tmp:
        where = root or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        kills = []
        for i in range(1, n + 1):
            kills.append(kill_repeat(i, where, window, rng, in_place=in_place))
            k = kills[-1]
            print(f"kill {i}/{n}: after {k.delay:.2f} s, {k.landed}: "
                  f"{'usable' if k.usable else 'NOT USABLE ' + k.note}", flush=True)
    rows = [[k.index, f"{k.delay:.2f}", k.landed, k.exit_code, "yes" if k.usable else "NO",
             k.lost, k.note] for k in kills]
    how = "store built in place, as MLflow does" if in_place else "store built aside"
    console.print(results_table(f"SIGKILL during store creation ({n} kills, window {window} s, "
                                f"{how})",
                                ["kill", "after s", "landed", "next run exit", "usable", "lost",
                                 "note"], rows))
    print(kill_summary(kills))
    return 0 if all(k.usable for k in kills) else 1
