"""Stage 3 of the pipeline: sympy equations → cse → numba source on disk → compiled module.

:func:`compile_model` is the entry point; :func:`load_generated` is the one writer of
generated modules (also used for the simulator's activation kernels).
"""
from .compile import CompiledModel, compile_model, generate_source
from .writer import cache_dir, load_generated

__all__ = ["CompiledModel", "cache_dir", "compile_model", "generate_source", "load_generated"]
