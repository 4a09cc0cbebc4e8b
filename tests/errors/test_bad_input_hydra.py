"""The bad-input corpus, continued: what reaches Hydra itself - the grid's size, interpolations,
Hydra's own settings and folders, --cfg on configs that do not compose, tracking URIs MLflow 3
refuses, a user's own presets, reproduce's tolerance. Every case: exit 2, one `error:` line
naming the key, no traceback, no file written (no Hydra folder, no lock), no run in the store.

Placeholders as in test_bad_input_corpus.py, plus {confs} = a folder of the user's own configs
(conftest.CONFS) and {data} = the bad data files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.errors.test_bad_input_corpus import (
    Case,
    assert_refused,
    case,
    refusing_peak_mb,
    running_runs,
    snapshot,
)

CASES = [
    # -- the grid: counted before it is expanded, refused beyond 10000 jobs
    case("grid-range-huge", "sweep seed=range(0,100000000)", "make 100000000 jobs",
         "seed=range(0,100000000): 100000000 values", "at most 10000"),
    case("grid-product", "sweep seed=range(0,200) trainer.epochs=range(1,101)",
         "make 20000 jobs", "at most 10000"),
    case("grid-float-range", "sweep trainer.lr=range(0.0,100.0,0.001)", "make 100000 jobs"),
    case("grid-preset-times-command-line", "sweep experiment=bahdanau_length seed=range(0,2000)",
         "make 18000 jobs", "attention=none,dot,additive: 3 values"),
    case("grid-empty-range", "sweep seed=range(0,0)", "'seed=range(0,0)' takes no value"),
    case("grid-step-zero", "sweep seed=range(0,5,0)", "'seed=range(0,5,0)'", "step cannot be 0"),
    # -- interpolations: the key, not `internal error`
    case("interp-env-missing", "run experiment_name=${oc.env:ATTNBENCH_SURELY_UNSET}",
         "'experiment_name'", "ATTNBENCH_SURELY_UNSET is not set"),
    case("interp-self", "run seed=${seed}", "'seed' = '${seed}'", "refers to itself"),
    case("interp-missing-key", "run experiment_name=${nope.nope}", "'experiment_name'",
         "refers to 'nope.nope', which does not exist"),
    case("interp-cycle", "run seed=${trainer.epochs} trainer.epochs=${seed}", "'seed'",
         "'trainer.epochs'", "refers to itself"),
    case("interp-unknown-resolver", "run experiment_name=${nope:x}", "'experiment_name'",
         "Unsupported interpolation type nope"),
    case("interp-in-a-sweep", "sweep seed=0,1 experiment_name=${nope.x}", "'experiment_name'",
         "'nope.x'"),
    case("interp-in-hydra", "run hydra.run.dir=${nope.x}", "'hydra.run.dir'", "'nope.x'"),
    case("interp-in-a-config-file", "run hydra.searchpath=[file://{confs}] +extra=dangling",
         "'experiment_name' = '${nope.nope}'", "dangling.yaml"),
    case("interp-does-not-parse", "run -cd {confs} -cn badinterp", "'experiment_name'",
         "does not parse"),
    case("interp-in-a-data-path", "run task=text backbone=rnn task.path=${nope.csv}",
         "'task.path'", "'nope.csv'"),
    # -- Hydra's own folders and launchers: one line before the sweep's parent run exists
    case("hydra-run-dir-unwritable", "run hydra.run.dir=/proc/attnbench-run", "'hydra.run.dir'",
         "cannot be used", "/proc"),
    case("hydra-run-dir-under-a-file", "run hydra.run.dir={data}/good.csv/x", "'hydra.run.dir'",
         "good.csv is not a folder"),
    case("hydra-run-dir-empty", "run hydra.run.dir=", "'hydra.run.dir' = ''",
         "should be a folder path"),
    case("hydra-sweep-dir-unwritable", "sweep seed=0,1 hydra.sweep.dir=/proc/attnbench-sweep",
         "'hydra.sweep.dir'", "cannot be used"),
    case("hydra-sweep-subdir-escapes", "sweep seed=0,1 hydra.sweep.subdir=../../x",
         "'hydra.sweep.subdir'", "without '..'"),
    case("joblib-n-jobs-zero", "sweep seed=0,1 hydra/launcher=joblib hydra.launcher.n_jobs=0",
         "'hydra.launcher.n_jobs' = 0 is out of range", "-1 for one per core"),
    case("sweeper-batch-zero", "sweep seed=0,1 hydra.sweeper.max_batch_size=0",
         "'hydra.sweeper.max_batch_size' = 0", ">= 1"),
    case("optuna-no-trials", "sweep experiment=optuna_lr_width hydra.sweeper.n_trials=0",
         "'hydra.sweeper.n_trials' = 0", ">= 1"),
    case("launcher-unknown-field", "sweep seed=0,1 hydra/launcher=joblib +hydra.launcher.nope=1",
         "'hydra.launcher.nope'", "not a field of JoblibLauncher", "n_jobs"),
    case("hydra-setting-not-allowed", "run hydra.job.chdir=true", "'hydra.job.chdir'",
         "launcher, sweeper, output folders"),
    case("hydra-mode", "run hydra.mode=MULTIRUN", "'hydra.mode'"),
    case("hydra-env-copy", "run hydra.job.env_copy=[HOME]", "'hydra.job.env_copy'"),
    case("hydra-output-subdir-escapes", "run hydra.output_subdir=../../x",
         "'hydra.output_subdir'", "without '..'"),
    case("hydra-callback-removed", "sweep seed=0,1 ~hydra.callbacks.attnbench_sweep",
         "'hydra.callbacks.attnbench_sweep'", "cannot be removed"),
    case("hydra-job-name-a-path", "run hydra.job.name=../../x", "'hydra.job.name'",
         "plain name"),
    case("sweeper-varies-hydra", "sweep -cd {confs} experiment=varyhydra",
         "'hydra.sweeper.params.hydra.job.chdir'", "not Hydra's", "varyhydra.yaml"),
    # -- --cfg/--info/-cd on configs that do not compose: one line, not Hydra's traceback
    case("cfg-bad-searchpath", "run hydra.searchpath=[/nonexistent/attnbench] --cfg job",
         "'hydra.searchpath' entry '/nonexistent/attnbench': no such folder", smoke=False),
    case("cfg-bad-searchpath-file-url", "run hydra.searchpath=[file:///nonexistent/x] --cfg job",
         "no such folder", smoke=False),
    case("cfg-broken-yaml", "run -cd {confs} -cn broken --cfg job", "while parsing",
         "broken.yaml", smoke=False),
    case("info-broken-yaml", "run -cd {confs} -cn broken --info config", "broken.yaml",
         smoke=False),
    case("cfg-missing-primary", "run -cd {confs} -cn nope --cfg job",
         "Cannot find primary config 'nope'", smoke=False),
    case("cfg-unknown-option", "run attention=nope --cfg job", "Unknown attention 'nope'",
         smoke=False),
    case("cfg-resolve-dangling", "run experiment_name=${nope.x} --cfg job --resolve",
         "'experiment_name'", "'nope.x'", smoke=False),
    case("run-broken-yaml", "run -cd {confs} -cn broken", "while parsing"),
    case("config-dir-missing", "run -cd {confs}/nope", "--config-dir", "no such folder"),
    case("searchpath-missing", "sweep seed=0,1 hydra.searchpath=[/nonexistent/attnbench]",
         "no such folder"),
    # -- tracking URIs MLflow 3 cannot use: before Hydra writes its folders or a lock
    case("uri-file", "run tracking.uri=file:///tmp/attnbench-mlruns",
         "MLflow 3 no longer writes file stores", "sqlite:///"),
    case("uri-file-relative", "run tracking.uri=file:mlruns", "no longer writes file stores"),
    case("uri-file-in-a-sweep", "sweep seed=0,1 tracking.uri=file:///tmp/attnbench-mlruns",
         "no longer writes file stores"),
    case("uri-unknown-driver", "run tracking.uri=postgresql+nope://u@127.0.0.1:9/db",
         "SQLAlchemy has no driver 'nope'"),
    # -- a user's own presets: known, and still checked like every config
    case("preset-own-unknown", "run -cd {confs} experiment=nope", "Unknown experiment 'nope'",
         "mine", "bahdanau_length"),
    case("preset-own-not-allowed", "run -cd {confs} experiment=chdir", "'hydra.job.chdir'",
         "chdir.yaml, the -cd folder"),
    case("preset-own-via-searchpath-unknown",
         "run hydra.searchpath=[file://{confs}] experiment=nope", "Unknown experiment 'nope'",
         "mine"),
    # -- reproduce's tolerance
    case("reproduce-tol-nan", "reproduce abc --tol nan", "'--tol'", "nan is not a finite number",
         smoke=False),
    case("reproduce-tol-negative", "reproduce abc --tol -1", "'--tol'", "-1.0", ">= 0",
         smoke=False),
    case("reproduce-tol-inf", "reproduce abc --tol inf", "'--tol'", "inf is not a finite",
         smoke=False),
]


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, cli, runs_dir: Path, data_dir: Path, confs: Path) -> None:
    values = {"data": data_dir, "confs": confs, "runs": runs_dir}
    args = [a.format(**values) if "{" in a and "${" not in a else a for a in case.args]
    before = snapshot(runs_dir.parent)
    result = cli(*args, smoke=case.smoke)
    assert_refused(result, case, runs_dir.parent, before, **values)
    assert running_runs(runs_dir) == 0


DRIVERS = [("postgresql", "psycopg", "pip install 'attnbench[server]'"),
           ("postgresql+psycopg2", "psycopg2", "attnbench[server]"),
           ("mysql+pymysql", "pymysql", "'pymysql'")]


@pytest.mark.parametrize(("scheme", "module", "fix"), DRIVERS, ids=[d[0] for d in DRIVERS])
def test_a_database_uri_without_its_driver_names_the_install(
        cli, runs_dir: Path, scheme: str, module: str, fix: str) -> None:
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    uri = f"{scheme}://u:p@127.0.0.1:9/db"
    before = snapshot(runs_dir.parent)
    result = cli("run", f"tracking.uri={uri}")
    assert_refused(result, Case("driver", ("run",), (uri, f"driver '{module}'", fix)),
                   runs_dir.parent, before)


def test_a_user_preset_from_config_dir_runs(cli, runs_dir: Path, confs: Path) -> None:
    """`-cd mypresets experiment=mine`: the user's preset composes, passes every check and runs."""
    result = cli("run", "-cd", str(confs), "experiment=mine")
    assert result.exit_code == 0, result.output
    assert "finished: scaled-transformer-assoc_recall-s3" in result.output
    assert "compare -e mine" in result.output


def test_refusing_a_huge_grid_stays_under_1_gb(runs_dir: Path, tmp_path: Path) -> None:
    """`seed=range(0,100000000)` listed 10^8 strings (2.9 GB) before a MemoryError: counted now."""
    args = ["sweep", "seed=range(0,100000000)", "trainer=smoke", f"runs_dir={runs_dir}"]
    code, peak_mb, stderr = refusing_peak_mb(args, tmp_path)
    assert code == 2, stderr
    assert "100000000 jobs" in stderr
    assert peak_mb < 1024, f"the refusing process peaked at {peak_mb:.0f} MB"
