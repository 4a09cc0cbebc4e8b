"""Runner overhead: the figures issue 6 sets for attnbench itself (not for the attention kernels).

Run it with ``python -m benchmarks.overhead`` (see ``__main__.py`` for the sections and
options). One module per measurement family: ``startup`` (``cli`` and ``startup``), ``runner``
(``loop``), ``sink`` (``logging``), ``threads`` and ``sweep``; ``common`` holds what they share.
"""
