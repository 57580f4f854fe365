"""How the flow kernels call a family's two generated functions: by the address of their
machine code.

The kernels (:mod:`odesolve.codegen.kernels`: order parameters, flow products, solver
checks, Euler steps) are the same for every family; what a family adds is
``coefficients(Q, R, T0, m, S, N, dm)`` and ``error_excess(Q, R, T0, m)``, generated
per (activation, tied, rule, bias).  Called directly, numba would link each family's
code into the kernels and type, optimise and emit them again for every family: ≈ 3 s of
the 4 s that erf's family took to compile (2-core machine, 2026-12-02).  Called through
an address, the kernels compile once per installation (numba's cache) and a family
compiles its own functions only.

A *handle* is what the kernels receive for one of the two functions: in compiled code
the address (an int, see :func:`address`) of the family's ``coefficients_raw`` or
``error_raw`` (``templates/family.py.tmpl``), which take the arrays' data pointers and
sizes (:data:`COEFFICIENTS`, :data:`ERROR`) and view them as arrays again; in plain
Python (``jit=False``) the array function itself.  Pointers, not arrays: each array
passed to a function that is not inlined costs its unboxed fields and reference counts
(7 arrays: 100 ns more per call than inlined, 12 ns more as pointers; 2026-12-02).  The
call goes through numba's own calling convention, so an exception raised in the
family's code (a quadrature out of range) reaches the caller as it would from a direct
call.  Inputs the kernels hold in another layout than C-contiguous (a slice of a
strided state vector) are copied first; the outputs are the kernels' own C-contiguous
work arrays.

>>> import numpy as np
>>> from numba import carray, njit
>>> @njit
... def error_raw(Q, R, T0, m, K):
...     return carray(Q, (K, K))[0, 0] - 2.0 * carray(R, (K, K))[0, 0] + carray(T0, (K, K))[0, 0]
>>> @njit
... def kernel(handle, Q):
...     return call_error(handle, Q, Q, Q, Q[0])
>>> one = np.ones((1, 1))
>>> float(kernel(address(error_raw, ERROR), one))
0.0
"""
from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

__all__ = ["COEFFICIENTS", "ERROR", "address", "call_coefficients", "call_error"]

_POINTER = types.CPointer(types.float64)
#: Signature of a family's ``coefficients_raw(Q, R, T0, m, S, N, dm, K, P)``: data
#: pointers of Q, R, T0 (K × K), m (K), S, N (P × P), dm (K), then K and P.
COEFFICIENTS = types.void(*[_POINTER] * 7, types.intp, types.intp)
#: Signature of a family's ``error_raw(Q, R, T0, m, K)``.
ERROR = types.float64(*[_POINTER] * 4, types.intp)


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


def _call_at(signature, outputs):
    """An intrinsic's typer ``(handle, *arrays)``: calls the function of ``signature`` at
    the address ``handle`` with the arrays' data pointers, then K (the first array's
    size) and, for ``coefficients``, P (the first output's), passing its error status
    on.  ``outputs``: how many of the last arrays are written."""
    def codegen(context, builder, sig, args):
        arrays = [context.make_array(ty)(context, builder, value)
                  for ty, value in zip(sig.args[1:], args[1:])]
        sizes = [builder.extract_value(arrays[0].shape, 0)]
        if outputs:
            sizes.append(builder.extract_value(arrays[-outputs].shape, 0))
        function = context.call_conv.get_function_type(signature.return_type, signature.args)
        pointer = builder.inttoptr(args[0], function.as_pointer())
        status, result = context.call_conv.call_function(
            builder, pointer, signature.return_type, signature.args,
            [array.data for array in arrays] + sizes)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return result

    def typer(typingctx, handle, *arrays):
        if not isinstance(handle, types.Integer):
            return None
        for i, array in enumerate(arrays):
            written = i >= len(arrays) - outputs
            if not (isinstance(array, types.Array) and array.dtype == types.float64
                    and array.layout == "C" and (array.mutable or not written)):
                raise TypingError(f"a family's function takes C-contiguous float64 arrays"
                                  f"{' (writable)' if written else ''}, not {array}")
        return signature.return_type(handle, *arrays), codegen

    return typer


# numba's intrinsics take no *args: one typer each, of the signature's arity
_coefficients_typer, _error_typer = _call_at(COEFFICIENTS, 3), _call_at(ERROR, 0)


@intrinsic
def _call_coefficients(typingctx, handle, Q, R, T0, m, S, N, dm):
    return _coefficients_typer(typingctx, handle, Q, R, T0, m, S, N, dm)


@intrinsic
def _call_error(typingctx, handle, Q, R, T0, m):
    return _error_typer(typingctx, handle, Q, R, T0, m)


def _contiguous(x):
    """``x`` as a C-contiguous array (compiled: a copy if it is not one)."""
    return x


@overload(_contiguous)
def _contiguous_compiled(x):
    if isinstance(x, types.Array) and x.layout == "C":
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
