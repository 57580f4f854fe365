"""Stage 1 of the pipeline: the model (architecture and learning rule).

>>> model = Autoencoder(K=2, activation="erf")
>>> model.activation.name, model.tied, model.rule
('erf', False, 'sgd')
>>> Autoencoder(K=2, activation="softplux")
Traceback (most recent call last):
...
ValueError: unknown activation 'softplux': ...
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._checks import check_bool, check_choice, check_integer
from .activations import Activation, resolve_activation

__all__ = ["Autoencoder", "RULES", "BIAS_MODES", "check_sanger_bias"]

#: Learning rules: vanilla online SGD; truncated SGD, where unit k only sees the
#: reconstruction of units 1..k (it learns the k-th principal component itself);
#: Sanger's generalised Hebbian rule (tied weights only: the truncated decoder update
#: applied to the shared weights, without the back-propagated encoder term).
RULES = ("sgd", "truncated", "sanger")

#: Encoder bias: none; trained by SGD at the encoder rate η/D; fixed at its initial value.
BIAS_MODES = ("none", "trained", "fixed")


def check_sanger_bias(rule: str, bias) -> None:
    """Refuse Sanger's rule with a trained bias (``bias`` a mode or a bool, as the model
    and the configuration take it): the rule is no gradient of a loss, so nothing defines
    how a bias would learn (a fixed bias is defined: it never moves)."""
    if rule == "sanger" and bias in (True, "trained"):
        raise ValueError("Sanger's rule has no loss, so it does not define a bias update: "
                         "use bias = 'fixed' or 'none'")


@dataclass(frozen=True)
class Autoencoder:
    """Two-layer autoencoder ``x̂ = Σ_k v_k g(w_k·x/√D + m_k)`` and its learning rule.

    Parameters
    ----------
    K : int
        Number of hidden units.
    activation : str, sympy expression or Activation
        ``"linear"``, ``"erf"`` (``g(x) = erf(x/√2)``), ``"relu"``, ``"sign"``, ``"tanh"``
        or a sympy expression in ``x``.
    tied : bool
        Tied weights ``v_k = √D w_k`` (the normalisation in which the D → ∞ equations
        are O(1); see ``docs/theory.md``).
    bias : {"none", "trained", "fixed"} or bool
        Encoder bias ``m_k`` (``True`` means ``"trained"``).
    rule : {"sgd", "truncated", "sanger"}
        Learning rule.

    Raises
    ------
    TypeError
        For K, tied or activation of the wrong type.
    ValueError
        For K < 1, an unknown activation, bias mode or rule, Sanger's rule with untied
        weights or with a trained bias.
    """

    K: int
    activation: Activation = field(default="erf")
    tied: bool = False
    bias: str = "none"
    rule: str = "sgd"

    def __post_init__(self):
        # the checks of the configuration: K an integer (not "2", 2.5 or True), tied a bool
        # (not "false", which is truthy), bias and rule among their choices
        object.__setattr__(self, "K", check_integer("K", self.K, minimum=1))
        object.__setattr__(self, "tied", check_bool("tied", self.tied))
        object.__setattr__(self, "activation", resolve_activation(self.activation))
        bias = {True: "trained", False: "none"}.get(self.bias, self.bias) \
            if isinstance(self.bias, (bool, np.bool_, str)) else self.bias
        object.__setattr__(self, "bias", check_choice("bias mode", bias, BIAS_MODES))
        check_choice("learning rule", self.rule, RULES)
        if self.rule == "sanger" and not self.tied:
            raise ValueError("Sanger's rule is defined for tied weights: set tied = true")
        check_sanger_bias(self.rule, self.bias)

    @property
    def has_bias(self) -> bool:
        return self.bias != "none"

    @property
    def family(self) -> str:
        """Text naming the model's family (activation, tied, rule, bias): the models one
        generated module serves, whatever their K."""
        return (f"g={self.activation.key}|tied={self.tied}|rule={self.rule}|"
                f"bias={self.bias}")

    @property
    def key(self) -> str:
        """Stable text identifying the equations (used to hash the generated code)."""
        return f"K={self.K}|g={self.activation.key}|tied={self.tied}|bias={self.bias}|rule={self.rule}"

    def check_dimension(self, D: int) -> None:
        """Raise ``ValueError`` unless ``K < D``."""
        if self.K >= D:
            raise ValueError(f"need K < D, got K = {self.K}, D = {D}")
