"""bafu tables (doc/tables.md): each series starts with its header row of
column names, then its '#' metadata lines, then rows; series are separated
by two blank lines. Read into numpy structured arrays, and written back in
the command line's formats. read_table also reads the older layout, '#'
lines before the header."""

import re

import numpy as np

__all__ = ["Table", "Tables", "read_table", "write_table", "parse_meta"]


class Table(np.ndarray):
    """A numpy structured array, one field per column, with `meta` (a dict:
    'comments', the '#' lines in order; 'description', the first of them;
    and the `key: value` entries, e.g. 'seed', 'network' as a dict) and
    `formats` (the printf format of each column as the command line writes
    it, or None) and `breaks` (the rows a single blank line precedes: the
    points of a sweep, the blocks gnuplot draws apart)."""

    def __new__(cls, array, meta=None, formats=None, breaks=None):
        obj = np.asarray(array).view(cls)
        obj.meta = meta if meta is not None else parse_meta([])
        obj.formats = formats
        obj.breaks = breaks or []
        return obj

    def __array_finalize__(self, obj):
        self.meta = getattr(obj, "meta", None)
        self.formats = getattr(obj, "formats", None)
        self.breaks = getattr(obj, "breaks", [])

    def __getitem__(self, key):
        out = super().__getitem__(key)
        if isinstance(key, str) and isinstance(out, np.ndarray):
            return out.view(np.ndarray)  # a column: a plain array
        return out

    @property
    def columns(self):
        return self.dtype.names


class Tables(list):
    """Several series of one table (a list of Table), with the file's `meta`
    (that of the first series)."""

    def __init__(self, series, meta=None):
        super().__init__(series)
        self.meta = meta if meta is not None else (series[0].meta if series else parse_meta([]))


def _value(text):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


_KEY = re.compile(r"^([A-Za-z_]\w*): (.*)$")
_WIDE = re.compile(r"\S\s{2,}[A-Za-z_]\w*: ")
_PAIR = re.compile(r"(?:^|\s)([A-Za-z_]\w*): (\S+)")


def parse_meta(lines):
    """A dict from '#' lines (without the '# '): 'comments' (all of them),
    'description' (the first), and for each line 'key: value' the value
    (pairs two spaces apart, or a line of 'k: number' pairs, give one
    entry each; numbers as
    numbers; 'network' as a dict of its name=value pairs). The first line
    with a key wins."""
    meta = {"comments": list(lines), "description": lines[0] if lines else ""}
    for line in lines:
        m = _KEY.match(line)
        if not m:
            continue
        if _WIDE.search(line):  # "seed: 1  seeds: 16  threads: 1": pairs two spaces apart
            for piece in re.split(r"\s{2,}", line):
                k, _, v = piece.partition(": ")
                if re.fullmatch(r"[A-Za-z_]\w*", k):
                    meta.setdefault(k, _value(v))
            continue
        pairs = _PAIR.findall(line)
        if len(pairs) > 1 and all(not isinstance(_value(v), str) for _, v in pairs):
            for k, v in pairs:
                meta.setdefault(k, _value(v))
            continue
        key, rest = m.group(1), m.group(2)
        if key == "network":
            meta.setdefault(key, {k: _value(v) for k, v in (kv.split("=", 1) for kv in rest.split() if "=" in kv)})
        else:
            meta.setdefault(key, _value(rest))
    return meta


def _column(tokens):
    for kind in (int, float):
        try:
            return np.array([kind(t) for t in tokens], dtype=np.int64 if kind is int else np.float64)
        except ValueError:
            pass
    return np.array(tokens, dtype=str)


_MANTISSA = re.compile(r"^[+-]?([0-9]*)\.?([0-9]*)(?:[eE][+-]?[0-9]+)?$")


def _digits(token):
    """The significant digits of a number as printed ("0.0123" 3, "1.5e-07" 2,
    "100" 3), None if it is not one ("inf", "nan")."""
    m = _MANTISSA.match(token)
    if not m:
        return None
    d = (m.group(1) + m.group(2)).lstrip("0")
    return len(d)


def _float_format(tokens):
    """A %g format that prints every value of a column as it was read: with
    as many significant digits as its longest value (at most 17). A value
    read from %.Pg text has at most P digits and prints the same under %.Dg
    for any D between its own digits and P (the fixed or exponent form is
    chosen alike: a fixed form's integer part is within its digits)."""
    d = [_digits(t) for t in tokens]
    if any(x is None for x in d):
        return None
    return "%%.%dg" % min(max(max(d), 1), 17)


def _series(header, rows, comments, where, breaks=None):
    cols, formats = [], {}
    for i, name in enumerate(header):
        tokens = [r[i] for r in rows]
        cols.append(_column(tokens) if rows else np.zeros(0))
        kind = cols[-1].dtype.kind
        formats[name] = _float_format(tokens) if rows and kind == "f" else "%d" if kind in "iu" else "%s"
    dtype = [(name, c.dtype) for name, c in zip(header, cols)]
    arr = np.zeros(len(rows), dtype=dtype)
    for name, c in zip(header, cols):
        arr[name] = c
    return Table(arr, parse_meta(comments), formats, breaks)


def read_table(path):
    """Read any bafu table (a path, or a file object): a Tables, one Table
    per series (two blank lines end a series), each a structured array with
    the '#' lines of its series (before or after its header row, wherever
    they stand) parsed into .meta; Tables.meta is the first series' (the
    file's metadata). Columns of integers are int64, of other
    numbers float64, anything else str. ValueError for a row whose length
    differs from its header's."""
    if hasattr(path, "read"):
        text, name = path.read(), getattr(path, "name", "<file>")
    else:
        with open(path, encoding="utf-8") as f:
            text, name = f.read(), path
    series, comments, header, rows, blanks, breaks = [], [], None, [], 0, []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            blanks += 1
            if blanks >= 2 and header is not None:
                series.append(_series(header, rows, comments, name, breaks))
                comments, header, rows, breaks = [], None, [], []
            continue
        if blanks == 1 and rows and not s.startswith("#"):
            breaks.append(len(rows))
        blanks = 0
        if s.startswith("#"):
            body = line.lstrip()[1:]
            comments.append((body[1:] if body.startswith(" ") else body).rstrip())
            continue
        tokens = s.split()
        if header is None:
            header = tokens
        elif len(tokens) != len(header):
            raise ValueError("%s:%d: %d values, but the header has %d columns" % (name, n, len(tokens), len(header)))
        else:
            rows.append(tokens)
    if header is not None:
        series.append(_series(header, rows, comments, name, breaks))
    if not series:
        raise ValueError("%s: no header row" % name)
    return Tables(series)


def _format(fmt, v):
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode()
    if isinstance(v, (np.integer,)):
        v = int(v)
    elif isinstance(v, np.floating):
        v = float(v)
    return fmt % v


def write_table(table, path=None):
    """The text of a Table or Tables as the command line writes it (for
    each series: its header row, its '#' lines, its rows in each column's
    format, a blank line before each of its breaks; series separated by two
    blank lines); written to `path` if
    given. Returns the text."""
    series = table if isinstance(table, list) else [table]
    out = []
    for k, t in enumerate(series):
        if k:
            out.append("\n\n")
        lines = t.meta["comments"] if t.meta else []
        if isinstance(table, list) and k == 0 and table.meta is not t.meta:
            lines = table.meta["comments"]
        names = t.dtype.names
        out.append(" ".join(names) + "\n")
        out.extend("# %s\n" % c for c in lines)
        fmts = []
        for name in names:
            f = (t.formats or {}).get(name)
            if f is None or (f == "%s" and t.dtype[name].kind == "f"):  # an empty column read as float
                kind = t.dtype[name].kind
                f = "%d" if kind in "iu" else "%.17g" if kind == "f" else "%s"
            fmts.append(f)
        breaks = set(getattr(t, "breaks", None) or [])
        for k, row in enumerate(t.view(np.ndarray)):
            if k in breaks:
                out.append("\n")
            out.append(" ".join(_format(f, row[i]) for i, f in enumerate(fmts)) + "\n")
    text = "".join(out)
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text
