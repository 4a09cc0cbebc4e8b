"""The wheels a bare CUDA machine of this workplace lacks: listed in
benchmarks/gpu-requirements.txt (exact versions, this project's venv), downloaded here with
``python -m benchmarks.gpu_check --fetch-wheels DIR``, carried with the working tree (64 MiB in
all) and installed there offline (``pip install --no-index --no-deps --find-links DIR -r FILE``).

The file's ``# image:`` lines name the packages the machine's image already holds (the device
tool's KINDS.md, "Python packages already there"); ``--requirements`` recomputes the list from
pyproject.toml's dependencies and this venv, stopping at those.
"""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path("benchmarks") / "gpu-requirements.txt"
WHEELS_DIR = "gpu-wheels"
CARRY_LIMIT_MIB = 64  # what travels with one device call: working tree + carried paths
SDIST_MARK = "# sdist only"
IMAGE_MARK = "# image:"
PYTHON = "3.12"  # the image's python3 (KINDS.md: Python 3.12.3)
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (34, 31, 28, 27, 24, 17)] + [
    "manylinux2014_x86_64", "manylinux1_x86_64",
]


def _canon(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def _lines(repo: Path) -> list[str]:
    return (repo / REQUIREMENTS).read_text(encoding="utf-8").splitlines()


def requirements(repo: Path) -> dict[str, str]:
    """name -> pinned version, in the file's order."""
    pins: dict[str, str] = {}
    for line in _lines(repo):
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, _, version = spec.partition("==")
            pins[name.strip()] = version.strip()
    return pins


def sdist_only(repo: Path) -> set[str]:
    """Pinned packages PyPI has no wheel of: built here (pure Python) by --fetch-wheels."""
    return {line.split("==")[0].strip() for line in _lines(repo) if SDIST_MARK in line}


def image(repo: Path) -> set[str]:
    """Canonical names of the packages the GPU machine's image holds (the # image: lines)."""
    names: set[str] = set()
    for line in _lines(repo):
        if line.startswith(IMAGE_MARK):
            names.update(_canon(n) for n in line[len(IMAGE_MARK):].split())
    return names


def closure(repo: Path) -> dict[str, str]:
    """attnbench's dependencies (pyproject.toml) and theirs, as installed in this venv, for
    Python 3.12 on x86-64 Linux, less what the image holds (whose own needs it brings)."""
    import tomllib  # Python 3.11+, as the GPU image's 3.12
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    env = {**default_environment(), "python_version": PYTHON, "python_full_version": "3.12.3",
           "sys_platform": "linux", "platform_machine": "x86_64", "extra": ""}
    deps = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))
    todo = [Requirement(d) for d in deps["project"]["dependencies"]]
    held, found = image(repo), {}
    while todo:
        req = todo.pop()
        name = _canon(req.name)
        if name in found or name in held or (req.marker and not req.marker.evaluate(env)):
            continue
        dist = md.distribution(req.name)
        found[name] = dist.version
        todo += [Requirement(r) for r in dist.requires or []]
    return dict(sorted(found.items()))


def _pip(args: list[str]) -> None:
    print("$ pip", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def tree_mib(repo: Path) -> float:
    """What travels without carry: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=repo, capture_output=True, check=True).stdout
    paths = {p for p in out.decode().split("\0") if p}
    return sum((repo / p).stat().st_size for p in paths if (repo / p).is_file()) / 2**20


def fetch(repo: Path, dest: Path, python_version: str = PYTHON) -> int:
    """Download (or build) every pinned wheel into `dest`; check one per pin; print the sizes
    against the 64 MiB a device call carries. Returns the exit code."""
    from packaging.utils import parse_wheel_filename

    pins, built = requirements(repo), sdist_only(repo)
    dest.mkdir(parents=True, exist_ok=True)
    binary = [f"{n}=={v}" for n, v in pins.items() if n not in built]
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    _pip(["download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
          python_version, "--implementation", "cp", *platform_args, "-d", str(dest), *binary])
    for name in sorted(built):
        _pip(["wheel", "-q", "--no-deps", "-w", str(dest), f"{name}=={pins[name]}"])
    have: dict[str, list[str]] = {}
    for whl in dest.glob("*.whl"):
        name, version, *_ = parse_wheel_filename(whl.name)
        have.setdefault(str(name), []).append(str(version))
    problems = [f"{n}: no wheel" for n in pins if _canon(n) not in have]
    problems += [f"{n}: {len(v)} wheels ({', '.join(v)}): keep one" for n, v in have.items()
                 if len(v) > 1]
    problems += [f"{n}: wheel {have[_canon(n)][0]}, file pins {v}" for n, v in pins.items()
                 if _canon(n) in have and have[_canon(n)][0] != v]
    problems += [f"{n}: not in {REQUIREMENTS}" for n in have
                 if n not in {_canon(p) for p in pins}]
    for name, version in pins.items():
        try:
            local = md.version(name)
        except md.PackageNotFoundError:
            local = None
        if local != version:
            print(f"note: this venv has {name} {local}, the file pins {version}")
    wheels = sum(p.stat().st_size for p in dest.glob("*.whl")) / 2**20
    tree = tree_mib(repo)
    print(f"{len(pins)} pins, {sum(map(len, have.values()))} wheels in {dest}: {wheels:.1f} MiB;"
          f" working tree {tree:.1f} MiB; together {wheels + tree:.1f} of {CARRY_LIMIT_MIB} MiB")
    for p in problems:
        print("problem:", p)
    return 1 if problems or wheels + tree > CARRY_LIMIT_MIB else 0
