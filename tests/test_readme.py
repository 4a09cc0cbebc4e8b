"""README's set-up and test commands are what CI runs, line for line. (Every other shell block of
README.md and docs/*.md is run by tests/test_docs.py.)"""

from __future__ import annotations

import re

from tests.conftest import REPO

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
