"""A user's own attention variant from their own package (tests/plugin_pkg, RBF attention):
pip installs it, `attnbench list` shows it with its origin, and a sweep runs it next to a
built-in variant. The package is installed into a folder of its own (pip --target) and put on
PYTHONPATH for the subprocesses only, so other tests never see it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
