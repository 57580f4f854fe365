"""Every exception of the package: theory, simulator, workflow.

User mistakes are ``ValueError``/``TypeError`` (``ConfigError`` is a ``ValueError`` that
names the file and the key); a run that blows up is a :class:`DivergenceError`."""
from __future__ import annotations

__all__ = ["ConfigError", "DivergenceError", "QuadratureRangeError", "SweepError", "RegimeWarning",
           "CostWarning"]


class DivergenceError(RuntimeError):
    """The dynamics blew up (NaN/inf or a runaway norm).

    Attributes
    ----------
    time : float
        Time ``t`` (samples seen / D) at which the blow-up was detected.
    lr : float
        Learning rate of the run.
    step : int or None
        SGD step, for simulations.
    detail : str
        What was seen (e.g. "the state ran away").
    cause : str or None
        The likely cause, when known (the ODE: its curves at learning rate cη are those at η
        with time rescaled, so the learning rate is never the cause); without one the
        message advises a smaller learning rate (gradient descent, SGD).
    """

    def __init__(self, what: str, time: float, lr: float, step: int | None = None,
                 detail: str = "", cause: str | None = None):
        self.time, self.lr, self.step, self.cause = float(time), float(lr), step, cause
        self.detail = detail
        where = f"t = {time:.6g}" + (f" (SGD step {step})" if step is not None else "")
        msg = f"{what} diverged at {where} with learning rate {lr:g}"
        advice = f"; likely cause: {cause}" if cause else "; try a smaller learning rate"
        super().__init__(msg + (f": {detail}" if detail else "") + advice)


class ConfigError(ValueError):
    """An invalid configuration, naming the file and the offending key.

    Attributes
    ----------
    source : str
        File the configuration came from (or a description such as ``"<overrides>"``).
    key : str or None
        Dotted key, e.g. ``"train.lr"`` (``None`` for errors about the whole file).
    """

    def __init__(self, source, key: str | None, message: str):
        self.source, self.key, self.reason = str(source), key, message
        where = f"{self.source}: {key}" if key else self.source
        super().__init__(f"{where}: {message}")


class QuadratureRangeError(ValueError):
    """A Gaussian average computed by quadrature is not accurate at this variance: its
    integrand is not negligible at the edge of the quadrature's range, ±10 standard
    deviations (an activation that grows nearly as fast as the Gaussian decays, e.g.
    exp(|x|^1.5), at a large pre-activation variance).  Raised by the generated code
    (odesolve.derive.quadrature) instead of a silently truncated number."""


class SweepError(RuntimeError):
    """Some points of a sweep failed (the others are cached; re-running retries these)."""


class RegimeWarning(UserWarning):
    """A run left the regime where its answer is exact; the message carries the number
    that says so (η/D, η·σ²·t/D, dt·ρ for Euler, the rise of an SGD error)."""


class CostWarning(UserWarning):
    """A valid request that will take long; the message carries the estimate."""


class ToleranceWarning(UserWarning):
    """The error a solver returned does not converge as its absolute tolerance falls:
    runs at smaller tolerances disagree by the fraction the message names."""
