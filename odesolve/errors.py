"""Exceptions shared by the theory and the simulator."""
from __future__ import annotations

__all__ = ["DivergenceError"]


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
