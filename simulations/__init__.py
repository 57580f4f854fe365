"""Finite-D online SGD of two-layer autoencoders, to lay over the theory of ``odesolve``.

A separate package from the theory: it shares only the vocabulary (the model, the
spectra and image data sets of :mod:`odesolve.spec`, the initial weights and order
parameters of :mod:`odesolve.state`, the time grid, the emitter and writer of generated
modules, and the theory's check that an activation's Gaussian averages exist) and never
imports ``odesolve.workflow``.  Scalings are those of the theory (time ``t = samples/D``).

* :func:`simulate`, :func:`simulate_seeds` → :class:`SimulationResult` (online SGD on
  Gaussian inputs of any :class:`odesolve.Spectrum`, or on a finite data set);
* :func:`train_finite` → :class:`FiniteTrainingResult` (epochs of mini-batch SGD);
* :func:`sgd_step`: one step, in place.

Modules: :mod:`.online`, :mod:`.finite`, :mod:`.results`, :mod:`.step` (kernels per
activation), :mod:`.kernels` (the compiled loop, a template).
"""
from odesolve.spec.images import Dataset

from .finite import train_finite
from .online import simulate, simulate_seeds
from .results import FiniteTrainingResult, SimulationResult
from .step import sgd_step

__all__ = ["Dataset", "FiniteTrainingResult", "SimulationResult", "sgd_step", "simulate",
           "simulate_seeds", "train_finite"]
