"""One BLAS thread for small matrices: the one place that limits BLAS thread pools.

The solvers and the training loops multiply vectors and matrices of a few hundred
numbers: waking a BLAS thread pool for each product costs more than the product, and with
the cores shared it is ruinous (20× slower ODE runs with 2 threads; gradient descent at
d = 100 took 5 minutes instead of 6 s, issue 11).  The controller is built once: building
one scans the loaded libraries (~4 ms, a tenth of a small curve's integration).
"""
from __future__ import annotations

import functools

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread", "small_matrices"]


@functools.lru_cache(maxsize=None)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def one_blas_thread():
    """Context manager: BLAS limited to one thread inside it."""
    return _controller().limit(limits=1, user_api="blas")


def small_matrices(function):
    """Decorator: run ``function`` with one BLAS thread (:func:`one_blas_thread`)."""
    @functools.wraps(function)
    def one_thread(*args, **kwargs):
        with one_blas_thread():
            return function(*args, **kwargs)
    return one_thread
