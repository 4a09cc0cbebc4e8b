"""A user's own attention variant from their own package (tests/plugin_pkg, RBF attention):
pip installs it, `attnbench list` shows it with its origin, and a sweep runs it next to a
built-in variant. The package is installed into a folder of its own (pip --target) and put on
PYTHONPATH for the subprocesses only, so other tests never see it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, attnbench_cmd, tracker_for
from tests.launchers.checks import check_sweep

PLUGIN_SRC = REPO / "tests" / "plugin_pkg"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment whose Python sees the installed plugin (its dist-info and entry points)."""
    src = tmp_path_factory.mktemp("plugin_src") / "plugin_pkg"
    shutil.copytree(PLUGIN_SRC, src)  # building writes build/ and *.egg-info beside the source
    site = tmp_path_factory.mktemp("plugin_site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_list_shows_plugin_variant_and_its_origin(plugin_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    proc = subprocess.run([*attnbench_cmd(), "list"], cwd=tmp_path, env=plugin_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "│ rbf " in line]
    assert rows, proc.stdout
    assert "attention" in rows[0] and "plugin attnbench-rbf" in rows[0]


@pytest.mark.slow  # installs nothing, but trains two variants in a subprocess sweep
def test_sweep_runs_plugin_variant_next_to_builtin(plugin_env: dict[str, str], runs_dir: Path,
                                                   tmp_path: Path) -> None:
    cmd = [*attnbench_cmd(), "sweep", "attention=rbf,scaled", "trainer=smoke",
           f"runs_dir={runs_dir}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=plugin_env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    children = check_sweep(tracker_for(runs_dir), ["rbf", "scaled"], tmp_path / "dl")
    rbf = next(r for r in children if r.tags["attention"] == "rbf")
    assert rbf.params["attention.temperature"] == "0.0"  # the plugin's own YAML was composed


def test_unknown_plugin_option_names_plugin_options_too(plugin_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    proc = subprocess.run([*attnbench_cmd(), "run", "attention=rfb", "trainer=smoke"],
                          cwd=tmp_path, env=plugin_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "rfb" in proc.stderr and "rbf" in proc.stderr and "scaled" in proc.stderr


# -- the plugin's variant honours the attention contract (imported from its source folder) -----
@pytest.fixture
def rbf_cls(monkeypatch: pytest.MonkeyPatch) -> type:
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    from attnbench_rbf.rbf import RBFAttention

    return RBFAttention


def test_rbf_matches_reference_and_fast_path(rbf_cls: type) -> None:
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 6)
    mask = torch.ones(2, 3, 5, dtype=torch.bool)
    mask[0, :, 3:] = False  # padded keys
    mask[1, 2, :] = False  # a query with nothing to attend to
    attn = rbf_cls(8, 8, 6, temperature=4.0).eval()
    context, weights = attn(q, k, v, mask, need_weights=True)
    # Reference: softmax over keys of -‖q - k‖² / τ, every (query, key) difference written out.
    sq_dist = (q[:, :, None, :] - k[:, None, :, :]).square().sum(-1)  # (B, Tq, Tk)
    scores = (-sq_dist / 4.0).masked_fill(~mask, float("-inf"))
    ref_w = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    torch.testing.assert_close(weights, ref_w, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(context, ref_w @ v, atol=1e-5, rtol=1e-5)
    assert torch.all(weights[0, :, 3:] == 0) and torch.all(weights[1, 2] == 0)
    fast, none = attn(q, k, v, mask)
    assert none is None and not torch.isnan(fast).any()
    torch.testing.assert_close(fast, context, atol=1e-5, rtol=1e-5)
    assert rbf_cls(8, 8, 6).temperature == 8**0.5  # temperature 0 = √d_key


# -- the plugin's variant in the bench: FLOPs counted like a built-in's ------------------------
@pytest.fixture
def rbf_registered(rbf_cls: type) -> Iterator[type]:
    """RBFAttention in the registry for one test, as its entry point would put it there."""
    from attnbench.attention import ATTENTION

    ATTENTION.names()  # the built-ins first
    ATTENTION.register("rbf")(rbf_cls)
    try:
        yield rbf_cls
    finally:
        ATTENTION._items.pop("rbf", None)
        ATTENTION._origin.pop("rbf", None)


def test_bench_counts_the_plugin_variants_flops(rbf_registered: type) -> None:
    """torch's FLOP counter sees the plugin's SDPA call on [2q, 1] and [k, −‖k‖²] (width D + 1)
    with values of width D: unequal widths, so PyTorch runs SDPA's math path, whose products
    (Q Kᵀ, P V, and their four gradient products) the counter counts like any matmul."""
    from attnbench.bench.kernels import build_runner, cases_for
    from attnbench.bench.measure import count_flops
    from attnbench.bench.plan import BenchSettings, Case

    b, t, d = 2, 24, 16
    settings = BenchSettings(batch=b, dim=d, seq_lens=[t])
    node = {"name": "rbf", "temperature": 0.0, "dropout": 0.0}
    assert cases_for("rbf", t, settings) == [Case("rbf", "variant", t)]  # it declares no refs
    counted = count_flops(build_runner(Case("rbf", "variant", t), node, settings))
    assert counted == 3 * 2 * b * t * t * ((d + 1) + d)  # 2 FLOPs per multiply-add


def test_a_plugin_class_without_the_base_class_is_refused() -> None:
    """The registry checks the base class that holds the facts: one line, not an
    AttributeError deep in the pre-flight or the bench."""
    from torch import nn

    from attnbench.attention import ATTENTION
    from attnbench.errors import ConfigError

    class Bare(nn.Module):
        pass

    ATTENTION.names()
    ATTENTION.register("bare_plugin")(Bare)
    try:
        with pytest.raises(ConfigError, match="does not derive from attnbench.attention.base"):
            ATTENTION.get("bare_plugin")
    finally:
        ATTENTION._items.pop("bare_plugin", None)
        ATTENTION._origin.pop("bare_plugin", None)


@pytest.mark.slow  # a bench in a subprocess
def test_bench_shows_gflops_for_the_plugin_variant(plugin_env: dict[str, str], runs_dir: Path,
                                                   tmp_path: Path) -> None:
    cmd = [*attnbench_cmd(), "bench", "attention=rbf,scaled", "bench.seq_lens=[32]",
           "bench.repeats=3", "bench.memory=false", "bench.naive=false", "bench.peak_size=128",
           f"runs_dir={runs_dir}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=plugin_env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    table = next(runs_dir.glob("bench/*/table.txt")).read_text()
    row = next(line for line in table.splitlines() if "│ rbf " in line)
    assert "—" not in row.split("│")[-3:-1][0], row  # a GFLOP/s figure, not a dash
