"""attnbench: which attention mechanism works best, at what cost, on this task?"""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that spin between parallel regions turn every small torch op into a wait for a
# time slice when the machine is busier than its cores (measured on a shared 2-core machine,
# load ~10: a training step with 2 threads took 1150 ms spinning, 90 ms passive, 76 ms with 1
# thread). Read by the OpenMP runtime when torch loads, so only before `import torch`; an
# OMP_WAIT_POLICY already in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
