"""A potential as a NumPyro distribution, and as a factor."""

from __future__ import annotations

import math
import os
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from jaxtyping import Array, ArrayLike

from ebm_ppl import checks
from ebm_ppl.inference.sampling import draw
from ebm_ppl.kernels.registry import check_kernel
from ebm_ppl.partition.estimate import AISEstimate
from ebm_ppl.partition.likelihood import check_log_z
from ebm_ppl.potentials.base import Potential, check_potential

__all__ = ["EnergyDistribution", "factor", "DoublyIntractableWarning"]


class DoublyIntractableWarning(UserWarning):
    """An energy's parameters are being inferred while its log Z(theta) is ignored."""


def _log_z_value(log_z: float | ArrayLike | AISEstimate | None, owner: str):
    return None if log_z is None else check_log_z(log_z, owner)


def _is_differentiated(leaf) -> bool:
    """Whether ``leaf`` is being differentiated (a JVP/linearize tracer): then it is a function of
    the quantities NUTS, HMC or SVI infer, not a constant built inside the model."""
    return isinstance(leaf, jax.core.Tracer) and type(leaf).__module__.endswith("interpreters.ad")


def _warn_if_doubly_intractable(potential: Potential, log_z) -> None:
    leaves = jax.tree.leaves(eqx.filter(potential, eqx.is_array))
    if log_z is None and any(_is_differentiated(leaf) for leaf in leaves):
        warnings.warn(
            "the potential's parameters depend on sampled values, but log_z is None: the likelihood "
            "exp(-E_theta(x)) / Z(theta) is missing log Z(theta), which changes with theta, so the "
            "posterior over theta is wrong (a doubly-intractable model). Supply log_z="
            "ebm_ppl.log_partition(potential) (exact and traceable, for small models) or keep the "
            "potential's parameters fixed (docs/numpyro.md, 'The doubly-intractable case').",
            DoublyIntractableWarning,
            skip_file_prefixes=(checks.PACKAGE_DIR, os.path.dirname(numpyro.__file__)),  # the user's model line
        )


class EnergyDistribution(dist.Distribution):
    """``p(x) ∝ exp(-E(x))`` for any :class:`ebm_ppl.Potential`, usable in ``numpyro.sample``.

    ``log_prob(x) = -E(x)`` (unnormalized) or ``-E(x) - log_z`` when ``log_z`` is given (a number
    or an :class:`~ebm_ppl.partition.AISEstimate`): only then do ELBOs, ``log_density`` totals and
    model comparison see a normalized density. For inference over *other* latent variables, or
    over x itself, the constant does not matter.

    The support and event shape are the potential's: real vectors go to NUTS/HMC, binary and
    categorical ones to NumPyro's discrete Gibbs kernels (they change one coordinate at a time,
    so the distribution enumerates the values of one coordinate). Those kernels propose a
    coordinate's indices 0 .. q-1 as its values, so a spin potential (values -1, +1) is refused
    there (by ``enumerate_support``); :class:`~ebm_ppl.numpyro.EnergyKernel` samples it.

    ``sample`` runs the potential's own MCMC (:func:`ebm_ppl.inference.draw`): block Gibbs for
    RBMs, site Gibbs for other discrete potentials, NUTS for real ones, ``sampler_steps`` steps per
    draw from an independent chain. That makes ``Predictive`` and prior predictive checks work,
    at the price of ``sampler_steps`` kernel steps per requested draw, and the draws are only as
    exact as the chain has mixed.

    Args:
        potential: the energy.
        log_z: optional log normalizer.
        sampler_steps: MCMC steps per draw in ``sample``.
        kernel: the kernel ``sample`` uses (default: the potential's default).
    """

    pytree_data_fields = ("potential", "log_z")
    pytree_aux_fields = ("sampler_steps", "kernel")

    def __init__(
        self,
        potential: Potential,
        log_z: float | ArrayLike | AISEstimate | None = None,
        *,
        sampler_steps: int = 1000,
        kernel: str | None = None,
        validate_args: bool | None = None,
    ):
        check_potential(potential, "EnergyDistribution")
        _warn_if_doubly_intractable(potential, log_z)
        self.potential = potential
        self.log_z = _log_z_value(log_z, "EnergyDistribution")
        self.sampler_steps = checks.positive_int(sampler_steps, "EnergyDistribution: sampler_steps")
        self.kernel = check_kernel(kernel, potential, owner="EnergyDistribution").name
        super().__init__(batch_shape=(), event_shape=tuple(potential.event_shape), validate_args=validate_args)

    @property
    def normalized(self) -> bool:
        """Whether ``log_prob`` includes ``-log_z`` (a proper normalized log density)."""
        return self.log_z is not None

    @property
    def support(self):
        """The potential's support as a NumPyro constraint (NUTS/HMC then sample a bounded one
        on its unconstrained space, as ebm_ppl's own samplers do)."""
        return constraints.independent(self.potential.support.constraint(), len(self.event_shape))

    @property
    def has_enumerate_support(self) -> bool:
        return not self.potential.support.continuous

    def enumerate_support(self, expand: bool = True) -> Array:
        """The q values of one coordinate, shape ``(q, *event_shape)`` (NumPyro's discrete Gibbs
        changes one coordinate at a time and reads only these); the joint support has q^D
        states and is not listed."""
        if self.potential.support.continuous:
            raise NotImplementedError("a real-valued potential has no enumerable support")
        q = len(self.potential.support.values)
        if tuple(self.potential.support.values) != tuple(range(q)):
            raise NotImplementedError(
                f"EnergyDistribution: NumPyro's discrete kernels (DiscreteHMCGibbs, MixedHMC) propose the "
                f"indices 0 .. {q - 1} of a coordinate, not its values {self.potential.support.values} "
                "(NumPyro issue #1834), so they would sample this "
                f"{self.potential.support.kind} potential wrongly; sample it with "
                "ebm_ppl.numpyro.EnergyKernel, or write its energy over binary b with x = 2 b - 1")
        values = jnp.asarray(self.potential.support.values).reshape((q,) + (1,) * len(self.event_shape))
        return jnp.broadcast_to(values, (q, *self.event_shape)) if expand else values

    def log_prob(self, value: ArrayLike) -> Array:
        log_p = -self.potential.energy(value)  # validated there: a complex value is refused, not cast
        return log_p if self.log_z is None else log_p - self.log_z

    def sample(self, key, sample_shape: tuple[int, ...] = ()) -> Array:
        num = math.prod(sample_shape) if sample_shape else 1
        xs = draw(key, self.potential, num, kernel=self.kernel, num_steps=self.sampler_steps)
        return xs.reshape(*sample_shape, *self.event_shape)


def factor(name: str, potential: Potential, x: ArrayLike, log_z: float | ArrayLike | AISEstimate | None = None):
    """Add ``-E(x)`` (minus ``log_z`` when given) to the model's log density as ``numpyro.factor``.

    The factor route suits an energy over a deterministic function of other latent variables,
    where there is no sample site to attach :class:`EnergyDistribution` to.
    """
    potential = check_potential(potential, "factor")
    log_z = _log_z_value(log_z, "factor")
    _warn_if_doubly_intractable(potential, log_z)
    value = -potential.energy(x)
    numpyro.factor(name, value if log_z is None else value - log_z)
    return value
