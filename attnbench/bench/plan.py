"""What `attnbench bench` measures: the settings (conf/bench.yaml's `bench` node), the cases,
and the plan composed from conf/bench.yaml and the command's overrides, validated all at once.

No torch here: composition and validation come before anything is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attnbench.errors import ConfigError

CONFIG_NAME = "bench"  # conf/bench.yaml
# A case times its variant, or one reference the variant declares (Attention.references):
# bare = one SDPA call, plain = the variant as plain torch calls, torch = PyTorch's own module for
# it (nn.MultiheadAttention), naive = the textbook formula with every intermediate materialised.
KINDS = ("variant", "bare", "plain", "torch", "naive")
DTYPE_BYTES = {"float32": 4, "bf16": 2, "float16": 2}  # bench.dtype -> bytes per element
DEVICE_FORMS = "auto, cpu, cuda, cuda:N, mps"
INPUTS = ("self", "separate")
# bench.mode: train = forward + backward (each timed, and their sum); forward = inference forward
# only (no autograd); decode = one decoding step after a prefix of T positions (Attention.decode)
MODES = ("train", "forward", "decode")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass
class BenchSettings:
    """The ``bench`` node of conf/bench.yaml (each key is documented there)."""

    batch: int = 8
    dim: int = 128
    heads: int | None = None
    window: int | None = None
    seq_lens: list[int] = field(default_factory=lambda: [128, 256, 512, 1024, 2048])
    repeats: int = 7
    warmup: int = 1
    budget_s: float = 120.0
    naive: bool = True
    bare: bool = True
    memory: bool = True
    threads: int = 0
    mem_fraction: float = 0.7
    peak_size: int = 2048
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    inputs: str = "self"
    mode: str = "train"
    causal: bool = False
    prefill: int = 0

    @property
    def element_bytes(self) -> int:
        """Bytes per element of ``dtype`` (the cost models' unit)."""
        return DTYPE_BYTES[self.dtype]

    def problems(self) -> list[str]:
        out: list[str] = []

        def need(ok: bool, key: str, rule: str) -> None:
            if not ok:
                out.append(f"'bench.{key}' = {getattr(self, key)!r} is out of range: {rule}")

        need(self.batch >= 1, "batch", "must be >= 1")
        need(self.dim >= 1, "dim", "must be >= 1")
        need(self.heads is None or self.heads >= 1, "heads", "must be >= 1 or null")
        need(self.window is None or self.window >= 0, "window", "must be >= 0 or null")
        need(
            bool(self.seq_lens) and all(_is_int(n) and n >= 1 for n in self.seq_lens),
            "seq_lens",
            "must be a non-empty list of lengths >= 1, e.g. [128,256,512]",
        )
        need(self.repeats >= 1, "repeats", "must be >= 1")
        need(self.warmup >= 0, "warmup", "must be >= 0")
        need(self.budget_s > 0, "budget_s", "must be > 0 seconds")
        need(self.threads >= 0, "threads", "must be >= 0 (0 = every core)")
        need(0 < self.mem_fraction <= 1, "mem_fraction", "must be in (0, 1]")
        need(self.peak_size >= 16, "peak_size", "must be >= 16")
        need(self.seed >= 0, "seed", "must be >= 0")
        need(self.prefill >= 0, "prefill", "must be >= 0 (positions per call; 0 = automatic)")
        if not (isinstance(self.device, str) and _DEVICE.fullmatch(self.device)):
            out.append(
                f"'bench.device' = {self.device!r} is not valid: choose one of {DEVICE_FORMS}"
            )
        for key, valid in (("dtype", tuple(DTYPE_BYTES)), ("inputs", INPUTS), ("mode", MODES)):
            if getattr(self, key) not in valid:
                out.append(
                    f"'bench.{key}' = {getattr(self, key)!r} is not valid: choose one of "
                    f"{', '.join(valid)}"
                )
        return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Case:
    """One thing to time at one length: a variant, or one of its references."""

    variant: str
    kind: str  # one of KINDS
    n: int

    @property
    def label(self) -> str:
        return self.variant if self.kind == "variant" else f"{self.variant}_{self.kind}"


@dataclass
class BenchPlan:
    """What to benchmark, composed from conf/bench.yaml and the command's overrides."""

    settings: BenchSettings
    variants: dict[str, dict[str, Any]]  # attention name -> its config node
    device: str = "cpu"  # bench.device resolved on this machine ("auto" -> cuda, mps or cpu)
    tracking_uri: str | None = None
    runs_dir: str = "runs"
    experiment_name: str = "bench"
    config: dict[str, Any] = field(default_factory=dict)


def variant_node(node: Mapping[str, Any], settings: BenchSettings) -> dict[str, Any]:
    """The attention config a case is built from: the variant's YAML with the bench's settings
    applied where its constructor takes them — ``bench.heads`` (heads), ``bench.window`` (window),
    and ``max_len`` raised to the longest of ``bench.seq_lens`` (lowrank has one learned column
    per key position; a shorter ``max_len`` would refuse the longer cases). The module is the
    same at every length, as a trained model's would be.

    Part of the plan (validation builds each variant from it); the kernels import it from here.
    """
    from attnbench.attention import ATTENTION
    from attnbench.attention.base import CONTEXT_ARGS
    from attnbench.registry import params_of

    out = dict(node)
    params = params_of(ATTENTION.get(str(node["name"])), CONTEXT_ARGS)
    for key in ("heads", "window"):
        if getattr(settings, key) is not None and key in params:
            out[key] = getattr(settings, key)
    if "max_len" in params and settings.seq_lens:
        default = params["max_len"].default
        current = out.get("max_len", default)
        if isinstance(current, int) and current < max(settings.seq_lens):
            out["max_len"] = max(settings.seq_lens)
    return out


# -- composition and validation ------------------------------------------------------------------
def compose_plan(args: Sequence[str]) -> BenchPlan:
    """Compose conf/bench.yaml with Hydra overrides (``attention=a,b`` benchmarks each variant)
    and validate everything, reporting every problem at once."""
    from omegaconf import OmegaConf

    from attnbench.config.compose import compose_message, expand_overrides, hydra_compose
    from attnbench.config.groups import group_options

    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise ConfigError(
            f"Unknown option '{flags[0]}': attnbench bench takes Hydra overrides, e.g. "
            "attention=scaled,additive bench.seq_lens=[128,256,512]"
        )
    jobs = expand_overrides(args)
    for job in jobs:
        for ov in job:
            key, _, value = ov.lstrip("+~").partition("=")
            if key in ("attention", "tracking") and value not in group_options(key):
                raise ConfigError(
                    f"Unknown {key} '{value}'. Valid options: {', '.join(group_options(key))}"
                )
    cfgs: list[dict[str, Any]] = []
    with hydra_compose() as compose:
        for job in jobs:
            try:
                cfg = compose(CONFIG_NAME, overrides=job)
            except Exception as err:  # noqa: BLE001 - Hydra/OmegaConf composition errors
                raise ConfigError(compose_message(err, compose, CONFIG_NAME)) from None
            cfgs.append(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    return plan_from_configs(cfgs)


def not_benched(name: str, settings: BenchSettings) -> str | None:
    """Why the settings leave variant `name` out at every length (a predicate of it), or None:
    under ``bench.causal`` (decoding is causal) a variant whose fact ``causal`` is False; when
    decoding, the ``baseline`` (no attention: a backbone skips its mixing)."""
    from attnbench.attention import ATTENTION

    cls = ATTENTION.get(name)
    decoding = settings.mode == "decode"
    if (settings.causal or decoding) and not cls.causal:
        return "has no causal form (its fact `causal` is False)"
    if decoding and cls.baseline:
        return "has no attention to decode (a backbone skips the baseline's mixing)"
    return None


def _nothing_left(names: list[str], settings: BenchSettings) -> list[str]:
    """One problem when ``bench.causal`` or decoding leaves none of the variants to bench."""
    from attnbench.attention import ATTENTION

    if not names or not all(n in ATTENTION.names() for n in names):
        return []
    why = {n: not_benched(n, settings) for n in names}
    if any(w is None for w in why.values()):
        return []
    setting = "bench.mode=decode" if settings.mode == "decode" else "bench.causal=true"
    able = [n for n in ATTENTION.names() if not_benched(n, settings) is None]
    return [f"{setting}: nothing to bench: {'; '.join(f'{n} {w}' for n, w in why.items())}. "
            f"Variants to bench: {', '.join(able)}"]


def plan_from_configs(cfgs: Sequence[dict[str, Any]]) -> BenchPlan:
    """The plan from composed configs (one per job of the overrides' sweep); one ConfigError
    listing every problem."""
    from attnbench.attention import ATTENTION
    from attnbench.attention.base import CONTEXT_ARGS
    from attnbench.config.run_config import component_params
    from attnbench.config.validate import check_uri
    from attnbench.registry import check_params

    first = cfgs[0]
    problems = check_params(BenchSettings, first["bench"], "bench")
    if problems:
        raise ConfigError(problems[0], problems)
    settings = BenchSettings(**first["bench"])
    problems = settings.problems()
    for cfg in cfgs[1:]:
        for key in ("bench", "tracking", "runs_dir", "experiment_name"):
            if cfg[key] != first[key]:
                problems.append(
                    f"attnbench bench compares attention variants: only 'attention' may take "
                    f"several values, not '{key}' (run one bench per setting)"
                )
                break
    variants: dict[str, dict[str, Any]] = {}
    for cfg in cfgs:
        node = cfg["attention"]
        name = str(node["name"])
        if name in variants:
            if node != variants[name]:
                problems.append(
                    f"attention '{name}' appears with different settings; bench one setting per "
                    "call (bench.heads sets the heads of every variant that has them)"
                )
            continue
        try:
            cls = ATTENTION.get(name)
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        found = check_params(cls, component_params(node), "attention", CONTEXT_ARGS)
        problems.extend(found)
        if not found and not settings.problems():
            node = variant_node(node, settings)
            try:
                d = settings.dim
                cls(d, d, d, **component_params(node))
            except (ValueError, TypeError) as err:
                problems.append(f"{name} at bench.dim={settings.dim}: {str(err).splitlines()[0]}")
        variants[name] = node
    problems.extend(_nothing_left(list(variants), settings))
    uri = first["tracking"].get("uri")
    if uri:
        problems.extend(check_uri(str(uri)))
    device = "cpu"
    if not settings.problems():
        from attnbench.bench.device import resolve

        try:
            device = str(resolve(settings.device, settings.dtype))
        except ConfigError as err:
            problems.extend(err.problems)
    if problems:
        raise ConfigError(problems[0], list(dict.fromkeys(problems)))
    settings.seq_lens = sorted(set(settings.seq_lens))
    if settings.mode == "decode":
        settings.causal = True  # decoding is causal by definition: recorded as such
    return BenchPlan(
        settings=settings,
        variants=variants,
        device=device,
        tracking_uri=uri,
        runs_dir=str(first["runs_dir"]),
        experiment_name=str(first.get("experiment_name") or "bench"),
        config={**first, "attention": list(variants.values())},
    )
