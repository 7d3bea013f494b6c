"""The Python functions against the bafu executable: the same options give
the same table. The functions run the command through libbafu's command
line entry, so this checks the keyword-to-option mapping and the reading:
each Python table, written back by write_table in the formats read_table
found, must equal the executable's output line for line, every '#' line but
the three provenance lines (generator, command, date) included."""

import math
import os

import numpy as np
import pytest

import bafu
from conftest import without_provenance

BATCH = os.path.join("tests", "golden", "batch.txt")


def options(kw):
    """bafu.f(**kw) as command-line arguments."""
    args = []
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            args.append(flag)
        elif v is not False:
            args += [flag, str(v)]
    return args


CASES = [
    ("mc", dict(width=32, depth=4, seeds=4)),
    ("mc", dict(arch="resnet", width=24, depth=4, seeds=3, block_depth=2, threads=2, seed=7)),
    ("mc", dict(width=16, depth=3, seeds=3, loss="mse", batch=2, outputs=2, act="tanh", sigma_w2=1.5)),
    ("mc", dict(width=16, depth=3, seeds=3, loss="xent", init="orthogonal")),
    ("mc", dict(width=32, depth=4, seeds=3, preset="fsc", bias_var=0.5)),
    ("mc", dict(width=16, depth=4, seeds=3, lr_input=0, step=0)),
    ("mc", dict(arch="resnet", embed=True, width=16, depth=3, seeds=3, conditional=True, branch_norm="rms")),
    ("mc", dict(width=16, depth=3, seeds=3, rng="gsl", act="gelu")),
    ("mc", dict(depth=3, width=16, seeds=3, input=BATCH)),
    ("theory", dict(width=64, depth=6)),
    ("theory", dict(arch="resnet", act="tanh", sigma_w2=1, depth=6, width=64)),
    ("theory", dict(depth=5, bias_var=0.3, lr_input=0)),
    ("theory", dict(loss="mse", batch=4, depth=3, width=64)),
    ("theory", dict(depth=4, input=BATCH + ":1")),
    ("theory", dict(arch="resnet", limit=True, points=4, branch_scale=0.5)),
    ("theory", dict(arch="resnet", limit=True, act="linear", points=5)),
    ("theory", dict(arch="resnet", limit=True, sweep_branch="0:0.5:0.25")),
    ("presets", dict(width=64, depth=8)),
    ("presets", dict(arch="resnet", width=128, depth=16, bias_var=0.5)),
    ("presets", dict(arch="resnet", embed=True, depth=4, input_dim=10)),
    ("kernel", dict(depth=5, corr=0.3)),
    ("kernel", dict(arch="resnet", depth=6, every=2, act="erf")),
    ("kernel", dict(depth=3, input=BATCH)),
    ("spectrum", dict(width=32, depth=3)),
    ("spectrum", dict(width=32, depth=3, object="jacobian", log_bins=True, bins=20, layer=2)),
    ("spectrum", dict(width=24, depth=4, moments=True, seed=3, draw=1)),
    ("spectrum", dict(mode="kpm", width=32, depth=2, kpm_moments=16, kpm_vectors=4)),
    ("spectrum", dict(mode="limit", depth=3, layer=2, bins=100)),
    ("spectrum", dict(mode="limit", arch="resnet", act="linear", depth=2, moments=True)),
    ("train", dict(data="teacher", width=16, depth=2, epochs=1, train_size=128, test_size=64, log_every=1)),
    ("train", dict(data="teacher", arch="resnet", embed=True, preset="mup", width=16, depth=3, epochs=1, train_size=64,
                   test_size=32, lr=0.05, quiet=True)),
]


def ids():
    return ["%s-%d" % (c, i) for i, (c, _) in enumerate(CASES)]


@pytest.fixture
def one_row_input(tmp_path, source_dir):
    """The first sample of the golden batch, as its own file."""
    with open(os.path.join(source_dir, BATCH)) as f:
        first = f.readline()
    path = tmp_path / "one.txt"
    path.write_text(first)
    return str(path)


@pytest.mark.parametrize("case", range(len(CASES)), ids=ids())
def test_same_table(case, cli, source_dir, one_row_input):
    cmd, kw = CASES[case]
    kw = dict(kw)
    if kw.get("input") == BATCH + ":1":
        kw["input"] = one_row_input
    elif "input" in kw:
        kw["input"] = os.path.join(source_dir, kw["input"])
    args = [cmd] + options(kw) if cmd != "presets" else ["theory", "--presets"] + options(kw)
    _, out, _ = cli(*args)
    got = getattr(bafu, cmd)(**kw)
    text = bafu.write_table(got)
    assert without_provenance(text) == without_provenance(out)
    # the same numbers through read_table: every column, every row
    series = got if isinstance(got, list) else [got]
    read = bafu.read_table(__import__("io").StringIO(out))
    assert len(read) == len(series)
    for mine, theirs in zip(series, read):
        assert mine.dtype.names == theirs.dtype.names
        assert len(mine) == len(theirs)
        for name in mine.dtype.names:
            fmt = mine.formats[name]
            for a, b in zip(mine[name], theirs[name]):
                assert fmt % a == fmt % b, (name, a, b)
    assert read.meta["network"] == got.meta["network"] if "network" in got.meta else True


def test_sweep_grid_as_dict(cli, tmp_path):
    """bafu.sweep({key: values}) is `bafu sweep FILE` of that grid; the
    recorded command names the grid "(grid)"."""
    grid = {"arch": ["mlp", "resnet"], "depth": [2, 3], "width": 16, "seeds": 2, "columns": "cos_theta"}
    path = tmp_path / "grid.txt"
    path.write_text("arch = mlp resnet\ndepth = 2 3\nwidth = 16\nseeds = 2\ncolumns = cos_theta\n")
    _, out, _ = cli("sweep", str(path))
    got = bafu.sweep(grid)
    assert without_provenance(bafu.write_table(got)) == without_provenance(out)
    assert got.meta["command"] == "bafu sweep (grid)"
    assert sorted(set(got["point"])) == [0, 1, 2, 3]  # the four networks of the grid


def test_array_input_is_exact(tmp_path, cli):
    """An array given as input reaches the command as the same doubles."""
    x = np.array([[0.1, -2.0 / 3.0, 1e-7], [3.0, np.pi, -0.25]])
    path = tmp_path / "x.txt"
    np.savetxt(path, x, fmt="%r")
    _, out, _ = cli("kernel", "--depth", 3, "--input", str(path))
    got = bafu.kernel(depth=3, input=x)
    mine = [line for line in without_provenance(bafu.write_table(got)) if "input" not in line]
    theirs = [line for line in without_provenance(out) if "input" not in line]
    assert mine == theirs


def test_mc_matches_theory_roughly():
    """A sanity check of the units: layer 2 of a ReLU MLP, 16 draws."""
    m = bafu.mc(width=128, depth=3, seeds=16)
    th = bafu.theory(width=128, depth=3)
    d = abs(m["cos_theta"][1] - th["cos_theta"][1])
    assert d < 5 * m["cos_theta_se"][1] + 0.02
    assert np.all(m["identity_residual"] < 1e-10)
