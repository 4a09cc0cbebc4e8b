"""Shell completion, tested with what each shell really sends.

bash: a real interactive bash on a pseudo-terminal, with the script `--install-completion bash`
writes, and TAB pressed on the keyboard: bash splits `attention=lo` at `=` before the script
sees it, which is what a test feeding `COMP_WORDS` by hand never shows. zsh and fish send the
line as typed (`_TYPER_COMPLETE_ARGS`): those requests are made as the shells make them.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnbench.cli.completion import install, script

BIN = Path(sys.executable).parent


class Terminal:
    """An interactive bash on a pseudo-terminal: type keys, read what the screen shows."""

    def __init__(self, rc: Path) -> None:
        self.master, slave = pty.openpty()
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               "TERM": "dumb", "INPUTRC": "/dev/null", "HISTFILE": "/dev/null"}
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--rcfile", str(rc), "-i"], stdin=slave, stdout=slave,
            stderr=slave, env=env, close_fds=True, start_new_session=True,
        )
        os.close(slave)
        self.seen = ""
        self.read_until("READY>")

    def read_until(self, text: str, timeout: float = 60.0) -> str:
        """Read output until `text` appears after what was read before; returns the new part."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while text not in self.seen[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} on the terminal: {self.seen[start:]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                self.seen += os.read(self.master, 65536).decode(errors="replace")
        return self.seen[start:]

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def complete(self, line: str, expect: str, tabs: int = 2, then: str = "") -> str:
        """Type `line` and press TAB `tabs` times; read the screen until `expect` shows (then
        type `then`, e.g. a marker that shows whether a space was inserted); returns what was
        shown. The line is then erased (Ctrl-U) and an empty line entered: nothing runs."""
        self.type(line + "\t" * tabs)
        shown = self.read_until(expect)
        if then:
            self.type(then)
            shown += self.read_until(then)
        self.type("\x15\n")
        self.read_until("READY>")
        return shown

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.master)


@pytest.fixture
def bash(tmp_path: Path):  # noqa: ANN201 - yields a Terminal
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    path = install("bash", home=tmp_path)
    rc = tmp_path / "rc"
    rc.write_text(
        (tmp_path / ".bashrc").read_text()
        + "PS1='READY> '\nbind 'set bell-style none'\nbind 'set completion-query-items 0'\n"
        "bind 'set page-completions off'\nbind 'set show-all-if-ambiguous off'\n"
        "bind 'set enable-bracketed-paste off'\n"
    )
    assert path.read_text() == script("bash")
    term = Terminal(rc)
    yield term
    term.close()


def test_bash_completes_a_group_choice_after_the_equals_sign(bash: Terminal) -> None:
    """`attention=lo<TAB><TAB>` lists `local lowrank` (bash splits at `=`: readline shows the
    part after it); one more letter and TAB finishes the word."""
    shown = bash.complete("attnbench run attention=lo", "lowrank")
    assert "local" in shown.split() and "lowrank" in shown.split()
    assert "seed=" not in shown  # not the top-level keys
    shown = bash.complete("attnbench run attention=low", "rank", tabs=1, then="@")
    assert shown.endswith("rank @")  # the word finished, then a space


def test_bash_completes_trainer_keys(bash: Terminal) -> None:
    shown = bash.complete("attnbench sweep trainer.", "trainer.warmup_steps=")
    for key in ("trainer.epochs=", "trainer.lr=", "trainer.batch_size="):
        assert key in shown.split()
    shown = bash.complete("attnbench run trainer.epo", "chs=", tabs=1, then="@")
    assert shown.endswith("chs=@")  # no space after `=`: the value comes next


def test_bash_completes_commands(bash: Terminal) -> None:
    shown = bash.complete("attnbench com", "pare", tabs=1, then="@")
    assert shown.endswith("pare @")


def _answer(shell: str, line: str) -> str:
    env = {**os.environ, "_ATTNBENCH_COMPLETE": f"complete_{shell}",
           "_TYPER_COMPLETE_ARGS": line, "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    done = subprocess.run([sys.executable, "-m", "attnbench"], env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout


def test_zsh_and_fish_requests_are_answered() -> None:
    """zsh sends `${words[1,$CURRENT]}`, fish `commandline -cp`: the line as typed."""
    zsh = _answer("zsh", "attnbench run attention=lo")
    assert '"attention=local"' in zsh and '"attention=lowrank"' in zsh
    assert _answer("fish", "attnbench run trainer.ep").split() == ["trainer.epochs="]


def test_install_writes_the_named_shells_script(tmp_path: Path) -> None:
    """`--install-completion zsh` installs zsh's script whatever shell runs the command."""
    from typer.testing import CliRunner

    from attnbench.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["--install-completion", "zsh"], env={"HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".zfunc" / "_attnbench").read_text() == script("zsh")
    assert "compinit" in (tmp_path / ".zshrc").read_text()
    assert not (tmp_path / ".bash_completions").exists()
    result = runner.invoke(app, ["--install-completion", "tcsh"], env={"HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert "Unknown shell 'tcsh'. Valid shells: bash, zsh, fish" in result.output
