"""Loading libbafu, its errors, and its parameter table (bafu/params.h,
bafu_params(): name, type, default, range and help of every parameter; the
mirror of bafu_param is checked against the table's own stride at import,
and against the header by tests/test_structs.py).
"""

import ctypes
import ctypes.util
import os
import subprocess
from ctypes import (POINTER, Structure, byref, c_char_p, c_double, c_int, c_size_t, c_uint,
                    c_void_p)

__all__ = ["lib", "library_path", "BafuError", "ParameterError", "PARAMS"]


class BafuError(RuntimeError):
    """A command that failed (the executable's exit status 1; `status`
    "EFAIL"), or was refused (ParameterError); the message is the command's,
    naming the parameter where one is at fault."""

    def __init__(self, message, status="EINVAL"):
        super().__init__(message)
        self.status = status


class ParameterError(BafuError, ValueError):
    """A refused request (exit status 2; `status` "EINVAL"): a bad value or
    combination of options, a size beyond the memory limit, a malformed
    input file. Raised before any work."""




def _candidates():
    """Where libbafu is looked for, in order (BAFU_LIBRARY alone if set)."""
    env = os.environ.get("BAFU_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    found = [os.path.normpath(os.path.join(here, "..", "..", "build", "libbafu.so"))]  # a source checkout's build tree
    try:  # a CMake install whose bafu.pc pkg-config finds (PKG_CONFIG_PATH for other prefixes)
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "bafu"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        if libdir:
            found.append(os.path.join(libdir, "libbafu.so.0"))
    except (OSError, subprocess.SubprocessError):
        pass
    found += ["/usr/local/lib/libbafu.so.0", "libbafu.so.0"]  # the default prefix, then the loader's own search
    name = ctypes.util.find_library("bafu")
    if name:
        found.append(name)
    return found


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (no such file)")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("bafu: libbafu not found; build it (cmake --build build) or install it (cmake --install), "
                      "or set BAFU_LIBRARY to the path of libbafu.so. Tried: " + "; ".join(tried))


lib, library_path = _load()


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_fn("bafu_version", c_char_p)


# --------------------------------------------------------------------------
# The parameter table (bafu/params.h). bafu_param is mirrored here, and its
# size checked against the table's own stride (bafu_param_find of entry i).

SIZE, U64, DOUBLE, CHOICE, FLAG, STRING = range(6)
GROUP_NET, GROUP_TRAIN = 0, 1
FLAG_NO_CLI = 32


class _Param(Structure):
    _fields_ = [("name", c_char_p), ("type", c_int), ("group", c_int), ("offset", c_size_t), ("default", c_double),
                ("lo", c_double), ("hi", c_double), ("lo_open", c_int), ("hi_open", c_int),
                ("choices", POINTER(c_char_p)), ("zero", c_char_p), ("arg", c_char_p), ("help", c_char_p),
                ("flags", c_uint), ("axis", c_int)]


_fn("bafu_params", POINTER(_Param), POINTER(c_size_t))
_fn("bafu_param_find", POINTER(_Param), c_char_p)
_fn("bafu_param_range_text", None, POINTER(_Param), c_char_p, c_size_t)


class ParamInfo:
    """One entry of the library's parameter table."""

    def __init__(self, ptr):
        q = ptr.contents
        self.ptr = ptr
        self.name = q.name.decode()
        self.type = q.type
        self.group = q.group
        self.offset = q.offset
        self.default = q.default
        self.flags = q.flags
        self.choices = []
        if q.choices:
            i = 0
            while q.choices[i] is not None:
                self.choices.append(q.choices[i].decode())
                i += 1
        self.zero = q.zero.decode() if q.zero else None
        self.help = q.help.decode() if q.help else ""
        buf = ctypes.create_string_buffer(256)
        lib.bafu_param_range_text(ptr, buf, len(buf))
        self.range = buf.value.decode()

    @property
    def option(self):
        return self.name

    def __repr__(self):
        return "<bafu parameter %s: %s>" % (self.name, self.range)


def _table():
    n = c_size_t()
    base = lib.bafu_params(byref(n))
    out = []
    addr0 = ctypes.cast(base, c_void_p).value
    for i in range(n.value):
        q = ParamInfo(ctypes.pointer(base[i]))
        found = lib.bafu_param_find(q.name.encode())
        if ctypes.cast(found, c_void_p).value != addr0 + i * ctypes.sizeof(_Param):
            raise ImportError("bafu: the mirror of bafu_param does not match libbafu's parameter table "
                              "(entry %d, %s); update python/bafu/_lib.py" % (i, q.name))
        out.append(q)
    return out


PARAMS = _table()
