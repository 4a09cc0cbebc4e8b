"""Copy: output the input symbols unchanged, then EOS (the copy task of Graves et al. 2014,
"Neural Turing Machines", §4.1). Alignment is the diagonal.

Generation, shapes and alignment: see `attnbench.tasks._synthetic`.
"""

from __future__ import annotations

from attnbench.tasks import TASKS
from attnbench.tasks._synthetic import SequenceTask


@TASKS.register("copy")
class CopyTask(SequenceTask):
    transform = "copy"
