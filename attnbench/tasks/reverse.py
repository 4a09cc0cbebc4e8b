"""Reverse: output the input symbols backwards, then EOS. The first output depends on the last
input, so a fixed-size encoder state struggles where attention does not (Bahdanau et al. 2015).

Generation, shapes and alignment: see `attnbench.tasks._synthetic`.
"""

from __future__ import annotations

from attnbench.tasks import TASKS
from attnbench.tasks._synthetic import SequenceTask


@TASKS.register("reverse")
class ReverseTask(SequenceTask):
    transform = "reverse"
