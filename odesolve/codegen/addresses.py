"""How the flow kernels call a family's two generated functions: by the address of their
machine code.

The kernels (:mod:`odesolve.codegen.kernels`: order parameters, flow products, solver
checks, Euler steps) are the same for every family; what a family adds is
``coefficients(Q, R, T0, m, S, N, dm)`` and ``error_excess(Q, R, T0, m)``, generated
per (activation, tied, rule, bias).  Called directly, numba would link each family's
code into the kernels and type, optimise and emit them again for every family: ≈ 3 s of
the 4 s that erf's family took to compile (2-core machine, 2026-12-02).  Called through
an address, the kernels compile once per installation (numba's cache) and a family
compiles its two functions only (≈ 1.4 s).

A *handle* is what the kernels receive for one of the two functions: in compiled code
the address (an int, see :func:`address`), in plain Python (``jit=False``) the function
itself.  The call goes through numba's own calling convention, so an exception raised
in the family's code (a quadrature out of range) reaches the caller as it would from a
direct call.  The signatures are fixed, C-contiguous writable float64 arrays: an input
the kernels hold in another layout (the biases, a slice of a solver's strided or
read-only state vector) is copied first.

>>> import numpy as np
>>> from numba import njit
>>> @njit
... def error_excess(Q, R, T0, m):
...     return Q[0, 0] - 2.0 * R[0, 0] + T0[0, 0]
>>> @njit
... def kernel(handle, Q):
...     return call_error(handle, Q, Q, Q, Q[0])
>>> one = np.ones((1, 1))
>>> float(kernel(address(error_excess, ERROR), one)), float(kernel.py_func(error_excess.py_func, one))
(0.0, 0.0)
"""
from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

__all__ = ["COEFFICIENTS", "ERROR", "address", "call_coefficients", "call_error"]

_MATRIX = types.float64[:, ::1]
_VECTOR = types.float64[::1]
#: Signature of a family's ``coefficients(Q, R, T0, m, S, N, dm)`` (fills S, N, dm).
COEFFICIENTS = types.void(_MATRIX, _MATRIX, _MATRIX, _VECTOR, _MATRIX, _MATRIX, _VECTOR)
#: Signature of a family's ``error_excess(Q, R, T0, m)``.
ERROR = types.float64(_MATRIX, _MATRIX, _MATRIX, _VECTOR)


def address(dispatcher, signature) -> int:
    """The address of ``dispatcher``'s machine code for ``signature`` (compiled now, or
    loaded from numba's cache): the handle the compiled kernels call.  Valid while the
    dispatcher lives (the compiled model keeps it)."""
    dispatcher.compile(signature.args)
    result = dispatcher.overloads[signature.args]
    return result.library.get_pointer_to_function(result.fndesc.llvm_func_name)


def call_coefficients(handle, Q, R, T0, m, S, N, dm):
    """``coefficients(Q, R, T0, m, S, N, dm)`` of the family whose handle this is."""
    handle(Q, R, T0, m, S, N, dm)


def call_error(handle, Q, R, T0, m):
    """``error_excess(Q, R, T0, m)`` of the family whose handle this is."""
    return handle(Q, R, T0, m)


def _call_at(signature):
    """An intrinsic ``(address, *arguments)`` calling the function of ``signature`` at
    ``address`` with numba's calling convention (its error status passed on)."""
    def codegen(context, builder, sig, args):
        function = context.call_conv.get_function_type(signature.return_type, signature.args)
        pointer = builder.inttoptr(args[0], function.as_pointer())
        status, result = context.call_conv.call_function(
            builder, pointer, signature.return_type, signature.args, args[1:])
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return result

    def typer(typingctx, handle, *arguments):
        if not isinstance(handle, types.Integer):
            return None
        if tuple(arguments) != tuple(signature.args):
            raise TypingError(f"a family's function takes {signature.args}, not {arguments} "
                              "(the kernels pass C-contiguous float64 arrays)")
        return signature.return_type(handle, *signature.args), codegen

    return typer


# numba's intrinsics take no *args: one typer each, of the signature's arity
_coefficients_typer, _error_typer = _call_at(COEFFICIENTS), _call_at(ERROR)


@intrinsic
def _call_coefficients(typingctx, handle, Q, R, T0, m, S, N, dm):
    return _coefficients_typer(typingctx, handle, Q, R, T0, m, S, N, dm)


@intrinsic
def _call_error(typingctx, handle, Q, R, T0, m):
    return _error_typer(typingctx, handle, Q, R, T0, m)


def _contiguous(x):
    """``x`` as the signatures' C-contiguous writable array (compiled: a copy if not)."""
    return x


@overload(_contiguous)
def _contiguous_compiled(x):
    if isinstance(x, types.Array) and x.layout == "C" and x.mutable:
        return lambda x: x
    return lambda x: x.copy()


@overload(call_coefficients)
def _call_coefficients_compiled(handle, Q, R, T0, m, S, N, dm):
    return lambda handle, Q, R, T0, m, S, N, dm: _call_coefficients(
        handle, _contiguous(Q), _contiguous(R), _contiguous(T0), _contiguous(m), S, N, dm)


@overload(call_error)
def _call_error_compiled(handle, Q, R, T0, m):
    return lambda handle, Q, R, T0, m: _call_error(handle, _contiguous(Q), _contiguous(R),
                                                   _contiguous(T0), _contiguous(m))
