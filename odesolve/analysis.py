"""Analysis of the equations: reduced flows, fixed points and their stability.

The long-time questions of the paper are questions about the flow of the overlaps with
the spikes once the bulk has been forgotten (in the D → ∞ limit the bulk decoder decays
and the bulk encoder no longer matters for a unit aligned with the spikes).  For a model
and a list of spikes ``s̃``, :func:`reduced_equations` gives that flow symbolically,
``dy/dt = F(y)`` with ``y = (a_kτ, b_kτ, m_k)``, and :func:`fixed_point` finds a zero of
``F`` and the eigenvalues of the sympy Jacobian there.

Uses (tested in ``tests/theory/test_phenomena.py``; numbers in docs/theory.md § 6):

* tied erf, one unit: the tied fixed point is stable for the tied flow, but the same point
  is not at rest for the untied flow, which moves along the "rescaling" direction (encoder
  shrinks, decoder grows) that tied weights cannot follow: that is why tied sigmoidal
  autoencoders stay above the PCA error;
* tied erf, K ≥ 2 units on several spikes: the per-spike assignment (unit k on spike k) is
  a saddle; the stable end state mixes the spikes (±45° for K = 2) and has a lower error;
* ReLU, one unit: the bias-free fixed point (half of the variance of the spike
  reconstructed) stays *stable* once the bias is trained — the Jacobian's eigenvalues are
  (−1.367, 0, −0.133) for s̃ = 1, the zero mode being ReLU's rescaling symmetry — so a
  trained bias returns to 0;
* ReLU, K = 2 on two spikes: the minimum of the reduced error with trained biases is the
  long-time limit of the biased state that most initial weights reach.

>>> from odesolve.spec.model import Autoencoder
>>> fp = fixed_point(Autoencoder(K=1, activation="linear"), [1.0], guess=[0.5, 0.5])
>>> round(fp.error, 6)                      # the PCA error: the spike is learnt
0.0
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import sympy as sp
from scipy.optimize import minimize, root

from .derive.averages import numeric_sources
from .derive.equations import derive_equations
from .errors import QuadratureRangeError
from .spec.model import Autoencoder
from .spec.special import exp_erfc

__all__ = ["ReducedEquations", "reduced_equations", "FixedPoint", "fixed_point",
           "minimum_error"]


@dataclass(frozen=True)
class ReducedEquations:
    """Flow of the overlaps with the spikes alone (no bulk), as sympy expressions.

    ``variables`` are the symbols ``a_k_τ`` (and ``b_k_τ`` if untied, ``m_k`` if the bias
    is trained); ``flow`` their time derivatives at η = 1; ``error`` the generalisation
    error measured from ``E0 = Σ s̃ / 2`` (the bulk's constant share is left out).
    """

    model: Autoencoder
    spikes: tuple
    variables: list
    flow: sp.Matrix
    error: sp.Expr

    def lambdified(self):
        """Numeric ``(flow(y), jacobian(y), error(y))`` callables.

        The Jacobian is sympy's, except where the flow contains averages left to compiled
        quadrature (e.g. pairs of ReLU units with biases), which have no symbolic
        derivative: then it is the central difference of the flow (relative accuracy
        ≈ 1e-8).
        """
        modules = [_placeholder_functions(sp.Tuple(self.flow, self.error)), "math", "numpy"]
        jac = self.flow.jacobian(self.variables)
        flow = sp.lambdify([self.variables], list(self.flow), modules=modules)
        error = sp.lambdify([self.variables], self.error, modules=modules)

        def numeric_flow(y):
            return np.array(flow(list(y)), dtype=float)

        if jac.has(sp.Derivative):
            def jacobian(y):
                y = np.asarray(y, dtype=float)
                steps = 1e-6 * np.maximum(1.0, np.abs(y))
                columns = [(numeric_flow(y + h * e) - numeric_flow(y - h * e)) / (2 * h)
                           for h, e in zip(steps, np.eye(len(y)))]
                return np.array(columns).T
        else:
            symbolic = sp.lambdify([self.variables], jac, modules=modules)

            def jacobian(y):
                return np.array(symbolic(list(y)), dtype=float)
        return numeric_flow, jacobian, lambda y: float(error(list(y)))


def reduced_equations(model: Autoencoder, spikes) -> ReducedEquations:
    """Symbolic flow of the spike overlaps of ``model`` (see module doc)."""
    spikes = tuple(float(s) for s in spikes)
    if not spikes or min(spikes) <= 0:
        raise ValueError("spikes must be a non-empty list of positive numbers")
    eq = derive_equations(model)
    K, n = model.K, len(spikes)
    a = sp.Matrix(K, n, lambda k, t: sp.Symbol(f"a_{k}_{t}", real=True))
    b = a if model.tied else sp.Matrix(K, n, lambda k, t: sp.Symbol(f"b_{k}_{t}", real=True))
    s = sp.diag(*[sp.Float(v) for v in spikes])
    m = (sp.Matrix([sp.Symbol(f"m_{k}", real=True) for k in range(K)]) if model.has_bias
         else sp.zeros(K, 1))
    values = {"Q": a * s * a.T, "R": b * s * a.T, "T0": b * b.T, "m": m}
    subs = {}
    for name, mat in eq.symbols.items():
        for idx in np.ndindex(mat.shape):
            subs[mat[idx]] = values[name][idx]
    Y = a if model.tied else a.col_join(b)
    S, N = eq.S.xreplace(subs), eq.N.xreplace(subs)
    dY = S * Y * s + N * Y
    flow = list(dY)
    variables = list(a) + ([] if model.tied else list(b))
    if model.bias == "trained":
        flow += list(eq.bias_drift.xreplace(subs))
        variables += list(m)
    error = sp.Float(sum(spikes)) / 2 + eq.error_excess.xreplace(subs)
    return ReducedEquations(model, spikes, variables, sp.Matrix(flow), error)


@dataclass(frozen=True)
class FixedPoint:
    """A zero of the reduced flow with its error and the spectrum of the Jacobian."""

    y: np.ndarray
    error: float
    jacobian: np.ndarray
    eigenvalues: np.ndarray
    variables: list

    @property
    def stable(self) -> bool:
        """All eigenvalues of the Jacobian have a negative real part (up to 1e-9)."""
        return bool(np.all(self.eigenvalues.real < 1e-9))


def fixed_point(model: Autoencoder, spikes, guess, reduced: ReducedEquations | None = None,
                tol: float = 1e-12) -> FixedPoint:
    """Fixed point of the reduced flow near ``guess``, with its Jacobian eigenvalues.

    Raises ``ValueError`` if the root finder does not converge.
    """
    reduced = reduced or reduced_equations(model, spikes)
    flow, jacobian, error = reduced.lambdified()
    guess = np.asarray(guess, dtype=float)
    if guess.shape != (len(reduced.variables),):
        raise ValueError(f"guess must have {len(reduced.variables)} entries "
                         f"({', '.join(map(str, reduced.variables))})")
    sol = root(flow, guess, jac=jacobian, method="hybr", tol=tol)
    if not sol.success or np.max(np.abs(flow(sol.x))) > 1e-8:
        raise ValueError(f"no fixed point found near {guess}: {sol.message}")
    J = jacobian(sol.x)
    return FixedPoint(sol.x, error(sol.x), J, np.linalg.eigvals(J), reduced.variables)


def minimum_error(model: Autoencoder, spikes, guess, reduced: ReducedEquations | None = None):
    """Smallest error of the reduced model over its variables (static optimum).

    Returns ``(error, y)``.  This is the long-time prediction when the flow is a gradient
    flow of that error (untied and tied SGD; not Sanger's rule).
    """
    reduced = reduced or reduced_equations(model, spikes)
    _, _, error = reduced.lambdified()
    best = minimize(error, np.asarray(guess, dtype=float), method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20000})
    return float(best.fun), best.x


def _placeholder_functions(expr) -> dict:
    """Compiled numeric averages for the placeholders left in ``expr`` (if any)."""
    functions = {}
    for name, source in numeric_sources(expr).items():
        namespace = {"math": __import__("math"), "np": np, "njit": numba.njit,
                     "QuadratureRangeError": QuadratureRangeError, "exp_erfc": exp_erfc}
        exec(compile(source, f"<odesolve average {name}>", "exec"), namespace)
        functions[name] = namespace[name]
    return functions
