"""attnbench's measurement tools: the benchmark, stress and figure scripts whose output the
README and docs/ quote. They are not part of the product: the wheel does not ship them and the
tests import nothing from them (tests/test_architecture.py checks both).

Run one from the repository root with ``python -m benchmarks.<name>``, e.g.
``python -m benchmarks.overhead --only cli``.
"""
