"""`attnbench --install-completion [bash|zsh|fish]` and `--show-completion [SHELL]`.

Typer answers the completion requests (`_ATTNBENCH_COMPLETE=complete_<shell> attnbench`, which
calls `config.completion.complete_override` for overrides); the shell scripts are attnbench's own
because Typer's bash script hands over bash's `COMP_WORDS`, and bash splits words at `=`
(`COMP_WORDBREAKS`): `attnbench run attention=lo<TAB>` reached the completer as the three words
`attention`, `=`, `lo`. The bash script below splits the line up to the cursor at whitespace
only, asks for completions of the whole `attention=lo`, and gives readline the part after the
last `=` or `:` (the part readline replaces). zsh and fish send the line as typed; their scripts
are Typer's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import typer

PROG = "attnbench"
COMPLETE_VAR = "_ATTNBENCH_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
DETECT = "detect"

BASH = r"""
_attnbench_completion() {
    local IFS=$'\n' line="${COMP_LINE:0:$COMP_POINT}" item keep cur
    local -a words
    IFS=$' \t\n' read -r -a words <<< "$line"
    if [[ -z "$line" || "$line" == *[[:space:]] ]]; then words+=(""); fi
    cur="${words[${#words[@]}-1]}"
    # readline replaces only what follows the last word-break character ("=" or ":") of the word
    keep="${cur%"${cur##*[=:]}"}"
    COMPREPLY=()
    for item in $(env COMP_WORDS="${words[*]}" COMP_CWORD=$(( ${#words[@]} - 1 )) \
                      _ATTNBENCH_COMPLETE=complete_bash "$1"); do
        COMPREPLY+=("${item#"$keep"}")
    done
    # `trainer.epochs=` and `trainer.` want a value next, not a space
    if [[ ${#COMPREPLY[@]} -eq 1 && "${COMPREPLY[0]}" == *[=.] ]]; then compopt -o nospace; fi
    return 0
}
complete -o default -F _attnbench_completion attnbench
"""

ZSH = """
#compdef attnbench

_attnbench_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _ATTNBENCH_COMPLETE=complete_zsh attnbench)
}

compdef _attnbench_completion attnbench
"""

FISH = (
    "complete --command attnbench --no-files --arguments \"(env _ATTNBENCH_COMPLETE=complete_fish "
    "_TYPER_COMPLETE_FISH_ACTION=get-args _TYPER_COMPLETE_ARGS=(commandline -cp) attnbench)\" "
    "--condition \"env _ATTNBENCH_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=is-args "
    "_TYPER_COMPLETE_ARGS=(commandline -cp) attnbench\""
)

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}


def answer_requests() -> None:
    """Let Typer answer `_ATTNBENCH_COMPLETE=complete_<shell>` for every shell: Typer registers
    its zsh/fish answerers only with its own completion options, which attnbench replaces.
    Called at start-up; costs nothing unless a shell is asking."""
    if COMPLETE_VAR in os.environ:
        from typer.completion import completion_init

        completion_init()


def script(shell: str) -> str:
    return SCRIPTS[shell].strip() + "\n"


def which_shell(value: str) -> str:
    """The shell named, or the one this command runs in (`detect`); one-line error otherwise."""
    if value != DETECT:
        if value.lower() not in SHELLS:
            raise typer.BadParameter(f"Unknown shell '{value}'. Valid shells: {', '.join(SHELLS)}")
        return value.lower()
    import shellingham  # Typer's own dependency

    try:
        name = str(shellingham.detect_shell()[0]).lower()
    except shellingham.ShellDetectionFailure:
        name = Path(os.environ.get("SHELL", "")).name
    if name not in SHELLS:
        raise typer.BadParameter(
            f"Cannot tell which shell this is ({name or 'unknown'}): name it, e.g. "
            f"--install-completion bash. Valid shells: {', '.join(SHELLS)}"
        )
    return name


def install(shell: str, home: Path | None = None) -> Path:
    """Write the completion script where `shell` loads it from; returns the script's path."""
    home = home or Path.home()
    if shell == "bash":
        path = home / ".bash_completions" / f"{PROG}.sh"
        _ensure_line(home / ".bashrc", f"source '{path}'")
    elif shell == "zsh":
        path = home / ".zfunc" / f"_{PROG}"
        _ensure_line(home / ".zshrc", "fpath+=~/.zfunc; autoload -Uz compinit; compinit")
    else:
        path = home / ".config" / "fish" / "completions" / f"{PROG}.fish"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script(shell), encoding="utf-8")
    return path


def _ensure_line(rc: Path, line: str) -> None:
    text = rc.read_text(encoding="utf-8") if rc.is_file() else ""
    if line not in text.splitlines():
        rc.write_text(f"{text.rstrip()}\n{line}\n".lstrip("\n"), encoding="utf-8")


OPTIONS = ("--install-completion", "--show-completion")


def handle(argv: Sequence[str]) -> int | None:
    """`attnbench --install-completion [SHELL]` / `--show-completion [SHELL]` (also
    `--install-completion=SHELL`): done here, before Typer parses, because Typer's options
    cannot take an optional value (its own flag took no shell: `--install-completion zsh`
    from bash installed bash completion). Returns the exit code, or None for any other line."""
    if not argv:
        return None
    option, eq, named = argv[0].partition("=")
    if option not in OPTIONS:
        return None
    rest = list(argv[1:])
    if not eq and rest and not rest[0].startswith("-"):
        named = rest.pop(0)
    if rest:
        raise typer.BadParameter(f"{option} takes at most a shell name, got also: {' '.join(rest)}")
    shell = which_shell(named or DETECT)
    if option == "--show-completion":
        typer.echo(script(shell), nl=False)
    else:
        path = install(shell)
        typer.echo(f"{shell} completion installed in {path}; it takes effect in a new terminal")
    return 0


SHELL_HELP = "(bash, zsh or fish; default: the shell this runs in)"
INSTALL = typer.Option(
    False, "--install-completion", help="Install completion of commands, options and overrides "
    f"for a shell {SHELL_HELP}: attnbench --install-completion zsh",
)
SHOW = typer.Option(
    False, "--show-completion", help=f"Print the completion script of a shell {SHELL_HELP}.",
)
