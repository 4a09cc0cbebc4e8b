"""Sort: output the input symbols in ascending order (stable), then EOS (the sorting task of
Vinyals et al. 2016, "Order Matters: Sequence to sequence for sets"; here over a small
symbol vocabulary, so ties are common and the stable order defines the alignment).

Generation, shapes and alignment: see `attnbench.tasks._synthetic`.
"""

from __future__ import annotations

from attnbench.tasks import TASKS
from attnbench.tasks._synthetic import SequenceTask


@TASKS.register("sort")
class SortTask(SequenceTask):
    transform = "sort"
