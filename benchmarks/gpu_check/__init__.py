"""The GPU check kit: every GPU figure attnbench lacks, measured in one command of <= 8 min on
one CUDA GPU, written as it goes to OUTDIR/gpu-figures.json and OUTDIR/gpu-figures.md.

    python -m benchmarks.gpu_check OUTDIR              # on a CUDA machine
    python -m benchmarks.gpu_check --dry-run OUTDIR    # the same plan on the CPU, toy sizes
    python -m benchmarks.gpu_check --fetch-wheels gpu-wheels   # the wheels a bare GPU machine lacks
    python -m benchmarks.gpu_check --requirements      # recompute benchmarks/gpu-requirements.txt

Stages, each with its own time budget (plan.py): `tests` (pytest -m gpu), `grid` (every variant
x backbone x precision, a few steps), `sweep` (the default sweep in float32 and bf16, and its
determinism), `bench` (attnbench bench with SDPA and nn.MultiheadAttention as peers, growing
lengths). docs/gpu.md says how to run it through the device tool and how to read it.
"""
