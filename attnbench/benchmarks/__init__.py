"""Benchmark commands that print the figures the README reports.

Run one with ``python -m attnbench.benchmarks.<name>``.
"""
