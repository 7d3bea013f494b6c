"""Tables of the executable read by common tools as they are (doc/tables.md):
the header row is the first line, so numpy.genfromtxt(path, names=True) and
pandas.read_csv(path, sep=r"\\s+", comment="#") give the columns of
bafu.read_table, every value to the last bit (the same decimal text)."""

import io
import os

import numpy as np
import pytest

import bafu

BATCH = os.path.join("tests", "golden", "batch.txt")


@pytest.fixture(scope="module")
def tables(cli, source_dir, tmp_path_factory):
    """One table of each kind, written with --out: name -> path."""
    d = tmp_path_factory.mktemp("tables")
    grid = d / "grid.txt"
    grid.write_text("arch = mlp resnet\nwidth = 12\ndepth = 2\nact = relu tanh\nseeds = 3\n")
    runs = {
        "mc": ["mc", "--width", 16, "--depth", 3, "--seeds", 3, "--seed", 5],
        "theory": ["theory", "--arch", "resnet", "--depth", 5, "--width", 32],
        "kernel": ["kernel", "--depth", 3, "--input", os.path.join(source_dir, BATCH)],
        "sweep": ["sweep", str(grid)],
        "spectrum": ["spectrum", "--width", 16, "--depth", 2, "--bins", 10],
    }
    paths = {}
    for name, args in runs.items():
        paths[name] = str(d / (name + ".dat"))
        cli(*args, "--out", paths[name])
    return paths


def same(col, ref, name):
    """A column read by another tool equals read_table's, exactly."""
    col = np.asarray(col)
    if ref.dtype.kind in "iuf":
        assert col.dtype.kind in "iuf", name
        assert np.array_equal(col.astype(np.float64), ref.astype(np.float64)), name
    else:
        assert [str(v) for v in col] == [str(v) for v in ref], name


@pytest.mark.parametrize("kind", ["mc", "theory", "kernel", "sweep", "spectrum"])
def test_header_is_the_first_line(tables, kind):
    with open(tables[kind]) as f:
        first = f.readline().split()
    t = bafu.read_table(tables[kind])
    assert first == list(t[0].dtype.names)
    assert (" %s " % kind) in t.meta["command"]  # the metadata follow, parsed as before


@pytest.mark.parametrize("kind", ["mc", "theory", "kernel"])
def test_numpy_genfromtxt(tables, kind):
    """The plain call, default dtype float and comments '#'."""
    ref = bafu.read_table(tables[kind])[0]
    a = np.genfromtxt(tables[kind], names=True)
    assert a.dtype.names == ref.dtype.names
    assert a.shape == (len(ref),)
    for name in ref.dtype.names:
        same(a[name], ref[name], name)
    # and loadtxt, skipping the header row
    assert np.array_equal(np.loadtxt(tables[kind], skiprows=1),
                          np.column_stack([ref[n].astype(np.float64) for n in ref.dtype.names]))


def test_numpy_genfromtxt_strings(tables):
    """A sweep has text columns (arch, act, init): dtype=None keeps them."""
    ref = bafu.read_table(tables["sweep"])[0]
    a = np.genfromtxt(tables["sweep"], names=True, dtype=None, encoding=None)
    assert a.dtype.names == ref.dtype.names and len(a) == len(ref) == 2 * 2 * 2
    assert a.dtype["arch"].kind == "U" and a.dtype["point"].kind == "i"
    for name in ref.dtype.names:
        same(a[name], ref[name], name)


@pytest.mark.parametrize("kind", ["mc", "theory", "kernel", "sweep"])
def test_pandas_read_csv(tables, kind):
    pd = pytest.importorskip("pandas")
    ref = bafu.read_table(tables[kind])[0]
    df = pd.read_csv(tables[kind], sep=r"\s+", comment="#")
    assert tuple(df.columns) == ref.dtype.names
    assert len(df) == len(ref)
    for name in ref.dtype.names:
        same(df[name].to_numpy(), ref[name], name)


def test_series_one_by_one(tables):
    """Several series: each block between two blank lines starts with its
    header row, so genfromtxt reads each block on its own."""
    ref = bafu.read_table(tables["spectrum"])
    with open(tables["spectrum"]) as f:
        blocks = f.read().split("\n\n\n")
    assert len(blocks) == len(ref) == 2
    for block, r in zip(blocks, ref):
        a = np.genfromtxt(io.StringIO(block), names=True)
        assert a.dtype.names == r.dtype.names and len(a) == len(r)
        for name in r.dtype.names:
            same(a[name], r[name], name)
