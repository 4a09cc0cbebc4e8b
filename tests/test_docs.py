"""Every shell block of README.md and docs/*.md runs here, so the manual cannot drift from the code.

A page is a session: its ```bash blocks run in order, each in its own `bash -eo pipefail`, in one
temporary folder (the current directory, with an empty store in `runs/`; HOME is a folder of its
own; the repository is on PYTHONPATH, so `python -m benchmarks...` works as from its root). How a
block runs is written in the Markdown, in an HTML comment on the line before its fence:

- (nothing): as written. `attnbench run` and `sweep` get `trainer=smoke` unless they name a
  trainer or only print (`--cfg`, `--info`, `--dry-run`); `attnbench bench` gets small sizes
  (SMOKE_BENCH); `attnbench ui` is started on a free port, its URL awaited, then stopped.
- `<!-- run: dry -->`: commands that need a cluster, a GPU or a server. Every `attnbench run` gets
  `--cfg job` and every `sweep` `--dry-run`, so attnbench checks the whole command line (keys,
  values, launcher and sweeper fields) without running it; a `tracking.uri=http...` is pointed at
  a stand-in that answers `/health`, as the dry run asks the server whether it is up. Other
  commands in the block run as written.
- `<!-- run: fails -->`: commands shown for their refusal: each `attnbench` command in it must exit
  2 with one `error:` line and no traceback.
- `<!-- run: slow -->` / `<!-- run: e2e -->`: the block runs in `pytest -m slow` / `pytest -m e2e`
  (CI's later stages); words combine (`<!-- run: slow dry -->`). A slow page session runs the
  page's other blocks too, in order; an e2e session runs the page's e2e blocks alone.
- `<!-- page: slow -->` anywhere in a page: every block of the page is slow.
- `<!-- setup -->` and `<!-- test -->` (README): what .ci/run runs itself, which
  tests/test_readme.py checks line by line; not run here.

Any other shell fence (```sh, ```shell, ```console) is refused: output goes in ```text blocks.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MODES = {"dry", "fails", "slow", "e2e"}
SMOKE_BENCH = (
    "bench.seq_lens=[16,32] bench.repeats=3 bench.warmup=0 bench.batch=2 bench.dim=16 "
    "bench.peak_size=64 bench.budget_s=5"
)
FENCE = re.compile(r"^(\s*)```(\S*)")
DIRECTIVE = re.compile(r"^<!-- run: ([\w ]+) -->$")
CI_MARKERS = {"<!-- setup -->", "<!-- test -->"}
PAGE_SLOW = "<!-- page: slow -->"
BLOCK_TIMEOUT_S = 900

# The shell functions a page's blocks run under: `attnbench` as the modes above say.
PRELUDE = (Path(__file__).parent / "docs_prelude.sh").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    text: str
    modes: frozenset[str]

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def page_name(path: Path) -> str:
    return str(path.relative_to(REPO))


def read_blocks(path: Path, name: str | None = None) -> list[Block]:
    """The ```bash blocks of a page with their modes (module docstring); ValueError for a shell
    fence of another language or a directive with an unknown word. `name`: the page in messages
    (default: its path in the repository)."""
    name = name or page_name(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    page_slow = PAGE_SLOW in lines
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.groups()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        if lang in {"sh", "shell", "console", "zsh", "shell-session"}:
            raise ValueError(f"{name}:{i + 1}: ```{lang}: use ```bash (run by "
                             "tests/test_docs.py) or ```text (output)")
        if lang == "bash":
            before = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
            modes = set(directive(before, f"{name}:{i + 1}"))
            if page_slow:
                modes.add("slow")
            body = "\n".join(ln[len(indent):] for ln in lines[i + 1 : end])
            blocks.append(Block(name, i + 1, body + "\n", frozenset(modes)))
        i = end + 1
    return blocks


def directive(line: str, where: str) -> list[str]:
    if line in CI_MARKERS:
        return ["ci"]
    m = DIRECTIVE.match(line)
    if not m:
        if line.startswith("<!-- run"):
            raise ValueError(f"{where}: malformed directive {line!r}: <!-- run: MODE... -->")
        return []
    words = m.group(1).split()
    unknown = set(words) - MODES
    if unknown:
        raise ValueError(f"{where}: unknown mode {sorted(unknown)} in {line!r}; modes: "
                         f"{sorted(MODES)}")
    return words


def sessions() -> Iterator[object]:
    """One pytest param per page and stage: (page, stage, blocks)."""
    for path in PAGES:
        blocks = [b for b in read_blocks(path) if "ci" not in b.modes]
        default = [b for b in blocks if not b.modes & {"slow", "e2e"}]
        slow = [b for b in blocks if "e2e" not in b.modes]
        e2e = [b for b in blocks if "e2e" in b.modes]
        name = page_name(path)
        if default:
            yield pytest.param(name, default, id=name)
        if len(slow) > len(default):
            yield pytest.param(name, slow, id=f"{name}-slow", marks=pytest.mark.slow)
        if e2e:
            yield pytest.param(name, e2e, id=f"{name}-e2e", marks=pytest.mark.e2e)


@pytest.fixture(scope="module")
def server_standin() -> Iterator[str]:
    """A local HTTP server answering 200 on /health: what a dry run asks a tracking server."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    with socketserver.TCPServer(("127.0.0.1", 0), Health) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


def session_env(folder: Path, server: str) -> dict[str, str]:
    home = folder / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "DOCS_SERVER": server,
           "DOCS_SMOKE_BENCH": SMOKE_BENCH, "COLUMNS": "100"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    # matplotlib's font cache stays where it was built (a fresh one takes seconds per process)
    env.setdefault("MPLCONFIGDIR", str(Path.home() / ".config" / "matplotlib"))
    return env


def run_block(block: Block, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    mode = "dry" if "dry" in block.modes else "fails" if "fails" in block.modes else "run"
    script = f"DOCS_MODE={mode}\n{PRELUDE}\n{block.text}"
    return subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)


@pytest.mark.parametrize(("page", "blocks"), list(sessions()))
def test_page(page: str, blocks: list[Block], runs_dir: Path, server_standin: str) -> None:
    folder = runs_dir.parent  # a fresh folder with an empty store in runs/, as a user's would be
    env = session_env(folder, server_standin)
    for block in blocks:
        proc = run_block(block, folder, env)
        shown = f"{block.where} ({' '.join(sorted(block.modes)) or 'as written'}):\n{block.text}"
        assert proc.returncode == 0, (
            f"{shown}exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
        assert "Traceback" not in proc.stderr, f"{shown}{proc.stderr[-3000:]}"


def test_every_page_has_its_blocks_read() -> None:
    """The pages parse (no shell fence but ```bash, no unknown mode) and README has blocks for
    each stage it promises: the set-up and test commands CI runs, the quickstart (its sweep and
    compare) in the default run here, and every other block at the latest in the slow stage."""
    blocks = {page_name(p): read_blocks(p) for p in PAGES}
    readme = blocks["README.md"]
    assert sum("ci" in b.modes for b in readme) == 2
    default = "".join(b.text for b in readme if not b.modes)
    assert "attnbench sweep attention=none,dot,scaled,additive,multihead seed=0,1,2" in default
    assert "attnbench compare" in default
    assert all("e2e" not in b.modes for b in readme), "README's blocks run without a cluster"


def test_a_block_as_written_is_checked(tmp_path: Path, server_standin: str) -> None:
    """The harness runs what the page says: an unquoted glob(*) is a bash syntax error, a failing
    command fails its block, and a dry run still refuses a misspelt key."""
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\nattnbench sweep attention=glob(*)\n```\n\n"
        "<!-- run: dry -->\n```bash\nattnbench sweep attention=dot,scaled trainer.lrr=1\n```\n\n"
        "<!-- run: fails -->\n```bash\nattnbench run attention=nope\n```\n\n"
        "<!-- run: fails -->\n```bash\nattnbench list\n```\n",
        encoding="utf-8",
    )
    unquoted, misspelt, refused, fine = read_blocks(page, "page.md")
    assert (unquoted.modes, misspelt.modes) == (frozenset(), frozenset({"dry"}))
    folder = tmp_path / "session"
    folder.mkdir()
    env = session_env(folder, server_standin)
    proc = run_block(unquoted, folder, env)
    assert proc.returncode == 2 and "syntax error" in proc.stderr
    proc = run_block(misspelt, folder, env)
    assert proc.returncode == 2 and "trainer.lrr" in proc.stderr
    assert run_block(refused, folder, env).returncode == 0
    assert run_block(fine, folder, env).returncode == 1  # `list` is not refused: the block fails
    assert not (folder / "runs").exists(), "a dry run or a refusal wrote a store"


@pytest.mark.parametrize("text", ["```sh\nls\n```\n", "<!-- run: quick -->\n```bash\nls\n```\n"])
def test_a_page_that_cannot_say_how_it_runs_is_refused(tmp_path: Path, text: str) -> None:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="page.md:"):
        read_blocks(page, "page.md")


def test_the_wrapper_leaves_no_server_behind(tmp_path: Path, server_standin: str) -> None:
    """`attnbench ui` in a block is started and stopped: its port is free again afterwards."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    folder = tmp_path / "s"
    folder.mkdir()
    env = session_env(folder, server_standin)
    subprocess.run([sys.executable, "-m", "attnbench", "run", "trainer=smoke"], cwd=folder,
                   env=env, capture_output=True, check=True, timeout=300)
    block = Block("page.md", 1, "attnbench ui\n", frozenset())
    proc = run_block(block, folder, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    port = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout)
    assert port, proc.stdout
    import socket

    with socket.socket() as s:
        # SO_REUSEADDR: a closed connection's TIME_WAIT does not count, a listener still does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(port.group(1))))  # raises if the server still holds it
        s.listen()


LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's ids for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    heads = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_every_relative_link_points_at_a_file_and_heading() -> None:
    """A link in README.md or docs/*.md to a path in the repository names a file that exists,
    and its #anchor, if any, a heading of that page."""
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page_name(page)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page_name(page)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
