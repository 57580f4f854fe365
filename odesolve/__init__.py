"""odesolve: exact high-dimensional theory of shallow autoencoders trained by online SGD.

The pipeline, one folder or module per stage, imports pointing one way (a stage imports
only earlier ones)::

    spec/          what is learnt: spectra, image data sets, activations, the model
    derive/        sympy: the order-parameter equations and their Gaussian averages
    codegen/       cse → numba source on disk → compiled module
    state.py       initial conditions and order parameters
    integrator/    scipy-class solvers, the method registry, the time grid
    trajectory.py  the solution and the generalisation error
    analysis.py    reduced flows, fixed points, Jacobians
    workflow/      TOML configs, experiments, results files, sweeps, plots, the CLI
    figures/       one module per paper figure

beside them :mod:`odesolve.limits` (fundamental limits in the proportional regime) and the
separate SGD simulator package :mod:`simulations`.  See ``docs/architecture.md``.

References
----------
.. [1] M. Refinetti and S. Goldt, "The dynamics of representation learning in shallow,
   non-linear autoencoders", ICML 2022, arXiv:2201.02115.
.. [2] A. Shevchenko, K. Kögler, H. Hassani and M. Mondelli, "Fundamental limits of
   two-layer autoencoders, and achieving them with gradient methods", ICML 2023,
   arXiv:2212.13468.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("odesolve")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+src"

# re-exported in pipeline order
from .spec.spectra import (Spectrum, covariance_spectrum, given_spectrum,  # noqa: E402
                           sinusoidal_spiked_covariance, spiked_covariance)
from .spec.activations import Activation, resolve_activation  # noqa: E402
from .spec.model import Autoencoder  # noqa: E402
from .derive import Equations, derive_equations  # noqa: E402
from .codegen import CompiledModel, compile_model  # noqa: E402
from .state import OrderParameters, State, initial_weights  # noqa: E402
from .integrator import integrate  # noqa: E402
from .batch import integrate_batch  # noqa: E402
from .trajectory import Trajectory, generalisation_error  # noqa: E402
from .errors import (ConfigError, CostWarning, DivergenceError, QuadratureRangeError,  # noqa: E402
                     RegimeWarning, ToleranceWarning)

__all__ = [
    "Spectrum", "spiked_covariance", "sinusoidal_spiked_covariance", "given_spectrum",
    "covariance_spectrum", "Activation", "resolve_activation", "Autoencoder", "Equations",
    "derive_equations", "CompiledModel", "compile_model", "OrderParameters", "State",
    "initial_weights", "integrate", "integrate_batch", "Trajectory", "generalisation_error", "ConfigError",
    "DivergenceError", "QuadratureRangeError", "RegimeWarning", "CostWarning", "ToleranceWarning",
]
