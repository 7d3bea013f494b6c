"""The ctypes mirrors of the library's result structs against the headers:
a C program compiled against include/ prints every size and offset."""

import ctypes
import os
import shutil
import subprocess

import pytest

from bafu import _api, _lib


def test_net_params_from_table():
    """bafu_net_params is built from the parameter table: every entry's field
    at its offset (checked at import too)."""
    for q in _lib.PARAMS:
        if q.group == _lib.GROUP_NET:
            assert getattr(_lib.NetParams, q.name).offset == q.offset


def test_mirrors_match_headers(tmp_path, source_dir):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    lines = ["#include <stddef.h>", "#include <stdio.h>"]
    lines += ['#include "bafu/%s.h"' % h for h in ("layout", "mc", "moments", "kernel", "preset", "spectrum", "params")]
    lines.append("int main(void) {")
    mirrors = dict(_api.MIRRORS, bafu_param=_lib._Param)
    for cname, py in mirrors.items():
        lines.append('  printf("%s %%zu\\n", sizeof(%s));' % (cname, cname))
        for f in py._fields_:
            lines.append('  printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (cname, f[0], cname,
                                                                           "def" if f[0] == "default" else f[0]))
    lines.append('  printf("bafu_layout %zu\\n", sizeof(bafu_layout));')
    lines += ["  return 0;", "}"]
    src = tmp_path / "mirrors.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "mirrors"
    build = os.path.join(os.environ.get("BAFU_BINARY_DIR") or os.path.join(source_dir, "build"), "include")
    subprocess.run([cc, "-std=c11", "-I", os.path.join(source_dir, "include"), "-I", build, "-o", str(exe), str(src)],
                   check=True)
    got = dict(line.split() for line in subprocess.run([str(exe)], capture_output=True, text=True,
                                                        check=True).stdout.splitlines())
    assert int(got["bafu_layout"]) <= _api._LAYOUT_BYTES  # used opaquely, through a buffer this large
    for cname, py in mirrors.items():
        assert int(got[cname]) == ctypes.sizeof(py), cname
        for f in py._fields_:
            assert int(got["%s.%s" % (cname, f[0])]) == getattr(py, f[0]).offset, (cname, f[0])
