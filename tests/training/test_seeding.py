"""trainer.deterministic: what `set_deterministic` switches on (torch's flag, cuBLAS's workspace
variable, cuDNN's flags, inductor's variable) and what it leaves alone. The settings are global:
every test restores them (`global_state`), so no other test in the worker sees them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch

from attnbench.training import seeding
from attnbench.training.loop import fit
from tests.training.conftest import COPY, RECALL, Recorder, case
from tests.training.test_device import needs_cuda

CUBLAS = "CUBLAS_WORKSPACE_CONFIG"
INDUCTOR = "TORCHINDUCTOR_DETERMINISTIC"


@pytest.fixture
def global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Unset CUBLAS_WORKSPACE_CONFIG and TORCHINDUCTOR_DETERMINISTIC and cuDNN's torch defaults,
    all put back afterwards with torch's deterministic-algorithms flag."""
    for name in (CUBLAS, INDUCTOR):
        monkeypatch.setenv(name, "")  # records the value to restore (unset included)
        monkeypatch.delenv(name)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    yield monkeypatch
    torch._C._set_deterministic_algorithms(before[0], warn_only=before[1])


def test_deterministic_sets_torch_cublas_and_cudnn(global_state: pytest.MonkeyPatch) -> None:
    global_state.setattr(torch.backends.cudnn, "benchmark", True)
    seeding.set_deterministic(True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()  # warns, never fails a run
    assert seeding.os.environ[CUBLAS] == ":4096:8"
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False
    assert seeding.os.environ[INDUCTOR] == "1"


def test_not_deterministic_forces_nothing(global_state: pytest.MonkeyPatch) -> None:
    global_state.setattr(torch.backends.cudnn, "benchmark", True)  # a choice of someone's own
    seeding.set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert CUBLAS not in seeding.os.environ
    assert torch.backends.cudnn.deterministic is False
    assert torch.backends.cudnn.benchmark is True  # left as it was
    assert seeding.os.environ[INDUCTOR] == "0"


def test_a_deterministic_job_does_not_carry_over_to_the_next(
    global_state: pytest.MonkeyPatch,
) -> None:
    """A sweep worker runs jobs one after another in one process."""
    seeding.seed_everything(0, deterministic=True)
    seeding.seed_everything(1, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic is False


@pytest.mark.parametrize("mode", [True, False])
def test_the_users_own_cublas_workspace_setting_is_kept(
    global_state: pytest.MonkeyPatch, mode: bool
) -> None:
    global_state.setenv(CUBLAS, ":16:8")
    seeding.set_deterministic(mode)
    assert seeding.os.environ[CUBLAS] == ":16:8"


def test_with_inductor_imported_the_public_call_sets_its_flag_too(
    global_state: pytest.MonkeyPatch,
) -> None:
    import torch._inductor.config as inductor_config

    global_state.setattr(inductor_config, "deterministic", False)
    seeding.set_deterministic(True)
    assert inductor_config.deterministic is True
    seeding.set_deterministic(False)
    assert inductor_config.deterministic is False


def test_no_inductor_import_at_start_up_and_inductor_follows_the_setting() -> None:
    """A fresh interpreter (this worker may have imported inductor): `set_deterministic` does
    not import it, and inductor's config, imported afterwards, is deterministic."""
    code = (
        "import sys\n"
        "from attnbench.training.seeding import set_deterministic\n"
        "set_deterministic(True)\n"
        "print('torch._inductor.config' in sys.modules)\n"
        "import torch._inductor.config as c\n"
        "print(c.deterministic)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["False", "True"], out.stderr


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("kind", ["recall", "copy"])  # transformer (cuBLAS), GRUs (cuDNN too)
def test_two_deterministic_cuda_runs_log_the_same_numbers(kind: str) -> None:
    """`case` seeds with `seed_everything(seed)` (deterministic): the same config trained twice on
    CUDA logs bit-identical losses and metrics."""
    runs = []
    for _ in range(2):
        c = case(RECALL if kind == "recall" else COPY, max_steps=6, log_every=1, device="cuda")
        sink = Recorder()
        result = fit(c.model, c.data, c.trainer, c.seed, sink)
        runs.append((sink.logged, result.val, result.test))
    assert runs[0] == runs[1]
