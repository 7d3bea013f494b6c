"""The commands of the bafu CLI as Python functions over libbafu.

Each function runs the command itself, through the library's command line
entry (bafu_cli_run of bafu/cli.h, the code the executable runs): the
keyword arguments become its options ('_' for '-'; True for a flag), the
table it writes is read back with read_table. So every check, number and
metadata line is the executable's own; there is no second implementation
here. A refused request (exit status 2: a bad option, value or input)
raises ParameterError, a failure (exit status 1) BafuError, each with the
command's message in keyword words ("sigma_w2: must be ...").
"""

import os
import re
import tempfile
import threading
from ctypes import POINTER, c_char_p, c_int

import numpy as np

from . import _lib
from ._lib import BafuError, ParameterError, lib
from ._table import read_table

__all__ = ["run", "mc", "theory", "presets", "kernel", "spectrum", "sweep", "train", "params", "version"]

_lib._fn("bafu_cli_run", c_int, c_int, POINTER(c_char_p))
_lib._fn("bafu_cli_message", c_char_p)
_lib._fn("bafu_last_status", c_int)
_STATUS = ["OK", "EINVAL", "ENOMEM", "EIO", "EPARSE", "ENUMERIC", "ELAPACK", "ELIMIT"]  # bafu_status, in order


def version():
    """The version of the libbafu in use."""
    return lib.bafu_version().decode()


def params():
    """The library's parameter table: a list of entries with name, type,
    default, range (in words), choices and help."""
    return list(_lib.PARAMS)


def _text(name, v):
    """One option value as the command line spells it."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool):
        raise TypeError("%s: True/False only for a flag (an option without a value)" % name)
    if isinstance(v, float):
        return repr(v)  # the shortest text that reads back as the same double
    if isinstance(v, (int, str)):
        return str(v)
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, (list, tuple)):
        return ",".join(_text(name, x) for x in v)
    raise TypeError("%s: expected a number, a string or a list of them, got %r" % (name, v))


def _words(msg, cmd, scratch):
    """The command's message in keyword words: without "bafu CMD: ", each
    --option as option_name (but --help), the scratch files by name."""
    for lead in ("bafu %s: " % cmd, "bafu: "):
        if msg.startswith(lead):
            msg = msg[len(lead):]
            break
    msg = msg.replace(os.path.join(scratch, "input.txt"), "(array)").replace(os.path.join(scratch, "grid.txt"), "(grid)")
    return re.sub(r"(?<![\w-])--(?!help\b)([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), msg)


def _argv(cmd, kw, scratch):
    args = ["bafu", cmd]
    for key, value in kw.items():
        if key == "out":
            raise TypeError("bafu.%s(): no 'out': the table is returned (bafu.write_table writes it)" % cmd)
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
            continue
        if key == "input" and not isinstance(value, (str, bytes, os.PathLike)):
            a = np.asarray(value, dtype=np.float64)
            if a.ndim == 1:
                a = a[None, :]
            path = os.path.join(scratch, "input.txt")
            np.savetxt(path, a, fmt="%.17g")  # read back exactly (17 significant digits)
            value = path
        args += [flag, _text(key, value)]
    return args


_FILES_ONLY = {"figures"}  # commands that write their own files (data_dir, plot_dir), no --out
_LOCK = threading.Lock()  # bafu_cli_run: one command at a time per process


def _call(args):
    raw = [a.encode() for a in args]
    argv = (c_char_p * (len(raw) + 1))(*raw, None)
    with _LOCK:
        rc = lib.bafu_cli_run(len(raw), argv)
        st = lib.bafu_last_status() if rc else 0
        message = lib.bafu_cli_message().decode("utf-8", "replace")
    status = _STATUS[st] if 0 < st < len(_STATUS) else "EINVAL" if rc == 2 else "EFAIL"
    return rc, status, message


def _clean(meta, scratch):
    """The scratch files out of the recorded command line: no --out, the
    inputs as "(array)", the grid as "(grid)"."""
    c = meta.get("command")
    if isinstance(c, str):
        c = c.replace(" --out " + os.path.join(scratch, "table.dat"), "")
        c = c.replace(os.path.join(scratch, "input.txt"), "(array)").replace(os.path.join(scratch, "grid.txt"), "(grid)")
        meta["command"] = c
        meta["comments"] = [("command: " + c) if line.startswith("command: ") else line for line in meta["comments"]]


def run(cmd, *positional, **kw):
    """`bafu CMD [POSITIONAL...] --key value ...`: the command's table, a
    Table (a numpy structured array with .meta) for one series, a Tables
    (a list of them) for several; None if it wrote none (help=True: the
    help text is printed; `figures`, which writes its own directories)."""
    return _run(cmd, positional, kw)


def _run(cmd, positional, kw, grid=None):
    with tempfile.TemporaryDirectory(prefix="bafu-") as scratch:
        out = os.path.join(scratch, "table.dat")
        args = _argv(cmd, kw, scratch)
        if grid is not None:  # a grid given as text: its file in the scratch directory
            positional = (os.path.join(scratch, "grid.txt"),)
            with open(positional[0], "w", encoding="utf-8") as f:
                f.write(grid)
        args[2:2] = [_text(cmd, p) for p in positional]
        rc, status, msg = _call(args + (["--out", out] if cmd not in _FILES_ONLY else []))
        if rc != 0:
            text = _words(msg, cmd, scratch) or "bafu %s failed (exit status %d)" % (cmd, rc)
            raise (ParameterError if rc == 2 else BafuError)(text, status)
        if not os.path.exists(out):  # help=True, list_options=True: printed, no table
            return None
        tables = read_table(out)
        for t in list(tables) + [tables]:
            _clean(t.meta, scratch)
    return tables[0] if len(tables) == 1 else tables


def mc(**kw):
    """`bafu mc`: finite-width Monte Carlo (options as `bafu mc --help`)."""
    return run("mc", **kw)


def theory(**kw):
    """`bafu theory`: the infinite-width prediction (`bafu theory --help`)."""
    return run("theory", **kw)


def presets(**kw):
    """`bafu theory --presets`: the scaling presets for the network options given."""
    return run("theory", presets=True, **kw)


def kernel(**kw):
    """`bafu kernel`: infinite-width NNGP / NTK / backward kernels (`bafu kernel --help`)."""
    return run("kernel", **kw)


def spectrum(**kw):
    """`bafu spectrum`: spectra of the BFK or J J^T (`bafu spectrum --help`)."""
    return run("spectrum", **kw)


def train(**kw):
    """`bafu train`: mini-batch SGD with per-layer logs (`bafu train --help`)."""
    return run("train", **kw)


def sweep(grid, **kw):
    """`bafu sweep FILE`: a grid of networks. `grid` is a grid file's path,
    or its text (a string with newlines), or a dict {key: value or list of
    values}."""
    if isinstance(grid, dict):
        grid = "".join("%s = %s\n" % (k, " ".join(_text(k, x) for x in (v if isinstance(v, (list, tuple)) else [v])))
                       for k, v in grid.items())
    if isinstance(grid, str) and "\n" in grid:
        return _run("sweep", (), kw, grid=grid)
    return run("sweep", grid, **kw)
