"""odesolve: exact high-dimensional theory of shallow autoencoders trained by online SGD.

The pipeline, one module per stage::

    data, model  ->  derive  ->  codegen  ->  integrate  ->  Trajectory  ->  plotting
    (what)           (sympy)     (numba)      (scipy)

plus :mod:`odesolve.limits` (fundamental limits in the proportional regime) and the
separate SGD simulator package ``simulations``.
"""
from importlib.metadata import PackageNotFoundError, version

from .activations import Activation, resolve_activation
from .codegen import CompiledModel, compile_model
from .data import (Spectrum, covariance_spectrum, given_spectrum, sinusoidal_spiked_covariance,
                   spiked_covariance)
from .derive import Equations, derive_equations
from .error import generalisation_error
from .errors import DivergenceError
from .integrate import Trajectory, integrate
from .model import Autoencoder
from .state import OrderParameters, State, initial_weights

try:
    __version__ = version("odesolve")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+src"

__all__ = [
    "Activation", "Autoencoder", "CompiledModel", "DivergenceError", "Equations",
    "OrderParameters", "Spectrum", "State", "Trajectory", "compile_model",
    "covariance_spectrum", "derive_equations", "generalisation_error", "given_spectrum",
    "initial_weights", "integrate", "resolve_activation", "sinusoidal_spiked_covariance",
    "spiked_covariance",
]
