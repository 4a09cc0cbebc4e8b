"""Resource pre-flight: refuse, before any data is generated, a job whose sizes cannot fit.

Two checks on a validated config (plain dict), both from the settings alone (milliseconds, no
tensor allocated):

- **lengths the backbone can take**: a Transformer embeds at most ``backbone.max_len`` positions,
  so a synthetic task whose sequences are longer (``task.length``, ``task.max_len``,
  ``task.num_pairs`` + ``task.num_queries``) is refused before its data is drawn;
- **memory**: an estimate of the job's peak, compared with the memory available to new
  allocations (``MemAvailable`` in /proc/meminfo, lowered to the cgroup's limit when the process
  runs under one). The estimate is deliberately a lower bound, so that only what surely cannot
  fit is refused:

  * the task's tensors, int64: inputs ``(N, T, C)``, targets and alignments ``(N, U)`` per
    position (or ``(N,)`` per sequence), for N = n_train + n_val + n_test, plus what generating
    the largest split needs on top (associative recall draws an ``(N, num_keys)`` float64
    permutation key per split);
  * one training step: activations ``B × T × D`` per layer, plus, for variants that materialise
    their scores while training (additive, general, cosine; the SDPA-based ones are fused),
    ``B × H × Tq × Tk × 4`` bytes × 3 (scores, weights, saved for backward) per attention layer;
  * one evaluation batch with the diagnostic weights every variant but ``none`` returns:
    ``min(eval_batch_size, n_test) × Tq × Tk × 12`` bytes (float32, and the float64 copy the
    entropy is summed in);
  * the model: parameters, gradients and Adam's two moments, for the embedding and output rows
    (vocabulary, positions) and about 12·D² per layer.

File tasks (text, translation) are bounded by their files and only get the lengths check when
their length is known; their data is not estimated. Notation: B batch, T input length, U target
length, C channels, D width, H heads, N examples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INT64 = 8
FLOAT32 = 4
# Attention variants that build their (B, H, Tq, Tk) scores in the training forward pass.
MATERIALISED = ("additive", "general", "cosine")


@dataclass(frozen=True)
class Shape:
    """What a synthetic task's data looks like, from its settings alone."""

    t_in: int  # T
    t_out: int  # U (per-position targets) or 0 (one label per sequence)
    channels: int  # C
    sizes: dict[str, int]  # split -> N
    length_key: str  # the task key that sets T, for messages
    generation_bytes: int = 0  # transient bytes of drawing the largest split
    vocab: int = 0  # input + target vocabulary + classes: embedding and output rows
    vocab_key: str = ""  # the task key that sets the vocabulary, for messages


def resource_problems(cfg: Mapping[str, Any], available: int | None = None) -> list[str]:
    """One line per size the job cannot afford (empty when it fits or cannot be estimated).
    `available`: bytes free for new allocations (default: measured, see `available_memory`)."""
    shape = task_shape(cfg.get("task") or {})
    if shape is None:
        return []
    found = length_problems(cfg, shape)
    if found:
        return found
    if available is None:
        available, source = available_memory()
        if available is None:
            return []
    else:
        source = "given"
    data = data_bytes(shape)
    step, step_what = step_bytes(cfg, shape)
    model, model_key = model_bytes(cfg, shape)
    if data + step + model <= available:
        return []
    have = f"more than the {gib(available)} of memory available ({source})"
    if model >= max(data, step):
        value = _setting(cfg, model_key)
        return [f"'{model_key}' = {value}: the model's parameters, gradients and optimiser "
                f"state need ~{gib(model)}, {have}; lower {model_key}"]
    if data >= step:
        counts = sum(shape.sizes.values())
        biggest = max(shape.sizes, key=lambda s: shape.sizes[s])
        key = f"task.n_{biggest}"
        keys = (cfg.get("task") or {}).get("num_keys")
        per_example = shape.t_in * shape.channels + 2 * shape.t_out
        if isinstance(keys, int) and keys > 100 * per_example:  # the keys, not the count
            return [f"'task.num_keys' = {keys}: drawing the task's keys needs ~{gib(data)} "
                    f"({shape.sizes[biggest]} examples x {keys} keys x 16 bytes for the largest "
                    f"split), {have}; lower task.num_keys"]
        return [f"'{key}' = {shape.sizes[biggest]}: the task's data needs ~{gib(data)} "
                f"({counts} examples of {shape.t_in} x {shape.channels} input and "
                f"{max(shape.t_out, 1)} target int64 values each, plus drawing them), {have}; "
                f"lower {key} (or '{shape.length_key}')"]
    return [f"'{shape.length_key}' = {_length_value(cfg, shape)}: a training step or evaluation "
            f"batch of "
            f"backbone={_name(cfg, 'backbone')} attention={_name(cfg, 'attention')} needs "
            f"~{gib(step)} ({step_what}), {have}; lower {shape.length_key}, "
            "trainer.batch_size or trainer.eval_batch_size"]


def task_shape(task: Mapping[str, Any]) -> Shape | None:
    """The data shape of a synthetic task (its registered class's `spec()`, which draws
    nothing); None for file tasks and tasks without a spec."""
    from attnbench.tasks import TASKS

    name = str(task.get("name", ""))
    try:
        built = TASKS.get(name)(**{k: v for k, v in task.items() if k != "name"})
    except Exception:  # noqa: BLE001 - invalid settings are reported by validation
        return None
    spec_fn = getattr(built, "spec", None)
    sizes = getattr(built, "sizes", None)
    if spec_fn is None or not isinstance(sizes, dict):
        return None
    spec = spec_fn()
    if spec.kind == "transduce":
        t_out = spec.max_target_len
    else:
        t_out = spec.max_len if spec.target_per_position else 0
    length_key = next((f"task.{k}" for k in ("length", "max_len", "num_pairs") if k in task),
                      "task.length")
    test_key = length_key.replace("task.", "task.test_")  # length extrapolation's test length
    if _int(task.get(test_key[5:]), 0) > _int(task.get(length_key[5:]), 0):
        length_key = test_key
    biggest = max(sizes.values())
    generation = 0
    if "num_keys" in task:  # an (N, K) float64 key and its int64 argsort per split
        generation = biggest * _int(task["num_keys"]) * (8 + INT64)
    else:  # symbols, positions and masks while a split is transformed
        generation = 4 * biggest * max(spec.max_len, t_out) * INT64
    vocab = spec.vocab_size + spec.target_vocab_size + spec.num_classes
    vocab_key = next((f"task.{k}" for k in ("num_keys", "vocab", "num_values") if k in task), "")
    return Shape(spec.max_len, t_out, spec.channels, dict(sizes), length_key, generation, vocab,
                 vocab_key)


def length_problems(cfg: Mapping[str, Any], shape: Shape) -> list[str]:
    """A Transformer embeds at most `backbone.max_len` positions."""
    backbone = cfg.get("backbone") or {}
    limit = backbone.get("max_len")
    longest = max(shape.t_in, shape.t_out)
    if not isinstance(limit, int) or longest <= limit:
        return []
    return [f"'{shape.length_key}' = {_length_value(cfg, shape)}: sequences of {longest} tokens "
            f"are longer than the model's maximum 'backbone.max_len' = {limit}: raise "
            "backbone.max_len or shorten the task"]


def data_bytes(shape: Shape) -> int:
    n = sum(shape.sizes.values())
    per_example = shape.t_in * shape.channels + (2 * shape.t_out if shape.t_out else 1)
    return n * per_example * INT64 + shape.generation_bytes


def model_bytes(cfg: Mapping[str, Any], shape: Shape) -> tuple[int, str]:
    """(bytes, the key that dominates) of the parameters with their gradients and Adam's two
    moments (4 float32 copies): embedding and output rows for the vocabulary and positions,
    plus about 12·D² per layer."""
    backbone = cfg.get("backbone") or {}
    width = _int(backbone.get("d_model") or backbone.get("hidden"), 64)
    layers = _int(backbone.get("layers")) + _int(backbone.get("decoder_layers"), 0)
    positions = _int(backbone.get("max_len"), 0)
    width_key = "backbone.d_model" if "d_model" in backbone else "backbone.hidden"
    parts = {
        shape.vocab_key or width_key: shape.vocab * width,
        "backbone.max_len": positions * width,
        width_key: 12 * width * width * layers,
    }
    key = max(parts, key=lambda k: parts[k])
    return sum(parts.values()) * FLOAT32 * 4, key


def _setting(cfg: Mapping[str, Any], dotted: str) -> Any:
    group, _, key = dotted.partition(".")
    return (cfg.get(group) or {}).get(key, "?")


def step_bytes(cfg: Mapping[str, Any], shape: Shape) -> tuple[int, str]:
    """(bytes, what they are) of the larger of one training step and one diagnostic evaluation
    batch (see the module docstring)."""
    trainer = cfg.get("trainer") or {}
    attention = cfg.get("attention") or {}
    backbone = cfg.get("backbone") or {}
    batch = _int(trainer.get("batch_size"))
    eval_batch = min(_int(trainer.get("eval_batch_size")), shape.sizes.get("test", 1))
    heads = _int(attention.get("heads"))
    variant = str(attention.get("name", ""))
    width = _int(backbone.get("d_model") or backbone.get("hidden"), 64)
    layers = _int(backbone.get("layers"))
    t_in, t_out = shape.t_in, shape.t_out or 1
    transduce = _is_transduce(cfg)
    # the attention calls: (Tq, Tk, how many of them keep activations for backward)
    kind = str(backbone.get("name"))
    if kind == "transformer":
        decoder = _int(backbone.get("decoder_layers")) if transduce else 0
        calls = [(t_in, t_in, layers)] + ([(t_out, t_out, decoder), (t_out, t_in, decoder)]
                                          if decoder else [])
    elif kind == "rnn":
        calls = [(1, t_in, 1)]  # a learned pooling query
    else:
        calls = [(t_out, t_in, 1)]  # the decoder attends over the encoder's outputs
    activations = batch * (t_in + (t_out if transduce else 0)) * width * FLOAT32 * 16 * layers
    scores = 0
    if variant in MATERIALISED:
        scores = sum(batch * heads * q * k * FLOAT32 * 3 * n for q, k, n in calls)
    weights = 0
    if variant != "none":
        q, k, _ = max(calls, key=lambda c: c[0] * c[1])
        weights = eval_batch * q * k * (FLOAT32 + 8)
    train = activations + scores
    if train >= weights:
        what = (f"{batch} x {t_in} x {width} activations x {layers} layers"
                + (f" and {batch} x {heads} x Tq x Tk attention scores" if scores else ""))
        return train, what
    q, k, _ = max(calls, key=lambda c: c[0] * c[1])
    return weights, f"{eval_batch} x {q} x {k} diagnostic attention weights in evaluation"


def _int(value: Any, default: int = 1) -> int:
    """A size setting as validation will accept it; `default` for what it will refuse (the
    estimate then does not stop the other checks)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return value if ok else default


def _is_transduce(cfg: Mapping[str, Any]) -> bool:
    from attnbench.tasks import TASKS

    try:
        return TASKS.get(str((cfg.get("task") or {}).get("name"))).kind == "transduce"
    except Exception:  # noqa: BLE001
        return False


def available_memory() -> tuple[int | None, str]:
    """(bytes available to new allocations, where the figure comes from): /proc/meminfo's
    MemAvailable, lowered to what the cgroup (v2 or v1) still allows; (None, "") if unknown."""
    found: list[tuple[int, str]] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "MemAvailable"))
                break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
         "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit.isdigit() and int(limit) < 2**60:
                used = int(Path(usage_file).read_text().strip())
                found.append((max(int(limit) - used, 0), "the cgroup's memory limit"))
                break
        except (OSError, ValueError):
            continue
    if not found:
        return None, ""
    return min(found)


def gib(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 2**10:.0f} KiB"


def _name(cfg: Mapping[str, Any], group: str) -> str:
    node = cfg.get(group) or {}
    return str(node.get("name", "?"))


def _length_value(cfg: Mapping[str, Any], shape: Shape) -> Any:
    return (cfg.get("task") or {}).get(shape.length_key.removeprefix("task."), shape.t_in)
