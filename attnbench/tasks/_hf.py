"""Optional loader of named corpora through Hugging Face ``datasets`` (extra: attnbench[hf]).

``datasets`` is imported only when a task asks for it. Short names of the corpora the design
names map to their Hub repositories and columns (PRESETS); any other name is passed to
``datasets.load_dataset`` as is, with the columns and splits the task is given: a Hub name, or a
local folder of split files (``train.csv``, ``test.jsonl``, ...), read without a network.

Without a network the Hub client retries each request five times, printing a line per retry, for
about 25 s before it gives up. So a Hub name is preceded by one connection to the Hub's host
(``HF_ENDPOINT``, default huggingface.co:443, or the proxy the environment names for it;
``HUB_TIMEOUT_S``): when it fails, the split is loaded in the libraries' offline mode, from the
local cache alone, and a corpus that is not cached is one error line naming the unreachable host.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from attnbench.errors import DataError
from attnbench.tasks._files import Rows


@dataclass(frozen=True)
class Preset:
    repo: str
    config: str | None
    text_column: str
    label_column: str
    test_split: str  # a split with labels (SST-2's "test" split is unlabeled: label -1)


PRESETS: dict[str, Preset] = {
    "imdb": Preset("stanfordnlp/imdb", None, "text", "label", "test"),
    "sst2": Preset("stanfordnlp/sst2", None, "sentence", "label", "validation"),
    "ag_news": Preset("fancyzhx/ag_news", None, "text", "label", "test"),
}


HUB_TIMEOUT_S = 5.0  # the one connection that tells whether the Hub can be reached


def hub_unreachable(name: str) -> str | None:
    """Why the Hub cannot serve ``name`` now ("huggingface.co:443: <reason>"), or None: a local
    folder, offline mode already chosen (``HF_HUB_OFFLINE``), or a host that accepts a
    connection."""
    if Path(name).expanduser().exists() or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return None
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    proxy = getproxies().get(endpoint.scheme)
    if proxy and not proxy_bypass(host):  # requests would go through the proxy: check that
        endpoint = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host = endpoint.hostname or host
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=HUB_TIMEOUT_S).close()
    except OSError as err:
        return f"{host}:{port}: {err.strerror or type(err).__name__}"
    return None


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """The Hub client and ``datasets`` in offline mode (cache only, no request, no retry) for
    the duration, as ``HF_HUB_OFFLINE=1`` at start-up would set them."""
    import datasets.config
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_split(
    name: str, config: str | None, split: str, text_column: str, label_column: str
) -> Rows:
    """(text, label) rows of one split; ``lines`` are 1-based row numbers."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"task.hf_dataset={name} needs Hugging Face datasets: pip install 'attnbench[hf]'"
        ) from None
    origin = f"{name}[{split}]"
    if not sys.stderr.isatty():  # download bars are for a terminal, not logs or error output
        datasets.disable_progress_bars()
    unreachable = hub_unreachable(name)
    try:
        with offline() if unreachable else contextlib.nullcontext():
            ds = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # network, unknown name/config/split: all reported in one line
        why = _first_line(err)
        if unreachable:
            why = f"no connection to {unreachable}, and not in the local cache ({why})"
        raise DataError(f"{origin}: cannot load from the Hugging Face Hub: {why}") from None
    for column, knob in ((text_column, "text_column"), (label_column, "label_column")):
        if column not in ds.column_names:
            found = ", ".join(repr(c) for c in ds.column_names)
            raise DataError(f"{origin}: no column {column!r} (task.{knob}); columns found: {found}")
    texts, labels = ds[text_column], ds[label_column]
    if len(texts) == 0:
        raise DataError(f"{origin}: the split is empty")
    if all(label == -1 for label in labels):
        raise DataError(f"{origin}: the split has no labels (all -1); choose another split")
    fingerprint = getattr(ds, "_fingerprint", "") or ""
    return Rows(
        origin,
        list(range(1, len(texts) + 1)),
        [(str(t), str(y)) for t, y in zip(texts, labels, strict=True)],
        f"hf:{name}:{config}:{split}:{fingerprint}".encode(),
    )
