"""Loading libbafu and the ctypes view of its parameter structs.

The layout of bafu_net_params is not written down here: it is built from the
library's own parameter table (bafu_params(), bafu/params.h), which gives the
name, type and offset of every field, and checked against the table at import
(offsets, no overlap, and its size: bafu_train_config starts with a
bafu_net_params, so its first own field sits at sizeof(bafu_net_params)).
The result structs of the other calls (bafu_mc_result, bafu_moments_layer,
...) are mirrored from the headers; tests/test_structs.py compiles a C
program against the headers and compares every size and offset.
"""

import ctypes
import ctypes.util
import os
import subprocess
from ctypes import (POINTER, Structure, byref, c_char, c_char_p, c_double, c_int, c_size_t, c_uint, c_uint64,
                    c_void_p)

__all__ = ["lib", "library_path", "BafuError", "ParameterError", "NetParams", "net_params", "PARAMS", "param",
           "check", "fail", "last_error"]


class BafuError(RuntimeError):
    """An error reported by libbafu: `status` is the bafu_status name
    ("EINVAL", "ENUMERIC", ...), the message is the library's
    (bafu_last_error), naming the parameter where one is at fault."""

    def __init__(self, message, status="EINVAL"):
        super().__init__(message)
        self.status = status


class ParameterError(BafuError, ValueError):
    """A refused request (bad value or combination of parameters, a size
    beyond the memory limit, a malformed input file): raised before any work."""


_STATUS = ["OK", "EINVAL", "ENOMEM", "EIO", "EPARSE", "ENUMERIC", "ELAPACK", "ELIMIT"]
_REFUSED = {"EINVAL", "ELIMIT", "EPARSE"}  # the CLI's exit status 2


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


_fn("bafu_last_error", c_char_p)
_fn("bafu_status_string", c_char_p, c_int)
_fn("bafu_error", c_int, c_int, c_char_p)
_fn("bafu_version", c_char_p)


def last_error():
    return lib.bafu_last_error().decode("utf-8", "replace")


def fail(status, context=None):
    """The exception for a failed library call of status `status` (an int)."""
    name = _STATUS[status] if 0 <= status < len(_STATUS) else str(status)
    msg = last_error() or lib.bafu_status_string(status).decode()
    if context:
        msg = "%s: %s" % (context, msg)
    return (ParameterError if name in _REFUSED else BafuError)(msg, name)


def check(status, context=None):
    if status:
        raise fail(status, context)


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
_fn("bafu_param_parse", c_int, POINTER(_Param), c_char_p, POINTER(c_double))
_fn("bafu_param_set", None, POINTER(_Param), c_void_p, c_double)
_fn("bafu_param_get", c_double, POINTER(_Param), c_void_p)
_fn("bafu_param_check", c_int, POINTER(_Param), c_void_p)
_fn("bafu_param_range_text", None, POINTER(_Param), c_char_p, c_size_t)
_fn("bafu_param_format", None, POINTER(_Param), c_double, c_int, c_char_p, c_size_t)


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
_BY_NAME = {q.name: q for q in PARAMS}

_CTYPE = {SIZE: c_size_t, U64: c_uint64, DOUBLE: c_double, CHOICE: c_int, FLAG: c_int, STRING: c_char_p}


def _net_struct():
    """bafu_net_params as a ctypes Structure, from the table's offsets."""
    entries = sorted((q for q in PARAMS if q.group == GROUP_NET), key=lambda q: q.offset)
    fields, at, npad = [], 0, 0
    for q in entries:
        if q.offset < at:
            raise ImportError("bafu: parameters overlap at %s (offset %d)" % (q.name, q.offset))
        t = _CTYPE[q.type]
        align = ctypes.alignment(t)
        if q.offset > (at + align - 1) // align * align:  # a gap no alignment explains: a field missing from the table
            fields.append(("_pad%d" % npad, c_char * (q.offset - at)))
            npad += 1
        fields.append((q.name, t))
        at = q.offset + ctypes.sizeof(t)
    cls = type("bafu_net_params", (Structure,), {"_fields_": fields})
    for q in entries:
        if getattr(cls, q.name).offset != q.offset:
            raise ImportError("bafu: field %s at offset %d in the table, %d in the ctypes view"
                              % (q.name, q.offset, getattr(cls, q.name).offset))
    train = [q.offset for q in PARAMS if q.group == GROUP_TRAIN]
    if train and min(train) != ctypes.sizeof(cls):
        raise ImportError("bafu: bafu_net_params has %d bytes by the parameter table but bafu_train_config's own "
                          "fields start at %d: a field of bafu_net_params is missing from the table"
                          % (ctypes.sizeof(cls), min(train)))
    return cls


NetParams = _net_struct()


def param(name):
    """The table entry of parameter `name` (KeyError if none)."""
    return _BY_NAME[name]


def net_params():
    """The defaults, set from the table as bafu_net_params_default does."""
    p = NetParams()
    for q in PARAMS:
        if q.group == GROUP_NET and q.type != STRING:
            lib.bafu_param_set(q.ptr, byref(p), q.default)
    return p


def set_param(p, name, value):
    """Set field `name` of p from a Python value through the library's parser
    (bafu_param_parse) and range check (bafu_param_check): ParameterError
    with the library's message, naming the parameter."""
    q = _BY_NAME[name]
    bad = None
    if q.type == CHOICE:
        text = value if isinstance(value, str) else None
    elif q.type == FLAG:
        text = ("1" if value else "0") if isinstance(value, (bool, int)) and value in (0, 1) else None
    elif q.type in (SIZE, U64):
        text = str(int(value)) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
    elif q.type == DOUBLE:
        text = repr(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if text is None:
            try:
                import numpy
                if isinstance(value, numpy.floating):
                    text = repr(float(value))
            except ImportError:
                pass
    else:
        text = None
    v = c_double()
    if text is None or not lib.bafu_param_parse(q.ptr, text.encode(), byref(v)):
        bad = value
    if bad is None:
        lib.bafu_param_set(q.ptr, byref(p), v.value)
        if lib.bafu_param_check(q.ptr, byref(p)) == 0:
            return
        raise ParameterError(last_error())
    raise ParameterError("%s: must be %s, got %r" % (name, q.range, bad))


def get_param(p, name):
    q = _BY_NAME[name]
    v = lib.bafu_param_get(q.ptr, byref(p))
    if q.type == CHOICE:
        return q.choices[int(v)] if 0 <= v < len(q.choices) else int(v)
    if q.type == FLAG:
        return bool(v)
    if q.type in (SIZE, U64):
        return int(getattr(p, name))
    return v
