"""attnbench: which attention mechanism works best, at what cost, on this task?"""

import os as _os

__version__ = "0.1.0"


def _openmp_wait() -> str:
    """How OpenMP threads wait between parallel regions, read by the OpenMP runtime when torch
    loads (so set here, before `import torch`); returns the setting, tagged on every run as
    `attnbench.openmp_wait`.

    A 2-thread training step of the default model on a 2-core machine, in ms (`python -m
    benchmarks.overhead --only threads [--busy N]` measures it):

        wait policy                    idle   --busy 1   --busy 2
        OpenMP default (spin ~300k)    17          59         90
        GOMP_SPINCOUNT=1000            21          34         35
        OMP_WAIT_POLICY=PASSIVE        27          25         25

    Spinning is the fastest on an idle machine and turns every small op into a wait for a time
    slice on a busy one (at load ~10 a step took 1150 ms spinning, 90 ms passive). attnbench
    waits passively: the same cost whatever else runs, so cost columns stay comparable between
    runs. An OMP_WAIT_POLICY or GOMP_SPINCOUNT already in the environment wins (on a dedicated
    idle machine, GOMP_SPINCOUNT=1000 or the OpenMP default make a 2-thread training step
    1.3-1.6x faster).
    """
    user = [k for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in _os.environ]
    if not user:
        _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return ", ".join(f"{k}={_os.environ[k]}" for k in user or ["OMP_WAIT_POLICY"])


OPENMP_WAIT = _openmp_wait()
