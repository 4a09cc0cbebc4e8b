"""Train/evaluation overlap of the file tasks: val/test examples whose text occurs in training.

A corpus of phrases (e.g. SST's 67k training phrases, sub-phrases of its own sentences) carved at
random into train/val/test puts the same text on both sides, and the val/test scores then partly
measure memorisation. The file tasks count it: ``TaskData.extra["overlap"]`` =
``{"val": n, "test": n, "val_frac": f, "test_frac": f}``, n = examples whose normalised text
(``normalise``: lower case, punctuation as spaces, whitespace collapsed) equals that of a training
example, f = n / the split's size. Translation compares source sentences. Texts that normalise to
nothing (punctuation only, empty) never count. Only exact matches are counted: a val sentence
whose sub-phrases are all in train is not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_PUNCTUATION = re.compile(r"[^\w\s]")
SPLITS: tuple[str, ...] = ("val", "test")


def normalise(text: str) -> str:
    """Lower case, punctuation as spaces, whitespace collapsed: "It's  GOOD!" -> "it s good"."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def overlap_counts(
    train: Sequence[str], val: Sequence[str], test: Sequence[str]
) -> dict[str, int | float]:
    """``{"val": n, "test": n, "val_frac": f, "test_frac": f}`` (see the module docstring)."""
    seen = {normalise(t) for t in train}
    seen.discard("")
    counts = {
        name: sum(normalise(t) in seen for t in texts)
        for name, texts in (("val", val), ("test", test))
    }
    sizes = {"val": len(val), "test": len(test)}
    fracs = {f"{name}_frac": counts[name] / sizes[name] if sizes[name] else 0.0 for name in SPLITS}
    return {**counts, **fracs}


def overlap_warning(extra: Mapping, threshold: float = 0.05) -> str | None:
    """One line warning of the splits whose overlap share exceeds ``threshold``; None when none
    does or ``extra`` (``TaskData.extra``) holds no overlap counts."""
    overlap = extra.get("overlap")
    if not overlap:
        return None
    over = [
        f"{overlap[f'{name}_frac']:.1%} of {name} ({overlap[name]} examples)"
        for name in SPLITS
        if overlap.get(f"{name}_frac", 0.0) > threshold
    ]
    if not over:
        return None
    return (
        f"possible leak: {' and '.join(over)} occur verbatim in the training split (lower case, "
        f"no punctuation; above {threshold:.0%}): their scores measure memorisation, not "
        "generalisation; give task.val_path/task.test_path files disjoint from training"
    )
