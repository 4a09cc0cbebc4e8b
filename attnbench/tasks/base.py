"""The task contract: what a task hands the trainer and the backbones.

Notation: N examples, T input length, C token channels, U target length, K classes, V vocabulary.

A task is a subclass of ``Task`` registered with ``@TASKS.register("name")``, built from its YAML
as ``Cls(**yaml_params)`` (typed keyword arguments, validated before any training), and asked for
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

Facts a task declares (``Task`` attributes and methods, with defaults), read by the resource
pre-flight: ``kind`` and ``metrics`` (required); ``length_key`` (default ""), the setting that
bounds the input length, named when sequences are too long; ``planned_size()`` (default None),
the ``DataSize`` of its data from its settings alone, before anything is drawn (synthetic tasks).
A task that reads files has no size until it has read them: its ``TaskData`` gives it then
(``DataSize.of``), and the model is estimated before it is built. ``lm_format`` (default None:
its kind's reading, ``kind_format``) says how the task reads as one sequence for a decoder-only
language model (``backbone=lm``); a task whose reading differs declares it and passes it to its
``TaskSpec``, which is how the backbone learns it.

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from torch import Tensor

PAD, BOS, EOS, UNK = 0, 1, 2, 3
FIRST_TOKEN = 4
IGNORE = -100

Kind = Literal["classify", "transduce"]
# How a task reads as one causal sequence (backbone=lm), next-token loss on the answers only:
# - prefix_target: the inputs, BOS, then the target tokens; each target token is predicted from
#   everything before it (copy/reverse/sort, translation);
# - last_token: the inputs, BOS, then the label as the one answer token (one label per sequence);
# - per_position: the inputs as they are; the label at a position is predicted from that
#   position and what precedes it (Zoology's MQAR: keys-values then queries, loss on the answers).
SequenceFormat = Literal["prefix_target", "last_token", "per_position"]


def kind_format(kind: Kind, target_per_position: bool) -> SequenceFormat | None:
    """The reading of a task that declares none: prefix_target for transduction, last_token for
    one label per sequence; None for labels per position (a label may depend on later tokens, so
    such a task must say that its labels are causal: ``Task.lm_format = "per_position"``)."""
    if kind == "transduce":
        return "prefix_target"
    return None if target_per_position else "last_token"


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
    lm_format: SequenceFormat | None = None  # the task's declared reading (Task.lm_format)

    @property
    def sequence_format(self) -> SequenceFormat | None:
        """How a decoder-only LM reads the task: its declared ``lm_format``, else its kind's
        (``kind_format``); None: the task has no causal reading."""
        return self.lm_format or kind_format(self.kind, self.target_per_position)


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


INT64 = 8  # bytes per token id


@dataclass(frozen=True)
class DataSize:
    """What a task's data holds, known before it is drawn (``Task.planned_size``) or once it is
    read (``DataSize.of``): its ``spec``, the examples per split, and the transient bytes of
    drawing the largest split (``generation_bytes``, e.g. random keys sorted per example)."""

    spec: TaskSpec
    sizes: Mapping[str, int]  # split -> N
    generation_bytes: int = 0

    @classmethod
    def of(cls, data: TaskData) -> DataSize:
        return cls(data.spec, {s: len(getattr(data, s)) for s in ("train", "val", "test")})

    @property
    def target_len(self) -> int:
        """U per example: the target length (transduce), T (labels per position) or 0 (one label
        per sequence)."""
        spec = self.spec
        if spec.kind == "transduce":
            return spec.max_target_len
        return spec.max_len if spec.target_per_position else 0

    def tensor_bytes(self) -> int:
        """int64 inputs (N, T, C), targets and alignments (N, U) (or labels (N,)), every split,
        plus what drawing the largest split needs on top."""
        u = self.target_len
        per_example = self.spec.max_len * self.spec.channels + (2 * u if u else 1)
        return sum(self.sizes.values()) * per_example * INT64 + self.generation_bytes


class Task:
    """Base class of every task: the facts (module docstring) with their defaults."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    # Metric names the task reports (train/val/test prefixes are added by the trainer).
    metrics: ClassVar[tuple[str, ...]]
    length_key: ClassVar[str] = ""  # the key in the task group that bounds the input length
    # How the task reads as one causal sequence (SequenceFormat); None: its kind's (kind_format).
    lm_format: ClassVar[SequenceFormat | None] = None

    def load(self, seed: int) -> TaskData:
        raise NotImplementedError(f"{type(self).__name__} must implement load")

    def planned_size(self) -> DataSize | None:
        """The size of the data `load` would return, from the settings alone (None: unknown
        until loaded)."""
        return None


Scorer = Callable[[Tensor, Tensor], dict[str, float]]
