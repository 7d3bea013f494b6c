"""Errors: a refused request raises ParameterError with the command's own
message (the executable's stderr line), in keyword words: without
"bafu CMD: ", each --option-name as option_name."""

import re

import pytest

import bafu


@pytest.mark.parametrize("kw, flag", [
    (dict(sigma_w2=-1), "--sigma-w2"),
    (dict(block_depth=65), "--block-depth"),
    (dict(branch_exponent=float("inf")), None),
    (dict(embed=True), "--embed"),
    (dict(regenerate=True, rng="gsl"), "--regenerate"),
    (dict(loss="xent", outputs=1), "--outputs"),
])
def test_library_message(kw, flag, cli):
    with pytest.raises(bafu.ParameterError) as e:
        bafu.mc(width=8, depth=2, seeds=2, **kw)
    msg = str(e.value)
    name = next(iter(kw)) if flag is None else flag[2:].replace("-", "_")
    assert name in msg
    assert e.value.status == "EINVAL"
    if flag is not None:  # the executable: the same message, in its options' words
        args = []
        for k, v in kw.items():
            args += ["--" + k.replace("_", "-")] + ([] if v is True else [str(v)])
        code, out, err = cli("mc", "--width", 8, "--depth", 2, "--seeds", 2, *args, check=False)
        assert code == 2 and out == ""
        assert in_keywords(err.strip()) == msg


def in_keywords(line):
    """The executable's message as Python words it."""
    line = re.sub(r"^bafu \w+: ", "", line)
    return re.sub(r"(?<![\w-])--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), line)


def test_range_message():
    with pytest.raises(bafu.ParameterError, match=r"^sigma_w2: must be a finite number > 0$"):
        bafu.theory(sigma_w2=0)
    with pytest.raises(bafu.ParameterError, match=r"^act: unknown value 'softplus' \(expected relu, linear"):
        bafu.theory(act="softplus")
    with pytest.raises(bafu.ParameterError, match=r"^width: expected a positive integer, got '2.5'"):
        bafu.theory(width=2.5)


def test_library_refusal_in_a_module():
    """A refusal from inside a computation (the infinite-width spectral limit), not the check."""
    with pytest.raises(bafu.ParameterError, match="block_depth: the limit covers residual branches of one layer"):
        bafu.spectrum(mode="limit", arch="resnet", depth=3, block_depth=2, act="linear", sigma_w2=1)


def test_combinations():
    with pytest.raises(bafu.ParameterError, match="probe and loss"):
        bafu.mc(probe=True, loss="mse")
    with pytest.raises(bafu.ParameterError, match="lr_input: set by preset"):
        bafu.mc(preset="mup", lr_input=2)
    with pytest.raises(bafu.ParameterError, match="seeds"):
        bafu.mc(seeds=1)
    with pytest.raises(bafu.ParameterError, match="^conditional"):
        bafu.theory(conditional=True)
    with pytest.raises(bafu.ParameterError, match="^layer: no layer 9"):
        bafu.spectrum(width=8, depth=2, layer=9)
    with pytest.raises(bafu.ParameterError, match="unknown option 'widht'"):
        bafu.mc(widht=8)
    with pytest.raises(TypeError, match="no 'out'"):
        bafu.mc(out="x.dat")


def test_input_file_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n3\n")
    with pytest.raises(bafu.ParameterError) as e:
        bafu.mc(input=str(bad), depth=2, width=4)
    assert e.value.status == "EPARSE" and str(e.value).startswith("input: ")
    with pytest.raises(bafu.BafuError) as e:
        bafu.mc(input=str(tmp_path / "missing.txt"))
    assert e.value.status == "EIO"


def test_numeric_failure_is_not_a_parameter_error():
    with pytest.raises(bafu.BafuError) as e:
        bafu.mc(width=4, depth=3, seeds=2, sigma_w2=1e-300, act="linear")
    assert e.value.status == "ENUMERIC" and not isinstance(e.value, ValueError)


def test_scratch_files_by_name():
    """Messages about an array input or a grid text name them, not their scratch files."""
    with pytest.raises(bafu.ParameterError, match=r"^input: every sample in '\(array\)' is zero"):
        bafu.mc(width=8, depth=2, seeds=2, input=[[0.0] * 8])
    with pytest.raises(bafu.ParameterError, match=r"^\(grid\):2: frob: unknown key \(bafu sweep --help lists"):
        bafu.sweep({"depth": [2, 3], "frob": 1})
    assert bafu.mc(help=True) is None  # the help is printed; there is no table
