"""First-order optimisers for the UKR estimator, written once for every backend's arrays.

Each optimiser updates latent points on the backend's device with the operators ``+ - * /``,
comparisons and the backend's array namespace ``xp`` (``sign``, ``where``, ``clip``), so the same
code runs on NumPy, JAX and torch arrays and nothing is copied to the host inside the loop.
Call :meth:`step` inside :meth:`ukr_bench.interface.Backend.context` (JAX float64 needs it).

* :class:`GradientDescent`: ``Z <- Z - learning_rate * dE/dZ``, the tutorial's loop.
* :class:`IRprop`: iRprop+ (with weight backtracking) or iRprop- (without), Igel & Hüsken,
  "Improving the Rprop learning algorithm" (2000). Each coordinate has its own step size,
  grown by ``eta_plus`` while the gradient keeps its sign and shrunk by ``eta_minus`` when it
  flips; only the gradient's sign is used, so the step is independent of the objective's scale.
  This is the optimiser of Klanke's UKR work.

L-BFGS runs in :mod:`scipy.optimize` on the host; see :meth:`ukr_bench.estimator.UKR.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Array = Any  # numpy.ndarray, jax.Array or torch.Tensor

#: Every optimiser the estimator offers (L-BFGS is scipy's).
OPTIMIZERS = ("gd", "rprop", "lbfgs")


class GradientDescent:
    """Plain gradient descent with a fixed step ``learning_rate`` (> 0)."""

    def __init__(self, xp: Any, learning_rate: float) -> None:
        self.xp = xp
        self.learning_rate = learning_rate

    def step(self, Z: Array, value: Array, grad: Array) -> Array:
        """The next iterate from ``Z`` (N x L), E(Z) (0-d, unused) and dE/dZ (N x L)."""
        del value
        return Z - self.learning_rate * grad


class IRprop:
    """iRprop+ (``backtrack=True``) or iRprop- (``backtrack=False``) on one array of coordinates.

    Per coordinate i, with the gradients g of this and the previous step:

    * g_prev * g > 0: step_i <- min(eta_plus * step_i, step_max); move by -sign(g) * step_i.
    * g_prev * g < 0: step_i <- max(eta_minus * step_i, step_min); iRprop+ undoes the previous
      move of coordinate i if E increased (iRprop- does not); g_i is set to 0, so the next step
      takes the third case.
    * otherwise: move by -sign(g) * step_i.

    The comparison of E is done on the device (no host sync). iRprop- treats coordinates
    independently, which is what projecting many queries at once needs.
    """

    def __init__(
        self,
        xp: Any,
        initial_step: float,
        *,
        backtrack: bool = True,
        eta_plus: float = 1.2,
        eta_minus: float = 0.5,
        step_min: float = 0.0,
        step_max: float = float("inf"),
    ) -> None:
        self.xp = xp
        self.initial_step = initial_step
        self.backtrack = backtrack
        self.eta_plus, self.eta_minus = eta_plus, eta_minus
        self.step_min, self.step_max = step_min, step_max
        self._state: _IRpropState | None = None

    def step(self, Z: Array, value: Array, grad: Array) -> Array:
        """The next iterate from ``Z`` (N x L), E(Z) (0-d) and dE/dZ (N x L)."""
        xp = self.xp
        if self._state is None:
            zero = grad * 0
            self._state = _IRpropState(zero, zero + self.initial_step, zero, value)
        prev = self._state
        steps = prev.steps
        prod = prev.grad * grad
        grow, flip = prod > 0, prod < 0
        steps = xp.where(
            grow,
            xp.clip(steps * self.eta_plus, None, self.step_max),
            xp.where(flip, xp.clip(steps * self.eta_minus, self.step_min, None), steps),
        )
        grad = xp.where(flip, 0.0, grad)
        move = -xp.sign(grad) * steps  # 0 where the sign flipped
        if self.backtrack:
            move = move - xp.where(flip & (value > prev.value), prev.move, 0.0)
        self._state = _IRpropState(grad, steps, move, value)
        return Z + move


@dataclass(frozen=True)
class _IRpropState:
    """What iRprop keeps between steps, all on the device: the previous step's gradient (0 where
    its sign flipped), the per-coordinate step sizes, the previous move and E before it."""

    grad: Array
    steps: Array
    move: Array
    value: Array
