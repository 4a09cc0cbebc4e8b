"""trainer.device and trainer.precision: the form checked with the config, the machine checked by
training.device, each problem one line naming the key and what is valid here."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest
import torch

from attnbench.errors import ConfigError
from attnbench.training import device as dev
from attnbench.training.config import TrainerConfig
from attnbench.training.loop import fit
from tests.conftest import all_runs
from tests.training.conftest import Recorder, case

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine, as a CPU-only one (whatever it really has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)


def test_auto_and_cpu_resolve_to_the_cpu_without_accelerators(cpu_only: None) -> None:
    assert dev.resolve_device("auto") == torch.device("cpu")
    assert dev.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_cuda_is_one_line_naming_the_key_and_the_valid_choices(
    cpu_only: None, spec: str
) -> None:
    with pytest.raises(ConfigError) as err:
        dev.resolve_device(spec)
    line = err.value.one_line()
    assert "\n" not in line
    assert line.startswith(f"'trainer.device' = '{spec}': no CUDA device is available here (torch ")
    assert line.endswith("Valid here: auto, cpu")


def test_mps_without_mps(cpu_only: None) -> None:
    with pytest.raises(ConfigError, match=r"'trainer.device' = 'mps': no MPS .*here: auto, cpu$"):
        dev.resolve_device("mps")


def test_a_cuda_index_beyond_the_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        dev.resolve_device("cuda:1")
    assert err.value.one_line() == (
        "'trainer.device' = 'cuda:1': this machine has 1 CUDA device. "
        "Valid here: auto, cpu, cuda, cuda:0"
    )


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "CPU", "", "cuda:0 "])
def test_the_device_form_is_checked_with_the_config(spec: str) -> None:
    problems = TrainerConfig(device=spec).problems()
    assert problems == [
        f"'trainer.device' = {spec!r} is not valid: choose one of auto, cpu, cuda, cuda:N, mps"
    ]


def test_precision_accepts_hydra_ints_and_strings_and_normalises_them() -> None:
    from attnbench.config.validate import trainer_config

    base = {"precision": 16}
    assert trainer_config(base).precision == "16"
    assert trainer_config({"precision": 32}).precision == "32"
    assert trainer_config({"precision": "bf16"}).precision == "bf16"
    for bad, message in [(8, "'8' is not valid: choose one of 32, bf16, 16"),
                         ("fp16", "'fp16' is not valid"), (16.0, "should be str | int"),
                         (True, "should be str | int")]:
        with pytest.raises(ConfigError, match=message):
            trainer_config({"precision": bad})


def test_float16_is_refused_on_the_cpu_in_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        dev.check_precision("16", torch.device("cpu"))
    assert err.value.one_line() == (
        "'trainer.precision' = '16': float16 autocast needs a CUDA or MPS device, and this run "
        "trains on cpu. Valid here: 32, bf16"
    )
    dev.check_precision("bf16", torch.device("cpu"))
    dev.check_precision(32, torch.device("cpu"))


def test_fit_refuses_float16_on_the_cpu_before_training() -> None:
    c = case(precision="16", device="cpu")
    sink = Recorder()
    with pytest.raises(ConfigError, match="float16 autocast needs a CUDA or MPS device"):
        fit(c.model, c.data, c.trainer, c.seed, sink)
    assert sink.logged == []


def test_resolve_checks_device_and_precision_together(cpu_only: None) -> None:
    assert dev.resolve(TrainerConfig(device="auto", precision="bf16")) == torch.device("cpu")
    with pytest.raises(ConfigError, match="'trainer.precision' = '16'"):
        dev.resolve(TrainerConfig(precision=16))


T4 = ("Tesla T4", (7, 5))  # Turing: bfloat16 only emulated
A100 = ("NVIDIA A100-SXM4-40GB", (8, 0))  # Ampere: bfloat16 native


def fake_gpu(monkeypatch: pytest.MonkeyPatch, name: str, capability: tuple[int, int],
             *, old_torch: bool = False) -> None:
    """This machine, as one with a single CUDA GPU `name` of compute capability `capability`.

    `torch.cuda.is_bf16_supported` answers as torch does for a GPU that can emulate bfloat16:
    yes, unless asked with ``including_emulation=False`` on a GPU below 8.0. `old_torch`: the
    function takes no arguments (a torch before ``including_emulation``) and always says yes.
    """
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return capability[0] >= 8 or including_emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        (lambda: True) if old_torch else is_bf16_supported)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)


@pytest.mark.parametrize("old_torch", [False, True])
def test_a_gpu_that_only_emulates_bf16_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, old_torch: bool
) -> None:
    fake_gpu(monkeypatch, *T4, old_torch=old_torch)
    cuda = dev.resolve_device("cuda")
    assert not dev.native_bf16(cuda)
    with pytest.raises(ConfigError) as err:
        dev.check_precision("bf16", cuda)
    assert err.value.one_line() == (
        "'trainer.precision' = 'bf16': Tesla T4 has no native bfloat16 (compute capability "
        "7.5 < 8.0: PyTorch would only emulate it, slowly). Valid here: 32, 16"
    )
    with pytest.raises(ConfigError, match="Tesla T4 has no native bfloat16"):
        dev.resolve(TrainerConfig(device="cuda:0", precision="bf16"))
    for precision in ("32", "16"):
        assert dev.resolve(TrainerConfig(device="cuda", precision=precision)) == cuda


@pytest.mark.parametrize("old_torch", [False, True])
def test_a_gpu_with_native_bf16_trains_in_it(
    monkeypatch: pytest.MonkeyPatch, old_torch: bool
) -> None:
    fake_gpu(monkeypatch, *A100, old_torch=old_torch)
    assert dev.native_bf16(torch.device("cuda:0"))
    for precision in ("32", "bf16", "16"):
        assert dev.resolve(TrainerConfig(device="auto", precision=precision)) == torch.device(
            "cuda")


def test_run_refuses_bf16_on_an_emulating_gpu_with_one_line_and_no_run(
    cli, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI path (pre-flight), in-process: a subprocess could not fake the GPU."""
    fake_gpu(monkeypatch, *T4)
    result = cli("run", "trainer.device=cuda", "trainer.precision=bf16")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == ["error: 'trainer.precision' = 'bf16': Tesla T4 has no native bfloat16 "
                     "(compute capability 7.5 < 8.0: PyTorch would only emulate it, slowly). "
                     "Valid here: 32, 16"], result.output
    assert all_runs(runs_dir) == []


def test_device_info_names_the_hardware_and_the_build() -> None:
    info = dev.device_info(torch.device("cpu"))
    assert info.keys() == {"device", "device_name", "torch_version", "cuda_version"}
    assert info["device"] == "cpu" and info["device_name"]
    assert info["torch_version"] == torch.__version__
    assert info["cuda_version"] == (torch.version.cuda or "none")


def test_bf16_autocast_trains_a_small_model_on_the_cpu() -> None:
    c = case(max_steps=8, batch_size=32, log_every=2, precision="bf16", device="cpu")
    before = {k: v.clone() for k, v in c.model.state_dict().items()}
    sink = Recorder()
    result = fit(c.model, c.data, c.trainer, c.seed, sink)
    assert result.steps == 8
    losses = [m["train/loss"] for _, m in sink.logged if "train/loss" in m]
    assert len(losses) == 4 and all(0 < x < 10 for x in losses)
    assert all(p.dtype == torch.float32 for p in c.model.parameters())  # autocast, not casting
    assert any(not torch.equal(before[k], v) for k, v in result.best_state.items())
    assert 0 <= result.test["acc"] <= 1 and result.val["loss"] > 0


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["32", "bf16", "16"])
@pytest.mark.parametrize("kind", ["recall", "copy"])
def test_cuda_training_in_each_precision(precision: str, kind: str) -> None:
    if precision == "bf16" and not dev.native_bf16(torch.device("cuda")):
        pytest.skip("this GPU has no native bfloat16")
    from tests.training.conftest import COPY, RECALL

    c = case(RECALL if kind == "recall" else COPY, max_steps=6, log_every=3, device="cuda",
             precision=precision)
    result = fit(c.model, c.data, c.trainer, c.seed, Recorder())
    assert next(c.model.parameters()).device.type == "cuda"
    assert all(v.device.type == "cpu" for v in result.best_state.values())
    assert result.cost["peak_mem_mb"] > 0
    assert dataclasses.asdict(c.trainer)["precision"] == precision
