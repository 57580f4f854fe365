"""Stage 2 of the pipeline: the order-parameter equations, derived by sympy.

:mod:`.equations` derives the flow from the update rule (Stein's lemma on every mode);
:mod:`.averages` turns each Gaussian average into a closed form (:mod:`.closed_form`)
or a compiled quadrature (:mod:`.quadrature`).
"""
from .equations import Equations, derive_equations, order_parameter_symbols

__all__ = ["Equations", "derive_equations", "order_parameter_symbols"]
