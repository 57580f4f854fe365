"""Initial conditions and order parameters, shared by the theory and the simulator.

All weights are written in the eigenbasis of the data: column τ of ``W`` is ``w·e_τ``,
in the order the :class:`~odesolve.spec.spectra.Spectrum` lists its eigenvalues (tracked modes,
then the bulk).  The theory works with

* ``A[k, τ] = w_k·e_τ`` and ``B[k, τ] = v_k·e_τ / √D`` for every tracked mode τ,
* the Gram matrix of the same overlaps summed over the bulk modes (they share one
  eigenvalue, hence one linear flow, so their Gram matrix closes exactly),
* the encoder biases ``m`` (zeros when the model has none),

from which the order parameters of the spec follow, e.g.
``Q = A diag(s) Aᵀ + s_bulk G_aa`` and ``T0 = B Bᵀ + G_bb``.
With tied weights ``v_k = √D w_k``, so ``B = A``.

>>> from odesolve.spec.spectra import spiked_covariance
>>> from odesolve.spec.model import Autoencoder
>>> spec = spiked_covariance(D=200, spikes=[2.0, 1.0], bulk=0.1)
>>> model = Autoencoder(K=2, activation="erf")
>>> W, V, m = initial_weights(model, spec.D, scale=0.1, rng=np.random.default_rng(0))
>>> state = State.from_weights(model, spec, W, V, m)
>>> exact = OrderParameters.from_weights(spec, W, V, m)
>>> ops = state.order_parameters()
>>> all(np.allclose(getattr(ops, k), getattr(exact, k)) for k in "QRT")
True
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ._checks import (SECONDS_PER_FLOP, as_real_array, check_cost, check_integer, check_matrix,
                      check_non_negative, check_real, check_rng, check_seed, check_type,
                      check_vector, psd_tolerance)
from .spec.model import Autoencoder
from .spec.spectra import Spectrum

__all__ = ["initial_weights", "OrderParameters", "State", "order_parameters_of",
           "state_variables", "check_state_cost"]


def state_variables(K: int, tied: bool, n_tracked: int) -> int:
    """Number of variables of a theory state of K units tracking ``n_tracked`` modes:
    ``Y`` (P × n_tracked), ``G`` (P × P) and ``m`` (K), with P = K tied, 2K untied."""
    P = K if tied else 2 * K
    return P * n_tracked + P * P + K


def check_state_cost(model: Autoencoder, D: int, n_tracked: int) -> None:
    """Refuse, before any allocation, a state whose weights or theory variables are out of
    reach: the estimates the command line makes of a configuration (``odesolve run``), so
    that the Python API refuses the same requests with the same one-line message.

    Raises
    ------
    ValueError
        From :func:`odesolve._checks.check_cost`, with the estimate.
    """
    K = model.K
    P = K if model.tied else 2 * K
    n_state = state_variables(K, model.tied, n_tracked)
    check_cost(f"weights of K = {K} units in D = {D}", nbytes=8.0 * 3 * K * D)
    # the state, the ODE solver's copies of it, and the stacked weights whose bulk Gram
    # matrix (a P × P × D product) it holds
    check_cost(f"state of K = {K} units in D = {D} ({n_state} variables)", nbytes=8.0 * (4 * n_state + P * D),
               seconds=SECONDS_PER_FLOP * 2.0 * P * P * D)


def initial_weights(model: Autoencoder, D: int, scale: float, rng: np.random.Generator,
                    bias: float = 0.0):
    """Draw initial weights, the one convention shared by theory and simulator.

    Untied: ``W, V`` i.i.d. ``N(0, scale²)``.  Tied: ``V`` i.i.d. ``N(0, scale²)`` and
    ``W = V / √D`` (so that ``v_k = √D w_k``).  ``W`` is drawn first, then ``V``, so a
    given seed gives the same untied decoder whatever K-independent option is chosen.

    Returns
    -------
    W, V : ndarray, shape (K, D)
        Encoder and decoder in the eigenbasis of the data.
    m : ndarray, shape (K,)
        Encoder biases (all equal to ``bias``; zeros for a model without bias).

    Raises
    ------
    TypeError
        For a model that is not an Autoencoder, or arguments of the wrong type.
    ValueError
        For K ≥ D, a negative scale, a nonzero ``bias`` on a model without a bias, or
        weights too large for memory.
    """
    check_type("model", model, Autoencoder, "Autoencoder(K=2)")
    D = check_integer("D", D, minimum=2)
    model.check_dimension(D)
    scale = check_non_negative("initial weight scale", scale)
    bias = check_real("initial bias", bias)
    if bias != 0 and not model.has_bias:
        # it would be dropped: the model's units have no bias to start from it
        raise ValueError(f"initial bias = {bias:g} given, but the model has no bias (make it "
                         "with bias='trained' or 'fixed')")
    check_rng(rng)
    check_cost(f"initial weights of K = {model.K} units in D = {D}", nbytes=8.0 * 3 * model.K * D)
    W = rng.normal(0.0, scale, (model.K, D))
    V = rng.normal(0.0, scale, (model.K, D))
    if model.tied:
        W = V / np.sqrt(D)
    m = np.full(model.K, float(bias) if model.has_bias else 0.0)
    return W, V, m


@dataclass(frozen=True)
class OrderParameters:
    """The K×K order parameters of the spec (and the biases ``m``).

    ``Q = WΩWᵀ/D``, ``R = VΩWᵀ/D^{3/2}``, ``T = VΩVᵀ/D²``, ``T0 = VVᵀ/D``.
    ``trace`` is ``tr Ω / D``, needed for the error.
    """

    Q: np.ndarray
    R: np.ndarray
    T: np.ndarray
    T0: np.ndarray
    m: np.ndarray
    trace: float

    @classmethod
    def from_weights(cls, spectrum: Spectrum, W, V, m=None) -> "OrderParameters":
        """Exact order parameters of finite-D weights written in the eigenbasis."""
        check_type("spectrum", spectrum, Spectrum, "spiked_covariance(D, spikes, bulk)")
        W, V = _check_weights(spectrum, W, V)
        D = spectrum.D
        rho = spectrum.all_eigenvalues
        Wr, Vr = W * rho, V * rho
        m = np.zeros(W.shape[0]) if m is None else _check_biases(m, W.shape[0])
        return cls(Q=Wr @ W.T / D, R=Vr @ W.T / D**1.5, T=Vr @ V.T / D**2,
                   T0=V @ V.T / D, m=m, trace=spectrum.trace / D)


@dataclass(frozen=True)
class State:
    """State of the order-parameter equations: tracked modes, bulk Gram matrix, biases.

    ``Y`` stacks the overlaps of every unit with the tracked modes: ``Y = [A; B]``
    (shape 2K × n_tracked) for untied weights and ``Y = A`` (K × n_tracked) for tied
    ones.  The bulk modes share one eigenvalue, so they all follow the same linear flow
    and are carried exactly by their Gram matrix ``G = Σ_bulk y_τ y_τᵀ`` (same block
    layout as a column of ``Y``).  Build it with :meth:`from_weights` (any weights, e.g. a
    simulation's at any time), :meth:`random` (weights drawn by :func:`initial_weights`) or
    :meth:`from_order_parameters` (overlaps and bulk aggregates given directly).

    Attributes
    ----------
    model : Autoencoder
        The architecture and learning rule the state belongs to.
    spectrum : Spectrum
        The input covariance (its tracked modes and bulk).
    Y : ndarray, shape (P, n_tracked)
        ``A[k, τ] = w_k·e_τ`` (rows 0…K−1) and ``B[k, τ] = v_k·e_τ/√D`` (rows K…2K−1,
        untied only); P = 2K untied, K tied.  Dimensionless.
    G : ndarray, shape (P, P)
        Gram matrix of the same overlaps summed over the bulk modes.
    m : ndarray, shape (K,)
        Encoder biases (zeros without a bias).

    Raises
    ------
    ValueError
        From the constructors, for weights of the wrong shape, non-finite entries or
        inconsistent order parameters.

    References
    ----------
    The variables ``a_kτ``, ``b_kτ`` and the closure of the bulk are derived here (see
    docs/theory.md §§2–4); the order parameters are those of Refinetti & Goldt, ICML 2022,
    arXiv:2201.02115.

    Examples
    --------
    >>> from odesolve import Autoencoder, State, spiked_covariance
    >>> spec = spiked_covariance(D=100, spikes=[2.0, 1.0], bulk=0.5)
    >>> state = State.random(Autoencoder(K=3, activation="erf"), spec, scale=0.1, seed=0)
    >>> state.Y.shape, state.G.shape, state.m.shape
    ((6, 2), (6, 6), (3,))
    >>> state.order_parameters().Q.shape
    (3, 3)
    """

    model: Autoencoder
    spectrum: Spectrum
    Y: np.ndarray
    G: np.ndarray
    m: np.ndarray

    @classmethod
    def from_weights(cls, model: Autoencoder, spectrum: Spectrum, W, V=None, m=None) -> "State":
        """State of given weights ``W, V`` (K×D, eigenbasis of the data).

        For tied weights ``V`` may be omitted (``V = √D W``).

        Raises
        ------
        TypeError
            For a model or spectrum of the wrong type, or weights that are not real numbers.
        ValueError
            For wrong shapes, NaN or inf, K ≥ D, nonzero biases ``m`` on a model without a
            bias, or a state too large for memory.
        """
        _check_model_spectrum(model, spectrum)
        D = spectrum.D
        if V is None:
            if not model.tied:
                raise ValueError("untied models need both W and V")
            V = np.sqrt(D) * as_real_array("W", W)
        W, V = _check_weights(spectrum, W, V)
        if W.shape[0] != model.K:
            raise ValueError(f"weights have {W.shape[0]} rows but the model has K = {model.K}")
        model.check_dimension(D)
        m = _model_biases(model, m)
        n = spectrum.n_tracked
        check_state_cost(model, D, n)
        Z = W if model.tied else np.vstack([W, V / np.sqrt(D)])
        return cls(model, spectrum, Z[:, :n].copy(), Z[:, n:] @ Z[:, n:].T, m)

    @classmethod
    def from_order_parameters(cls, model: Autoencoder, spectrum: Spectrum, A, B=None, *,
                              Q_bulk=None, R_bulk=None, T0_bulk=None, m=None) -> "State":
        """State of given overlaps with the tracked modes and bulk aggregates.

        The bulk parts of the order parameters are ``Q^B = s_b G_aa``, ``R^B = s_b G_ba``
        and ``T0^B = G_bb`` with ``s_b = σ²/D`` and ``G`` the Gram matrix of the overlaps
        summed over the bulk modes, so that ``Q = A diag(s) Aᵀ + Q^B``,
        ``R = B diag(s) Aᵀ + R^B`` and ``T0 = B Bᵀ + T0^B``.  Weights with these order
        parameters exist if and only if ``G`` is positive semi-definite (of rank at most
        the number of bulk modes).

        Parameters
        ----------
        model : Autoencoder
        spectrum : Spectrum
        A : array_like, shape (K, n_tracked)
            Encoder overlaps ``w_k·e_τ`` with the tracked modes.
        B : array_like, shape (K, n_tracked), optional
            Decoder overlaps ``v_k·e_τ/√D`` (untied models; tied ones have ``B = A``).
        Q_bulk, R_bulk, T0_bulk : array_like, shape (K, K), optional
            Bulk parts of ``Q``, ``R`` and ``T0`` (default zero; tied models take
            ``Q_bulk`` only, since their decoder is the encoder).
        m : array_like, shape (K,), optional
            Encoder biases (default zero).

        Raises
        ------
        TypeError
            For a model or spectrum of the wrong type, or values that are not real numbers.
        ValueError
            For wrong shapes, NaN, nonzero biases ``m`` on a model without a bias, bulk
            aggregates without bulk modes, aggregates that no weights have (the bulk Gram
            matrix is not positive semi-definite), or a state too large for memory.

        Examples
        --------
        >>> from odesolve.spec.spectra import spiked_covariance
        >>> spec = spiked_covariance(D=500, spikes=[2.0], bulk=0.1)
        >>> model = Autoencoder(K=1, activation="linear")
        >>> st = State.from_order_parameters(model, spec, [[0.5]], [[0.3]],
        ...                                  Q_bulk=[[0.01]], T0_bulk=[[0.2]])
        >>> ops = st.order_parameters()
        >>> float(ops.Q[0, 0]), float(ops.T0[0, 0])      # 2·0.5² + 0.01, 0.3² + 0.2
        (0.51, 0.29)
        >>> State.from_order_parameters(model, spec, [[0.5]], [[0.3]], Q_bulk=[[0.01]],
        ...                             R_bulk=[[0.1]], T0_bulk=[[0.2]])
        Traceback (most recent call last):
        ...
        ValueError: inconsistent bulk aggregates: no weights have them (their bulk Gram matrix has the eigenvalue -476 < 0; s_b = σ²/D = 0.0002, e.g. R_bulk_kk² <= s_b·Q_bulk_kk·T0_bulk_kk)
        """
        _check_model_spectrum(model, spectrum)
        K, n, D = model.K, spectrum.n_tracked, spectrum.D
        model.check_dimension(D)
        check_state_cost(model, D, n)
        A = check_matrix("A", A, (K, n))
        if model.tied:
            if B is not None or R_bulk is not None or T0_bulk is not None:
                raise ValueError("tied weights: the decoder overlaps are the encoder's (B = A); "
                                 "give A and Q_bulk only")
            blocks = [A]
        else:
            if B is None:
                raise ValueError("untied models need the decoder overlaps B")
            blocks = [A, check_matrix("B", B, (K, n))]
        aggregates = {name: np.zeros((K, K)) if X is None else check_matrix(name, X, (K, K))
                      for name, X in (("Q_bulk", Q_bulk), ("R_bulk", R_bulk),
                                      ("T0_bulk", T0_bulk))}
        s_b = spectrum.bulk / D
        given = [name for name, X in aggregates.items() if np.any(X != 0)]
        if given and spectrum.n_bulk == 0:
            raise ValueError(f"{', '.join(given)} given but the spectrum has no bulk modes")
        if s_b == 0 and any(np.any(aggregates[k] != 0) for k in ("Q_bulk", "R_bulk")):
            raise ValueError("the bulk eigenvalue is 0, so Q_bulk and R_bulk must be 0")
        inv = 1.0 / s_b if s_b > 0 else 0.0
        G_aa = inv * aggregates["Q_bulk"]
        if model.tied:
            G = G_aa
        else:
            G_ba = inv * aggregates["R_bulk"]
            G = np.block([[G_aa, G_ba.T], [G_ba, aggregates["T0_bulk"]]])
        for name in ("Q_bulk", "T0_bulk"):
            if not np.allclose(aggregates[name], aggregates[name].T, rtol=1e-12, atol=0):
                raise ValueError(f"{name} must be symmetric")
        G = 0.5 * (G + G.T)
        smallest = float(np.linalg.eigvalsh(G)[0])
        if smallest < -psd_tolerance(G):
            hint = "" if model.tied else ", e.g. R_bulk_kk² <= s_b·Q_bulk_kk·T0_bulk_kk"
            raise ValueError(f"inconsistent bulk aggregates: no weights have them (their bulk "
                             f"Gram matrix has the eigenvalue {smallest:.3g} < 0; s_b = σ²/D "
                             f"= {s_b:.3g}{hint})")
        if np.linalg.matrix_rank(G) > spectrum.n_bulk:
            raise ValueError(f"inconsistent bulk aggregates: rank {np.linalg.matrix_rank(G)} "
                             f"exceeds the {spectrum.n_bulk} bulk modes")
        m = _model_biases(model, m)
        return cls(model, spectrum, np.vstack(blocks), G, m)

    @classmethod
    def random(cls, model: Autoencoder, spectrum: Spectrum, scale: float = 0.1,
               seed=0, bias: float = 0.0) -> "State":
        """State of weights drawn by :func:`initial_weights` with ``default_rng(seed)``.

        Raises
        ------
        TypeError
            For a model or spectrum of the wrong type (``spectrum=None``), or arguments of
            the wrong type.
        ValueError
            As :func:`initial_weights` (a nonzero ``bias`` on a model without a bias, …),
            or for a state too large for memory, before anything is drawn.
        """
        _check_model_spectrum(model, spectrum)
        rng = np.random.default_rng(check_seed("seed", seed))
        model.check_dimension(spectrum.D)
        check_state_cost(model, spectrum.D, spectrum.n_tracked)
        W, V, m = initial_weights(model, spectrum.D, scale, rng, bias)
        return cls.from_weights(model, spectrum, W, V, m)

    @property
    def A(self) -> np.ndarray:
        """Encoder overlaps ``w_k·e_τ`` with the tracked modes, shape (K, n_tracked)."""
        return self.Y[: self.model.K]

    @property
    def B(self) -> np.ndarray:
        """Decoder overlaps ``v_k·e_τ/√D`` with the tracked modes, shape (K, n_tracked)."""
        return self.Y[-self.model.K:]

    def order_parameters(self) -> OrderParameters:
        """Q, R, T, T0 and m of this state (exact for the weights it was built from)."""
        return order_parameters_of(self.Y, self.G, self.m, self.spectrum, self.model.K)

    def check_symmetric_gram(self) -> None:
        """Refuse a bulk Gram matrix G that is not symmetric beyond rounding.

        The flow is derived for a Gram matrix (G = Gᵀ, its flow symmetric too, docs/
        theory.md § 4), and CVODE integrates G's lower triangle only
        (odesolve.integrator.packing): a raw ``State(...)`` or a perturbed
        ``with_vector`` with G ≠ Gᵀ would give each method another curve.  Every
        constructor, and every record of an integration, is symmetric to rounding.

        Raises
        ------
        ValueError
            If the largest |G − Gᵀ| exceeds 10⁻¹² of G's largest entry (the tolerance of
            :meth:`from_order_parameters` for the bulk aggregates).
        """
        G = np.asarray(self.G)
        if G.ndim != 2 or G.shape[0] != G.shape[1] or not G.size:
            return
        asymmetry, scale = float(np.max(np.abs(G - G.T))), float(np.max(np.abs(G)))
        if asymmetry > 1e-12 * scale:          # NaN passes: the start's checks report it
            raise ValueError(f"the state's bulk Gram matrix G is not symmetric (largest "
                             f"|G − Gᵀ| = {asymmetry:.3g}, largest |G| = {scale:.3g}): build "
                             "states with State.random, from_weights or "
                             "from_order_parameters")

    def to_vector(self) -> np.ndarray:
        """Flatten to the ODE state vector ``[Y, G, m]``."""
        return np.concatenate([self.Y.ravel(), self.G.ravel(), self.m])

    def with_vector(self, y: np.ndarray) -> "State":
        """A copy of this state holding the values of the flat vector ``y``."""
        nY, nG = self.Y.size, self.G.size
        y = np.asarray(y, dtype=float)
        return replace(self, Y=y[:nY].reshape(self.Y.shape),
                       G=y[nY:nY + nG].reshape(self.G.shape), m=y[nY + nG:].copy())


def order_parameters_of(Y, G, m, spectrum: Spectrum, K: int) -> OrderParameters:
    """Order parameters from tracked overlaps ``Y`` and bulk Gram matrix ``G``.

    ``Y`` (..., P, n), ``G`` (..., P, P) and ``m`` (..., K) may carry leading dimensions
    (the records of a trajectory): Q, R, T, T0 and m then carry them too, as
    C-contiguous arrays.
    """
    s_bulk = spectrum.bulk / spectrum.D
    # sums in float64: other overlaps through the package's one conversion, which
    # refuses complex ones (a cast would drop their imaginary parts)
    Y, G = (a if isinstance(a, np.ndarray) and a.dtype == np.float64 else as_real_array(name, a)
            for name, a in (("Y", Y), ("G", G)))
    # the K × K blocks only (Σ_τ s_τ y_τ y_τᵀ and Σ_τ y_τ y_τᵀ over all modes): the whole
    # P × P products, then cut, did twice the work and made four P × P arrays per record
    # (a K = 64 trajectory of 200 records: 0.03–0.5 s, the slow ones in allocating them)
    A, B = Y[..., :K, :], Y[..., -K:, :]
    At, Bt, Bs = np.swapaxes(A, -1, -2), np.swapaxes(B, -1, -2), B * spectrum.s
    Q = (A * spectrum.s) @ At
    Q += s_bulk * G[..., :K, :K]
    R = Bs @ At
    R += s_bulk * G[..., -K:, :K]
    T = Bs @ Bt
    T += s_bulk * G[..., -K:, -K:]
    T0 = B @ Bt
    T0 += G[..., -K:, -K:]
    return OrderParameters(Q=Q, R=R, T=T, T0=T0, m=np.array(m, dtype=float),
                           trace=spectrum.trace / spectrum.D)


def _check_model_spectrum(model, spectrum) -> None:
    check_type("model", model, Autoencoder, "Autoencoder(K=2)")
    check_type("spectrum", spectrum, Spectrum, "spiked_covariance(D, spikes, bulk)")


def _check_biases(m, K: int) -> np.ndarray:
    """K real, finite biases (a copy)."""
    m = check_vector("biases m", m)
    if m.shape != (K,):
        raise ValueError(f"biases m must have shape ({K},), got {m.shape}")
    return m.copy()


def _model_biases(model: Autoencoder, m) -> np.ndarray:
    """The biases of a state of ``model``: zeros by default; nonzero ones only for a model
    with a bias (they would otherwise be carried but never used)."""
    m = np.zeros(model.K) if m is None else _check_biases(m, model.K)
    if not model.has_bias and np.any(m != 0):
        raise ValueError("the model has no bias: m must be zero (or the model made with "
                         "bias='trained' or 'fixed')")
    return m


def _check_weights(spectrum: Spectrum, W, V):
    # as real numbers: complex weights would lose their imaginary part with only a warning
    W = as_real_array("W", W)
    V = as_real_array("V", V)
    if W.ndim != 2 or W.shape[1] != spectrum.D:
        raise ValueError(f"W must have shape (K, {spectrum.D}), got {W.shape}")
    if V.shape != W.shape:
        raise ValueError(f"V must have the shape of W {W.shape}, got {V.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(V))):
        raise ValueError("weights contain NaN or inf")
    return W, V
