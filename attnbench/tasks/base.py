"""The task contract: what a task hands the trainer and the backbones.

Notation: N examples, T input length, C token channels, U target length, K classes, V vocabulary.

A task is a class registered with ``@TASKS.register("name")``, built from its YAML as
``Cls(**yaml_params)`` (typed keyword arguments, validated before any training), and asked for
its data with ``task.load(seed) -> TaskData``. Generation is deterministic in ``seed``; file
loaders raise ``attnbench.errors.DataError`` naming the file, the line and what was expected.

Optional, for tasks that read files (``attnbench evaluate RUN_ID task.test_path=FILE``): ``load``
puts a JSON-serialisable encoder state in ``TaskData.extra["encoder"]`` (tokeniser settings,
vocabularies, label names: everything needed to encode new text as training did; no pickle, no
tensors), and ``task.encode_test(state, spec) -> Split`` reads the file the task's ``test_path``
names (with its column settings) and encodes it with that saved state and the run's ``TaskSpec``
(same widths), ``align`` None: given the file a run was tested on, it returns that run's test
tensors exactly. Unknown tokens become UNK; anything else it cannot encode (an unknown label, no
``test_path``) is a one-line DataError. A task without the method is scored on its own test split.

Token conventions (inputs and transduction targets): PAD = 0, BOS = 1, EOS = 2, UNK = 3;
real tokens start at ``FIRST_TOKEN``. Inputs may carry several channels ``(N, T, C)`` whose
embeddings the backbone sums (e.g. a (key, value) pair per position); padding is PAD in
channel 0.

- classify, one label per sequence: ``targets`` ``(N,)`` in ``[0, K)``.
- classify, labels per position (``target_per_position``): ``targets`` ``(N, T)``, IGNORE (-100)
  where there is nothing to predict.
- transduce: ``targets`` ``(N, U)``: the output tokens, then EOS, then PAD. The decoder input
  (BOS + targets[:-1]) is built by the backbone.

Splits may differ in width: a task that tests length extrapolation (``task.test_length``) draws
its test split longer than train and val, so ``TaskSpec.max_len`` and ``max_target_len`` are the
largest T and U over the splits (what a backbone must be able to embed), and each split's tensors
are as wide as its own longest example.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, runtime_checkable

from torch import Tensor

PAD, BOS, EOS, UNK = 0, 1, 2, 3
FIRST_TOKEN = 4
IGNORE = -100

Kind = Literal["classify", "transduce"]


@dataclass
class Split:
    inputs: Tensor  # (N, T) or (N, T, C) long
    targets: Tensor  # (N,) | (N, T) | (N, U) long, see module docstring
    # Where the correct answer sits in the input, for attention diagnostics (issue: attn/alignment):
    # (N, Tq) long source position per query/output position, -1 where unknown; None if no task
    # knowledge.
    align: Tensor | None = None
    # Transduction from files: each row's target text as written in the file, BLEU's reference
    # (``metrics.bleu``); None = references are decoded from ``targets`` (``bleu_tok``'s view).
    references: Sequence[str] | None = None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


@dataclass
class TaskSpec:
    """The static facts a backbone is built from."""

    kind: Kind
    vocab_size: int  # input vocabulary, specials included
    max_len: int  # longest input T over the splits (a test split drawn longer sets it)
    num_classes: int = 0  # classify: K
    target_per_position: bool = False  # classify: labels per position instead of per sequence
    target_vocab_size: int = 0  # transduce: V_out, specials included
    max_target_len: int = 0  # transduce: longest U (EOS included), over the splits
    channels: int = 1  # C


@dataclass
class TaskData:
    spec: TaskSpec
    train: Split
    val: Split
    test: Split
    primary_metric: str  # e.g. "acc" or "exact_match": selects the best-validation checkpoint
    metrics: Sequence[str] = ("acc",)
    # transduce: id -> token string for the target side (for BLEU and for showing examples)
    target_itos: Sequence[str] | None = None
    fingerprint: str = ""  # content hash of the data (generated or read), for resume/reproduce
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    name: ClassVar[str]
    kind: ClassVar[Kind]
    # Metric names the task reports (train/val/test prefixes are added by the trainer).
    metrics: ClassVar[tuple[str, ...]]

    def load(self, seed: int) -> TaskData: ...


Scorer = Callable[[Tensor, Tensor], dict[str, float]]
