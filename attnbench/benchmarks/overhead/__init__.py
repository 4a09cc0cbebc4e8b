"""Runner overhead: the figures issue 6 sets for attnbench itself (see ``__main__.py``)."""
