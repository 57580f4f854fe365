"""Where the D → ∞ equations describe SGD at the state's finite D: the regime checks of a
run, issued by :func:`~odesolve.integrator.integrate` and the workflow alike.

Each note carries the number that says so.  Measured (scratch runs of 2026-12-01, erf,
K = 2, spikes [s, 0.6 s], bulk 0.05, η = 1, two SGD seeds against the theory): with
s = 100 at D = 1000 (η·s_max/D = 0.1) SGD ended 67% above the theory (ε = 24.8 against
14.8) and was 16% of the theory's peak off along the way; at D = 4000 (0.025) it was 2.7%
off, as close as with s = 10 at D = 1000 (0.01, 3.5%, within the two seeds' noise).
"""
from __future__ import annotations

import numpy as np

from ..protocols import Protocol
from ..spec.spectra import Spectrum

#: The D → ∞ equations hold while η/D is small: above this SGD's own noise and its
#: stability limit (neither is in the equations) change the curve.
MAX_LR_OVER_D = 0.1
#: ... and while a step along the input's largest direction, η·s_max/D, is small: SGD
#: moves the overlap of that direction by this fraction of itself per sample (see above).
MAX_SPIKE_STEP = 0.05
#: The strict closure (``bulk = "limit"``) drops the bulk eigenvalue σ²/D from the flow:
#: harmless while the dropped term integrated over the run, η·σ²·t/D, is small.
MAX_BULK_DRIFT = 0.5


def regime_notes(spectrum: Spectrum, lr: float, protocol: Protocol, times, bulk: str) -> list[str]:
    """Messages, each with its number, for a run outside the regime where the theory is
    exact.

    Parameters
    ----------
    spectrum : Spectrum
        Covariance of the inputs (its D and its largest eigenvalue s_max).
    lr : float
        Learning rate η.
    protocol : odesolve.protocols.Protocol
        Schedule, layer rates and decays: the largest step is the schedule's peak over
        ``times`` times the largest layer rate.
    times : array_like
        The run's output times (the last is its end).
    bulk : {"limit", "finite"}
        The bulk closure.

    Returns
    -------
    list of str
        η/D above :data:`MAX_LR_OVER_D` (with a protocol: the largest step η(t)·c/D of a
        layer, and the decay per step η(t)·c·κ/D); η·s_max/D above
        :data:`MAX_SPIKE_STEP`; for the strict closure η·σ²·t/D above
        :data:`MAX_BULK_DRIFT`.  Empty inside the regime.
    """
    notes, D, times = [], spectrum.D, np.asarray(times, dtype=float)
    s_max = max(float(np.max(spectrum.s, initial=0.0)), float(spectrum.bulk))
    if protocol.is_plain:
        peak = lr
        if lr / D > MAX_LR_OVER_D:
            notes.append(f"η/D = {lr / D:.3g} > {MAX_LR_OVER_D:g}: the D → ∞ equations hold "
                         f"for small η/D; finite-D SGD at η = {lr:g}, D = {D} may not follow "
                         "them")
    else:
        # the largest step of the run: the schedule's peak on the output times, times
        # the largest layer rate; a decay c·κ multiplies the weights by 1 − η c κ/D a step
        top = lr * max(float(protocol.schedule(t)) for t in [0.0, *times])
        peak = top * max(protocol.encoder_rate, protocol.decoder_rate, protocol.bias_rate)
        decay = top * max(protocol.encoder_rate * protocol.encoder_decay,
                          protocol.decoder_rate * protocol.decoder_decay)
        for what, size in (("η(t)·c/D", peak / D), ("η(t)·c·κ/D", decay / D)):
            if size > MAX_LR_OVER_D:
                notes.append(f"the largest {what} of the protocol is {size:.3g} > "
                             f"{MAX_LR_OVER_D:g}: the D → ∞ equations hold for small steps; "
                             f"finite-D SGD at D = {D} may not follow them")
    if peak * s_max / D > MAX_SPIKE_STEP:
        notes.append(f"η·s_max/D = {peak * s_max / D:.3g} > {MAX_SPIKE_STEP:g} (s_max = "
                     f"{s_max:.3g}, the input's largest eigenvalue): the D → ∞ equations hold "
                     "for small steps along it; finite-D SGD at D = "
                     f"{D} may not follow them")
    drift = lr * spectrum.bulk * times[-1] / D
    if bulk == "limit" and spectrum.n_bulk and drift > MAX_BULK_DRIFT:
        notes.append(f"η·σ²·t/D = {drift:.3g} > {MAX_BULK_DRIFT:g} at t = {times[-1]:g}: the "
                     "strict closure (bulk = \"limit\") drops the bulk eigenvalue σ²/D, no "
                     "longer negligible; use theory.bulk = \"finite\" for this D")
    return notes
