"""No import path from any config source: a `_target_` (or another object hook) that reaches the
composed config through `--config-dir`/`--config-name`, `hydra.searchpath`, a plugin's config
package or an oddly spelled override is refused before Hydra runs: exit 2, one `error:` line
naming the key path, nothing instantiated (the canary module is never imported), no store.

Only attnbench's sweep callback, Hydra's discovered launchers and sweepers, and Optuna's samplers
under the Optuna sweeper keep their `_target_` (tests/errors/test_safe_defaults.py covers the
overrides that name a component by import path).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import attnbench_cmd
from tests.errors.test_bad_input_corpus import refused_line as _refused

CANARY = "tests.errors.canary_module"
BOOM = f"{CANARY}.Boom"

EVIL_PRIMARY = f"""\
# a primary config that pulls in attnbench's and adds a callback
defaults:
  - config
  - _self_
hydra:
  callbacks:
    evil:
      _target_: {BOOM}
"""

EVIL_GLOBAL = f"""\
# @package _global_
hydra:
  callbacks:
    evil:
      _target_: {BOOM}
"""

EVIL_LOGGING = f"""\
# a job_logging option with a factory
version: 1
formatters:
  evil:
    (): {BOOM}
handlers:
  console:
    class: logging.StreamHandler
    formatter: evil
root:
  handlers: [console]
"""


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A folder of configs someone else wrote (as in /shared)."""
    root = tmp_path / "shared"
    (root / "evilgroup").mkdir(parents=True)
    (root / "hydra" / "job_logging").mkdir(parents=True)
    (root / "evil.yaml").write_text(EVIL_PRIMARY)
    (root / "evilgroup" / "evil2.yaml").write_text(EVIL_GLOBAL)
    (root / "hydra" / "job_logging" / "evil.yaml").write_text(EVIL_LOGGING)
    return root


@pytest.fixture(autouse=True)
def no_canary() -> None:
    sys.modules.pop(CANARY, None)
    yield
    assert CANARY not in sys.modules, "a config made attnbench import the canary module"


HOOK = "a config cannot name code to import"


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_config_dir_and_name(cli, runs_dir: Path, shared: Path, command: str) -> None:
    """Attack (a): `-cd /shared -cn evil`, evil.yaml adding a callback with _target_."""
    result = cli(command, "-cd", str(shared), "-cn", "evil")
    _refused(result, runs_dir, "'hydra.callbacks.evil._target_'", HOOK, "registered components")


@pytest.mark.parametrize("flags", [("--cfg", "job"), ("--cfg", "hydra"), ("--info", "config")])
def test_info_flags_are_checked_too(cli, runs_dir: Path, shared: Path,
                                    flags: tuple[str, ...]) -> None:
    result = cli("run", "-cd", str(shared), "-cn", "evil", *flags, smoke=False)
    _refused(result, runs_dir, "'hydra.callbacks.evil._target_'")


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_searchpath_and_a_global_group(cli, runs_dir: Path, shared: Path, command: str) -> None:
    """Attack (b): `hydra.searchpath=[file:///shared] +evilgroup=evil2`."""
    result = cli(command, f"hydra.searchpath=[file://{shared}]", "+evilgroup=evil2")
    _refused(result, runs_dir, "'hydra.callbacks.evil._target_'")


def test_searchpath_in_a_sweep_cell(cli, runs_dir: Path, shared: Path) -> None:
    """The evil option is one value of a swept group: every cell is composed and walked."""
    (shared / "evilgroup" / "fine.yaml").write_text("# @package _global_\nseed: 3\n")
    result = cli("sweep", f"hydra.searchpath=[file://{shared}]", "+evilgroup=fine,evil2")
    _refused(result, runs_dir, "'hydra.callbacks.evil._target_'")


def test_a_logging_factory_from_config_dir(cli, runs_dir: Path, shared: Path) -> None:
    result = cli("run", "-cd", str(shared), "hydra/job_logging=evil")
    _refused(result, runs_dir, "'hydra.job_logging.formatters.evil'", "Hydra's own options",
             "the -cd folder")


def test_a_plugin_config_package(cli, runs_dir: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin's config package (entry point `attnbench.conf`) whose attention option also
    sets a callback: the option is valid, its _target_ is not."""
    import attnbench.plugin_path
    import attnbench.plugins
    from attnbench.plugins import PluginConf

    package = tmp_path / "site" / "sneaky_plugin"
    (package / "conf" / "attention").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "conf" / "__init__.py").write_text("")
    (package / "conf" / "attention" / "sneaky.yaml").write_text(
        "# @package _global_\n"
        "# looks like a variant\n"
        "attention:\n  name: scaled\n  dropout: 0.0\n"
        f"hydra:\n  callbacks:\n    evil:\n      _target_: {BOOM}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    plugins = (PluginConf("sneaky_plugin.conf", "sneaky-plugin"),)
    monkeypatch.setattr(attnbench.plugins, "conf_packages", lambda: plugins)
    monkeypatch.setattr(attnbench.plugin_path, "conf_packages", lambda: plugins)
    result = cli("run", "attention=sneaky")
    _refused(result, runs_dir, "'hydra.callbacks.evil._target_'",
             "sneaky.yaml, a plugin's config package")


@pytest.mark.parametrize(
    "override",
    [
        f"+hydra.callbacks.x={{_target_\t:{BOOM}}}",  # attack (c): a tab before the colon
        f"+hydra.callbacks.x={{_target_\n:{BOOM}}}",
        f"+hydra.callbacks.x={{ _target_ : {BOOM} }}",
        f"+hydra.callbacks.x={{'_target_': {BOOM}}}",
        f'+hydra.callbacks.x={{"_target_": {BOOM}}}',
        f"+hydra.callbacks.x={{a: 1, _target_: {BOOM}}}",
        f"+hydra.callbacks.x={{inner: {{_target_: {BOOM}}}}}",
        f"+hydra.callbacks.attnbench_sweep.nested={{_target_: {BOOM}}}",
        f"hydra.callbacks.attnbench_sweep._target_={BOOM}",
        f"hydra.launcher._target_={BOOM}",
        f"+hydra.callbacks.x={{_partial_: true, _args_: [{BOOM}]}}",
        f"+hydra.job_logging.handlers.evil={{class: {BOOM}}}",
        "+hydra.job_logging.handlers.evil={class: logging.config.fileConfig}",
        f"+hydra.hydra_logging.formatters.evil={{class: {BOOM}}}",
        "+hydra.job_logging.handlers.console.stream=ext://os.system",
        f"+hydra.job.env_set.PYTHONPATH=/shared/{BOOM}",
    ],
    ids=["tab", "newline", "spaces", "single-quotes", "double-quotes", "second-key", "nested",
         "nested-under-allowed", "allowed-key-other-target", "launcher-not-a-plugin",
         "partial-args", "logging-handler-class", "logging-config-function",
         "logging-formatter-class", "logging-ext", "env-pythonpath"],
)
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_odd_override_spellings(cli, runs_dir: Path, command: str, override: str) -> None:
    result = cli(command, override)
    line = _refused(result, runs_dir)
    assert "hydra." in line, line


def test_pkg_searchpath_is_refused_before_it_is_imported(cli, runs_dir: Path) -> None:
    """`pkg://` imports the package to read configs from it: refused before composing."""
    result = cli("run", f"hydra.searchpath=[pkg://{CANARY}]")
    _refused(result, runs_dir, f"pkg://{CANARY}", "would import the package")


def test_pkg_searchpath_in_a_primary_config(cli, runs_dir: Path, shared: Path) -> None:
    (shared / "pkgpath.yaml").write_text(
        f"defaults:\n  - config\n  - _self_\nhydra:\n  searchpath:\n    - pkg://{CANARY}\n")
    result = cli("run", "-cd", str(shared), "-cn", "pkgpath")
    _refused(result, runs_dir, f"pkg://{CANARY}", "primary config 'pkgpath'")


def test_pickled_rerun_is_refused(cli, runs_dir: Path, tmp_path: Path) -> None:
    result = cli("run", "--experimental-rerun", str(tmp_path / "config.pickle"))
    _refused(result, runs_dir, "--experimental-rerun", "unpickling runs code")


def test_optuna_custom_search_space_is_an_import_path(cli, runs_dir: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    result = cli("sweep", "hydra/sweeper=optuna", f"hydra.sweeper.custom_search_space={BOOM}",
                 "hydra.sweeper.n_trials=1")
    _refused(result, runs_dir, "'hydra.sweeper.custom_search_space'")


def test_optuna_sampler_must_be_an_optuna_sampler(cli, runs_dir: Path, shared: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    (shared / "sampler.yaml").write_text(
        "defaults:\n  - config\n  - override hydra/sweeper: optuna\n  - _self_\n"
        f"hydra:\n  sweeper:\n    n_trials: 1\n    sampler:\n      _target_: {BOOM}\n")
    result = cli("sweep", "-cd", str(shared), "-cn", "sampler")
    _refused(result, runs_dir, "'hydra.sweeper.sampler._target_'")


# -- what stays allowed -------------------------------------------------------------------------
def test_the_allowed_hooks_compose_clean() -> None:
    """conf/config.yaml's sweep callback, the basic/joblib/submitit launchers, the Optuna sweeper
    and its samplers, every preset and Hydra's own logging options pass the allow-list."""
    from attnbench.config.compose import compose_multirun, hydra_compose
    from attnbench.config.groups import group_options
    from attnbench.config.guard import check_config

    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cases = [[], ["hydra/launcher=joblib"], ["hydra/launcher=slurm"],
             ["hydra/sweeper=optuna", "hydra/sweeper/sampler=grid"],
             ["hydra/job_logging=disabled", "hydra/hydra_logging=none"],
             ["hydra.verbose=true", "hydra.job.name=mine", "hydra.output_subdir=null"],
             *([f"experiment={e}"] for e in group_options("experiment"))]
    with hydra_compose() as compose:
        for overrides in cases:
            for cfg, multirun in ((compose_multirun("config", overrides), True),
                                  (compose("config", overrides=overrides,
                                           return_hydra_config=True), False)):
                assert check_config(cfg, typed=overrides, multirun=multirun)[0] == [], overrides


def test_object_hooks_walks_lists_and_names_paths() -> None:
    from attnbench.config.hooks import object_hooks

    cfg = {"a": [{"b": {"_target_": "os.system"}}], "hydra": {"job_logging": {
        "handlers": {"f": {"class": "logging.FileHandler", "filename": "x.log"}}}}}
    assert object_hooks(cfg) == ["a[0].b._target_"]


@pytest.mark.slow  # a real `attnbench` process, as a user would type it
def test_a_subprocess_opens_no_file_the_config_names(tmp_path: Path, shared: Path) -> None:
    """The issue's reproduction: builtins.open as a callback would create a file."""
    victim = tmp_path / "PWNED"
    (shared / "open.yaml").write_text(
        "defaults:\n  - config\n  - _self_\nhydra:\n  callbacks:\n    evil:\n"
        f"      _target_: builtins.open\n      file: {victim}\n      mode: w\n")
    runs = tmp_path / "runs"
    cmd = [*attnbench_cmd(), "run", "-cd", str(shared), "-cn", "open", "trainer=smoke",
           f"runs_dir={runs}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "hydra.callbacks.evil._target_" in proc.stderr
    assert not victim.exists()
    assert not (runs / "mlflow.db").exists()
