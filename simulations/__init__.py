"""Finite-D online SGD of two-layer autoencoders, to lay over the theory of ``odesolve``.

A separate package from the theory: it shares only the conventions (model, scalings,
time ``t = samples/D``, initial weights, order parameters) through ``odesolve``'s data,
model and state modules, and measures the test error by Monte Carlo.

* :func:`simulate`, :func:`simulate_seeds` → :class:`SimulationResult` (online SGD on
  Gaussian inputs of any :class:`odesolve.data.Spectrum`, or on a finite data set);
* :func:`train_finite` → :class:`FiniteTrainingResult` (epochs of mini-batch SGD);
* :mod:`simulations.datasets`: offline data sets and loaders for CIFAR-10/Fashion-MNIST.
"""
from . import datasets
from .datasets import Dataset
from .sgd import (FiniteTrainingResult, SimulationResult, sgd_step, simulate, simulate_seeds,
                  train_finite)

__all__ = ["Dataset", "FiniteTrainingResult", "SimulationResult", "datasets", "sgd_step",
           "simulate", "simulate_seeds", "train_finite"]
