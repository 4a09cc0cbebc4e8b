"""attnbench: which attention mechanism works best, at what cost, on this task?"""

__version__ = "0.1.0"
