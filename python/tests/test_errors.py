"""Errors: a bad value or combination raises ParameterError with the
library's message, which names the parameter (the executable says the same
with the option in its place)."""

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
        assert err.strip() == "bafu mc: " + in_options(msg)


def in_options(msg):
    """A library message in the executable's words (cli_error): the leading
    parameter becomes its option, "name = value" becomes "--name value"."""
    flags = {q.name: q.type == 4 for q in bafu.params()}  # 4: a flag (no value)
    lead, _, rest = msg.partition(": ")
    if lead in flags:
        lead = "--" + lead.replace("_", "-")

    def option(m):
        name, value = m.group(1), m.group(2)
        flag = "--" + name.replace("_", "-")
        return flag if flags[name] and value == "1" else flag + " " + value

    rest = re.sub(r"\b(%s) = (\S+)" % "|".join(flags), option, rest)
    return lead + ": " + rest


def test_range_message():
    with pytest.raises(bafu.ParameterError, match=r"^sigma_w2: must be a finite number > 0$"):
        bafu.theory(sigma_w2=0)
    with pytest.raises(bafu.ParameterError, match=r"^act: must be one of relu, linear"):
        bafu.theory(act="softplus")
    with pytest.raises(bafu.ParameterError, match=r"^width: must be a positive integer"):
        bafu.theory(width=2.5)


def test_library_refusal_in_a_module():
    """A refusal from inside a computation (the infinite-width spectral limit), not the check."""
    with pytest.raises(bafu.ParameterError, match="block_depth: the infinite-width limit"):
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
    with pytest.raises(TypeError, match="widht"):
        bafu.mc(widht=8)


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
