"""Bad data files for the corpus, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

FILES: dict[str, bytes] = {
    "good.csv": b"text,label\nhello world,pos\nbad day,neg\ngood day,pos\nawful,neg\n",
    "empty.csv": b"",
    "blank.tsv": b"\n\n  \n",
    "header_only.csv": b"text,label\n",
    # three columns, none named text: nothing to detect (a two-column file with a label-like
    # column is read as text + label)
    "wrong_columns.csv": b"id,sentence,stars\n1,hello,5\n2,bye,1\n",
    "latin1.csv": b"text,label\nh\xe9llo,pos\nbad,neg\n",
    "ragged.tsv": b"text\tlabel\nhello\tpos\nbad\n",
    "one_class.csv": b"text,label\nhello,pos\nbye,pos\nagain,pos\n",
    "broken.jsonl": b'{"text": "a", "label": "x"}\n{"text": "b", "label": \n',
    "notes.txt": b"text,label\nhello,pos\n",
    "pairs_ragged.tsv": b"a b\tc d\nx\n",
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad_data")
    for name, content in FILES.items():
        (root / name).write_bytes(content)
    (root / "folder.csv").mkdir()  # a folder where a data file is expected
    return root


@pytest.fixture(scope="session")
def unused_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CONFS: dict[str, str] = {
    # a primary config whose YAML is cut off
    "broken.yaml": "defaults:\n  - config\n  - _self_\nseed: [\n",
    # a user's own preset (experiment group of a -cd folder)
    "experiment/mine.yaml": "# @package _global_\n# my preset\nseed: 3\nexperiment_name: mine\n",
    # a user's preset that also sets something Hydra-side a config may not set
    "experiment/chdir.yaml": "# @package _global_\n# changes the working folder\nhydra:\n"
                             "  job:\n    chdir: true\n",
    # a user's grid preset that varies one of Hydra's settings
    "experiment/varyhydra.yaml": "# @package _global_\n# varies hydra.job.chdir\nhydra:\n"
                                 "  sweeper:\n    params:\n      seed: 0,1\n"
                                 "      hydra.job.chdir: true,false\n",
    # an interpolation that does not parse
    "badinterp.yaml": "defaults:\n  - config\n  - _self_\nexperiment_name: \"${oc.env:A,\"\n",
    # a group option whose value is an interpolation that cannot be resolved
    "extra/dangling.yaml": "# @package _global_\n# dangling\nexperiment_name: ${nope.nope}\n",
}


@pytest.fixture(scope="session")
def confs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of config files a user wrote (given with -cd or hydra.searchpath)."""
    root = tmp_path_factory.mktemp("confs")
    for name, content in CONFS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root
