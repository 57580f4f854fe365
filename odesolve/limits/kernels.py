"""Activation kernels ``K = E[σ(Bx)σ(Bx)ᵀ]`` and ``H = E[xσ(Bx)ᵀ]`` of Gaussian inputs."""
from __future__ import annotations

import numbers

import numpy as np
import sympy

from ..spec.activations import BUILTIN_ACTIVATIONS, Activation, resolve_activation
from ._common import (NAMED_ACTIVATIONS, _QUADRATURE_CHUNK, _QUADRATURE_ORDER, _RightProduct,
                      _check_covariance, _check_encoder)

#: The smallest normal float: below it a value keeps fewer than 53 bits.
_TINY = np.finfo(float).tiny

# --------------------------------------------------------------------------- kernels
def _unit_correlations(C: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``C_ij / √(v_i v_j)`` with the diagonal set to exactly one (zero variance → 0).
    One rounding: duplicated rows get exactly 1 (arcsin turns 1 − 1e-16 into an error of
    1e-8); ``v`` must be of moderate scale (``_kernel_factors`` sees to it)."""
    scale = np.sqrt(np.outer(v, v))
    rho = np.clip(np.divide(C, scale, out=np.zeros_like(C), where=scale > 0), -1.0, 1.0)
    np.fill_diagonal(rho, np.where(v > 0, 1.0, 0.0))
    return rho


def _named_moments(C: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``K = E[g(λ)g(λ)ᵀ]`` and ``e_i = E[λ_i g(λ_i)]`` for ``λ ~ N(0, C)`` (sign, relu,
    linear: positively homogeneous, so C of unit scale is all they need)."""
    v = np.maximum(np.diag(C), 0.0)          # a row in Σ's null space: −1e-17 by rounding
    if name == "sign":
        K = (2 / np.pi) * np.arcsin(_unit_correlations(C, v))
        return K, np.sqrt(2 * v / np.pi)
    if name == "relu":     # arc-cosine kernel of degree one
        rho = _unit_correlations(C, v)
        K = np.sqrt(np.outer(v, v)) / (2 * np.pi) * (
            np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho)
        return K, v / 2
    return C.copy(), v    # linear


def _erf_factors(C: np.ndarray, log_a: np.ndarray):
    """Kernels of ``erf(a_k λ_k/√2)/u_k`` for ``λ ~ N(0, C)``, rows scaled by ``a = e^{log_a}``
    (any representable or not), ``u = a/√(1 + a² v)``: ``K̃ = (2/π) C arcsin(z)/z`` with
    ``z_kl = u_k u_l C_kl``, and ``u``.  The diagonal's ``1 − z_kk = 1/(1 + a² v)`` is
    formed exactly: arcsin is ill-conditioned at 1 (the sign limit, large a), where
    ``z_kk`` itself would lose half the digits.  (Derived here: E[erf(x/√2) erf(y/√2)] =
    (2/π) arcsin(c/√((1+q1)(1+q2))) at covariance [[q1, c], [c, q2]].)"""
    v = np.maximum(np.diag(C), 0.0)
    # in powers of a below 1 only (a itself, or 1/a, may be beyond floating point); a
    # row with v = 0 and 1/a² = 0 (Σ's null space, a beyond 1e154) is the zero feature
    large = log_a > 0
    small_a2, inverse_a2 = np.exp(2.0 * np.minimum(log_a, 0)), np.exp(-2.0 * np.maximum(log_a, 0))
    below = np.where(large, inverse_a2 + v, 1.0 + small_a2 * v)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(below > 0, np.where(large, 1.0, np.exp(np.minimum(log_a, 0)))
                     / np.sqrt(below), 0.0)
        delta = np.where(below > 0, np.where(large, inverse_a2, 1.0) / below, 1.0)
    z = np.clip(np.outer(u, u) * C, -1.0, 1.0)
    np.fill_diagonal(z, 1.0 - delta)
    arcsin = np.arcsin(z)
    np.fill_diagonal(arcsin, np.arctan2(1.0 - delta, np.sqrt(delta * (2.0 - delta))))
    small = np.abs(z) < 1e-8
    asinc = np.where(small, 1.0 + z**2 / 6, arcsin / np.where(small, 1.0, z))
    return (2 / np.pi) * C * asinc, u


def _kernel_factors(B, activation, cov):
    """The kernels of an activation with the scales of ``B`` and ``Σ`` factored out.

    ``K = κ diag(f) K̃ diag(f)`` and ``H = η H̃ diag(f)``, where ``K̃``, ``H̃`` are those of
    the problem at unit scale (each row of B divided by its largest entry, Σ by its own),
    and ``η²/κ = s`` (the scale of Σ) for every activation, so that ``H K⁺ Hᵀ =
    s H̃ K̃⁺ H̃ᵀ``: the optimal decoder's risk needs no kernel at the true scale, which
    under- or overflows for rows or covariances of size 1e±150.  A user-supplied
    activation goes through :func:`_quadrature_factors` (κ = 1, η = √s).

    Parameters
    ----------
    B : ndarray, shape (n, d)
        Encoder (checked).
    activation : str, Activation, callable or sympy expression
        Resolved by :func:`_resolve` (callers pass it on unresolved or resolved).
    cov : ndarray, shape (d, d), or None
        Covariance (checked), identity if None.

    Returns
    -------
    K̃ : ndarray, shape (n, n)
    H̃ : ndarray, shape (d, n)
    f : ndarray, shape (n,)
        Feature scales: 1 (sign), the row scales (relu, linear), ``u`` (erf), the largest
        ``|g|`` at the quadrature nodes (user-supplied; 1 for a feature that is zero).
    kappa, eta : float
    scale : float
        ``s``, the largest entry of Σ in size (1 for the identity or Σ = 0).
    unit_cov : ndarray or None
        ``Σ/s``.

    Raises
    ------
    ValueError
        An unknown activation, or the errors of :func:`_check_sign_variances` (sign) and
        of :func:`_quadrature_factors` (user-supplied).
    """
    activation = _resolve(activation)
    g = activation if isinstance(activation, _UserActivation) else None
    largest = 1.0 if cov is None else float(np.max(np.abs(cov)))
    scale = largest if largest > 0 else 1.0
    unit_cov = cov if cov is None else cov / scale
    norms = np.max(np.abs(B), axis=1)
    norms = np.where(norms > 0, norms, 1.0)
    unit_rows = B / norms[:, None]
    BS = _RightProduct(unit_cov)(unit_rows)                       # rows Σ' b'_i
    C = BS @ unit_rows.T
    C = 0.5 * (C + C.T)
    v = np.diag(C)
    if g is not None:
        # a variance at the rounding level of the row is a row in Σ's null space (as for
        # sign): its pre-activation is exactly 0, not noise that g would amplify at 1e200
        unit_variances = np.where(v > 1e-14 * _variance_bounds(unit_rows, unit_cov), v, 0.0)
        K, H, f = _quadrature_factors(g, BS, C, unit_variances, scale, norms)
        return K, H, f, 1.0, np.sqrt(scale), scale, unit_cov
    if activation == "erf":
        with np.errstate(divide="ignore"):
            K, f = _erf_factors(C, 0.5 * np.log(scale) + np.log(norms))
        return K, np.sqrt(2 / np.pi) * BS.T, f, 1.0, np.sqrt(scale), scale, unit_cov
    if activation == "sign":
        _check_sign_variances(unit_rows, v, _variance_bounds(unit_rows, unit_cov))
    K, e = _named_moments(C, activation)
    H = BS.T * np.divide(e, v, out=np.zeros_like(v), where=v > 0)[None, :]
    if activation == "sign":
        return K, H, np.ones_like(norms), 1.0, np.sqrt(scale), scale, unit_cov
    return K, H, norms, scale, scale, scale, unit_cov


def _variance_bounds(unit_rows: np.ndarray, unit_cov: np.ndarray | None) -> np.ndarray:
    """``|b|ᵀ|Σ/s||b|`` per row: it bounds the rounding of the row's variance under Σ/s."""
    if unit_cov is None:
        return np.sum(unit_rows**2, axis=1)
    return np.sum((np.abs(unit_rows) @ np.abs(unit_cov)) * np.abs(unit_rows), axis=1)


def _resolve(activation):
    """A name of :data:`NAMED_ACTIVATIONS` (closed-form kernels) or a :class:`_UserActivation`.

    Strings and :class:`~odesolve.Activation` objects are read by the model's own resolver
    (:func:`odesolve.resolve_activation`), so that the limits take every activation an
    :class:`~odesolve.Autoencoder` takes ("ReLU", "tanh", "x**2", "Max(0, x)"): one whose
    function is that of a named one gets its closed forms, any other is integrated by
    quadrature through its numpy code.  Sympy expressions and callables go to the
    quadrature as they are (a sympy expression may use any one symbol).
    """
    if isinstance(activation, _UserActivation):
        return activation
    if not isinstance(activation, (str, Activation)):
        return _UserActivation(activation)
    try:
        resolved = resolve_activation(activation)
    except ValueError as error:
        raise ValueError(f"{error}; the limits also take a vectorised callable") from None
    for name in NAMED_ACTIVATIONS:
        if resolved.expr == BUILTIN_ACTIVATIONS[name].expr:
            return name
    return _UserActivation(resolved)


class _UserActivation:
    """A vectorised callable, or a sympy expression in one symbol, evaluated so that its
    failures (an exception, a wrong shape, complex or non-numeric values) become one-line
    ValueErrors naming it; a call returns the values and numpy's floating-point flags."""

    def __init__(self, activation):
        if isinstance(activation, sympy.Basic):
            symbols = sorted(activation.free_symbols, key=str)
            if len(symbols) > 1:
                raise ValueError(f"a sympy activation must depend on one symbol, got {symbols}")
            try:     # scipy for erf, gamma, Bessel functions, which numpy lacks
                self.function = sympy.lambdify(symbols or [sympy.Symbol("x")], activation,
                                               ["scipy", "numpy"])
            except Exception as error:          # e.g. zoo: sympy's printer has no code
                raise ValueError(f"the sympy activation {activation} has no numeric code "
                                 f"({type(error).__name__}: {error})") from None
            self.name = f"sympy expression {activation}"
            self.kinks = _kinks_of(activation, symbols)
        elif isinstance(activation, Activation):
            # its numpy code evaluates steps region by region (no cancellation, no warning
            # from a piece outside its region): the simulator's own evaluation of g
            self.function = activation.numpy
            self.name = repr(activation.name)
            self.kinks = activation.kinks
        elif callable(activation):
            self.function = activation
            self.name = getattr(activation, "__name__", None) or repr(activation)
            self.kinks = ()         # unknown: the smooth rule (its accuracy is documented)
        else:
            raise ValueError(f"unknown activation {activation!r}: expected a name or an "
                             "expression in x as the model takes (e.g. 'relu', 'tanh', "
                             "'x**2'), an Activation, a callable or a sympy expression")

    def __call__(self, points: np.ndarray) -> tuple[np.ndarray, set]:
        """Values at ``points`` (same shape; a scalar, as from a constant sympy expression,
        is broadcast) and the set of numpy's flags ("overflow", "underflow", ...) raised
        meanwhile: no numpy warning escapes."""
        flags = set()
        with np.errstate(all="call", call=lambda kind, _: flags.add(kind)):
            try:
                out = self.function(points)
            except Exception as error:
                detail = str(error).strip().splitlines()
                raise ValueError(f"the activation {self.name} raised {type(error).__name__}"
                                 + (f": {detail[0]}" if detail else "")) from error
        try:
            out = np.asarray(out)
        except ValueError:
            raise ValueError(f"the activation {self.name} returned a ragged sequence; it "
                             "must return an array of real numbers") from None
        if np.iscomplexobj(out):
            raise ValueError(f"the activation {self.name} returned complex values; it must "
                             "return real numbers")
        # object arrays only of real numbers (None would become NaN, "1" would become 1.0)
        others = ([v for v in out.flat if not isinstance(v, numbers.Real)][:1]
                  if out.dtype.kind == "O" else [])
        if out.dtype.kind not in "biufO" or others:
            what = type(others[0]).__name__ if others else f"dtype {out.dtype}"
            raise ValueError(f"the activation {self.name} returned non-numeric values "
                             f"({what}); it must return real numbers")
        try:
            values = out.astype(float, copy=False)
        except OverflowError:                      # Python integers beyond 1.8e308
            raise ValueError(f"the activation {self.name} overflows: it returned integers "
                             "beyond floating point") from None
        if values.ndim == 0:
            return np.full(points.shape, float(values)), flags
        if values.shape != points.shape:
            raise ValueError(f"the activation {self.name} returned shape {values.shape} for "
                             f"an input of shape {points.shape}; it must act elementwise")
        return values, flags


def _kinks_of(expr, symbols) -> tuple:
    """The kinks and jumps of a sympy activation in one symbol (:attr:`Activation.kinks`),
    () where the model's reader does not take it (it is then integrated as smooth)."""
    try:
        x = symbols[0] if symbols else sympy.Symbol("x")
        return Activation("user", expr.xreplace({x: sympy.Symbol("x", real=True)})).kinks
    except (TypeError, ValueError):
        return ()


#: Gauss–Legendre panels of the rule for activations with kinks or jumps: [−L, L] of the
#: standardised pre-activation cut into _PANELS uniform panels and at every kink, with
#: _PANEL_NODES nodes each (exact for a Gaussian times a polynomial of degree < 32 on
#: each piece; Gauss–Hermite nodes straddling a jump had left sign-like kernels 0.1 off).
_L, _PANELS, _PANEL_NODES = 10.0, 8, 16
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(_PANEL_NODES)


def _panel_rule(breaks: np.ndarray):
    """Nodes and weights (density φ included) of the piecewise Gauss–Legendre rule on
    [−L, L] cut at ``breaks`` (shape (..., m), clipped to the range; inf and nan allowed):
    arrays of shape (..., (_PANELS + m)·_PANEL_NODES)."""
    uniform = np.broadcast_to(np.linspace(-_L, _L, _PANELS + 1), breaks.shape[:-1] + (_PANELS + 1,))
    inner = np.clip(np.nan_to_num(breaks, nan=0.0, posinf=_L, neginf=-_L), -_L, _L)
    edges = np.sort(np.concatenate([uniform, inner], axis=-1), axis=-1)
    half = (edges[..., 1:] - edges[..., :-1]) / 2
    middle = (edges[..., 1:] + edges[..., :-1]) / 2
    t = (middle[..., None] + half[..., None] * _GL_NODES).reshape(breaks.shape[:-1] + (-1,))
    w = (half[..., None] * _GL_WEIGHTS).reshape(t.shape) * np.exp(-t * t / 2) / np.sqrt(2 * np.pi)
    return t, w


def _pre_activation_scales(scale: float, norms: np.ndarray, unit_variances: np.ndarray):
    """``σ_i = √s·‖b_i‖_max·√ṽ_i`` (zero where ``ṽ_i = 0``) and its ``log10``: mantissas and
    exponents multiplied apart (frexp), so σ is formed with a few roundings wherever it is
    representable, even where ``√s·‖b_i‖_max`` alone is not."""
    mantissa, exponent = np.ones_like(norms), np.zeros(norms.shape, dtype=int)
    for part in (np.full_like(norms, np.sqrt(scale)), norms, np.sqrt(unit_variances)):
        m, e = np.frexp(part)
        mantissa, exponent = mantissa * m, exponent + e
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        sigma = np.ldexp(mantissa, exponent)
        log10 = np.log10(mantissa) + exponent * np.log10(2.0)
    return sigma, log10


def _order(log10: float) -> str:
    return f"1e{int(np.round(log10))}"


def _units(mask: np.ndarray) -> str:
    indices = np.flatnonzero(mask)
    return f"{indices[:10].tolist()}" + (" …" if indices.size > 10 else "")


def _quadrature_factors(g: _UserActivation, BS: np.ndarray, C: np.ndarray,
                        unit_variances: np.ndarray, scale: float, norms: np.ndarray):
    """Quadrature kernels of a user-supplied activation ``g``, its scales factored out.

    With ``λ_i = σ_i z_i`` (``z ~ N(0, ρ)``, ``σ_i = √s‖b_i‖_max√ṽ_i``, ``ṽ = diag C̃``)
    and ``f_i`` the largest ``|g|`` at the nodes ``σ_i t_a``, the features
    ``g̃_i = g(λ_i)/f_i`` are of order one at any scale: ``K̃ = E[g̃ g̃ᵀ]``, and Stein's
    ``E[x g(λ_i)] = Σb_i E[λ_i g(λ_i)]/σ_i² = √s f_i Σ̃b̃_i E[z g̃_i(σ_i z)]/√ṽ_i`` gives
    ``H̃`` with ``K = diag(f) K̃ diag(f)``, ``H = √s H̃ diag(f)`` (κ = 1, η = √s, so
    η²/κ = s).  Only g itself meets the true scale, at ``σ_i t_a``, and it is normalised
    by ``f_i`` before anything is squared or multiplied.

    ``(z_i, z_j) = (t_a, ρ t_a + √(1−ρ²) t_b)``.  Where g has kinks or jumps
    (``g.kinks``, an expression's), each axis has Gauss–Legendre panels cut where σ z = k
    (:func:`_panel_rule`; the inner axis's cuts move with t_a): exact to ~1e-10.
    Otherwise the Gauss–Hermite product rule with ``_QUADRATURE_ORDER`` nodes per axis
    is exact for polynomials of degree below ``2·_QUADRATURE_ORDER``: about 1e-8 for
    smooth ``g`` at pre-activation variances of order one, but for a callable's unknown
    kinks the error decays only like 1/order (3e-3 for ReLU), a jump's like the node
    spacing, 1/√order (0.1 in the kernel of sign), and functions steep on that spacing
    (erf at variance 10, tanh at σ = 1e3) converge as slowly: use the named closed forms
    there.

    Parameters
    ----------
    g : _UserActivation
    BS : ndarray, shape (n, d)
        Rows ``Σ̃ b̃_i``.
    C : ndarray, shape (n, n)
        ``B̃ Σ̃ B̃ᵀ``.
    unit_variances : ndarray, shape (n,)
        Its diagonal, zero for rows in Σ's null space (their feature is the constant g(0)).
    scale : float
        ``s``.
    norms : ndarray, shape (n,)
        ``‖b_i‖_max`` (1 for a zero row).

    Returns
    -------
    K̃ : ndarray, shape (n, n)
    H̃ : ndarray, shape (d, n)
    f : ndarray, shape (n,)

    Raises
    ------
    ValueError
        A σ_i that is not a normal floating-point number, or whose product with the
        farthest node overflows; g non-finite at the nodes (it overflows at this scale);
        a feature whose values vanish, or become subnormal, by floating-point underflow
        (one that is exactly zero without underflow is a dead unit, kept as the zero
        feature; the flag cannot tell an exact zero that comes with an unrelated underflow,
        relu(x − 1)·exp(−x²) at 1e-200, from a lost one, and refuses both); the errors of
        :class:`_UserActivation`.
    """
    sigma, log10 = _pre_activation_scales(scale, norms, unit_variances)
    live = unit_variances > 0
    kinks = np.asarray(g.kinks, dtype=float)
    if kinks.size:        # panels cut at each unit's kinks σ_i t = k (none for a dead unit)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            nodes, weights = _panel_rule(kinks[None, :] / sigma[:, None])      # (n, q)
    else:
        nodes, weights = np.polynomial.hermite_e.hermegauss(_QUADRATURE_ORDER)
        nodes = np.broadcast_to(nodes, (len(sigma), len(nodes)))
        weights = np.broadcast_to(weights / weights.sum(), nodes.shape)
    reach = np.sqrt(2.0) * np.max(np.abs(nodes))        # |ρ t_a + √(1−ρ²) t_b| ≤ √2 max|t|
    # a normal σ keeps every node σ t_a to within an ulp of σ, even where σ t_a is subnormal
    with np.errstate(over="ignore"):
        outside = live & ((sigma < _TINY) | ~np.isfinite(sigma * reach))
    if np.any(outside):
        orders = ", ".join(dict.fromkeys(_order(value) for value in log10[outside]))
        raise ValueError(f"the pre-activations of units {_units(outside)} have standard "
                         f"deviations of order {orders}, beyond floating point for a "
                         "user-supplied activation, which is evaluated at them (named "
                         "activations take any scale)")
    with np.errstate(under="ignore"):
        values, flags = g(sigma[:, None] * nodes)                 # (n, q)
    _check_finite(g, values, flags, np.arange(len(sigma)), log10)
    f = np.max(np.abs(values), axis=1)
    # f ≥ the smallest normal number bounds what underflow can take from any value by an
    # ulp of f; a subnormal f has lost digits, and a zero f has either underflowed (x³ at
    # σ = 1e-200) or is a dead unit (relu(x − 1) there): only the first raises numpy's flag,
    # which the tails of healthy features raise too, so a suspect is evaluated alone
    underflowed = live & (f > 0) & (f < _TINY)
    if "underflow" in flags:
        for i in np.flatnonzero(live & (f == 0)):
            underflowed[i] = "underflow" in g(sigma[i] * nodes[i:i + 1])[1]
    if np.any(underflowed):
        raise ValueError(f"the activation {g.name} underflows at the scale of units "
                         f"{_units(underflowed)} (pre-activations of order "
                         f"{_order(log10[underflowed][0])}): its values there are lost to "
                         "floating point (subnormal, or all zero with numpy's underflow flag "
                         "raised), so the feature is not representable")
    alive = f > 0
    f = np.where(alive, f, 1.0)
    with np.errstate(under="ignore"):                 # the far nodes' negligible terms
        unit = values / f[:, None]
        e = np.sum(unit * nodes * weights, axis=1)                # E[z g̃(σz)]
        K = np.diag(np.sum(unit**2 * weights, axis=1))
    rho = _unit_correlations(C, unit_variances)
    rows, cols = np.triu_indices(C.shape[0], k=1)
    q = nodes.shape[1]
    chunk = max(1, _QUADRATURE_CHUNK // (q * (q if not kinks.size else q + 16)))
    for start in range(0, len(rows), chunk):
        i, j = rows[start:start + chunk], cols[start:start + chunk]
        p, scale_j = rho[i, j], sigma[j]
        slope = np.sqrt(1 - p**2)
        # z_j given z_i = t: ρ t + √(1−ρ²) u, u ~ N(0, 1), its rule cut where σ_j z_j = k
        t, outer = nodes[i], weights[i]
        if kinks.size:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                u, inner = _panel_rule((kinks[None, None, :] / scale_j[:, None, None]
                                        - p[:, None, None] * t[:, :, None]) / slope[:, None, None])
        else:
            u, inner = nodes[:1, None, :], weights[:1, None, :]
        with np.errstate(under="ignore"):         # σ_j p t_a, each within an ulp of σ_j
            second, flags = g((scale_j * p)[:, None, None] * t[:, :, None]
                              + (scale_j * slope)[:, None, None] * u)
        _check_finite(g, second, flags, j, log10)
        # a feature zero at every node has K̃_jj = 0, hence a zero row (Cauchy–Schwarz),
        # though g may not vanish at the farther two-dimensional nodes; an overflow (g far
        # larger there than at the nodes) is caught below
        with np.errstate(under="ignore", over="ignore"):
            second = second * (alive[j] / f[j])[:, None, None]
            K[i, j] = np.einsum("pa,pa,pa->p", unit[i], outer, np.sum(second * inner, axis=2))
    K = np.triu(K) + np.triu(K, 1).T
    if not np.all(np.isfinite(K)):
        raise ValueError(f"the activation {g.name} grows too fast for quadrature at this "
                         "scale (its kernel overflows after normalisation)")
    # every pair has its own product rule, so K̃ is PSD only up to their errors (3e-3 per
    # entry at a kink); with many units on few inputs its small eigenvalues are below
    # them, and K̃⁺ would amplify the errors into a negative risk: refuse, not clip
    eigenvalues = np.linalg.eigvalsh(K)
    if eigenvalues[0] < -1e-10 * max(eigenvalues[-1], 0.0):
        raise ValueError(f"the quadrature kernel of the activation {g.name} is not positive "
                         f"semi-definite (smallest eigenvalue {eigenvalues[0]:.2g} of "
                         f"{eigenvalues[-1]:.2g}): with {len(f)} units the Gauss–Hermite "
                         "errors exceed its small eigenvalues, so no risk computed from it "
                         "is reliable; use fewer units or a named activation")
    coefficient = np.divide(e, np.sqrt(unit_variances), out=np.zeros_like(e), where=live)
    return K, BS.T * coefficient[None, :], f


def _check_finite(g: _UserActivation, values: np.ndarray, flags: set, units: np.ndarray,
                  log10: np.ndarray):
    """Refuse non-finite ``values`` of g: one row of nodes per entry of ``units`` (the unit
    whose pre-activations they are; ``log10``: every unit's log10 σ)."""
    bad = ~np.all(np.isfinite(values.reshape(len(units), -1)), axis=1)
    if np.any(bad):
        first = units[bad][0]
        what = ("overflows" if "overflow" in flags else
                "returns non-finite values (inf or NaN)")
        raise ValueError(f"the activation {g.name} {what} at the scale of units "
                         f"{sorted(set(units[bad].tolist()))[:10]} (pre-activations of "
                         f"order {_order(log10[first])})")


def activation_kernels(B, activation="sign", covariance=None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian second moments ``K = E[σ(Bx)σ(Bx)ᵀ]`` and ``H = E[x σ(Bx)ᵀ]``.

    Parameters
    ----------
    B : array_like, shape (n, d)
        Encoder.
    activation : str, Activation, callable or sympy expression
        Any activation :class:`~odesolve.Autoencoder` takes (a name such as ``"relu"`` or
        ``"tanh"`` in any case, an expression in x such as ``"x**2"``, an Activation), a
        vectorised callable or a sympy expression in one symbol.  ``"erf"`` is
        ``erf(x/√2)``.  Sign, erf, relu and linear (by name or as an expression of the
        same function, ``"Max(0, x)"``) use closed forms (arcsine kernel, arc-cosine
        kernel) and take any scale; every other activation is integrated by quadrature
        (Gauss–Hermite, 48 nodes per axis, for a smooth one or a callable; Gauss–Legendre
        panels cut at the kinks and jumps of an expression that has them, exact to
        ~1e-10) and takes any scale at which its pre-activations, and its values there,
        are representable.
    covariance : array_like, shape (d, d), optional
        Input covariance ``Σ`` (positive semi-definite); identity by default.

    Returns
    -------
    K : ndarray, shape (n, n)
    H : ndarray, shape (d, n)

    Raises
    ------
    ValueError
        Bad shapes, a non-PSD covariance, (for ``sign``) a unit whose pre-activation has
        zero variance (a zero row, or a row in the null space of Σ), the errors of a
        user-supplied activation listed in :func:`optimal_risk`, or kernels that over-
        or underflow (named: rows times √Σ beyond ~1e±154; user-supplied: the features'
        largest values squared beyond ~1e±308; :func:`optimal_risk`,
        :func:`optimal_decoder` and :func:`population_risk` factor the scales out).

    Examples
    --------
    >>> K, H = activation_kernels(np.eye(2), "relu")
    >>> K
    array([[0.5       , 0.15915494],
           [0.15915494, 0.5       ]])
    >>> H
    array([[0.5, 0. ],
           [0. , 0.5]])
    """
    B = _check_encoder(B)
    cov = _check_covariance(covariance, B.shape[1])
    activation = _resolve(activation)
    K_unit, H_unit, f, kappa, eta, _, _ = _kernel_factors(B, activation, cov)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        K, H = kappa * (f[:, None] * K_unit * f[None, :]), eta * (H_unit * f[None, :])
    named = isinstance(activation, str)
    name, size = ((activation, "rows times √Σ") if named
                  else ("this activation", "its largest values at the nodes squared"))
    remedy = "optimal_risk, optimal_decoder and population_risk factor the scales out"
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(H))):
        raise ValueError(f"the kernels of {name} overflow at the scale of this encoder and "
                         f"covariance ({size} beyond ~1e{154 if named else 308}); {remedy}")
    if np.any((K == 0) & (K_unit != 0)) or np.any((H == 0) & (H_unit != 0)):
        raise ValueError(f"the kernels of {name} underflow at the scale of this encoder and "
                         f"covariance ({size} below ~1e-{154 if named else 308}); {remedy}")
    return K, H


def _check_sign_variances(B: np.ndarray, unit_variances: np.ndarray, bound: np.ndarray) -> None:
    """``B``: the rows at unit scale, ``unit_variances`` their variances under Σ/s, and
    ``bound`` = |b|ᵀ|Σ/s||b|, which bounds the rounding of a variance (a variance of that
    order times 1e-14 is a row in Σ's null space, not a small but informative one)."""
    zero_rows = np.flatnonzero(~np.any(B != 0, axis=1))
    if zero_rows.size:
        raise ValueError(f"encoder rows {zero_rows[:10].tolist()} have zero norm: the sign "
                         f"activation needs nonzero rows")
    flat = np.flatnonzero(unit_variances <= 1e-14 * bound)
    if flat.size:
        raise ValueError(f"encoder rows {flat[:10].tolist()} have zero variance under the "
                         f"covariance (sign(0) carries no information)")


def sign_kernel(B, covariance=None) -> tuple[np.ndarray, np.ndarray]:
    """Arcsine kernel ``E[sign(Bx)sign(Bx)ᵀ]`` and ``E[x sign(Bx)ᵀ]`` for ``x ~ N(0, Σ)``.

    Parameters
    ----------
    B : array_like, shape (n, d)
        Encoder; row norms are irrelevant (rows must be nonzero).
    covariance : array_like, shape (d, d), optional
        ``Σ``; identity by default.

    Returns
    -------
    K : ndarray, shape (n, n)
        ``(2/π) arcsin(B̃ Σ B̃ᵀ)`` with ``B̃`` the rows scaled to unit variance.
    H : ndarray, shape (d, n)
        ``√(2/π) Σ B̃ᵀ``.

    Examples
    --------
    >>> K, H = sign_kernel([[1.0, 0.0], [1.0, 1.0]])
    >>> K.round(4)
    array([[1. , 0.5],
           [0.5, 1. ]])
    >>> (H / np.sqrt(2 / np.pi)).round(4)
    array([[1.    , 0.7071],
           [0.    , 0.7071]])
    """
    return activation_kernels(B, "sign", covariance)
