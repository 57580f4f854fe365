"""Training protocols: learning-rate schedules, per-layer rates, weight decay, mini-batches.

A :class:`Protocol` says how SGD is run beyond the base learning rate η of the spec; the
theory (:func:`odesolve.integrate`, ``protocol=``) and the simulator
(:func:`simulations.simulate`, ``protocol=``) read the same object.  One step of the
protocol on a mini-batch of B fresh samples, at time ``t = (samples seen)/D``::

    W ← W − c_w (η(t)/D) (mean_batch ∇_W ℓ + κ_w W)
    V ← V − c_v  η(t)    (mean_batch ∇_V ℓ + (κ_v/D) V)
    m ← m − c_m (η(t)/D)  mean_batch ∂ℓ/∂m

with ``η(t) = η · schedule(t)``.  The rates ``c_w, c_v, c_m`` multiply the spec's scalings,
and the decays ``κ_w, κ_v`` are written in the scalings where they stay O(1) in the
D → ∞ equations: per unit time the overlaps shrink at rates ``η c_w κ_w`` (encoder,
``a_kτ = w_k·e_τ``) and ``η c_v κ_v`` (decoder, ``b_kτ = v_k·e_τ/√D``).  The fixed points
are the stationary points of ``ε + κ_w |W|²/2 + κ_v |V|²/(2D)`` whatever the rates.

What each ingredient does to the D → ∞ equations (derived in ``docs/theory.md`` §8):

* **schedule**: ``η → η(t)`` in every drift (the flow of ``dy/dt = η(sS + N)y`` at the
  step's time);
* **rates**: the rows of the flow matrices of the encoder block ``a``, of the decoder block
  ``b`` and the bias drift are multiplied by ``c_w``, ``c_v``, ``c_m``;
* **decay**: ``−c_w κ_w`` and ``−c_v κ_v`` on the diagonal of the encoder and decoder
  blocks of ``N`` (so the bulk Gram matrix decays too);
* **batch size B**: a step averages B per-sample increments, so the mean increment per
  step is that of online SGD while a unit of time holds D/B steps: the D → ∞ drift is that
  of online SGD at the rate ``η/B`` (equivalently, at rate η in units of steps/D), and the
  variance of a step's increment, which sets the O(1/D) fluctuations, is divided by B.

Tied weights have one vector per unit, hence one rate and one decay: ``decoder_rate``
and ``decoder_decay`` must equal the encoder's.

>>> p = Protocol(schedule=power_law(tau=10.0, beta=1.0), decoder_rate=2.0)
>>> float(p.schedule(10.0))
0.5
>>> p.describe()["schedule"]
'power_law(tau=10, beta=1)'
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._checks import check_integer, check_non_negative, check_positive, check_vector

__all__ = ["Schedule", "Protocol", "constant", "piecewise", "power_law", "exponential",
           "SCHEDULE_KINDS", "as_protocol", "noise_floor"]

#: Built-in schedules (``[schedule] kind``).
SCHEDULE_KINDS = ("constant", "piecewise", "power_law", "exponential")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: ``η(t) = η · factor(t)``, with ``t`` = samples seen / D.

    Build one with :func:`constant`, :func:`piecewise`, :func:`power_law`,
    :func:`exponential`, or wrap any callable ``t -> factor`` with :meth:`of`.

    Attributes
    ----------
    kind : str
        One of :data:`SCHEDULE_KINDS`, or ``"callable"``.
    params : tuple of (name, value)
        The parameters, as recorded in results files.
    breakpoints : tuple of float
        Times where the factor jumps (piecewise schedules).
    """

    kind: str
    params: tuple = ()
    breakpoints: tuple = ()
    function: Callable | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, schedule) -> "Schedule":
        """A :class:`Schedule` from ``None`` (constant), a Schedule, or a callable."""
        if schedule is None:
            return constant()
        if isinstance(schedule, Schedule):
            return schedule
        if callable(schedule):
            name = getattr(schedule, "__name__", type(schedule).__name__)
            return cls("callable", (("function", name),), (), schedule)
        raise TypeError(f"schedule must be a Schedule or a callable t -> factor, "
                        f"got {type(schedule).__name__}")

    @property
    def is_constant(self) -> bool:
        return self.kind == "constant"

    def __call__(self, t):
        """The factor at time(s) ``t`` (scalar for a scalar, array for an array).

        Raises
        ------
        ValueError
            If a factor is negative or not finite.
        """
        t = np.asarray(t, dtype=float)
        if self.kind == "callable":
            # a user function may branch on t: evaluate it point by point
            values = np.array([_factor(self.function(float(x)), x) for x in t.ravel()])
            values = values.reshape(t.shape)
        else:
            values = self._builtin(t)
        bad = ~(np.isfinite(values) & (values >= 0))
        if np.any(bad):
            where = float(t.ravel()[np.argmax(bad.ravel())])
            raise ValueError(f"learning-rate schedule {self.label()} gave "
                             f"{values.ravel()[np.argmax(bad.ravel())]!r} at t = {where:g}: "
                             "factors must be finite and >= 0")
        return float(values) if values.ndim == 0 else values

    def _builtin(self, t):
        p = dict(self.params)
        if self.kind == "constant":
            return np.ones_like(t)
        if self.kind == "piecewise":
            return np.asarray(p["factors"])[np.searchsorted(p["times"], t, side="right")]
        if self.kind == "power_law":
            return (1.0 + t / p["tau"]) ** (-p["beta"])
        return np.exp(-t / p["tau"])

    def label(self) -> str:
        """``kind(name=value, ...)``, as stored in results files."""
        def fmt(v):
            return "[" + ", ".join(f"{x:g}" for x in v) + "]" if isinstance(v, tuple) else (
                f"{v:g}" if isinstance(v, float) else str(v))
        return f"{self.kind}(" + ", ".join(f"{k}={fmt(v)}" for k, v in self.params) + ")"


def _factor(value, t):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"learning-rate schedule returned {value!r} at t = {float(t):g}, "
                        "expected a real number")
    return float(value)


def constant() -> Schedule:
    """``η(t) = η``."""
    return Schedule("constant")


def piecewise(times, factors) -> Schedule:
    """``η(t) = η · factors[i]`` for ``times[i-1] <= t < times[i]`` (``len(factors) =
    len(times) + 1``; the first factor holds before ``times[0]``).

    >>> s = piecewise([10.0, 20.0], [1.0, 0.5, 0.1])
    >>> s(np.array([0.0, 10.0, 25.0]))
    array([1. , 0.5, 0.1])
    """
    times = tuple(check_positive("schedule time", float(t))
                  for t in check_vector("piecewise schedule change times", times))
    factors = tuple(check_non_negative("schedule factor", float(f))
                    for f in check_vector("piecewise schedule factors", factors))
    if len(times) == 0:
        raise ValueError("a piecewise schedule needs at least one change time")
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"schedule times must be strictly increasing, got {list(times)}")
    if len(factors) != len(times) + 1:
        raise ValueError(f"a piecewise schedule with {len(times)} change times needs "
                         f"{len(times) + 1} factors, got {len(factors)}")
    return Schedule("piecewise", (("times", times), ("factors", factors)), times)


def power_law(tau: float, beta: float) -> Schedule:
    """``η(t) = η / (1 + t/τ)^β`` (``β = 1``: the Robbins-Monro ``1/t`` decay)."""
    return Schedule("power_law", (("tau", check_positive("schedule tau", tau)),
                                  ("beta", check_non_negative("schedule beta", beta))))


def exponential(tau: float) -> Schedule:
    """``η(t) = η · exp(−t/τ)``."""
    return Schedule("exponential", (("tau", check_positive("schedule tau", tau)),))


@dataclass(frozen=True)
class Protocol:
    """How SGD is run: schedule, per-layer rate multiples, weight decay, batch size.

    Parameters
    ----------
    schedule : Schedule or callable, optional
        ``t -> factor`` multiplying the learning rate (default: constant).
    encoder_rate, decoder_rate, bias_rate : float
        Multiples ``c_w, c_v, c_m > 0`` of the spec's rates ``η/D`` (encoder, bias) and
        ``η`` (decoder).
    encoder_decay, decoder_decay : float
        L2 coefficients ``κ_w, κ_v >= 0`` (see the module doc for their scaling).
    batch_size : int
        Fresh samples per step, B >= 1 (their increments are averaged).

    References
    ----------
    Derived here, see docs/theory.md §8.
    """

    schedule: Schedule = field(default_factory=constant)
    encoder_rate: float = 1.0
    decoder_rate: float = 1.0
    bias_rate: float = 1.0
    encoder_decay: float = 0.0
    decoder_decay: float = 0.0
    batch_size: int = 1

    def __post_init__(self):
        object.__setattr__(self, "schedule", Schedule.of(self.schedule))
        for name in ("encoder_rate", "decoder_rate", "bias_rate"):
            object.__setattr__(self, name, check_positive(name.replace("_", " "),
                                                          getattr(self, name)))
        for name in ("encoder_decay", "decoder_decay"):
            object.__setattr__(self, name, check_non_negative(name.replace("_", " "),
                                                              getattr(self, name)))
        object.__setattr__(self, "batch_size", check_integer("batch size", self.batch_size,
                                                             minimum=1))

    @property
    def is_plain(self) -> bool:
        """Whether this is plain online SGD at a constant rate (the spec's protocol)."""
        return self == Protocol()

    def check_model(self, model) -> None:
        """Refuse what a model cannot do (tied weights: one rate and one decay per unit)."""
        if model.tied and (self.decoder_rate != self.encoder_rate
                           or self.decoder_decay != self.encoder_decay):
            raise ValueError("tied weights have one vector per unit: decoder_rate and "
                             "decoder_decay must equal encoder_rate and encoder_decay")

    def lr_at(self, lr: float, t):
        """The drift's learning rate at time ``t``: ``η · schedule(t) / B`` (see module doc)."""
        return lr * self.schedule(t) / self.batch_size

    def flow_multipliers(self, model):
        """Per-row multiples of the flow and the decay (the theory's hook).

        Returns
        -------
        rates : ndarray, shape (P + K,)
            Multiple of each row of ``dy_τ/dt`` (P = 2K untied ``[a; b]``, K tied), then of
            each bias drift.
        decay : ndarray, shape (P,)
            ``c κ`` subtracted on the diagonal of each row.
        """
        self.check_model(model)
        K = model.K
        blocks = [(self.encoder_rate, self.encoder_decay)]
        if not model.tied:
            blocks.append((self.decoder_rate, self.decoder_decay))
        rates = np.concatenate([np.full(K, c) for c, _ in blocks] + [np.full(K, self.bias_rate)])
        decay = np.concatenate([np.full(K, c * kappa) for c, kappa in blocks])
        return rates, decay

    def describe(self) -> dict:
        """Plain values of every field (results files record them)."""
        return {"schedule": self.schedule.label(), "encoder_rate": self.encoder_rate,
                "decoder_rate": self.decoder_rate, "bias_rate": self.bias_rate,
                "encoder_decay": self.encoder_decay, "decoder_decay": self.decoder_decay,
                "batch_size": self.batch_size}


def as_protocol(protocol) -> Protocol:
    """``None`` → plain SGD; a :class:`Protocol` as is; anything else is a TypeError."""
    if protocol is None:
        return Protocol()
    if not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be an odesolve.protocols.Protocol, "
                        f"got {type(protocol).__name__}")
    return protocol


def noise_floor(model, spectrum, protocol: Protocol) -> float:
    """``c_v² σ² n_bulk / D²``: times ``(η(t)/B)² E[g gᵀ]`` it is the finite-D drift
    ``dT0^B/dt`` that SGD's noise gives the bulk decoder (``integrate(finite_size=True)``).

    Raises
    ------
    ValueError
        For what it is not derived for: tied weights, truncated SGD, Sanger's rule, and
        spectra without a bulk.

    References
    ----------
    Derived here, see docs/theory.md §8.
    """
    if model.tied or model.rule != "sgd":
        raise ValueError("finite_size is derived for untied vanilla SGD only "
                         f"(got tied={model.tied}, rule={model.rule!r})")
    if spectrum.n_bulk == 0:
        raise ValueError("finite_size needs a spectrum with a bulk (spikes + bulk): with every "
                         "mode tracked the noise acts on individual modes, which it does not model")
    return protocol.decoder_rate**2 * spectrum.bulk * spectrum.n_bulk / spectrum.D**2
