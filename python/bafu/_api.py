"""The commands of the bafu CLI as Python functions over libbafu.

Each function takes the command's options as keyword arguments (the option's
name without '--', '_' for '-'), does what the command does through the same
library calls, and returns its table: a Table (numpy structured array with
.meta) for one series, a Tables for several. The checks of option
combinations the command line makes are made here too, in the library's
words (parameters by name); the numbers all come from libbafu.
"""

import ctypes
import datetime
import math
import sys
from ctypes import POINTER, Structure, byref, c_char, c_char_p, c_double, c_int, c_size_t, c_uint64, c_void_p

import numpy as np

from . import _lib
from ._lib import BafuError, ParameterError, check, fail, lib
from ._table import Table, Tables, parse_meta

__all__ = ["mc", "theory", "presets", "kernel", "spectrum", "describe", "params", "version"]

_fn = _lib._fn
_P = POINTER(_lib.NetParams)
_DBL = POINTER(c_double)

# ------------------------------------------------------------------ mirrors

_fn("bafu_quantity_name", c_char_p, c_int)
_fn("bafu_draw_status_string", c_char_p, c_int)


def _count(name_of, stop):
    n = 0
    while name_of(n).decode() != stop:
        n += 1
    return n


Q_COUNT = _count(lib.bafu_quantity_name, "?")
DRAW_COUNT = _count(lib.bafu_draw_status_string, "unknown")
QUANTITY = {lib.bafu_quantity_name(i).decode(): i for i in range(Q_COUNT)}


class McResult(Structure):
    _fields_ = [("J", c_size_t), ("seeds", c_size_t), ("labels", POINTER(c_int)), ("mean", _DBL), ("se", _DBL),
                ("max", _DBL), ("raw", _DBL), ("excluded", c_size_t), ("excluded_by", c_size_t * DRAW_COUNT),
                ("note", c_char * 256)]


class MomentsLayer(Structure):
    _fields_ = [("label", c_int)] + [(n, c_double) for n in (
        "q_in", "q", "c", "p1", "p2", "m1", "m2", "cos_theta", "cos_spectral", "back", "decay", "sensitivity",
        "backward_norm", "loss_decay", "feature_speed")]


class ContinuumPoint(Structure):
    _fields_ = [(n, c_double) for n in ("t", "q", "mu", "r", "cos_theta", "error")]


class PresetRow(Structure):
    _fields_ = [("group", c_char_p), ("var", c_double), ("lr", c_double), ("var_formula", c_char_p),
                ("lr_formula", c_char_p), ("lr_bias", c_double), ("lr_bias_formula", c_char_p)]


class KernelPair(Structure):
    _fields_ = [("index", c_size_t), ("label", c_int)] + [(n, c_double) for n in (
        "q", "corr", "one_minus_corr", "angle", "sprime_diag", "sprime", "ntk_diag", "ntk", "own_diag", "own",
        "bwd_diag", "bwd", "ntk_corr")]


class SpecMoments(Structure):
    _fields_ = [("label", c_int), ("defined", c_int), ("m1", c_double), ("m2", c_double), ("cos_theta", c_double),
                ("cos_spectral", c_double)]


class KpmParams(Structure):
    _fields_ = [("moments", c_size_t), ("vectors", c_size_t), ("lanczos", c_size_t), ("points", c_size_t),
                ("seed", c_uint64)]


class FreeParams(Structure):
    _fields_ = [("atoms", c_size_t), ("grid", c_size_t)]


class SpecAtom(Structure):
    _fields_ = [("x", c_double), ("mass", c_double)]


class FreeLayer(Structure):
    _fields_ = [("label", c_int), ("m1", c_double), ("m2", c_double), ("raw", c_double * 5), ("lo", c_double),
                ("hi", c_double), ("natoms", c_size_t), ("atom", SpecAtom * 2)]


# bafu_layout is used opaquely, through its functions: a buffer larger than it
_LAYOUT_BYTES = 16384
_Layout = c_double * (_LAYOUT_BYTES // 8)

MIRRORS = {"bafu_mc_result": McResult, "bafu_moments_layer": MomentsLayer,
           "bafu_continuum_point": ContinuumPoint, "bafu_preset_row": PresetRow, "bafu_kernel_pair": KernelPair,
           "bafu_spec_moments": SpecMoments, "bafu_kpm_params": KpmParams, "bafu_free_params": FreeParams,
           "bafu_free_layer": FreeLayer}

_PROGRESS = ctypes.CFUNCTYPE(None, c_size_t, c_size_t, c_void_p)
_PAIR_FN = ctypes.CFUNCTYPE(c_int, POINTER(KernelPair), c_void_p)

_fn("bafu_net_params_check", c_int, _P)
_fn("bafu_net_params_describe", None, _P, c_char_p, c_size_t)
_fn("bafu_read_inputs", c_int, c_char_p, POINTER(_DBL), POINTER(c_size_t), POINTER(c_size_t))
_fn("bafu_preset_apply", c_int, _P, c_int)
_fn("bafu_preset_rows", c_int, _P, c_int, POINTER(PresetRow))
_fn("bafu_preset_name", c_char_p, c_int)
_fn("bafu_memory_check", c_int, c_double, c_char_p)
_fn("bafu_mc_run", c_int, _P, c_size_t, c_uint64, _DBL, c_int, POINTER(McResult))
_fn("bafu_mc_result_free", None, POINTER(McResult))
_fn("bafu_moments_nlayers", c_size_t, _P)
_fn("bafu_moments_run", c_int, _P, c_double, POINTER(MomentsLayer))
_fn("bafu_moments_regime", c_int, _P, c_char_p, c_size_t)
_fn("bafu_continuum_run", c_int, _P, c_double, c_double, c_size_t, POINTER(ContinuumPoint))
_fn("bafu_continuum_cos_closed", c_double, _P, c_double, c_double)
_fn("bafu_output_angle", c_int, _P, c_size_t, c_uint64, _DBL, _DBL)
_fn("bafu_layout_build", c_int, _P, c_void_p)
_fn("bafu_layout_has_blocks", c_int, c_void_p)
_fn("bafu_layout_activates", c_int, c_void_p, c_size_t)
_fn("bafu_layout_first_trained", c_size_t, c_void_p)
_fn("bafu_layout_entry", c_int, c_void_p, c_size_t, c_void_p, c_void_p)
_fn("bafu_layout_first_label", c_int, c_void_p)
_fn("bafu_layout_last_label", c_int, c_void_p)
_fn("bafu_kernel_count_layers", c_size_t, _P)
_fn("bafu_kernel_two_inputs", c_int, _P, c_double, _PAIR_FN, c_void_p)
_fn("bafu_kernel_alloc", c_int, _P, POINTER(c_void_p))
_fn("bafu_kernel_free", None, c_void_p)
_fn("bafu_kernel_run", c_int, c_void_p, _DBL)
_fn("bafu_kernel_batch", c_size_t, c_void_p)
_fn("bafu_kernel_label", c_int, c_void_p, c_size_t)
for _name in ("sigma", "sprime", "theta", "own", "bwd"):
    _fn("bafu_kernel_" + _name, _DBL, c_void_p, c_size_t)
_fn("bafu_net_memory_bytes", c_size_t, _P)
_fn("bafu_net_alloc", c_int, _P, POINTER(c_void_p))
_fn("bafu_net_free", None, c_void_p)
_fn("bafu_net_set_inputs", None, c_void_p, _DBL)
_fn("bafu_net_nlayers", c_size_t, c_void_p)
_fn("bafu_net_layer_label", c_int, c_void_p, c_size_t)
_fn("bafu_net_layer_fan_out", c_size_t, c_void_p, c_size_t)
_fn("bafu_net_draw", c_int, c_void_p, c_uint64, c_uint64)
_fn("bafu_net_run", c_int, c_void_p)
_fn("bafu_spec_dense_alloc", c_int, c_void_p, c_int, POINTER(c_void_p))
_fn("bafu_spec_dense_free", None, c_void_p)
_fn("bafu_spec_dense_run", c_int, c_void_p, c_void_p, c_int, c_size_t, POINTER(SpecMoments), _DBL)
_fn("bafu_spec_dense_clamped", c_size_t, c_void_p)
_fn("bafu_spec_histogram", c_int, _DBL, c_size_t, c_size_t, c_int, _DBL, _DBL, _DBL, POINTER(c_size_t))
_fn("bafu_spec_kantorovich", c_double, c_double, c_double)
_fn("bafu_moments_input_x2", c_double, _DBL, c_size_t)
_fn("bafu_kpm_params_default", KpmParams)
_fn("bafu_spec_kpm_alloc", c_int, c_void_p, POINTER(KpmParams), POINTER(c_void_p))
_fn("bafu_spec_kpm_free", None, c_void_p)
_fn("bafu_spec_kpm_prepare", c_int, c_void_p, c_void_p, c_int, c_size_t)
_fn("bafu_spec_kpm_run", c_int, c_void_p, c_void_p, _DBL, _DBL, _DBL, _DBL)
_fn("bafu_spec_kpm_moments", None, c_void_p, _DBL, _DBL)
_fn("bafu_free_params_default", FreeParams)
_fn("bafu_free_alloc", c_int, POINTER(FreeParams), POINTER(c_void_p))
_fn("bafu_free_free", None, c_void_p)
_fn("bafu_free_run", c_int, c_void_p, _P, c_double, c_int, c_size_t, POINTER(FreeLayer))
_fn("bafu_free_moments", None, POINTER(FreeLayer), c_size_t, POINTER(SpecMoments))
_fn("bafu_free_x", _DBL, c_void_p)
_fn("bafu_free_density", _DBL, c_void_p)
_fn("bafu_free_npoints", c_size_t, c_void_p)
_fn("free", None, c_void_p)  # the C library's, for bafu_read_inputs' array

_PRESETS = ["sp", "ntk", "mup", "fsc"]
_LIMIT_RTOL = 1e-10  # as bafu theory --limit: successive refinements of the continuum solver agree to this


def version():
    """The version of the libbafu in use."""
    return lib.bafu_version().decode()


def params():
    """The library's parameter table: a list of entries with name, type,
    default, range (in words), choices and help."""
    return list(_lib.PARAMS)


# ----------------------------------------------------------- network options

# the options of every command with a network (cli_net_options): each net
# parameter of the table but those without an option (signal, step)
NET_OPTIONS = [q.name for q in _lib.PARAMS if q.group == _lib.GROUP_NET and not q.flags & _lib.FLAG_NO_CLI]
_SIGNAL = {"probe": 0, "mse": 1, "xent": 2}


class _Net:
    """The parsed network options of one call: p (the struct), x (inputs
    from `input`, d x m column-major, or None)."""

    def __init__(self, p, x, input_name):
        self.p, self.x, self.input_name = p, x, input_name

    def x_ptr(self):
        return self.x.ctypes.data_as(_DBL) if self.x is not None else None


def _unknown(cmd, kw, allowed):
    for k in kw:
        if k not in allowed:
            raise TypeError("bafu.%s() got an unexpected keyword argument %r (options: %s)"
                            % (cmd, k, ", ".join(sorted(allowed))))


def _read_inputs(value):
    """(x d x m column-major, d, m, name) from a path or an (m, d) array."""
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        import os
        path = os.fsencode(value)
        ptr, d, m = _DBL(), c_size_t(), c_size_t()
        st = lib.bafu_read_inputs(path, byref(ptr), byref(d), byref(m))
        if st:
            raise fail(st, "input")
        try:
            x = np.ctypeslib.as_array(ptr, shape=(d.value * m.value,)).copy()
        finally:
            lib.free(ptr)
        return x, d.value, m.value, os.fsdecode(path)
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ParameterError("input: expected a non-empty 2-d array of finite numbers (one sample per row)")
    m, d = a.shape
    return np.ascontiguousarray(a).reshape(-1).copy(), d, m, "(array of %d x %d)" % (m, d)


def _net(cmd, kw):
    """cli_net_finish: the struct from the network options in kw (popped)."""
    p = _lib.net_params()
    given = {k for k in kw if k in NET_OPTIONS}
    for k in NET_OPTIONS:
        if k in kw:
            _lib.set_param(p, k, kw.pop(k))
    probe, loss = kw.pop("probe", False), kw.pop("loss", None)
    preset, inp = kw.pop("preset", None), kw.pop("input", None)
    if probe and loss is not None:
        raise ParameterError("probe and loss: choose one backward signal")
    if loss is not None and loss not in ("mse", "xent"):
        raise ParameterError("loss: must be one of mse, xent, got %r" % (loss,))
    p.signal = _SIGNAL[loss or "probe"]
    if "outputs" in given and loss is None:
        raise ParameterError("outputs: only meaningful with loss")
    if loss == "xent" and "outputs" not in given:
        p.outputs = 10
    x, name = None, None
    if inp is not None:
        x, d, m, name = _read_inputs(inp)
        if "input_dim" in given and p.input_dim != d:
            raise ParameterError("input_dim: %d, but '%s' has %d columns" % (p.input_dim, name, d))
        if "batch" in given and p.batch != m:
            raise ParameterError("batch: %d, but '%s' has %d rows" % (p.batch, name, m))
        p.input_dim, p.batch = d, m
        if not np.any(x != 0):
            raise ParameterError("input: every sample in '%s' is zero (the features and gradients vanish)" % name)
        if "inputs" in given:
            raise ParameterError("inputs and input: choose drawn or given inputs")
    if preset is not None:
        if preset not in _PRESETS:
            raise ParameterError("preset: must be one of %s, got %r" % (", ".join(_PRESETS), preset))
        for k in ("lr_input", "lr_hidden", "lr_output", "sigma2_input", "sigma2_output", "lr_bias", "lr_bias_input",
                  "lr_bias_output"):
            if k in given:
                raise ParameterError("%s: set by preset = %s (drop one of them)" % (k, preset))
        check(lib.bafu_preset_apply(byref(p), _PRESETS.index(preset)))
    for k in ("lr_bias", "lr_bias_input", "lr_bias_output"):
        if k in given and not p.bias_var > 0:
            raise ParameterError("%s: only meaningful with bias_var > 0" % k)
    check(lib.bafu_net_params_check(byref(p)))
    return _Net(p, x, name)


def _refuse_sampling(cmd, net):
    if net.p.conditional or net.p.regenerate:
        raise ParameterError("%s: a Monte Carlo option (bafu.mc); %s draws no weights"
                             % ("conditional" if net.p.conditional else "regenerate", cmd))


def describe(p=None, **kw):
    """The description line of a network ("arch=mlp width=512 ..."), from
    the network options (or a NetParams)."""
    if p is None:
        p = _net("describe", dict(kw)).p
    buf = ctypes.create_string_buffer(1024)
    lib.bafu_net_params_describe(byref(p), buf, len(buf))
    return buf.value.decode()


def _layout(p):
    lay = _Layout()
    check(lib.bafu_layout_build(byref(p), lay))
    return lay


def _first_trained(p):
    """cli_first_trained: the label of the first layer with a trained parameter."""
    lay = _layout(p)
    j = lib.bafu_layout_first_trained(lay)
    J = lib.bafu_kernel_count_layers(byref(p))
    return lib.bafu_layout_entry(lay, j, None, None) if j < J else sys.maxsize


def _call(cmd, kw):
    args = ", ".join("%s=%r" % (k, v) for k, v in kw.items())
    return "bafu.%s(%s)" % (cmd, args)


def _provenance(cmd, kw):
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ["generator: bafu %s (python, %s)" % (version(), _lib.library_path), "command: " + _call(cmd, kw),
            "date: " + date]


def _table(columns, rows, lines, formats):
    """A Table from column names with dtypes, a list of row tuples, the '#'
    lines and the column formats."""
    arr = np.array([tuple(r) for r in rows], dtype=columns) if rows else np.zeros(0, dtype=columns)
    return Table(arr, parse_meta(lines), dict(zip([c[0] for c in columns], formats)))


def _finite(name, v):
    if not math.isfinite(v):
        raise BafuError("%s" % name, "ENUMERIC")


# ----------------------------------------------------------------------- mc

_MC_COLUMNS = ["cos_theta", "feature_speed", "backward_norm", "loss_decay", "bafu", "contribution", "f_rms",
               "feature_speed_rms", "step_change", "step_cos_theta", "step_rel_dev", "sensitivity"]


def mc(**kw):
    """`bafu mc`: finite-width Monte Carlo of the per-layer measurements.
    Options: the network options (arch, width, depth, ..., preset, probe,
    loss, input: a path or an (m, d) array), step, seeds [8], seed [1],
    threads [1]. Returns a Table with the columns of `bafu mc` (means, and
    each *_se, identity_residual the maximum over draws)."""
    call = dict(kw)
    _unknown("mc", kw, set(NET_OPTIONS) | {"probe", "loss", "preset", "input", "step", "seeds", "seed", "threads",
                                         "quiet"})
    kw.pop("quiet", None)
    seeds, seed, threads = kw.pop("seeds", 8), kw.pop("seed", 1), kw.pop("threads", 1)
    step = kw.pop("step", None)
    net = _net("mc", kw)
    if step is not None:
        _lib.set_param(net.p, "step", step)
    for name, v, lo in (("seeds", seeds, 1), ("threads", threads, 1), ("seed", seed, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo or v >= 2 ** 64:
            raise ParameterError("%s: must be %s, got %r" % (name, "a positive integer" if lo else
                                                             "an integer >= 0", v))
    if threads > 1000000:
        raise ParameterError("threads: '%d' is too large" % threads)
    if seeds < 2:
        raise ParameterError("seeds: need at least 2 draws for a standard error")
    p = net.p
    res = McResult()
    check(lib.bafu_mc_run(byref(p), seeds, seed, net.x_ptr(), threads, byref(res)))
    try:
        J, Q = res.J, Q_COUNT
        mean = np.ctypeslib.as_array(res.mean, shape=(J, Q)).copy()
        se = np.ctypeslib.as_array(res.se, shape=(J, Q)).copy()
        mx = np.ctypeslib.as_array(res.max, shape=(J, Q)).copy()
        labels = [res.labels[j] for j in range(J)]
        excluded, note, kept = res.excluded, res.note.decode(), res.seeds
    finally:
        lib.bafu_mc_result_free(byref(res))
    decay = QUANTITY["loss_decay"]
    first = 0
    while first < J and mx[first, decay] == 0:
        first += 1
    if first == J:
        raise ParameterError("lr_input/lr_hidden/branch_scale: no layer has a trained parameter")
    for j in range(first, J):
        for c in range(Q):
            if not (math.isfinite(mean[j, c]) and math.isfinite(se[j, c])):
                raise BafuError("%s is not finite at layer %d" % (lib.bafu_quantity_name(c).decode(), labels[j]),
                                "ENUMERIC")
    lines = ["bafu mc: finite-width Monte Carlo, per-layer measurements (theory/engine.md)"]
    lines += _provenance("mc", call)
    lines.append("seed: %d  seeds: %d  threads: %d  step: %s" % (seed, seeds, threads, "%g" % p.step))
    lines.append("network: " + describe(p))
    if net.input_name:
        lines.append("inputs: " + net.input_name)
    lines += ["columns: mean over draws; <name>_se is the standard error of the mean (sd/sqrt(seeds));",
              "  identity_residual is the maximum over draws of |<-b_l,df_l> - D_l| / D_l;",
              "  sensitivity = |df_l|_rms / D_top: feature speed per unit first-order loss decrease of the step."]
    if first > 0:
        lines.append("layers up to %d are left out: no trained parameter at or below them (D_l = 0, angle undefined)"
                     % labels[first - 1])
    if excluded:
        lines.append("degenerate draws: %s; means and standard errors are over the other %d (theory/engine.md 3.5)"
                     % (note, kept))
    cols, fmts = [("layer", np.int64)], ["%d"]
    for name in _MC_COLUMNS:
        cols += [(name, np.float64), (name + "_se", np.float64)]
        fmts += ["%.10g", "%.4g"]
        if name == "bafu":
            cols.append(("identity_residual", np.float64))
            fmts.append("%.3g")
    idres = QUANTITY["identity_residual"]
    rows = []
    for j in range(first, J):
        r = [labels[j]]
        for name in _MC_COLUMNS:
            q = QUANTITY[name]
            r += [mean[j, q], se[j, q]]
            if name == "bafu":
                r.append(mx[j, idres])
        rows.append(r)
    t = _table(cols, rows, lines, fmts)
    t.meta["excluded"] = excluded
    return t


# ------------------------------------------------------------------- theory

def _sweep(text):
    """parse_sweep of cmd_theory.c: LO:HI:STEP -> (lo, step, count)."""
    parts = text.split(":") if isinstance(text, str) else None
    v = []
    for s in parts or []:
        try:
            f = float(s)
        except ValueError:
            f = math.nan
        v.append(f)
    ok = len(v) == 3 and all(math.isfinite(f) for f in v) and v[0] >= 0 and v[1] >= v[0] and v[2] > 0
    n = math.floor((v[1] - v[0]) / v[2] * (1 + 1e-12)) + 1 if ok else 0
    if not ok or not n <= 1e6:
        raise ParameterError("sweep_branch: expected LO:HI:STEP with 0 <= LO <= HI, STEP > 0 and at most 1e6 points, "
                             "got %r" % (text,))
    return v[0], v[2], int(n)


def theory(**kw):
    """`bafu theory`: the infinite-width prediction. Options: the network
    options, and limit (ResNet continuum limit: columns t cos_theta q mu r),
    points [100], sweep_branch "LO:HI:STEP" (with limit: columns sqrtL_beta
    cos_theta), presets (the table of bafu.presets). With batch > 1 and
    loss="mse": the output-layer angle from the NTK. Returns a Table."""
    call = dict(kw)
    _unknown("theory", kw, set(NET_OPTIONS) | {"probe", "loss", "preset", "input", "limit", "presets", "points",
                                             "sweep_branch", "quiet"})
    kw.pop("quiet", None)
    if kw.pop("presets", False):
        return _presets("theory", kw, call)
    limit, points, sweep = kw.pop("limit", False), kw.pop("points", 100), kw.pop("sweep_branch", None)
    if not isinstance(points, int) or isinstance(points, bool) or points < 1:
        raise ParameterError("points: must be a positive integer, got %r" % (points,))
    net = _net("theory", kw)
    p = net.p
    _refuse_sampling("theory", net)
    if p.signal == _SIGNAL["xent"]:
        raise ParameterError("loss = xent: the theory covers the probe and mse signals")
    if p.batch != 1 and (p.signal != _SIGNAL["mse"] or limit):
        raise ParameterError("batch: the moment theory is for one input; for a batch, use loss = mse (output-layer "
                             "angle from the NTK) or bafu.kernel")
    if p.batch != 1 and net.x is not None:
        raise ParameterError("input: the batch output angle assumes N(0, I) inputs (orthogonal in the limit); "
                             "drop input")
    if sweep is not None and not limit:
        raise ParameterError("sweep_branch: only with limit")
    lay = _layout(p)
    if limit and not lib.bafu_layout_has_blocks(lay):
        raise ParameterError("limit: only for arch = resnet (an MLP has no non-trivial limit; see the regime line of "
                             "bafu.theory)")
    if limit and p.signal == _SIGNAL["mse"]:
        raise ParameterError("limit: uses the probe signal (drop loss)")
    if sweep is not None:
        lo, step, count = _sweep(sweep)
    desc = describe(p)
    prov = _provenance("theory", call)
    if p.batch > 1:
        mean, se = c_double(), c_double()
        check(lib.bafu_output_angle(byref(p), 20000, 1, byref(mean), byref(se)))
        lines = ["bafu theory, batch: output-layer angle from the limiting NTK and the residual (theory/kernel.md)"]
        lines += prov + ["network: " + desc,
                         "cos_theta = E <r, Theta r>/(|r| |Theta r|) over r = y - t, y ~ N(0, Sigma_out), t ~ N(0, I),",
                         "  estimated with 20000 draws of r (cos_theta_se); compare with the last row of bafu mc "
                         "--loss mse"]
        return _table([("layer", np.int64), ("cos_theta", np.float64), ("cos_theta_se", np.float64)],
                      [(lib.bafu_layout_last_label(lay), mean.value, se.value)], lines, ["%d", "%.10g", "%.3g"])
    if not limit:
        J = lib.bafu_moments_nlayers(byref(p))
        check(lib.bafu_memory_check(float(J * ctypes.sizeof(MomentsLayer)), b"depth: the per-layer results"))
        o = (MomentsLayer * J)()
        x2 = lib.bafu_moments_input_x2(net.x.ctypes.data_as(_DBL), p.input_dim) if net.x is not None else 0.0
        check(lib.bafu_moments_run(byref(p), x2, o))
        regime = ctypes.create_string_buffer(512)
        check(lib.bafu_moments_regime(byref(p), regime, len(regime)))
        first = 0
        while first < J and o[first].m1 == 0:
            first += 1
        if first == J:
            raise ParameterError("lr_input/lr_hidden/branch_scale: no layer has a trained parameter")
        lines = ["bafu theory: infinite-width BFK moment recursion, one input (theory/moments.md)"]
        if first > 0:
            lines.append("layers up to %d are left out: no trained parameter at or below them (K_l = 0)"
                         % o[first - 1].label)
        lines += prov + [
            "network: " + desc,
            "input: %s" % (net.input_name if net.x is not None else "|x|^2 = d (expectation for N(0, I_d))"),
            "regime: " + regime.value.decode(),
            "columns: cos_theta = predicted angle for the network's own backward vector (MLP: m1/sqrt(m2);",
            "  ResNet blocks: with the residual stream's mask correlations, theory/moments.md 2.5);",
            "  cos_spectral = m1/sqrt(m2), the angle for a direction independent of K_l;",
            "  m1, m2 = tr(K_l)/n, tr(K_l^2)/n in the units of bafu mc;",
            "  q = variance of f_l entries; c = the layer's own term c_l; p1, p2 = phi(A^T A), phi((A^T A)^2);",
            "  back = E|b_l|^2 / E|b_top|^2; with the probe (E|b_top|^2 = 1) backward_norm = sqrt(back),",
            "  loss_decay = m1 back and feature_speed = sqrt(m2 back) predict the bafu mc columns.",
            "  sensitivity = |df_l|_rms / D_top, predicted for the probe or mse signal (theory/presets.md 2),",
            "  compares with the bafu mc column of the same name."]
        names = ["cos_theta", "m1", "m2", "cos_spectral", "q", "c", "p1", "p2", "back", "backward_norm", "loss_decay",
                 "feature_speed", "sensitivity"]
        rows = []
        for j in range(first, J):
            L = o[j]
            rows.append((L.label, L.cos_theta, L.m1, L.m2, L.cos_spectral, L.q, L.c, L.p1, L.p2, L.back,
                         L.backward_norm, L.loss_decay, L.feature_speed, L.sensitivity))
        return _table([("layer", np.int64)] + [(n, np.float64) for n in names], rows, lines,
                      ["%d"] + ["%.12g"] * len(names))
    if sweep is None:
        check(lib.bafu_memory_check((points + 1.0) * ctypes.sizeof(ContinuumPoint), b"points: the grid"))
        pts = (ContinuumPoint * (points + 1))()
        check(lib.bafu_continuum_run(byref(p), p.branch_scale, _LIMIT_RTOL, points, pts))
        lines = ["bafu theory --limit: ResNet continuum limit, beta = b/sqrt(L), L -> inf (theory/moments.md 3)"]
        lines += prov + ["network: " + desc,
                         "b = sqrt(L) beta = %g; continuum equations by spectral quadrature in sqrt(t) "
                         "(theory/moments.md 3.3); estimated error of cos_theta %.2g" % (p.branch_scale, pts[0].error)]
        closed = lib.bafu_continuum_cos_closed(byref(p), p.branch_scale, 1.0)
        if math.isfinite(closed):
            lines.append("closed form at t = 1: %.12g" % closed)
        lines.append("columns: t = l/L; cos_theta; q = forward variance; mu = m1/n; r = (m2 - m1^2)/n^2")
        rows = [(q.t, q.cos_theta, q.q, q.mu, q.r) for q in pts]
        return _table([(n, np.float64) for n in ("t", "cos_theta", "q", "mu", "r")], rows, lines,
                      ["%.10g"] + ["%.12g"] * 4)
    vals, why, err = [], [], 0.0
    pts = (ContinuumPoint * 2)()
    for k in range(count):
        b = lo + k * step
        if lib.bafu_continuum_run(byref(p), b, _LIMIT_RTOL, 1, pts):
            vals.append(None)
            why.append(_lib.last_error())
        else:
            vals.append(pts[1].cos_theta)
            why.append(None)
            err = max(err, pts[1].error) if not math.isnan(pts[1].error) else err
    failed = sum(v is None for v in vals)
    if failed == count:
        raise BafuError("sweep_branch: every value failed; the first: %s" % why[0], "ENUMERIC")
    lines = ["bafu theory --limit --sweep-branch: L -> inf output angle against sqrt(L) beta (theory/moments.md 3)"]
    lines += prov + ["network: " + desc,
                     "estimated discretisation error of cos_theta: %.2g (max over the sweep)" % err]
    if failed:
        lines.append("failed values: %d of %d (each marked by a '# sqrtL_beta = B failed' line in its place)"
                     % (failed, count))
    rows = []
    for k, v in enumerate(vals):
        if v is None:
            lines.append("sqrtL_beta = %.10g failed: %s" % (lo + k * step, why[k]))
        else:
            rows.append((lo + k * step, v))
    t = _table([("sqrtL_beta", np.float64), ("cos_theta", np.float64)], rows, lines, ["%.10g", "%.12g"])
    t.meta["failed"] = failed
    return t


# ------------------------------------------------------------------ presets

def presets(**kw):
    """`bafu theory --presets`: the scaling presets sp, ntk, mup, fsc for the
    network options given (width, depth, input_dim, arch, branch scaling,
    bias_var), for dense and one-hot inputs. Returns a Table with columns
    preset inputs group init_var_formula lr_formula init_var lr (and
    lr_bias_formula lr_bias with bias_var > 0)."""
    call = dict(kw)
    _unknown("presets", kw, set(NET_OPTIONS) | {"probe", "loss", "preset", "input", "quiet"})
    kw.pop("quiet", None)
    return _presets("presets", kw, call)


def _presets(cmd, kw, call):
    net = _net(cmd, kw)
    _refuse_sampling("theory", net)
    p0 = net.p
    lines = ["bafu theory --presets: hyper-parameter scalings from the feature speed formula (theory/presets.md)"]
    lines += _provenance(cmd, call) + [
        "network: " + describe(p0),
        "n = width, L = depth, d = input dim, s = sigma_w2, beta = branch scale B L^-A; init_var = variance",
        "of one weight entry; lr multiplies the global step (bafu mc --step, bafu train --lr)"]
    blocks_read_x = lib.bafu_layout_activates(_layout(p0), 0) != 0
    if blocks_read_x:
        lines.append("onehot rows left out: a ResNet without --embed cannot read one-hot inputs")
    biased = p0.bias_var > 0
    if biased:
        lines.append("lr_bias: learning rate of the group's biases, V = bias_var (theory/presets.md 6)")
    cols = [("preset", "U8"), ("inputs", "U8"), ("group", "U8"), ("init_var_formula", "U32"), ("lr_formula", "U32"),
            ("init_var", np.float64), ("lr", np.float64)]
    fmts = ["%s"] * 5 + ["%.10g"] * 2
    if biased:
        cols += [("lr_bias_formula", "U32"), ("lr_bias", np.float64)]
        fmts += ["%s", "%.10g"]
    rows = []
    for kind in (0, 1):
        if kind and blocks_read_x:
            continue
        p = _lib.NetParams.from_buffer_copy(p0)
        p.inputs = kind
        for k in range(len(_PRESETS)):
            r = (PresetRow * 3)()
            check(lib.bafu_preset_rows(byref(p), k, r), "presets")
            for g in range(3):
                row = [_PRESETS[k], "onehot" if kind else "dense", r[g].group.decode(), r[g].var_formula.decode(),
                       r[g].lr_formula.decode(), r[g].var, r[g].lr]
                if biased:
                    row += [r[g].lr_bias_formula.decode(), r[g].lr_bias]
                rows.append(row)
    return _table(cols, rows, lines, fmts)


# ------------------------------------------------------------------- kernel

def kernel(**kw):
    """`bafu kernel`: the infinite-width NNGP / NTK / backward-factor
    recursions. Options: the network options, corr [0.5] (two inputs), or
    input (a batch: a path or an (m, d) array), every [1]. Returns a Table
    with the columns of `bafu kernel` in the mode chosen."""
    call = dict(kw)
    _unknown("kernel", kw, set(NET_OPTIONS) | {"probe", "loss", "preset", "input", "corr", "every", "quiet"})
    kw.pop("quiet", None)
    corr_set = "corr" in kw
    corr, every = kw.pop("corr", 0.5), kw.pop("every", 1)
    if kw.get("input") is None and "batch" in kw:
        raise ParameterError("batch: the two-input mode uses exactly two inputs (give a batch with input)")
    if kw.get("input") is not None and corr_set:
        raise ParameterError("corr: only in the two-input mode (not with input)")
    if isinstance(corr, bool) or not isinstance(corr, (int, float)) or not -1 <= corr <= 1:
        raise ParameterError("corr: must be in [-1, 1], got %r" % (corr,))
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ParameterError("every: must be a positive integer, got %r" % (every,))
    net = _net("kernel", kw)
    p = net.p
    _refuse_sampling("kernel", net)
    J = lib.bafu_kernel_count_layers(byref(p))

    def want(j, label):
        return j == 0 or j + 1 == J or (label >= 0 and label % every == 0)

    lines = ["bafu kernel: infinite-width NNGP / NTK / backward-factor recursions (theory/kernel.md)"]
    lines += _provenance("kernel", call) + [
        "network: " + describe(p),
        "layers: %d; printed: labels divisible by %d, plus the first and the last" % (J, every),
        "units: Theta is the BFK per coordinate in the units of bafu mc (tr(K_l)/n for one input);",
        "  sigma_prime = s E[phi'(u)phi'(v)] of the activation the layer reads (0 for the layer reading x);",
        "  own = the layer's own term lr_l s_l^2 E[g^T g]; bwd = P_l, with E<b_l(a),b_l(b)> = P_l(a,b) "
        "E<b_top(a),b_top(b)>",
        "  (probe: E D_l = sum_a ntk(a,a) bwd(a,a), E C_l = sum_a own(a,a) bwd(a,a), E|b_l|^2 = sum_a bwd(a,a))."]
    if lib.bafu_layout_activates(_layout(p), 0):
        lines.append("assumption: no embedding, so the coordinates of x enter the blocks directly; they are treated "
                     "as Gaussian with covariance X^T X/d (exact for N(0,I) inputs)")
    if net.x is not None:
        k = c_void_p()
        check(lib.bafu_kernel_alloc(byref(p), byref(k)))
        try:
            check(lib.bafu_kernel_run(k, net.x_ptr()))
            m = lib.bafu_kernel_batch(k)
            rows = []
            for j in range(J):
                mats = [np.ctypeslib.as_array(getattr(lib, "bafu_kernel_" + n)(k, j), shape=(m * m,)).copy()
                        for n in ("sigma", "sprime", "theta", "bwd", "own")]
                label = lib.bafu_kernel_label(k, j)
                if not all(np.all(np.isfinite(M)) for M in mats):
                    raise BafuError("depth/sigma_w2: non-finite kernel value at layer %d" % label, "ENUMERIC")
                if not want(j, label):
                    continue
                for b in range(m):
                    for a in range(b + 1):
                        i = a + b * m
                        rows.append([label, a + 1, b + 1] + [float(M[i]) for M in mats])
        finally:
            lib.bafu_kernel_free(k)
        lines += ["mode: batch of %d inputs from %s (input_dim %d)" % (m, net.input_name, p.input_dim),
                  "columns: a, b = sample indices (1-based rows of the input file), a <= b; sigma = Sigma_l(a,b);",
                  "  sigma_prime = Sigma'_l(a,b); ntk = Theta_l(a,b); bwd = P_l(a,b); own = Gamma_l(a,b)"]
        names = ["sigma", "sigma_prime", "ntk", "bwd", "own"]
        return _table([("layer", np.int64), ("a", np.int64), ("b", np.int64)] + [(n, np.float64) for n in names],
                      rows, lines, ["%d"] * 3 + ["%.15g"] * 5)
    rows, bad = [], []

    def pair(ptr, ctx):
        L = ptr.contents
        if not want(L.index, L.label):
            return 0
        v = [L.q, L.corr, L.ntk, L.one_minus_corr, L.angle, L.ntk_diag, L.ntk_corr, L.sprime_diag, L.sprime,
             L.own_diag, L.own, L.bwd_diag, L.bwd]
        if not all(math.isfinite(x) for x in v):
            bad.append(L.label)
            return 1
        rows.append([L.label] + v)
        return 0

    check(lib.bafu_kernel_two_inputs(byref(p), float(corr), _PAIR_FN(pair), None))
    if bad:
        raise BafuError("depth/sigma_w2: non-finite kernel value at layer %d" % bad[0], "ENUMERIC")
    lines += ["mode: two inputs, |x_a|^2/d = |x_b|^2/d = 1, x_a.x_b/d = corr = %.17g" % corr,
              "columns: q = Sigma_l(a,a); corr = Sigma_l(a,b)/q; ntk = Theta_l(a,b);",
              "  one_minus_corr = 1 - corr and angle = acos(corr), accurate to full relative precision for relu, "
              "linear, erf;",
              "  ntk_diag = Theta_l(a,a); ntk_corr = ntk/ntk_diag (0 if ntk_diag = 0); sigma_prime_diag, "
              "sigma_prime = Sigma'_l(a,a), (a,b);",
              "  own_diag, own = Gamma_l(a,a), (a,b); bwd_diag, bwd = P_l(a,a), (a,b)"]
    names = ["q", "corr", "ntk", "one_minus_corr", "angle", "ntk_diag", "ntk_corr", "sigma_prime_diag", "sigma_prime",
             "own_diag", "own", "bwd_diag", "bwd"]
    return _table([("layer", np.int64)] + [(n, np.float64) for n in names], rows, lines, ["%d"] + ["%.15g"] * 13)


# ----------------------------------------------------------------- spectrum

def spectrum(**kw):
    """`bafu spectrum`: spectra of the BFK K_l or of J J^T, one input.
    Options: the network options, mode "dense" | "kpm" | "limit", object
    "bfk" | "jacobian", layer (a label [the last]), seed [1], draw [0],
    moments (one row per layer: layer m1 m2 cos_theta), bins, log_bins,
    kpm_moments [256], kpm_vectors [16]. Returns, as the command writes:
    dense: Tables [index eigenvalue], [x density width]; limit: Tables
    [x density], [x mass] (atoms); kpm and moments: a Table."""
    call = dict(kw)
    _unknown("spectrum", kw, set(NET_OPTIONS) | {"probe", "loss", "preset", "input", "mode", "object", "layer",
                                               "seed", "draw", "moments", "bins", "log_bins", "kpm_moments",
                                               "kpm_vectors", "quiet"})
    kw.pop("quiet", None)
    modes, objects = ["dense", "kpm", "limit"], ["bfk", "jacobian"]
    mode_name, obj_name = kw.pop("mode", "dense"), kw.pop("object", "bfk")
    if mode_name not in modes:
        raise ParameterError("mode: must be one of dense, kpm, limit, got %r" % (mode_name,))
    if obj_name not in objects:
        raise ParameterError("object: must be one of bfk, jacobian, got %r" % (obj_name,))
    mode, obj = modes.index(mode_name), objects.index(obj_name)
    layer_set, seed_set = "layer" in kw, "seed" in kw or "draw" in kw
    kpm_set = "kpm_moments" in kw or "kpm_vectors" in kw
    layer_label, seed, draw = kw.pop("layer", 0), kw.pop("seed", 1), kw.pop("draw", 0)
    moments, bins, log_bins = bool(kw.pop("moments", False)), kw.pop("bins", 0), bool(kw.pop("log_bins", False))
    kp = lib.bafu_kpm_params_default()
    fp = lib.bafu_free_params_default()
    kp.moments, kp.vectors = kw.pop("kpm_moments", kp.moments), kw.pop("kpm_vectors", kp.vectors)
    for name, v, lo in (("layer", layer_label, 0), ("seed", seed, 0), ("draw", draw, 0), ("bins", bins, 0),
                        ("kpm_moments", kp.moments, 1), ("kpm_vectors", kp.vectors, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo or v >= 2 ** 64:
            raise ParameterError("%s: must be %s, got %r" % (name, "a positive integer" if lo else "an integer >= 0",
                                                             v))
    net = _net("spectrum", kw)
    p = net.p
    p.step = 0
    if p.batch != 1:
        raise ParameterError("batch: spectra are for one input (batch 1)")
    if p.conditional:
        raise ParameterError("conditional: spectra need the weight matrices themselves (use it with bafu.mc)")
    if mode == 2 and seed_set:
        raise ParameterError("seed/draw: only for mode dense or kpm (the limit is deterministic)")
    if mode == 2 and p.signal == _SIGNAL["mse"]:
        raise ParameterError("loss: the limit uses the probe signal (drop loss)")
    lay = _layout(p)
    if mode == 2 and lib.bafu_layout_has_blocks(lay) and _lib.get_param(p, "act") != "linear":
        raise ParameterError("act: the limit of a nonlinear ResNet is not a free convolution (correlated masks, "
                             "theory/moments.md 2.4); use act = linear or mode dense/kpm")
    if mode == 2 and _lib.get_param(p, "init") == "orthogonal":
        raise ParameterError("init: the limit is implemented for Gaussian weights only")
    if mode != 1 and kpm_set:
        raise ParameterError("kpm_moments/kpm_vectors: only with mode kpm")
    if not 4 <= kp.moments <= 100000:
        raise ParameterError("kpm_moments: must be in [4, 100000]")
    if kp.vectors > 4096:
        raise ParameterError("kpm_vectors: must be at most 4096")
    if mode == 2 and bins and not 50 <= bins <= 1000000:
        raise ParameterError("bins: the limit grid must be in [50, 1000000]")
    if mode != 2 and bins > 1000000:
        raise ParameterError("bins: at most 1000000 %s" % ("histogram bins" if mode == 0 else "kpm points"))
    if log_bins and (mode != 0 or moments):
        raise ParameterError("log_bins: only for the dense histogram (mode dense without moments)")
    if mode == 0 and not moments and bins == 0:
        bins = 50
    if mode == 1 and bins:
        if bins < kp.moments:
            raise ParameterError("bins: kpm needs at least kpm_moments (%d) points" % kp.moments)
        kp.points = bins
    if mode == 2 and bins:
        fp.grid = bins
    kp.seed = seed
    top, bottom = lib.bafu_layout_last_label(lay), lib.bafu_layout_first_label(lay)
    sel_label = top if moments or not layer_set else layer_label
    valid = moments or not layer_set or bottom <= layer_label <= top
    if valid and obj == 0 and _first_trained(p) > sel_label:
        raise ParameterError("lr_input/lr_hidden/branch_scale: no trained parameter at or below layer %d (K_l = 0)"
                             % sel_label)
    desc = describe(p)
    prov = _provenance("spectrum", call)
    what = "the BFK K_l" if obj == 0 else "J J^T"
    handles = {}
    try:
        if mode != 2:
            check(lib.bafu_memory_check(float(lib.bafu_net_memory_bytes(byref(p))),
                                        b"width/depth: the network's weights"))
            nw = c_void_p()
            check(lib.bafu_net_alloc(byref(p), byref(nw)))
            handles["net"] = nw
            if net.x is not None:
                lib.bafu_net_set_inputs(nw, net.x_ptr())
            J = lib.bafu_net_nlayers(nw)
            labels = [lib.bafu_net_layer_label(nw, j) for j in range(J)]
        else:
            J = lib.bafu_moments_nlayers(byref(p))
            check(lib.bafu_memory_check(float(J * (ctypes.sizeof(MomentsLayer) + 4)), b"depth: the per-layer moments"))
            o = (MomentsLayer * J)()
            check(lib.bafu_moments_run(byref(p), 0.0, o))
            labels = [o[j].label for j in range(J)]
        if not layer_set:
            jsel = J - 1
        elif layer_label in labels:
            jsel = labels.index(layer_label)
        else:
            raise ParameterError("layer: no layer %d (layers are %d..%d)" % (layer_label, labels[0], labels[-1]))
        if moments:
            jsel = J - 1
        mom = (SpecMoments * J)()
        if mode in (0, 1):
            check(lib.bafu_net_draw(nw, seed, draw))
            check(lib.bafu_net_run(nw))
        nl = p.width if mode == 2 else lib.bafu_net_layer_fan_out(nw, jsel)
        if mode == 0:
            return _dense(p, nw, obj, jsel, mom, nl, moments, bins, log_bins, seed, draw, what, desc, prov, handles)
        if mode == 1:
            if moments:
                raise ParameterError("moments: use mode dense or limit")
            kw_ = c_void_p()
            check(lib.bafu_spec_kpm_alloc(nw, byref(kp), byref(kw_)))
            handles["kpm"] = kw_
            check(lib.bafu_spec_kpm_prepare(kw_, nw, obj, jsel))
            P = kp.points if kp.points else 2 * kp.moments
            xs, rho = np.zeros(P), np.zeros(P)
            lo, hi, m1, m2 = c_double(), c_double(), c_double(), c_double()
            check(lib.bafu_spec_kpm_run(kw_, nw, xs.ctypes.data_as(_DBL), rho.ctypes.data_as(_DBL), byref(lo),
                                        byref(hi)))
            if not np.all(np.isfinite(rho)):
                raise BafuError("non-finite KPM density", "ENUMERIC")
            lib.bafu_spec_kpm_moments(kw_, byref(m1), byref(m2))
            if not all(math.isfinite(v.value) for v in (m1, m2, lo, hi)):
                raise BafuError("the KPM estimates overflowed (m2 = %g): reduce the learning rates, depth or "
                                "sigma_w2" % m2.value, "ENUMERIC")
            lines = ["bafu spectrum --mode kpm: density of %s at layer %d, kernel polynomial method "
                     "(theory/spectrum.md 3)" % (what, lib.bafu_net_layer_label(nw, jsel))]
            lines += prov + ["network: " + desc,
                             "seed: %d draw: %d; probe vectors from stream seed %d" % (seed, draw, seed),
                             "n: %d moments: %d probe vectors: %d (Rademacher) Jackson damping; interval [%.10g, %.10g]"
                             % (nl, kp.moments, kp.vectors, lo.value, hi.value),
                             "stochastic estimates: m1: %.10g m2: %.10g" % (m1.value, m2.value),
                             "columns: x = eigenvalue (Chebyshev nodes), density (integrates to 1; atoms appear as "
                             "peaks of width ~ pi (hi-lo)/(2 N))"]
            return _table([("x", np.float64), ("density", np.float64)], list(zip(xs, rho)), lines, ["%.12g"] * 2)
        fl = (FreeLayer * J)()
        fw = c_void_p()
        check(lib.bafu_free_alloc(byref(fp), byref(fw)))
        handles["free"] = fw
        check(lib.bafu_free_run(fw, byref(p), 0.0, obj, jsel, fl))
        lib.bafu_free_moments(fl, jsel + 1, mom)
        L = fl[jsel]
        lines = ["bafu spectrum --mode limit: infinite-width law of %s at layer %d, free multiplicative convolution "
                 "(theory/spectrum.md 4)" % (what, L.label)]
        lines += prov + ["network: " + desc,
                         "input: |x|^2 = d; representation: %d quantile atoms, %d grid points per layer"
                         % (fp.atoms, fp.grid)]
        if moments:
            lines.append("columns: m1 = tr(K)/n, m2 = tr(K^2)/n of the limiting law, cos_theta = m1/sqrt(m2)")
            return _moments_table(mom, jsel + 1, lines)
        lines.append("m1: %.12g m2: %.12g; density integral + atoms: %.10g; support of the density [%.10g, %.10g]"
                     % (L.m1, L.m2, L.raw[0], L.lo, L.hi))
        smin, smax = L.lo, L.hi
        atoms = []
        for a in range(L.natoms):
            lines.append("atom: x %.12g mass %.12g" % (L.atom[a].x, L.atom[a].mass))
            smin, smax = min(smin, L.atom[a].x), max(smax, L.atom[a].x)  # fmin/fmax: no NaN here
            atoms.append((L.atom[a].x, L.atom[a].mass))
        if smin > 0:
            lines.append("kantorovich: %.12g (lower bound on cos_theta for every b, from the support [%.10g, %.10g])"
                         % (lib.bafu_spec_kantorovich(smin, smax), smin, smax))
        lines.append("series 0: x density (continuous part); series 1: x mass (atoms)")
        G = lib.bafu_free_npoints(fw)
        gx = np.ctypeslib.as_array(lib.bafu_free_x(fw), shape=(G,)).copy()
        gd = np.ctypeslib.as_array(lib.bafu_free_density(fw), shape=(G,)).copy()
        gd[~np.isfinite(gd)] = 0.0
        dens = _table([("x", np.float64), ("density", np.float64)], list(zip(gx, gd)), lines, ["%.12g"] * 2)
        mass = _table([("x", np.float64), ("mass", np.float64)], atoms, [], ["%.12g"] * 2)
        return Tables([dens, mass], dens.meta)
    finally:
        lib.bafu_spec_dense_free(handles.get("dense"))
        lib.bafu_spec_kpm_free(handles.get("kpm"))
        lib.bafu_free_free(handles.get("free"))
        lib.bafu_net_free(handles.get("net"))


def _moments_table(mom, count, lines):
    rows = [(m.label, m.m1, m.m2, m.cos_theta) for m in mom[:count] if m.defined]
    return _table([("layer", np.int64), ("m1", np.float64), ("m2", np.float64), ("cos_theta", np.float64)], rows,
                  lines, ["%d"] + ["%.12g"] * 3)


def _dense(p, nw, obj, jsel, mom, nl, moments, bins, log_bins, seed, draw, what, desc, prov, handles):
    dw = c_void_p()
    check(lib.bafu_spec_dense_alloc(nw, 0, byref(dw)))
    handles["dense"] = dw
    ev = np.zeros(nl)
    check(lib.bafu_spec_dense_run(dw, nw, obj, jsel, mom, ev.ctypes.data_as(_DBL)))
    if not np.all(np.isfinite(ev)):
        raise BafuError("non-finite eigenvalue: overflow (reduce the learning rates, depth or sigma_w2)", "ENUMERIC")
    first = _first_trained(p)
    relu = _lib.get_param(p, "act") == "relu"
    for j in range(0 if moments else jsel, jsel + 1):
        if not mom[j].defined and mom[j].label >= first and obj == 0:
            raise BafuError("draw %d is degenerate at layer %d: %s (%s); try another draw"
                            % (draw, mom[j].label, "its backward vector is 0, so its angle has no value"
                               if mom[j].m1 > 0 else "its BFK is 0",
                               "a dead ReLU layer or a vanished signal" if relu else "a vanished signal"), "ENUMERIC")
    for j in range(jsel + 1):
        m = mom[j]
        if m.defined and not all(math.isfinite(v) for v in (m.m1, m.m2, m.cos_theta)):
            if not (math.isfinite(m.m1) and math.isfinite(m.m2)):
                raise BafuError("the moments of layer %d overflowed (m2 = %g): reduce the learning rates, depth or "
                                "sigma_w2" % (m.label, m.m2), "ENUMERIC")
            raise BafuError("the angle of layer %d has no value in draw %d (its backward vector underflows: raise "
                            "sigma_w2 or the learning rates)" % (m.label, draw), "ENUMERIC")
    mj = mom[jsel]
    lines = ["bafu spectrum --mode dense: eigenvalues of %s at layer %d (theory/spectrum.md 2)" % (what, mj.label)]
    lines += prov + ["network: " + desc, "seed: %d draw: %d (the draw of bafu mc --seed %d)" % (seed, draw, seed)]
    if moments:
        lines.append("columns: m1 = tr(M)/n, m2 = tr(M^2)/n, cos_theta = <b,Mb>/(|b||Mb|) with the draw's b_l")
        return _moments_table(mom, jsel + 1, lines)
    e0v, e1v = float(ev[0]), float(ev[nl - 1])
    cond = e1v / e0v if e0v > 0 else math.inf
    lines.append("n: %d m1: %.12g m2: %.12g cos_theta: %.12g (own backward vector) m1/sqrt(m2): %.12g"
                 % (nl, mj.m1, mj.m2, mj.cos_theta, mj.cos_spectral))
    if math.isfinite(cond):
        lines.append("lambda_min: %.12g lambda_max: %.12g condition: %.12g" % (e0v, e1v, cond))
        lines.append("kantorovich: %.12g (lower bound on cos_theta for every backward vector)"
                     % lib.bafu_spec_kantorovich(e0v, e1v))
    else:
        lines.append("lambda_min: %.12g lambda_max: %.12g condition: infinite (lambda_min <= 0)" % (e0v, e1v))
    clamped = lib.bafu_spec_dense_clamped(dw)
    if clamped:
        lines.append("%d eigenvalues within rounding of 0 (down to -16 n eps lambda_max) were negative and are set to "
                     "0 (theory/spectrum.md 2)" % clamped)
    hx, hd, hw, zeros = np.zeros(bins), np.zeros(bins), np.zeros(bins), c_size_t()
    check(lib.bafu_spec_histogram(ev.ctypes.data_as(_DBL), nl, bins, int(log_bins), hx.ctypes.data_as(_DBL),
                                  hd.ctypes.data_as(_DBL), hw.ctypes.data_as(_DBL), byref(zeros)))
    zeros = zeros.value
    if zeros:
        lines.append("atom: x 0 mass %.12g (%d zero eigenvalues; the geometric bins cover the others, so the "
                     "histogram integrates to 1 - mass)" % (zeros / nl, zeros))
    lines.append("series 0: index eigenvalue (ascending); series 1: histogram x density width (%d %s bins, density "
                 "per unit x, integrates to 1%s)" % (bins, "geometric" if log_bins else "equal",
                                                     " minus the atom at 0" if zeros else ""))
    evl = ev.tolist()
    hist = list(zip(hx.tolist(), hd.tolist(), hw.tolist()))
    eig = _table([("index", np.int64), ("eigenvalue", np.float64)], list(enumerate(evl)), lines, ["%d", "%.15g"])
    h = _table([("x", np.float64), ("density", np.float64), ("width", np.float64)], hist, [], ["%.12g"] * 3)
    return Tables([eig, h], eig.meta)
