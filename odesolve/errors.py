"""Every exception of the package: theory, simulator, workflow.

User mistakes are ``ValueError``/``TypeError`` (``ConfigError`` is a ``ValueError`` that
names the file and the key); a run that blows up is a :class:`DivergenceError`."""
from __future__ import annotations

__all__ = ["ConfigError", "DivergenceError", "SweepError"]


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
    """

    def __init__(self, what: str, time: float, lr: float, step: int | None = None, detail: str = ""):
        self.time, self.lr, self.step = float(time), float(lr), step
        where = f"t = {time:.6g}" + (f" (SGD step {step})" if step is not None else "")
        msg = f"{what} diverged at {where} with learning rate {lr:g}"
        super().__init__(msg + (f": {detail}" if detail else "") +
                         "; try a smaller learning rate")


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


class SweepError(RuntimeError):
    """Some points of a sweep failed (the others are cached; re-running retries these)."""
