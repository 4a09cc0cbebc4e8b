"""The bad-input corpus: every case exits 2 (usage/config) with ONE line that names the problem
and the valid choices or range, no traceback, and nothing half-written in the store.

Placeholders in the arguments: {data} = a folder of bad data files (conftest.FILES), {port} = a
local port nothing listens on, {runs} = this test's (empty) runs folder, {store} = a store that
holds one finished smoke run.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import attnbench_cmd

# The valid choices as the message lists them: the folder is the list.
ATTENTIONS = ", ".join(
    sorted(p.stem for p in (Path(__file__).parents[2] / "conf" / "attention").glob("*.yaml"))
)


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    says: tuple[str, ...]  # fragments the one line must contain
    code: int = 2
    smoke: bool = True  # append trainer=smoke runs_dir=<tmp> (run/sweep)


def case(id: str, args: str, *says: str, code: int = 2, smoke: bool = True) -> Case:
    return Case(id, tuple(args.split()), says, code, smoke)


CASES = [
    # -- unknown options in a config group (checked before anything is composed)
    case("attention-unknown", "run attention=nope", "Unknown attention 'nope'", ATTENTIONS),
    case("backbone-unknown", "run backbone=nope", "Unknown backbone 'nope'",
         "rnn, seq2seq, transformer"),
    case("task-unknown", "run task=nope", "Unknown task 'nope'", "assoc_recall", "translation"),
    case("trainer-unknown", "run trainer=nope", "Unknown trainer 'nope'", "default, smoke"),
    case("tracking-unknown", "run tracking=nope", "Unknown tracking 'nope'", "local, server"),
    case("experiment-unknown", "run experiment=nope", "Unknown experiment 'nope'"),
    case("experiment-unknown-plus", "run +experiment=nope", "Unknown experiment 'nope'"),
    case("launcher-unknown", "sweep hydra/launcher=nope attention=dot",
         "Unknown hydra/launcher 'nope'", "basic, joblib"),
    case("sweep-one-unknown", "sweep attention=dot,nope", "Unknown attention 'nope'", ATTENTIONS),
    case("glob-typo-value", "sweep attention=dot,scaled,multihed", "'multihed'", ATTENTIONS),
    case("attention-empty", "run attention=", "attention cannot be empty", ATTENTIONS),
    case("task-null", "run task=null", "task cannot be empty", "reverse"),
    case("trainer-deleted", "run ~trainer", "trainer cannot be empty", "default, smoke"),
    # -- override syntax, and a sweep given to `run`
    case("syntax-bracket", "run attention=[", "Cannot parse override"),
    case("syntax-paren", "sweep seed=range(0,3", "Cannot parse override"),
    case("run-with-sweep-values", "run attention=dot,scaled", "is a sweep", "attnbench sweep"),
    case("run-with-range", "run seed=range(0,3)", "is a sweep"),
    case("sweep-cfg-many-jobs", "sweep attention=dot,scaled --cfg job",
         "--cfg/--info show one job's config", "make 2 jobs", "e.g. attention=dot", smoke=False),
    case("overrides-around-a-flag", "run attention=dot --cfg job seed=1",
         "unrecognized arguments: seed=1", "put its flags after them", smoke=False),
    # -- unknown keys
    case("key-unknown-top", "run foo=1", "Unknown key 'foo'", "runs_dir, seed"),
    case("key-unknown-plus-top", "run +foo=1", "Unknown key 'foo'", "seed"),
    case("key-unknown-trainer", "run trainer.lrr=1e-3", "Unknown key 'trainer.lrr'", "lr"),
    case("key-unknown-plus-trainer", "run +trainer.foo=1", "Unknown key 'trainer.foo'",
         "batch_size"),
    case("key-unknown-attention", "run +attention.heads=2", "Unknown key 'attention.heads'",
         "dropout"),
    case("key-unknown-backbone", "run backbone.width=8", "Unknown key 'backbone.width'", "d_model"),
    # -- wrong types
    case("type-lr", "run trainer.lr=abc", "'trainer.lr' = 'abc' should be float"),
    case("type-batch-float", "run trainer.batch_size=1.5",
         "'trainer.batch_size' = 1.5 should be int"),
    case("type-d-model", "run backbone.d_model=abc", "'backbone.d_model' = 'abc' should be int"),
    case("type-seed", "run seed=abc", "'seed' = 'abc'", "integer >= 0"),
    case("type-bool", "run trainer.deterministic=maybe", "'trainer.deterministic'", "bool"),
    case("type-literal", "run backbone=rnn backbone.cell=foo", "'backbone.cell' = 'foo'",
         "'lstm', 'gru'"),
    case("type-list", "run trainer.lr=[1,2]", "'trainer.lr' = [1, 2] should be float"),
    # -- out of range
    case("range-lr-zero", "run trainer.lr=0", "'trainer.lr' = 0 is out of range", "(0, 10]"),
    case("range-lr-huge", "run trainer.lr=1e30", "'trainer.lr'", "(0, 10]"),
    case("range-batch-zero", "run trainer.batch_size=0", "'trainer.batch_size' = 0", ">= 1"),
    case("range-epochs", "run trainer.epochs=0", "'trainer.epochs' = 0", ">= 1"),
    case("range-dropout", "run backbone.dropout=1.5", "'backbone.dropout' = 1.5", "[0, 1)"),
    case("range-attn-dropout", "run attention.dropout=1.0", "'attention.dropout'", "[0, 1)"),
    case("range-negative-length", "run task=copy backbone=seq2seq task.length=-3",
         "'task.length' = -3", ">= 1"),
    case("range-queries", "run task.num_queries=100", "'task.num_queries' = 100", "num_pairs"),
    case("range-layers", "run backbone.layers=0", "'backbone.layers' = 0", ">= 1"),
    case("range-seed", "run seed=-1", "'seed' = -1", "integer >= 0"),
    case("heads-not-dividing", "run attention=multihead attention.heads=3", "divisible by heads=3",
         "1, 2, 4, 8"),
    case("sequence-too-long", "run task=listops task.max_len=1024", "1024",
         "'backbone.max_len' = 512"),
    case("range-in-a-sweep", "sweep attention=dot,scaled trainer.lr=0,1e-3", "'trainer.lr' = 0"),
    # -- every problem at once
    case("all-problems-at-once", "run trainer.lr=0 backbone.dropout=1.5 seed=-1 foo=1",
         "4 problems", "'trainer.lr'", "'backbone.dropout'", "'seed'", "'foo'"),
    # -- incompatible backbone/task; safe defaults: nothing importable by name
    case("incompatible", "run backbone=rnn task=copy", "backbone 'rnn' cannot run task 'copy'",
         "seq2seq, transformer"),
    case("target-in-group", "run +attention._target_=os.system", "_target_ cannot be set"),
    case("target-in-callbacks", "run +hydra.callbacks.x._target_=os.system", "_target_"),
    case("target-in-a-dict", "run +hydra.callbacks.x={_target_:os.system}", "_target_"),
    case("target-as-name", "run attention.name=os.system", "Unknown attention 'os.system'",
         ATTENTIONS),
    # -- data files
    case("data-missing", "run task=text backbone=rnn task.path={data}/nope.csv",
         "nope.csv: file not found", "task.path"),
    case("data-empty", "run task=text backbone=rnn task.path={data}/empty.csv", "file is empty"),
    case("data-blank", "run task=text backbone=rnn task.path={data}/blank.tsv", "file is empty"),
    case("data-header-only", "run task=text backbone=rnn task.path={data}/header_only.csv",
         "no data rows"),
    case("data-wrong-columns", "run task=text backbone=rnn task.path={data}/wrong_columns.csv",
         "no column 'text'", "columns found: 'id', 'sentence', 'stars'"),
    case("data-not-utf8", "run task=text backbone=rnn task.path={data}/latin1.csv",
         "latin1.csv:2: not valid UTF-8"),
    case("data-ragged", "run task=text backbone=rnn task.path={data}/ragged.tsv",
         "ragged.tsv:3", "expected 2 TSV fields"),
    case("data-one-class", "run task=text backbone=rnn task.path={data}/one_class.csv",
         "one class only", "at least 2"),
    case("data-bad-jsonl", "run task=text backbone=rnn task.path={data}/broken.jsonl",
         "broken.jsonl:2: not valid JSON"),
    case("data-unknown-extension", "run task=text backbone=rnn task.path={data}/notes.txt",
         "cannot tell the format", "csv, tsv, jsonl"),
    case("data-no-path", "run task=text backbone=rnn", "'task.path' is required"),
    case("data-translation-ragged",
         "run task=translation backbone=seq2seq task.path={data}/pairs_ragged.tsv",
         "pairs_ragged.tsv:2", "at least 2"),
    case("data-in-a-sweep", "sweep task=text backbone=rnn task.path={data}/one_class.csv seed=0,1",
         "one class only"),
    # -- tracking
    case("uri-no-scheme", "run tracking.uri=notaurl", "Malformed tracking.uri 'notaurl'",
         "sqlite://"),
    case("uri-bad-scheme", "run tracking.uri=ftp://host/x", "Malformed tracking.uri", "http://"),
    case("uri-bad-port", "run tracking.uri=http://127.0.0.1:abc", "port must be a number"),
    case("uri-no-host", "run tracking.uri=http://", "no host"),
    case("uri-sqlite-no-file", "run tracking.uri=sqlite://", "no database file"),
    case("server-unreachable", "run tracking.uri=http://127.0.0.1:{port}",
         "Cannot reach the MLflow server at http://127.0.0.1:{port}", "start it"),
    case("server-unreachable-sweep", "sweep tracking.uri=http://127.0.0.1:{port} seed=0,1",
         "Cannot reach the MLflow server"),
    # -- where results go
    case("runs-dir-empty", "run runs_dir= trainer=smoke", "'runs_dir'", smoke=False),
    case("experiment-name-empty", "run experiment_name=", "'experiment_name'"),
    # -- where results go: folders that cannot be created, names MLflow refuses (before Hydra
    #    creates its output folders)
    case("seed-too-big", "run seed=18446744073709551616", "'seed' = 18446744073709551616",
         "2**64 - 1"),
    case("experiment-name-too-long", "run experiment_name=" + "n" * 5000,
         "'experiment_name' is 5000 characters long", "at most 500"),
    case("runs-dir-under-a-file", "run runs_dir={data}/good.csv/runs trainer=smoke",
         "'runs_dir'", "good.csv is not a folder", smoke=False),
    case("runs-dir-dev-null", "run runs_dir=/dev/null trainer=smoke",
         "'runs_dir' = '/dev/null' is not a folder", smoke=False),
    case("runs-dir-read-only", "sweep runs_dir=/sys/attnbench-runs seed=0,1 trainer=smoke",
         "'runs_dir' = '/sys/attnbench-runs' cannot be used", "/sys", smoke=False),
    case("runs-dir-name-too-long", "run trainer=smoke runs_dir=" + "r" * 5000, "'runs_dir'",
         "5000 bytes", "allows 255", smoke=False),
    case("runs-dir-path-too-long", "run trainer=smoke runs_dir=" + "abc/" * 1300, "'runs_dir'",
         "path limit", smoke=False),
    # -- a local store that exists but cannot be used: the same line for run, sweep, compare
    case("store-garbage-run", "run trainer=smoke runs_dir={stores}/garbage",
         "{stores}/garbage/mlflow.db is not an SQLite database", "mv ", smoke=False),
    case("store-garbage-sweep", "sweep seed=0,1 trainer=smoke runs_dir={stores}/garbage",
         "{stores}/garbage/mlflow.db is not an SQLite database", "mv ", smoke=False),
    case("store-garbage-compare", "compare --no-plots --runs-dir {stores}/garbage",
         "{stores}/garbage/mlflow.db is not an SQLite database", "mv ", smoke=False),
    case("store-a-folder", "sweep seed=0,1 trainer=smoke runs_dir={stores}/folder",
         "mlflow.db is a folder", smoke=False),
    case("store-half-migrated", "run trainer=smoke runs_dir={stores}/half",
         "is half-migrated", "_alembic_tmp_runs", "mv ", smoke=False),
    # -- training settings that only make sense together
    case("weight-decay-huge", "run trainer.weight_decay=1e30", "'trainer.weight_decay' = 1e+30",
         "< 1/trainer.lr"),
    # -- sizes the machine cannot hold: refused before any data is drawn
    case("size-length-vs-backbone", "run task=copy task.length=100000",
         "'task.length' = 100000", "'backbone.max_len' = 512"),
    case("size-length-memory", "run task=copy backbone=seq2seq task.length=100000",
         "'task.length' = 100000", "memory available"),
    case("size-recall-keys", "run task.num_pairs=100000 task.num_keys=200000",
         "'task.num_pairs' = 100000", "'backbone.max_len' = 512"),
    case("size-n-train", "run task.n_train=10000000000", "'task.n_train' = 10000000000",
         "memory available"),
    case("size-in-a-sweep", "sweep seed=0,1 task=reverse backbone=seq2seq task.n_val=10000000000",
         "'task.n_val' = 10000000000"),
    case("bench-nothing-fits", "bench bench.seq_lens=[10000000] runs_dir={runs}",
         "'bench.seq_lens' = [10000000]", "every case would be skipped", "the longest that fits",
         smoke=False),
    case("data-a-folder", "run task=text backbone=rnn task.path={data}/folder.csv",
         "folder.csv: not a file"),
    # -- compare / reproduce
    case("compare-output-cannot-be-written",
         "compare --no-plots -e assoc_recall -o /dev/null/x.md --runs-dir {store}",
         "--output '/dev/null/x.md'", "/dev/null is not a folder", smoke=False),
    case("compare-no-store", "compare --no-plots --runs-dir {runs}/missing", "No MLflow store",
         smoke=False),
    case("compare-empty-store", "compare --no-plots --runs-dir {runs}", "No sweep in the store",
         smoke=False),
    case("compare-unknown-experiment", "compare --no-plots -e nope --runs-dir {store}",
         "Unknown experiment 'nope'", "assoc_recall", smoke=False),
    case("compare-unknown-metric", "compare --no-plots -e assoc_recall -m nope --runs-dir {store}",
         "Unknown metric 'nope'", "test/acc", smoke=False),
    case("compare-unknown-by", "compare --no-plots -e assoc_recall --by nope --runs-dir {store}",
         "Unknown --by key 'nope'", smoke=False),
    case("compare-unknown-sweep", "compare --no-plots --sweep nope --runs-dir {store}",
         "No run with id 'nope'", smoke=False),
    case("compare-unknown-format", "compare --no-plots -e assoc_recall -f xml --runs-dir {store}",
         "Unknown format 'xml'", "markdown, csv, json", smoke=False),
    case("compare-across-one-task", "compare --no-plots -e assoc_recall --across task "
         "--runs-dir {store}", "--across task", "at least 2 tasks", smoke=False),
    case("compare-margin-negative", "compare --no-plots -e assoc_recall --margin -1 "
         "--runs-dir {store}", "--margin -1.0", "give a number >= 0", smoke=False),
    case("reproduce-unknown-run", "reproduce deadbeef --runs-dir {store}",
         "No run with id 'deadbeef'", smoke=False),
    case("reproduce-no-store", "reproduce deadbeef --runs-dir {runs}/missing", "No MLflow store",
         smoke=False),
    # -- the command line itself (click's usage errors, made one line)
    case("cli-unknown-command", "nope", "No such command 'nope'", "(see 'attnbench --help')",
         smoke=False),
    case("cli-command-typo", "compre", "No such command 'compre'", "compare", smoke=False),
    case("cli-unknown-option", "compare --nope", "No such option: --nope",
         "(see 'attnbench compare --help')", smoke=False),
    case("cli-missing-argument", "reproduce", "Missing argument 'RUN_ID'",
         "(see 'attnbench reproduce --help')", smoke=False),
    case("cli-option-needs-value", "compare --sweep", "Option '--sweep' requires an argument",
         smoke=False),
    case("cli-option-bad-int", "ui --port abc", "Invalid value for '--port'",
         "'abc' is not a valid", smoke=False),
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs folders whose mlflow.db cannot be used: garbage bytes, a folder, a half-migrated
    file (an interrupted migration's leftover table)."""
    root = tmp_path_factory.mktemp("bad_stores")
    (root / "garbage").mkdir()
    (root / "garbage" / "mlflow.db").write_bytes(b"not a database\n" * 100)
    (root / "folder" / "mlflow.db").mkdir(parents=True)
    (root / "half").mkdir()
    with sqlite3.connect(root / "half" / "mlflow.db") as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        conn.execute("INSERT INTO alembic_version VALUES ('bda7b8c39065')")
        conn.execute("CREATE TABLE experiments (experiment_id INTEGER)")
        conn.execute("CREATE TABLE _alembic_tmp_runs (run_uuid VARCHAR(32))")
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> Path:
    """A store with one finished smoke run (experiment assoc_recall)."""
    import shutil

    from attnbench.run.launch import launch

    root = tmp_path_factory.mktemp("store_with_run")
    shutil.copy(empty_store, root / "mlflow.db")
    assert launch(["trainer=smoke", f"runs_dir={root}"], multirun=False) == 0
    return root


def _fill(text: str, **values: object) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def run_count(runs_dir: Path) -> int:
    """Runs in the store (read with sqlite3: far cheaper than an MLflow client per case)."""
    db = runs_dir / "mlflow.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def _lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip()]


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, cli, runs_dir: Path, data_dir: Path, unused_port: int,
                   request: pytest.FixtureRequest) -> None:
    values = {"data": data_dir, "port": unused_port, "runs": runs_dir}
    if any("{store}" in a for a in case.args):
        values["store"] = request.getfixturevalue("store")
    if any("{stores}" in a for a in case.args):
        values["stores"] = request.getfixturevalue("stores")
    args = [_fill(a, **values) for a in case.args]
    result = cli(*args, smoke=case.smoke)
    output = result.output
    assert "Traceback" not in output
    lines = _lines(output)
    assert len(lines) == 1, output
    assert result.exit_code == case.code, output
    assert lines[0].startswith("error: ")
    for fragment in case.says:
        assert _fill(fragment, **values) in lines[0], lines[0]
    # nothing half-written: no run at all (every case here fails before training)
    assert run_count(runs_dir) == 0


@pytest.mark.slow
def test_one_line_in_an_80_column_pipe(runs_dir: Path, tmp_path: Path) -> None:
    """A long, many-problem message stays on one line in a narrow non-TTY (no soft wrapping)."""
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    cmd = [*attnbench_cmd(), "run", "trainer.lr=0", "backbone.dropout=1.5", "seed=-1", "foo=1",
           "trainer.batch_size=0", f"runs_dir={runs_dir}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = _lines(proc.stderr)
    assert len(lines) == 1 and len(lines[0]) > 200, proc.stderr
    assert "Traceback" not in proc.stderr


def test_messages_are_not_wrapped_in_a_narrow_non_tty() -> None:
    """The in-process corpus runs in a non-TTY; the error console must never soft-wrap."""
    from attnbench.console import err_console, error

    assert err_console.soft_wrap
    previous = err_console._width
    try:
        err_console.width = 80
        with err_console.capture() as captured:
            error("x" * 300 + " and some more words " * 10)
    finally:
        err_console._width = previous
    assert len(_lines(captured.get())) == 1


def test_debug_adds_the_traceback_keeps_exit_code(cli, runs_dir: Path) -> None:
    result = cli("run", "trainer.lr=0", "--debug")
    assert result.exit_code == 2
    assert "Traceback" in result.output
    assert _lines(result.output)[-1].startswith("error: 'trainer.lr' = 0")


def test_error_lines_keep_brackets_from_user_input(capsys: pytest.CaptureFixture[str]) -> None:
    """The message is text, not rich markup: 'imdb[train]' and '[bold]' print as typed."""
    from attnbench.console import error

    error("imdb[train]: no column 'x'; seen [bold] and [/]")  # writes to the current sys.stderr
    assert capsys.readouterr().err == "error: imdb[train]: no column 'x'; seen [bold] and [/]\n"


# -- sizes: the refusing process itself stays small ----------------------------------------------
SIZE_CASES = [c for c in CASES if c.id.startswith("size-") or c.id == "bench-nothing-fits"]
PEAK_LIMIT_MB = 1024
# A fresh parent whose only child is the refusing command: RUSAGE_CHILDREN then holds that
# child's peak RSS alone (ru_maxrss is in KiB on Linux). Address space is capped at 8 GiB so a
# check that failed could not take the machine down with it.
_PEAK = """
import resource, subprocess, sys
cap = 8 * 2**30
p = subprocess.run(sys.argv[1:], capture_output=True, text=True,
                   preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
sys.stderr.write(p.stderr)
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def refusing_peak_mb(args: list[str], cwd: Path) -> tuple[int, float, str]:
    """(exit code, peak RSS in MB, stderr) of `attnbench ARGS` in a subprocess."""
    proc = subprocess.run([sys.executable, "-c", _PEAK, *attnbench_cmd(), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    code, kib = proc.stdout.split()
    return int(code), int(kib) / 1024, proc.stderr


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=() if c.id == "size-n-train" else pytest.mark.slow)
     for c in SIZE_CASES],
    ids=[c.id for c in SIZE_CASES],
)
def test_refusing_a_size_stays_under_1_gb(case: Case, runs_dir: Path, tmp_path: Path) -> None:
    args = [_fill(a, runs=runs_dir) for a in case.args]
    if case.smoke:
        args += ["trainer=smoke", f"runs_dir={runs_dir}"]
    code, peak_mb, stderr = refusing_peak_mb(args, tmp_path)
    assert code == 2, stderr
    assert [ln for ln in stderr.splitlines() if ln.strip()][-1].startswith("error: ")
    assert peak_mb < PEAK_LIMIT_MB, f"{case.id}: the refusing process peaked at {peak_mb:.0f} MB"
    assert run_count(runs_dir) == 0
