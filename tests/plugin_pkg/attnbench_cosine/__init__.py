"""attnbench plugin: cosine attention (see cosine.py), selectable as `attention=cosine`."""
