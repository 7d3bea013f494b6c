"""bafu: the feature speed formula and backward-feature angles (arXiv
2311.18718) from Python, over libbafu through ctypes.

    import bafu
    t = bafu.mc(arch="resnet", width=256, depth=8, seeds=8)
    t["cos_theta"], t["cos_theta_se"], t.meta["seed"]
    th = bafu.theory(arch="resnet", width=256, depth=8)

mc, theory, presets, kernel, spectrum, train and sweep run the commands of
the bafu executable, in this process, through the library's command line
entry (the same code): options as keyword arguments ('_' for '-', True for
a flag), the command's table returned as numpy structured arrays (Table,
with .meta; Tables for several series). run(cmd, ...) runs any command.
read_table reads any table file the executable writes, write_table writes
one. libbafu is found through BAFU_LIBRARY (a path), else the build tree of
this source checkout (build/libbafu.so), else an installed copy
(pkg-config bafu, the loader's search).
"""

from ._lib import BafuError, ParameterError, library_path
from ._table import Table, Tables, read_table, write_table
from ._api import kernel, mc, params, presets, run, spectrum, sweep, theory, train, version

__all__ = ["mc", "theory", "presets", "kernel", "spectrum", "train", "sweep", "run", "read_table", "write_table",
           "params", "version", "Table", "Tables", "BafuError", "ParameterError", "library_path"]
