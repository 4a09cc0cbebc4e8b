"""The README's commands are the documentation: run them, so they cannot drift from the code."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, SMOKE, all_runs

README = (REPO / "README.md").read_text(encoding="utf-8")


def block(marker: str) -> list[str]:
    """Command lines of the fenced block right after `<!-- marker -->`, comments stripped."""
    m = re.search(rf"<!-- {marker} -->\s*```\w*\n(.*?)```", README, re.S)
    assert m, f"README has no <!-- {marker} --> block"
    lines = [ln.split("  #")[0].strip() for ln in m.group(1).splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def test_ci_installs_and_tests_exactly_as_the_readme_says() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    ci_lines = {ln.strip() for ln in ci.splitlines()}
    for line in block("setup") + block("test"):
        assert line in ci_lines, f"README command not in .ci/run: {line}"


def test_console_script_points_at_the_cli() -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["attnbench"].partition(":")
    mod = __import__(module, fromlist=[attr])
    assert callable(getattr(mod, attr))


def test_quickstart_commands_run(runs_dir: Path) -> None:
    exe = Path(sys.executable).parent / "attnbench"
    commands = block("quickstart")
    assert [shlex.split(c)[0] for c in commands] == ["attnbench"] * len(commands)
    for command in commands:
        argv = [str(exe), *shlex.split(command)[1:]]
        if argv[1] in ("run", "sweep"):
            argv += SMOKE
        # cwd is runs_dir's parent: every command uses its default store, runs/, as a user's would
        proc = subprocess.run(
            argv, cwd=runs_dir.parent, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
        assert "Traceback" not in proc.stderr
    runs = all_runs(runs_dir)
    # one `run` + a 5-variant, 3-seed sweep (parent + 15 children); compare wrote its report
    assert sum(r.tags.get("attnbench.kind") == "sweep" for r in runs) == 1
    assert len(runs) == 1 + 1 + 5 * 3
    assert all(r.status == "FINISHED" for r in runs)
    assert list((runs_dir / "reports").glob("*/*/*.png")), "compare wrote no plots"
