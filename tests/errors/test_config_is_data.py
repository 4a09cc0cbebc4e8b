"""A config is data: no config source makes attnbench create a file or run a command. One test per
path an earlier review got through (each was exit 0 with a file written by code the config
chose): a `_target_` hidden in an interpolation (a -cd primary config, a search-path group),
`hydra.job.env_set` steering git's provenance call to a `.gitconfig` whose `core.fsmonitor` is a
command, a logging FileHandler at a path the config chooses (a -cd file, an override), a secret
copied from the environment by `${oc.env:...}`, and launcher fields that run shell lines.

Each asserts: exit 2, one `error:` line naming the key and where it came from, the victim file
absent or unchanged, the marker a command would write absent, nothing under the runs folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import all_runs
from tests.errors.test_bad_input_corpus import refused_line, snapshot


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A folder of configs someone else wrote (given with -cd or hydra.searchpath)."""
    root = tmp_path / "shared"
    root.mkdir()
    return root


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file the user owns: a config must not create, truncate or append to it."""
    path = tmp_path / "victim.txt"
    path.write_text("keep me\n")
    return path


def _primary(shared: Path, name: str, body: str) -> None:
    (shared / f"{name}.yaml").write_text(f"defaults:\n  - config\n  - _self_\n{body}")


def _refused(result, runs_dir: Path, before: dict, *fragments: str) -> str:  # noqa: ANN001
    return refused_line(result, runs_dir, *fragments, before=before)


def _slurm(shared: Path, name: str, launcher: str) -> None:
    """A primary config on the slurm launcher preset whose `hydra.launcher` adds `launcher`."""
    (shared / f"{name}.yaml").write_text(
        "defaults:\n  - config\n  - override hydra/launcher: slurm\n  - _self_\n"
        f"hydra:\n  launcher:\n{launcher}")


# -- 1. a _target_ hidden in an interpolation --------------------------------------------------
def _hidden_open(target: Path, resolver: str = "oc.decode") -> str:
    mapping = f"{{_target_: builtins.open, file: {target}, mode: w}}"
    return f"\"${{oc.decode:'{mapping}'}}\"" if resolver == "oc.decode" else \
        f"\"${{oc.create:{mapping}}}\""


@pytest.mark.parametrize("resolver", ["oc.decode", "oc.create"])
@pytest.mark.parametrize("command", [("run",), ("sweep",), ("run", "--cfg", "job"),
                                     ("run", "--cfg", "hydra")],
                         ids=["run", "sweep", "cfg-job", "cfg-hydra"])
def test_target_hidden_in_a_config_dir_primary_config(
        cli, runs_dir: Path, shared: Path, tmp_path: Path, command: tuple[str, ...],
        resolver: str) -> None:
    pwned = tmp_path / "PWNED"
    _primary(shared, "hid", f"hydra:\n  callbacks:\n    evil: {_hidden_open(pwned, resolver)}\n")
    before = snapshot(runs_dir.parent)
    result = cli(command[0], "-cd", str(shared), "-cn", "hid", *command[1:],
                 smoke=len(command) == 1)
    _refused(result, runs_dir, before, "'hydra.callbacks.evil._target_'",
             "cannot name code to import", f"{shared}/hid.yaml, the -cd folder")
    assert not pwned.exists()


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_target_hidden_in_a_search_path_group(cli, runs_dir: Path, shared: Path,
                                              tmp_path: Path, command: str) -> None:
    pwned = tmp_path / "PWNED"
    (shared / "evilgroup").mkdir()
    (shared / "evilgroup" / "hidden.yaml").write_text(
        f"# @package _global_\nhydra:\n  callbacks:\n    evil: {_hidden_open(pwned)}\n")
    before = snapshot(runs_dir.parent)
    result = cli(command, f"hydra.searchpath=[file://{shared}]", "+evilgroup=hidden")
    _refused(result, runs_dir, before, "'hydra.callbacks.evil._target_'",
             "hidden.yaml, a hydra.searchpath folder")
    assert not pwned.exists()


def test_target_hidden_inside_an_allowed_launcher(cli, runs_dir: Path, shared: Path,
                                                  tmp_path: Path) -> None:
    """The launcher node is allowed, its fields are the launcher's: a hook hidden in a free-form
    field (submitit's additional_parameters) is not. (A typed field cannot even hold one.)"""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    pwned = tmp_path / "PWNED"
    _slurm(shared, "launch", f"    additional_parameters:\n      x: {_hidden_open(pwned)}\n")
    before = snapshot(runs_dir.parent)
    result = cli("sweep", "-cd", str(shared), "-cn", "launch")
    _refused(result, runs_dir, before, "'hydra.launcher.additional_parameters.x._target_'",
             "launch.yaml, the -cd folder")
    assert not pwned.exists()


# -- 2. hydra.job.env_set + git's core.fsmonitor ---------------------------------------------------
@pytest.fixture
def evil_home(tmp_path: Path) -> tuple[Path, Path]:
    """A home folder whose .gitconfig makes every `git status` run a command (core.fsmonitor);
    returns (home, the marker file that command writes)."""
    home = tmp_path / "evil_home"
    home.mkdir()
    marker = tmp_path / "FSMONITOR_RAN"
    (home / ".gitconfig").write_text(f'[core]\n\tfsmonitor = "touch {marker}; false"\n')
    return home, marker


def test_env_set_home_is_refused_and_runs_no_command(cli, runs_dir: Path, shared: Path,
                                                     evil_home: tuple[Path, Path]) -> None:
    home, marker = evil_home
    _primary(shared, "envset", f"hydra:\n  job:\n    env_set:\n      HOME: {home}\n"
                               f"      XDG_CONFIG_HOME: {home}\n")
    before = snapshot(runs_dir.parent)
    result = cli("run", "-cd", str(shared), "-cn", "envset")
    _refused(result, runs_dir, before, "'hydra.job.env_set.HOME'", "envset.yaml, the -cd folder")
    assert not marker.exists()


def test_env_set_from_the_command_line_is_refused_too(cli, runs_dir: Path,
                                                      evil_home: tuple[Path, Path]) -> None:
    home, marker = evil_home
    before = snapshot(runs_dir.parent)
    result = cli("run", f"+hydra.job.env_set.HOME={home}")
    _refused(result, runs_dir, before, "'hydra.job.env_set.HOME'", "from the command line")
    assert not marker.exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_run_in_a_poisoned_environment_runs_no_git_hook(
        cli, runs_dir: Path, evil_home: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even HOME/GIT_CONFIG_GLOBAL pointing at the poisoned .gitconfig in attnbench's own
    environment: provenance's git reads no user config, so the command never runs."""
    from attnbench.run import provenance

    home, marker = evil_home
    if not provenance.git_state.__wrapped__():  # not a git checkout (an installed wheel)
        pytest.skip("attnbench does not run from a git checkout here")
    env = {**os.environ, "HOME": str(home)}
    subprocess.run(["git", "-C", str(provenance.PACKAGE), "status", "--porcelain"], env=env,
                   capture_output=True, check=False)
    assert marker.exists(), "the poisoned .gitconfig does not run its command: test is moot"
    marker.unlink()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    provenance.git_state.cache_clear()
    try:
        result = cli("run")
    finally:
        provenance.git_state.cache_clear()
    assert result.exit_code == 0, result.output
    (run,) = all_runs(runs_dir)
    assert run.tags.get("mlflow.source.git.commit")
    assert not marker.exists()


# -- 3. logging handlers that write files ----------------------------------------------------------
def test_a_file_handler_from_a_config_dir(cli, runs_dir: Path, shared: Path,
                                          victim: Path) -> None:
    _primary(shared, "log", "hydra:\n  job_logging:\n    handlers:\n      file:\n"
                            f"        filename: {victim}\n        mode: w\n")
    before = snapshot(runs_dir.parent)
    result = cli("run", "-cd", str(shared), "-cn", "log")
    _refused(result, runs_dir, before, "'hydra.job_logging.handlers.file.filename'",
             "Hydra's own options", "log.yaml, the -cd folder")
    assert victim.read_text() == "keep me\n"


@pytest.mark.parametrize(
    "overrides",
    [("hydra.job_logging.handlers.file.filename={victim}",
      "+hydra.job_logging.handlers.file.mode=w"),
     ("+hydra.job_logging.handlers.evil={{class: logging.FileHandler, filename: '{victim}'}}",
      "hydra.job_logging.root.handlers=[console,evil]"),
     ("+hydra.hydra_logging.handlers.evil={{class: logging.FileHandler, filename: '{victim}'}}",),
     ("hydra.job.name=../../victim",)],
    ids=["filename", "new-handler", "hydra-logging", "job-name-path"],
)
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_file_handler_from_an_override(cli, runs_dir: Path, victim: Path, command: str,
                                         overrides: tuple[str, ...]) -> None:
    before = snapshot(runs_dir.parent)
    result = cli(command, *(o.format(victim=victim) for o in overrides))
    line = _refused(result, runs_dir, before, "'hydra.")
    assert "from the command line" in line or "hydra.job.name" in line
    assert victim.read_text() == "keep me\n"


def test_logging_hidden_in_an_interpolation(cli, runs_dir: Path, shared: Path,
                                            victim: Path) -> None:
    (shared / "hydra" / "job_logging").mkdir(parents=True)
    # (not named quiet.yaml: attnbench's own conf/hydra/job_logging/quiet.yaml comes first)
    (shared / "hydra" / "job_logging" / "mine.yaml").write_text(
        "version: 1\nhandlers:\n  f: \"${oc.decode:'{class: logging.FileHandler, filename: "
        f"{victim}, mode: w}}'}}\"\nroot:\n  handlers: [f]\n")
    before = snapshot(runs_dir.parent)
    result = cli("run", "-cd", str(shared), "hydra/job_logging=mine")
    _refused(result, runs_dir, before, "'hydra.job_logging", "mine.yaml, the -cd folder")
    assert victim.read_text() == "keep me\n"


def test_a_file_handler_in_a_sweep_cell_beyond_the_validated_ones(
        cli, runs_dir: Path, shared: Path, victim: Path) -> None:
    """The pre-flight validates the first 256 jobs; every option of a swept group is still
    composed and checked once, so the 301st cell cannot bring a handler in."""
    (shared / "look").mkdir()
    (shared / "look" / "plain.yaml").write_text("# @package _global_\nseed: 0\n")
    (shared / "look" / "loud.yaml").write_text(
        "# @package _global_\nhydra:\n  job_logging:\n    handlers:\n      file:\n"
        f"        filename: {victim}\n")
    before = snapshot(runs_dir.parent)
    result = cli("sweep", f"hydra.searchpath=[file://{shared}]", "+look=plain,loud",
                 "seed=range(0,300)")
    _refused(result, runs_dir, before, "'hydra.job_logging.handlers.file.filename'",
             "loud.yaml, a hydra.searchpath folder")
    assert victim.read_text() == "keep me\n"


# -- 4. secrets from the environment ---------------------------------------------------------------
SECRET = "hunter2-attnbench-test"


def _files_holding(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


@pytest.mark.parametrize(
    "body",
    ["experiment_name: exp-${oc.env:ATTNBENCH_TEST_SECRET}\n",
     "runs_dir: runs-${oc.env:ATTNBENCH_TEST_SECRET}\n",
     "experiment_name: ${oc.select:alias}\nalias: ${oc.env:ATTNBENCH_TEST_SECRET}\n"],
    ids=["experiment-name", "folder-name", "behind-another-key"],
)
def test_a_config_file_cannot_copy_a_secret(cli, runs_dir: Path, shared: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    monkeypatch.setenv("ATTNBENCH_TEST_SECRET", SECRET)
    _primary(shared, "secret", body)
    before = snapshot(runs_dir.parent)
    result = cli("run", "-cd", str(shared), "-cn", "secret", smoke=False, extra=["trainer=smoke"])
    line = _refused(result, runs_dir, before, "reads the environment variable "
                    "ATTNBENCH_TEST_SECRET", "secret.yaml, the -cd folder")
    assert SECRET not in line
    assert _files_holding(tmp_path, SECRET) == []


def test_a_secret_the_user_types_is_the_user_s_choice(cli, runs_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNBENCH_TEST_SECRET", "typed-by-me")
    result = cli("run", "experiment_name=${oc.env:ATTNBENCH_TEST_SECRET}")
    assert result.exit_code == 0, result.output
    assert "compare -e typed-by-me" in result.output


# -- 5. launcher fields that run shell lines -------------------------------------------------------
def test_submitit_setup_from_a_config_file_is_refused(cli, runs_dir: Path, shared: Path,
                                                      tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    marker = tmp_path / "SETUP_RAN"
    _slurm(shared, "cluster", f"    setup: ['touch {marker}']\n")
    before = snapshot(runs_dir.parent)
    result = cli("sweep", "-cd", str(shared), "-cn", "cluster", "seed=0,1")
    _refused(result, runs_dir, before, "'hydra.launcher.setup'", "only the command line",
             "cluster.yaml, the -cd folder")
    assert not marker.exists()


def test_submitit_setup_typed_on_the_command_line_is_accepted(cli) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = cli("sweep", "hydra/launcher=slurm", "hydra.launcher.setup=[module load cuda]",
                 "--cfg", "hydra", smoke=False)
    assert result.exit_code == 0, result.output
    assert "module load cuda" in result.output


def test_ray_runtime_env_only_from_the_command_line() -> None:
    """Ray is not installed here: the rule itself, on the node Hydra would compose."""
    from attnbench.config.launchers import _command_line_only

    target = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    node = {"_target_": target, "ray": {"init": {"address": "auto", "runtime_env": {
        "pip": ["evil"]}}, "remote": {"num_cpus": 1}}}
    assert [k for k, _ in _command_line_only(target, node, {}, [])] == [
        "hydra.launcher.ray.init.runtime_env"]
    typed = ["+hydra.launcher.ray.init.runtime_env={pip: [evil]}"]
    assert _command_line_only(target, node, {}, typed) == []
