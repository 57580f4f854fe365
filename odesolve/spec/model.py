"""Stage 1 of the pipeline: the model (architecture and learning rule).

>>> model = Autoencoder(K=2, activation="erf")
>>> model.activation.name, model.tied, model.rule
('erf', False, 'sgd')
>>> Autoencoder(K=2, activation="softplus")
Traceback (most recent call last):
...
ValueError: unknown activation 'softplus': ...
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .activations import Activation, resolve_activation

__all__ = ["Autoencoder", "RULES", "BIAS_MODES"]

#: Learning rules: vanilla online SGD; truncated SGD, where unit k only sees the
#: reconstruction of units 1..k (it learns the k-th principal component itself);
#: Sanger's generalised Hebbian rule (tied weights only: the truncated decoder update
#: applied to the shared weights, without the back-propagated encoder term).
RULES = ("sgd", "truncated", "sanger")

#: Encoder bias: none; trained by SGD at the encoder rate η/D; fixed at its initial value.
BIAS_MODES = ("none", "trained", "fixed")


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
    """

    K: int
    activation: Activation = field(default="erf")
    tied: bool = False
    bias: str = "none"
    rule: str = "sgd"

    def __post_init__(self):
        if isinstance(self.K, bool) or not float(self.K).is_integer() or self.K < 1:
            raise ValueError(f"K must be a positive integer, got {self.K!r}")
        object.__setattr__(self, "K", int(self.K))
        object.__setattr__(self, "activation", resolve_activation(self.activation))
        bias = {True: "trained", False: "none"}.get(self.bias, self.bias)
        if bias not in BIAS_MODES:
            raise ValueError(f"unknown bias mode {self.bias!r}: expected one of {BIAS_MODES}")
        object.__setattr__(self, "bias", bias)
        if self.rule not in RULES:
            raise ValueError(f"unknown learning rule {self.rule!r}: expected one of {RULES}")
        if self.rule == "sanger" and not self.tied:
            raise ValueError("Sanger's rule is defined for tied weights: set tied = true")
        object.__setattr__(self, "tied", bool(self.tied))

    @property
    def has_bias(self) -> bool:
        return self.bias != "none"

    @property
    def key(self) -> str:
        """Stable text identifying the equations (used to hash the generated code)."""
        return f"K={self.K}|g={self.activation.key}|tied={self.tied}|bias={self.bias}|rule={self.rule}"

    def check_dimension(self, D: int) -> None:
        """Raise ``ValueError`` unless ``K < D``."""
        if self.K >= D:
            raise ValueError(f"need K < D, got K = {self.K}, D = {D}")
