"""Shared fixtures: the bafu executable (BAFU_EXE, else build/bafu of this
checkout) and the source tree (BAFU_SOURCE_DIR, else this checkout)."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("BAFU_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the executable runs in ctest: the same BLAS rounding
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..")))  # the package of this checkout
PROVENANCE = ("# generator:", "# command:", "# date:")


@pytest.fixture(scope="session")
def source_dir():
    return SOURCE


@pytest.fixture(scope="session")
def exe():
    path = os.environ.get("BAFU_EXE") or os.path.join(SOURCE, "build", "bafu")
    if not os.access(path, os.X_OK):
        pytest.skip("no bafu executable at %s (set BAFU_EXE)" % path)
    return path


@pytest.fixture(scope="session")
def cli(exe):
    """Run `bafu ARGS...`: (exit status, stdout, stderr)."""

    def run(*args, check=True):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        r = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError("bafu %s: exit %d: %s" % (" ".join(map(str, args)), r.returncode, r.stderr))
        return r.returncode, r.stdout, r.stderr

    return run


def without_provenance(text):
    return [line for line in text.splitlines() if not line.startswith(PROVENANCE)]
