"""Train/evaluation overlap of the file tasks: val/test examples that also occur in training.

A corpus of phrases (e.g. SST's 67k training phrases, sub-phrases of its own sentences) carved at
random into train/val/test puts the same text on both sides, and the val/test scores then partly
measure memorisation. The file tasks count it: ``TaskData.extra["overlap"]`` =
``{"val": n, "test": n, "val_frac": f, "test_frac": f}``, n = examples whose normalised form
(``normalise``: lower case, punctuation as spaces, whitespace collapsed) equals that of a training
example, f = n / the split's size. Texts that normalise to nothing (punctuation only, empty)
never count. Only exact matches are counted: a val sentence whose sub-phrases are all in train is
not.

An example is a text (text classification) or a (source, target) pair (translation). A pair
counts in ``"val"``/``"test"`` when its source and its target both match one training pair: the
answer was seen. A corpus of sentence pairs repeats sources with other translations (Tatoeba:
5,000 pairs, 2,532 distinct English sentences), so a pair whose source occurs in training with
other targets only is counted apart, in ``"val_source"``/``"test_source"`` (and ``*_frac``): the
model saw the sentence but not this answer, which is not memorisation of the answer.
``val_dedup`` (``_filetask.FileTask.assemble``) drops the validation examples ``seen_in_training``
and records ``"val_dropped"``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence

_PUNCTUATION = re.compile(r"[^\w\s]")
SPLITS: tuple[str, ...] = ("val", "test")


def normalise(text: str) -> str:
    """Lower case, punctuation as spaces, whitespace collapsed: "It's  GOOD!" -> "it s good"."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def _key(example: Hashable) -> Hashable:
    """The normalised text, or the tuple of normalised fields of a pair; None when the text (the
    source of a pair) normalises to nothing."""
    if isinstance(example, tuple):
        fields = tuple(normalise(str(f)) for f in example)
        return fields if fields[0] else None
    return normalise(str(example)) or None


def seen_in_training(train: Sequence[Hashable], examples: Sequence[Hashable]) -> list[bool]:
    """For each example, whether its normalised form (``_key``) is that of a training example."""
    seen = {_key(t) for t in train}
    seen.discard(None)
    return [_key(e) in seen for e in examples]


def overlap_counts(
    train: Sequence[Hashable], val: Sequence[Hashable], test: Sequence[Hashable]
) -> dict[str, int | float]:
    """``{"val": n, "test": n, "val_frac": f, "test_frac": f}``, plus for pairs
    ``"val_source"``, ``"test_source"`` and their ``*_frac`` (see the module docstring)."""
    splits = {"val": val, "test": test}
    out: dict[str, int | float] = {}
    for name, examples in splits.items():
        out[name] = sum(seen_in_training(train, examples))
    pairs = any(isinstance(e, tuple) for e in (*train[:1], *val[:1], *test[:1]))
    if pairs:
        sources = [s for s, *_ in train]
        for name, examples in splits.items():
            seen_source = seen_in_training(sources, [s for s, *_ in examples])
            out[f"{name}_source"] = sum(seen_source) - out[name]
    for key in list(out):
        size = len(splits[key.split("_")[0]])
        out[f"{key}_frac"] = out[key] / size if size else 0.0
    return out


def overlap_warning(extra: Mapping, threshold: float = 0.05) -> str | None:
    """One line warning of the splits whose overlap share exceeds ``threshold``; None when none
    does or ``extra`` (``TaskData.extra``) holds no overlap counts."""
    overlap = extra.get("overlap")
    if not overlap:
        return None
    pairs = "val_source" in overlap
    unit = "pairs" if pairs else "examples"
    over = [
        f"{overlap[f'{name}_frac']:.1%} of {name} ({overlap[name]} {unit})"
        for name in SPLITS
        if overlap.get(f"{name}_frac", 0.0) > threshold
    ]
    if not over:
        return None
    what = "source and target" if pairs else "lower case, no punctuation"
    remedy = " and ".join(
        fix
        for name, fix in (("val", "set task.val_dedup=true (or give a task.val_path file)"),
                          ("test", "give a task.test_path file"))
        if overlap.get(f"{name}_frac", 0.0) > threshold
    )
    return (
        f"possible leak: {' and '.join(over)} occur verbatim in the training split ({what}; "
        f"above {threshold:.0%}): their scores measure memorisation, not generalisation; "
        f"{remedy} disjoint from training"
    )


def overlap_notes(overlap: Mapping, threshold: float = 0.05) -> list[str]:
    """A note per split whose share of sources seen in training with another target only exceeds
    ``threshold`` (pairs only): a fact about the corpus, not a leak of the answers."""
    return [
        f"{overlap[f'{name}_source_frac']:.1%} of {name} sources ({overlap[f'{name}_source']} "
        "pairs) occur in the training split with a different target only: the sentence was "
        "seen, this translation was not (not counted as a leak)"
        for name in SPLITS
        if overlap.get(f"{name}_source_frac", 0.0) > threshold
    ]
