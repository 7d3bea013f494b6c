"""read_table on every command's output: header row, '#' metadata, rows, and
tables of several series; and on the older layout ('#' lines first)."""

import glob
import io
import math
import os

import numpy as np
import pytest

import bafu


def read(text):
    return bafu.read_table(io.StringIO(text))


def test_mc(cli):
    _, out, _ = cli("mc", "--width", 16, "--depth", 3, "--seeds", 3, "--seed", 5)
    t = read(out)
    assert len(t) == 1
    s = t[0]
    assert s.dtype.names[:3] == ("layer", "cos_theta", "cos_theta_se")
    assert list(s["layer"]) == [1, 2, 3] and s["layer"].dtype == np.int64
    assert t.meta["seed"] == 5 and t.meta["seeds"] == 3 and t.meta["threads"] == 1
    assert t.meta["network"]["width"] == 16 and t.meta["network"]["arch"] == "mlp"
    assert t.meta["description"].startswith("bafu mc:")
    assert t.meta["command"].endswith("--seed 5")


def test_theory_and_regime(cli):
    _, out, _ = cli("theory", "--depth", 4, "--width", 32)
    t = read(out)[0]
    assert t.meta["regime"].startswith("relu MLP")
    assert t["cos_theta"][0] == 1


def test_presets_strings(cli):
    _, out, _ = cli("theory", "--presets", "--width", 64, "--depth", 8)
    t = read(out)[0]
    assert t.dtype["preset"].kind == "U" and t.dtype["init_var"].kind == "f"
    assert len(t) == 2 * 4 * 3
    assert set(t["preset"]) == {"sp", "ntk", "mup", "fsc"}


def test_kernel(cli, source_dir):
    _, out, _ = cli("kernel", "--depth", 3, "--input", os.path.join(source_dir, "tests", "golden", "batch.txt"))
    t = read(out)[0]
    assert t.dtype.names == ("layer", "a", "b", "sigma", "sigma_prime", "ntk", "bwd", "own")
    assert np.all(t["a"] <= t["b"])


def test_spectrum_dense_two_series(cli):
    _, out, _ = cli("spectrum", "--width", 16, "--depth", 2, "--bins", 10)
    t = read(out)
    assert len(t) == 2
    assert t[0].dtype.names == ("index", "eigenvalue") and len(t[0]) == 16
    assert t[1].dtype.names == ("x", "density", "width") and len(t[1]) == 10
    assert np.sum(t[1]["density"] * t[1]["width"]) == pytest.approx(1, rel=1e-9)
    assert t.meta["seed"] == 1


def test_spectrum_limit_atoms(cli):
    _, out, _ = cli("spectrum", "--mode", "limit", "--depth", 2, "--bins", 60)
    t = read(out)
    assert [s.dtype.names for s in t] == [("x", "density"), ("x", "mass")]
    assert len(t[1]) == 1 and t[1]["mass"][0] == pytest.approx(0.5)


def test_sweep(cli, tmp_path):
    grid = tmp_path / "grid.txt"
    grid.write_text("arch = mlp\nwidth = 12\ndepth = 2 3\nact = relu tanh\nseeds = 3\n")
    _, out, _ = cli("sweep", str(grid))
    t = read(out)[0]
    assert t.dtype["arch"].kind == "U" and set(t["act"]) == {"relu", "tanh"}
    assert len(t) == 2 + 3 + 2 + 3
    assert "cos_theta_mc" in t.dtype.names and "cos_theta_theory" in t.dtype.names


def test_train(cli):
    _, out, _ = cli("train", "--data", "teacher", "--depth", 2, "--width", 16, "--epochs", 1, "--train-size", 256,
                    "--test-size", 64, "--batch", 32, "--teacher-width", 16)
    t = read(out)[0]
    assert "step" in t.dtype.names and "loss" in t.dtype.names and len(t) > 0


def test_figure_tables(source_dir):
    """The committed figure tables: fig1 has three series, each with its own '#' line."""
    t = bafu.read_table(os.path.join(source_dir, "data", "fig1_mc.dat"))
    assert len(t) == 3
    assert [len(s) for s in t] == [64, 64, 64]
    assert t[1].meta["comments"] == ["tanh MLP (sigma_w^2 = 1.5)"]
    assert t.meta["mode"] == "full"
    for path in sorted(glob.glob(os.path.join(source_dir, "data", "*.dat"))):
        for s in bafu.read_table(path):
            assert s.dtype.names


def test_write_read_round_trip(tmp_path):
    t = bafu.theory(width=32, depth=3)
    path = tmp_path / "t.dat"
    bafu.write_table(t, str(path))
    r = bafu.read_table(str(path))[0]
    assert r.dtype.names == t.dtype.names
    for name in t.dtype.names:
        assert [t.formats[name] % v for v in r[name]] == [t.formats[name] % v for v in t[name]]


def test_both_layouts(cli):
    """A table as bafu writes it (each series' header row first) and the same
    with the '#' lines moved before the header rows, as tables were written
    before: the same columns, values and metadata."""
    _, out, _ = cli("spectrum", "--width", 16, "--depth", 2, "--bins", 10)
    blocks = out.split("\n\n\n")
    assert all(not b.startswith("#") for b in blocks)
    old = []
    for b in blocks:
        lines = b.split("\n")
        k = 1
        while k < len(lines) and lines[k].startswith("#"):
            k += 1
        old.append("\n".join(lines[1:k] + lines[:1] + lines[k:]))
    assert old[0].startswith("# bafu spectrum")
    new, before = read(out), read("\n\n\n".join(old))
    assert len(new) == len(before) == 2
    for a, b in zip(new, before):
        assert a.dtype == b.dtype and np.array_equal(a, b)
        assert a.meta == b.meta
    assert new.meta["seed"] == 1


def test_malformed():
    with pytest.raises(ValueError, match="3 columns"):
        read("# x\na b c\n1 2\n")
    with pytest.raises(ValueError, match="no header"):
        read("# only comments\n")


def test_cli_text_round_trip(cli):
    """read_table then write_table gives back the executable's text."""
    _, out, _ = cli("spectrum", "--width", 16, "--depth", 2, "--bins", 10)
    t = read(out)
    t[0].formats = {"index": "%d", "eigenvalue": "%.15g"}
    t[1].formats = {n: "%.12g" for n in t[1].dtype.names}
    assert bafu.write_table(t) == out


def test_figure1_theory_as_committed(source_dir):
    """The networks of examples/fig1.py give the committed theory curves of
    figure 1 (data/fig1_theory.dat) to the last printed digit."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("fig1", os.path.join(source_dir, "python", "examples", "fig1.py"))
    fig1 = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(fig1)
    except ImportError:
        pytest.skip("no matplotlib")
    data = bafu.read_table(os.path.join(source_dir, "data", "fig1_theory.dat"))
    for (label, net), series in zip(fig1.NETWORKS, data):
        th = bafu.theory(width=1024, depth=64, **net)  # printed to 12 digits; the figure's table to 10
        assert len(th) == len(series), label
        for a, b in zip(th["cos_theta"], series["cos_theta"]):
            assert abs(a - b) <= 0.51 * 10.0 ** (math.floor(math.log10(abs(b))) - 9), (label, a, b)
