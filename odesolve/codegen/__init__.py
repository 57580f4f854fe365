"""Stage 3 of the pipeline: sympy equations → cse → numba source on disk → compiled module.

:func:`compile_model` is the entry point; :mod:`odesolve.codegen.emit` is the one emitter
of generated modules (a template with its generated block filled in, under a header) and
:func:`load_generated` their one writer, for the theory's modules and the simulator's
activation kernels alike.
"""
from .compile import CompiledModel, compile_model, generate_source
from .writer import cache_dir, load_generated

__all__ = ["CompiledModel", "cache_dir", "compile_model", "generate_source", "load_generated"]
