"""Annealing paths from a tractable base distribution (beta = 0) to a potential (beta = 1).

Three kinds, chosen by what the potential can do (:mod:`ebm_ppl.partition.choice`):

* :class:`ParameterPath` for potentials with a coupling-free base model and exact Gibbs moves
  (the RBMs, the fully visible BM). The parameters are interpolated, ``theta_beta = (1 - beta)
  theta_base + beta theta``, so every intermediate distribution is a model of the same family and
  its exact block (or site) Gibbs sweep is the transition (Salakhutdinov & Murray 2008,
  Sec. 4.1-4.2: with the base's W = 0 this is their path, the hidden units of the base
  contributing only a constant). For RBMs over layers the same path runs fused
  (:mod:`ebm_ppl.partition.rbm_path`).
* :class:`GeometricPath` for any continuous potential: ``log f_beta(x) = (1 - beta) log q(x) +
  beta (-E(x))`` from a Gaussian q, with BlackJAX MALA (or HMC) moves whose step size is adapted
  along the path from the chains' mean acceptance (Neal 2001); a bounded support is annealed on
  its unconstrained space (:mod:`ebm_ppl.potentials.unconstrained`), which has the same Z.
* :class:`DiscreteGeometricPath` for any other discrete potential (binary, spin, categorical):
  the same geometric path from independent coordinates, with exact single-site Gibbs moves.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl.moves.gibbs import gibbs_sweep
from ebm_ppl.moves.tempering import Mixture, interpolate
from ebm_ppl.ops import scale_energy
from ebm_ppl.potentials.base import Potential
from ebm_ppl.potentials.gaussian import Gaussian
from ebm_ppl.potentials.unconstrained import Unconstrained

__all__ = ["AnnealingPath", "GibbsPath", "ParameterPath", "GeometricPath", "DiscreteGeometricPath", "Mixture"]


class AnnealingPath(eqx.Module):
    """A path ``log f_beta`` from a tractable base (beta = 0) to the target (beta = 1).

    Subclasses define ``log_f(beta, x)`` for one x, ``transition(key, xs, beta, aux) -> (xs, aux,
    mean acceptance)`` leaving ``f_beta`` invariant for every chain, ``init_aux``, ``sample_base``
    and ``base_log_z``; :meth:`anneal_step` is what AIS runs at each temperature, fed by
    :meth:`draws` (AIS draws those for a block of temperatures at once). Both work on the chains
    in the path's own layout, :meth:`to_state` of ``(N, *event)`` (here the same array).
    """

    def prepare(self, num_chains: int) -> "AnnealingPath":
        """The path for ``num_chains`` chains with loop invariants computed once (AIS calls it
        before its loop); itself here."""
        return self

    def to_state(self, xs: Array):
        """The chains ``xs: (N, *event)`` in the layout :meth:`anneal_step` works on."""
        return xs

    @property
    def chain_axis(self) -> int:
        """The axis of :meth:`to_state`'s layout that runs over the chains (0 here)."""
        return 0

    def from_state(self, state) -> Array:
        """The chains ``(N, *event)`` back from :meth:`to_state`'s layout."""
        return state

    def draws(self, key: PRNGKeyArray, xs: Array):
        """The randomness one :meth:`anneal_step` consumes for chains ``xs``; here the key itself."""
        return key

    def encode(self, xs: Array) -> Array:
        """Points of the target's space ``(N, *event)`` in the path's own (the same here; the
        unconstrained space for a bounded support)."""
        return xs

    def anneal_step(self, draws, xs: Array, beta_from: Array, beta_to: Array, aux):
        """Weight, then move: ``(xs', aux', log f_to(xs) - log f_from(xs))`` for ``xs: (N, *event)``."""
        log_f = jax.vmap(self.log_f, in_axes=(None, 0))
        f_to, f_from = log_f(beta_to, xs), log_f(beta_from, xs)
        # a chain at a state impossible under f_from (a hard constraint's E = +inf) already has
        # weight 0 and keeps it (-inf - -inf would be NaN)
        delta = jnp.where(f_from == -jnp.inf, -jnp.inf, f_to - f_from)
        xs, aux, _ = self.transition(draws, xs, beta_to, aux)
        return xs, aux, delta


class GibbsPath(AnnealingPath):
    """A path of discrete models ``at(beta)`` between a base and the target, with one exact Gibbs
    sweep of the intermediate model as the transition (abstract: subclasses define ``at``)."""

    base: Potential
    target: Potential
    base_log_z: Array

    @abc.abstractmethod
    def at(self, beta: Array) -> Potential:
        """The intermediate model at ``beta``."""

    def log_f(self, beta: Array, x: Array) -> Array:
        """log f_beta(x) = -E_beta(x) for one x."""
        return -self.at(beta).unbatched_energy(x)

    def init_aux(self, dim_hint: int) -> Array:
        return jnp.zeros(())

    def transition(self, key: PRNGKeyArray, xs: Array, beta: Array, aux: Array):
        """One exact Gibbs sweep of every chain under the model at ``beta``; ``xs: (N, *event)``."""
        return gibbs_sweep(key, self.at(beta), xs), aux, jnp.ones(())


class ParameterPath(GibbsPath):
    """Linear interpolation of parameters between a zero-coupling base and the target."""

    def at(self, beta: Array) -> Potential:
        """The intermediate model theta_beta (same family as the target)."""
        return interpolate(self.base, self.target, beta)

    def sample_base(self, key: PRNGKeyArray, num: int, dtype) -> Array:
        """Exact base draws: the base has no couplings, so one sweep from anywhere is exact."""
        k0, k1 = jax.random.split(key)
        x0 = jnp.zeros((num, *self.target.event_shape), dtype)
        return self.transition(k1, x0, jnp.zeros((), dtype), jnp.zeros(()))[0]


class GeometricPath(AnnealingPath):
    """``log f_beta = (1 - beta) log q + beta (-E)`` from a Gaussian q, MALA/HMC transitions."""

    base: Gaussian
    target: Potential
    base_log_z: Array
    kernel: str = eqx.field(static=True, default="mala")
    num_integration_steps: int = eqx.field(static=True, default=5)
    adapt_rate: float = eqx.field(static=True, default=0.5)

    def log_f(self, beta: Array, x: Array) -> Array:
        flat = x.reshape(self.base.event_shape)
        return (-scale_energy(1 - beta, self.base.unbatched_energy(flat))
                - scale_energy(beta, self.target.unbatched_energy(x)))

    @property
    def target_acceptance(self) -> float:
        return 0.574 if self.kernel == "mala" else 0.65

    def init_aux(self, dim: int) -> Array:
        """The log step size, started at a scale suited to the base Gaussian."""
        diag = jnp.diag(self.base.scale_tril) if self.base.scale_tril is not None else self.base.scale_diag
        scale = jnp.min(diag)
        if self.kernel == "mala":
            return jnp.log(scale**2 * dim ** (-1.0 / 3.0))
        return jnp.log(scale * dim ** (-0.25) / self.num_integration_steps**0.5)

    def transition(self, key: PRNGKeyArray, xs: Array, beta: Array, log_step: Array):
        import blackjax  # here, not at import: its import takes 0.3 s that Gibbs paths never need

        event_shape = self.target.event_shape
        logdensity = lambda z: self.log_f(beta, z.reshape(event_shape))  # noqa: E731
        step_size = jnp.exp(log_step)
        keys = jax.random.split(key, xs.shape[0])
        flat = xs.reshape(xs.shape[0], -1)
        if self.kernel == "mala":
            kernel = blackjax.mala.build_kernel()

            def move(k, z):
                state, info = kernel(k, blackjax.mala.init(z, logdensity), logdensity, step_size)
                return state.position, info.acceptance_rate

        else:
            kernel = blackjax.hmc.build_kernel()
            inverse_mass = jnp.ones(flat.shape[1], flat.dtype)

            def move(k, z):
                state, info = kernel(k, blackjax.hmc.init(z, logdensity), logdensity, step_size,
                                     inverse_mass, self.num_integration_steps)
                return state.position, info.acceptance_rate

        moved, acceptance = jax.vmap(move)(keys, flat)
        acceptance = jnp.nan_to_num(acceptance)
        mean_acc = jnp.mean(acceptance)
        log_step = log_step + self.adapt_rate * (mean_acc - self.target_acceptance)
        return moved.reshape(xs.shape), log_step, mean_acc

    def sample_base(self, key: PRNGKeyArray, num: int, dtype) -> Array:
        return self.base.sample(key, (num,)).astype(dtype).reshape(num, *self.target.event_shape)

    def encode(self, xs: Array) -> Array:
        """Points of the original support mapped to the path's space (the unconstrained one when
        the target is an :class:`~ebm_ppl.potentials.unconstrained.Unconstrained` view)."""
        return self.target.unconstrain(xs) if isinstance(self.target, Unconstrained) else xs


class DiscreteGeometricPath(GibbsPath):
    """``log f_beta = -(1 - beta) E_q - beta E`` from a factorized base q (an
    :class:`ep.potentials.Bernoulli <ebm_ppl.potentials.bernoulli.Bernoulli>` for binary
    potentials, an :class:`ep.potentials.Factorized <ebm_ppl.potentials.factorized.Factorized>`
    for spin and categorical ones) to any discrete potential, with exact single-site Gibbs sweeps
    of the mixture as transitions (two energy evaluations per binary site where the target has no
    ``site_logit``, q per site of q values)."""

    def at(self, beta: Array) -> Mixture:
        return Mixture(self.base, self.target, beta)

    def sample_base(self, key: PRNGKeyArray, num: int, dtype) -> Array:
        return self.base.exact_samples(key, num).astype(dtype)
