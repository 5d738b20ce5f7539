"""Shared test plumbing: any test taking a `bad_spec` argument runs once per file of
tests/bad_specs/ (see BadSpec for the file format); every test compiles the loop form's kernel
files into one folder shared by all workers of the run ($SYMNET_KERNEL_DIR), so that each kind
of network is compiled by Numba once per run, not once per test; and the loop form sends the
same products to _gemm on every machine (SYMNET_GEMM=bounds); and fit runs on one thread
(SYMNET_THREADS=1: pytest-xdist keeps every core busy already; the tests of the threads set a
module's THREADS themselves)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

BAD_SPECS = Path(__file__).resolve().parent / "bad_specs"


@dataclass(frozen=True)
class BadSpec:
    """A spec file that must be refused. Its first lines are comments:

    - ``# error: TEXT`` (one or more, the first on line 1): the one-line error contains TEXT;
    - ``# raises-from: build`` (optional): the loader accepts it and `symnet.build` refuses it.
    """

    path: Path
    expected: tuple[str, ...]
    stage: str  # "load" or "build"


def read_bad_spec(path: Path) -> BadSpec:
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    if not lines or not lines[0].startswith("# error: "):
        raise ValueError(f"{path}: the first line must be '# error: <expected text>'")
    head = []
    for line in lines:
        if not line.startswith("#"):
            break
        head.append(line)
    expected = tuple(h[len("# error: "):] for h in head if h.startswith("# error: "))
    stage = "build" if "# raises-from: build" in head else "load"
    return BadSpec(path, expected, stage)


def bad_specs() -> list[BadSpec]:
    return [read_bad_spec(p) for p in sorted(BAD_SPECS.glob("*.toml"))]


def pytest_generate_tests(metafunc):
    if "bad_spec" in metafunc.fixturenames:
        corpus = bad_specs()
        metafunc.parametrize("bad_spec", corpus, ids=[c.path.stem for c in corpus])


@pytest.fixture(scope="session", autouse=True)
def shared_kernel_dir(tmp_path_factory):
    """One kernel folder for the run: beside the workers' own temporary folders under
    pytest-xdist (their common parent), inside the run's folder otherwise; and a cache folder
    there too, for modules compiled without an out_dir. Tests that check where kernel files go
    without it remove the variable with monkeypatch."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / "kernels"
    folder.mkdir(exist_ok=True)
    cache = base / "cache"  # symnet.compile without out_dir (symnet.sklearn): not ~/.cache
    cache.mkdir(exist_ok=True)
    saved = {k: os.environ.get(k) for k in ("SYMNET_KERNEL_DIR", "SYMNET_CACHE_DIR",
                                            "SYMNET_GEMM", "SYMNET_THREADS")}
    os.environ["SYMNET_KERNEL_DIR"] = str(folder)
    os.environ["SYMNET_CACHE_DIR"] = str(cache)
    # the fixed bounds, not this machine's measurements (codegen/cpu/gemm.py): every machine
    # runs _gemm on the same layers, and the tests of the measuring set it themselves
    os.environ["SYMNET_GEMM"] = "bounds"
    os.environ["SYMNET_THREADS"] = "1"
    yield folder
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_addoption(parser):
    parser.addoption("--fail-on-skip", action="store_true",
                     help="count every skip as a failure, except a gpu-marked test's (CI's "
                          "extras step: every optional extra is installed there)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.config.getoption("--fail-on-skip") \
            and item.get_closest_marker("gpu") is None:
        report.outcome = "failed"
        report.longrepr = f"skipped under --fail-on-skip: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and collector.config.getoption("--fail-on-skip"):
        report.outcome = "failed"
        report.longrepr = f"module skipped under --fail-on-skip: {report.longrepr}"


@pytest.fixture(scope="session")
def run_folder(shared_kernel_dir):
    """`run_folder(name)`: a folder of the run shared by every test process (beside the kernel
    folder). A module-scoped fixture that compiles its modules there has them compiled by
    Numba once per run: pytest-xdist may run a test file's tests in both processes, and the
    second finds the module written and its compiled code in Numba's cache beside it."""
    def folder(name: str):
        path = shared_kernel_dir.parent / "modules" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    return folder
