"""Activations: built-ins, user expressions, distributional normal form, back ends."""
import math

import numpy as np
import pytest
import sympy

from odesolve.spec.activations import (BUILTIN_ACTIVATIONS, X, Activation, normalize, print_code,
                                  resolve_activation)

H, D = sympy.Heaviside, sympy.DiracDelta
USER_CUBIC = "x + 0.1*x**3"
POINTS = np.array([-2.3, -1.0, -0.2, 0.3, 0.9, 1.7])


def _exec(source, name, jit=False):
    import numba

    namespace = {"math": math}
    exec(source, namespace)
    fn = namespace[name]
    return numba.njit(fn) if jit else fn


@pytest.mark.parametrize("name, expected", [
    ("linear", X),
    ("erf", sympy.erf(X / sympy.sqrt(2))),
    ("relu", X * H(X)),
    ("sign", 2 * H(X) - 1),
    ("tanh", sympy.tanh(X)),
])
def test_builtins(name, expected):
    act = resolve_activation(name)
    assert act is BUILTIN_ACTIVATIONS[name] and act.name == name
    assert sympy.simplify(act.expr - expected) == 0


def test_relu_and_sign_derivatives_are_distributions():
    relu, sign = resolve_activation("relu"), resolve_activation("sign")
    assert [relu.derivative(n) for n in range(4)] == [X * H(X), H(X), D(X), D(X, 1)]
    assert [sign.derivative(n) for n in range(3)] == [2 * H(X) - 1, 2 * D(X), 2 * D(X, 1)]
    assert relu.kinks == sign.kinks == (0.0,) and relu.is_piecewise
    erf = resolve_activation("erf")
    assert erf.kinks == () and not erf.is_piecewise


def test_smooth_derivatives_match_sympy():
    for spec in ("erf", "tanh", USER_CUBIC):
        act = resolve_activation(spec)
        for n in range(4):
            assert sympy.simplify(act.derivative(n) - sympy.diff(act.expr, X, n)) == 0


@pytest.mark.parametrize("text, expected", [
    ("Max(0, x)", X * H(X)),
    ("max(x, 0)", X * H(X)),
    ("Min(0, x)", X - X * H(X)),
    ("Abs(x)", 2 * X * H(X) - X),
    ("sign(x)", 2 * H(X) - 1),
    ("Heaviside(-x)", 1 - H(X)),
    ("Heaviside(2*x - 1)", H(X - sympy.Rational(1, 2))),
    ("Piecewise((x, x > 0), (0.1*x, True))", sympy.Float(0.9) * X * H(X) + sympy.Float(0.1) * X),
    ("x^3", X**3),
    ("tanh(2*x)", sympy.tanh(2 * X)),
])
def test_user_strings_become_heaviside_form(text, expected):
    act = resolve_activation(text)
    assert act.name == text
    assert sympy.expand(act.expr - expected) == 0


def test_sympy_expression_with_any_symbol_named_x():
    x_plain = sympy.Symbol("x")
    act = resolve_activation(sympy.Max(0, x_plain))
    assert act.expr == X * H(X)
    assert act == Activation("Max(0, x)", X * H(X))


@pytest.mark.parametrize("spec", ["foo", "x + y", "foo(x)", "3", "log(x)", "sqrt(x)", "I*x",
                                  "x.evalf()", "__import__('os')", "x +", "lambda: 1", "[x]",
                                  "x if x > 0 else 0", "Max(0, x**2 - 1)"])
def test_invalid_specifications_name_the_spec(spec):
    with pytest.raises(ValueError, match="(unknown|invalid) activation") as err:
        resolve_activation(spec)
    assert repr(spec) in str(err.value)


@pytest.mark.parametrize("spec", [3.0, None, ["x"]])
def test_activation_of_the_wrong_type(spec):
    with pytest.raises(TypeError, match="activation must be") as err:
        resolve_activation(spec)
    assert repr(spec) in str(err.value)


def test_invalid_expression_in_constructor():
    with pytest.raises(ValueError, match="invalid activation 'bad'.*free symbols"):
        Activation("bad", X + sympy.Symbol("y"))
    with pytest.raises(ValueError, match="invalid activation 'spike'.*distribution"):
        Activation("spike", D(X))


def test_parsing_does_not_execute_python(tmp_path):
    marker = tmp_path / "touched"
    with pytest.raises(ValueError):
        resolve_activation(f"open('{marker}', 'w')")
    assert not marker.exists()


def test_normalize_distribution_identities():
    assert normalize(X * D(X)) == 0
    assert normalize(X * D(X, 1)) == -D(X)
    assert normalize(X**2 * D(X, 2)) == 2 * D(X)
    assert normalize(sympy.exp(X) * D(X - 1)) == sympy.E * D(X - 1)
    assert normalize(D(2 * X)) == D(X) / 2
    assert normalize(D(-X, 1)) == -D(X, 1)
    assert normalize(H(X) ** 3) == H(X)
    assert normalize(H(X) * (1 - H(X))) == 0
    assert normalize(H(X - 1) * D(X)) == 0  # the step is 0 at the delta
    assert normalize(H(X) * D(X)) == D(X) / 2  # symmetric smoothing
    assert normalize(D(X) * D(X - 1)) == 0
    for bad in (D(X) ** 2, H(X) * D(X, 1), D(X) * D(X)):
        with pytest.raises(ValueError, match="ill-defined"):
            normalize(bad)


def test_derivatives_reduce_delta_products():
    act = resolve_activation("Max(0, x)**2")  # x^2 H(x)
    assert act.derivative(1) == 2 * X * H(X)
    assert act.derivative(2) == 2 * H(X)
    assert act.derivative(3) == 2 * D(X)


@pytest.mark.parametrize("spec", ["linear", "erf", "relu", "sign", "tanh", USER_CUBIC, "Abs(x)"])
def test_numpy_and_numba_sources_agree_with_sympy(spec):
    act = resolve_activation(spec)
    for n in range(3):
        d = act.derivative(n)
        if d.has(sympy.DiracDelta):
            with pytest.raises(ValueError, match="distribution"):
                act.numba_source(n, "g")
            with pytest.raises(ValueError, match="distribution"):
                act.numpy_derivative(n)
            continue
        expected = np.array([float(d.subs(X, p)) for p in POINTS])
        numpy_fn = act.numpy if n == 0 else act.numpy_derivative(n)
        np.testing.assert_allclose(numpy_fn(POINTS), expected, rtol=1e-13, atol=1e-15)
        scalar = _exec(act.numba_source(n, f"g{n}"), f"g{n}")
        np.testing.assert_allclose([scalar(p) for p in POINTS], expected, rtol=1e-13, atol=1e-15)


def test_numba_source_compiles_under_njit():
    for spec, n in (("relu", 1), ("erf", 2), (USER_CUBIC, 0)):
        act = resolve_activation(spec)
        fn = _exec(act.numba_source(n, "g"), "g", jit=True)
        assert fn(0.7) == pytest.approx(float(act.derivative(n).subs(X, 0.7)), rel=1e-14)


def test_steps_are_zero_at_the_origin_numerically():
    relu = resolve_activation("relu")
    assert relu.numpy_derivative(1)(np.array([0.0]))[0] == 0.0
    assert _exec(relu.numba_source(1, "d"), "d")(0.0) == 0.0
    # symbolically Heaviside(0) = 1/2, as normalize() needs
    assert relu.derivative(1).subs(X, 0) == sympy.Rational(1, 2)


def test_steps_are_resolved_by_region_without_cancellation():
    """ELU's canonical form x H(x) − eˣ H(x) + eˣ + H(x) − 1 cancels eˣ in floating point:
    g(40) came out 40 ± 2 (eˣ ≈ 2e17) and g(800) NaN.  The numpy and numba back ends
    evaluate each region's own expression (x above 0, eˣ − 1 below; 0 at a step's
    point), exact at any x."""
    elu = resolve_activation("Piecewise((x, x > 0), (exp(x) - 1, True))")
    points = np.array([-800.0, -30.0, -0.5, 0.0, 1e-9, 40.0, 800.0])
    expected = np.array([-1.0, math.exp(-30.0) - 1, math.exp(-0.5) - 1, 0.0, 1e-9, 40.0, 800.0])
    np.testing.assert_array_equal(elu.numpy(points), expected)
    scalar = _exec(elu.numba_source(0, "g"), "g", jit=True)
    np.testing.assert_array_equal([scalar(p) for p in points], expected)
    # hard tanh: three regions, its steps 0 at their points
    hard = resolve_activation("Min(Max(x, -1), 1)")
    np.testing.assert_array_equal(hard.numpy(np.array([-3.0, -1.0, 0.5, 1.0, 3.0])),
                                  [-1.0, -1.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(hard.numpy_derivative(1)(np.array([-1.0, 0.0, 1.0])), [0.0, 1.0, 1.0])


def test_constant_derivative_broadcasts():
    lin = resolve_activation("linear")
    np.testing.assert_array_equal(lin.numpy_derivative(1)(np.zeros(3)), np.ones(3))
    np.testing.assert_array_equal(lin.numpy_derivative(2)(np.zeros(2)), np.zeros(2))


def test_key_is_stable_and_ignores_the_name():
    a, b = resolve_activation("Max(0,x)"), resolve_activation("relu")
    assert a.key == b.key == sympy.srepr(X * H(X))
    assert a != b  # names differ
    assert resolve_activation(b) is b


def test_print_code_uses_math_only():
    code = print_code(sympy.erf(X) * sympy.exp(-X**2) + sympy.pi + H(X - 1))
    assert "math.erf" in code and "math.exp" in code and "numpy" not in code
    assert eval(code, {"math": math, "x": 2.0}) == pytest.approx(math.erf(2) * math.exp(-4) + math.pi + 1)


def test_numba_source_rejects_bad_name():
    with pytest.raises(ValueError, match="identifier"):
        resolve_activation("relu").numba_source(0, "not a name")


def test_a_long_refused_expression_is_not_echoed_whole():
    text = "x" + "+x" * 5000
    with pytest.raises(ValueError, match="too long") as info:
        resolve_activation(text)
    assert "(10003 characters)" in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize("spec, reason", [
    ("tanh(x) # + x", "'#' starts a Python comment"),        # ast would drop the rest
    ("x # note", "'#' starts a Python comment"),
    ("Heaviside(x, 5)", "Heaviside takes one argument"),     # its value at 0: no average sees it
    ("x*Heaviside(x, 0)", "Heaviside takes one argument"),
    ("Heaviside()", "Heaviside takes one argument"),
])
def test_text_that_would_be_dropped_is_refused(spec, reason):
    with pytest.raises(ValueError, match=reason):
        resolve_activation(spec)


def test_the_name_of_a_typed_expression_is_one_line():
    """Log lines and titles show the name: what was typed, with whitespace collapsed."""
    act = resolve_activation("(tanh(x)\n   + 0.1*x)")
    assert act.name == "(tanh(x) + 0.1*x)"
    assert act.expr == resolve_activation("tanh(x) + 0.1*x").expr


@pytest.mark.parametrize("text,expected", [
    ("relu(x - 0.3)", sympy.Max(X - 0.3, 0)),
    ("sigmoid(x)", 1 / (1 + sympy.exp(-X))),
    ("softplus(2*x)", sympy.log(1 + sympy.exp(2 * X))),
    ("E**x", sympy.exp(X)),
    ("E^(-x**2/2)", sympy.exp(-X**2 / 2)),
    ("2**x", sympy.exp(X * sympy.log(2))),
])
def test_common_spellings_are_read(text, expected):
    """These were refused (undefined functions; 'exponent x must be a number')."""
    assert resolve_activation(text).expr == normalize(expected)


@pytest.mark.parametrize("text,words", [
    ("swish(x)", "unknown function 'swish': the functions are Abs, abs, asinh"),
    ("Relu(x)", "relu, sigmoid, sign"),
    ("x**x", "exponent x must be a number"),
    ("(-2)**x", "base a positive number"),
    ("relu(x, 1)", "relu() takes 1 positional argument"),
])
def test_unknown_functions_list_the_known_ones(text, words):
    with pytest.raises(ValueError, match="unknown activation") as info:
        resolve_activation(text)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text,point", [
    ("sqrt(x + 2.5)", "g(-3.7)"), ("log(x + 2.5)", "g(-3.7)"), ("sqrt(3 - x)", "g(3.7)"),
    ("sqrt(x + 10)", "g(-31.3)"), ("log(x + 50)", "g(-98.3)"), ("x**0.5 + 0*x", "g(-2.3)"),
    ("sqrt(x**2 - 1e-6)", "g(-0.00071)"),      # imaginary within 1e-3 of 0 only
])
def test_activations_complex_far_out_are_refused_at_construction(text, point):
    """√(x + 2.5) was real at the 4 probe points, so it was accepted and refused later by
    the averages for a wrong reason (a non-integrable 1/(4x + 10))."""
    with pytest.raises(ValueError, match="not real-valued") as info:
        resolve_activation(text)
    assert point in str(info.value)


@pytest.mark.parametrize("text", ["exp(x)", "x**20", "cosh(3*x)", "exp(x**2/4)", "sqrt(x**2 + 1)",
                                  "log(1 + x**2)", "x*erfc(x)"])
def test_fast_growing_real_activations_still_pass(text):
    assert resolve_activation(text).expr.has(X)


@pytest.mark.parametrize("name,expected", [("sigmoid", 1 / (1 + sympy.exp(-X))),
                                           ("Softplus", sympy.log(1 + sympy.exp(X)))])
def test_spelled_functions_name_activations_alone(name, expected):
    """'sigmoid' alone was refused ("is a function: call it") while sigmoid(x) was read."""
    assert resolve_activation(name).expr == normalize(expected)


def test_a_readable_but_invalid_expression_is_not_called_unknown():
    """√(x + 2.5) was 'unknown activation …: expected one of linear, …' though its name was
    fine: the message is now its reason; a name other than x is still unknown."""
    with pytest.raises(ValueError, match=r"^invalid activation 'sqrt\(x \+ 2.5\)': not real-valued"):
        resolve_activation("sqrt(x + 2.5)")
    with pytest.raises(ValueError, match="unknown activation 'softplux': expected one of .*softplus"):
        resolve_activation("softplux")
    # ELU as PyTorch writes it steps where exp(x) = 1: refused with the way to write it
    with pytest.raises(ValueError, match=r"not linear in x .*Piecewise\(\(x, x > 0\)"):
        resolve_activation("max(x, 0) + min(0, exp(x) - 1)")


def test_numpy_booleans_choose_the_bias_mode():
    """bias=np.bool_(True) was 'unknown bias mode np.True_' while tied=np.bool_(True) worked."""
    from odesolve import Autoencoder
    assert Autoencoder(K=2, bias=np.bool_(True)).bias == "trained"
    assert Autoencoder(K=2, bias=np.bool_(False)).bias == "none"
