"""The ctypes mirror of the parameter table's entry (bafu_param) against the
header: a C program compiled against include/ prints its size and offsets."""

import ctypes
import os
import shutil
import subprocess

import pytest

from bafu import _lib


def test_mirrors_match_headers(tmp_path, source_dir):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    lines = ["#include <stddef.h>", "#include <stdio.h>"]
    lines.append('#include "bafu/params.h"')
    lines.append("int main(void) {")
    mirrors = {"bafu_param": _lib._Param}
    for cname, py in mirrors.items():
        lines.append('  printf("%s %%zu\\n", sizeof(%s));' % (cname, cname))
        for f in py._fields_:
            lines.append('  printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (cname, f[0], cname,
                                                                           "def" if f[0] == "default" else f[0]))
    lines += ["  return 0;", "}"]
    src = tmp_path / "mirrors.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "mirrors"
    build = os.path.join(os.environ.get("BAFU_BINARY_DIR") or os.path.join(source_dir, "build"), "include")
    subprocess.run([cc, "-std=c11", "-I", os.path.join(source_dir, "include"), "-I", build, "-o", str(exe), str(src)],
                   check=True)
    got = dict(line.split() for line in subprocess.run([str(exe)], capture_output=True, text=True,
                                                        check=True).stdout.splitlines())
    for cname, py in mirrors.items():
        assert int(got[cname]) == ctypes.sizeof(py), cname
        for f in py._fields_:
            assert int(got["%s.%s" % (cname, f[0])]) == getattr(py, f[0]).offset, (cname, f[0])
