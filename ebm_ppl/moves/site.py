"""One systematic-scan single-site Gibbs sweep of a discrete potential (binary, spin or categorical).

The sweep visits every coordinate i = 0 .. D-1 in order (D = the event's size; events of any shape
are visited in C order) and draws ``x_i ~ p(x_i | x_{-i})``. For binary potentials that is
``sigmoid(logit_i)`` with ``logit_i = log p(x_i=1, x_{-i}) - log p(x_i=0, x_{-i})``; a binary
potential may supply ``site_logit(x, i)`` for the flat index i (O(D) for a Boltzmann machine:
``b_i + W_i . x``), otherwise the logit comes from two energy evaluations. For spin and
categorical supports the conditional over the q values comes from q energy evaluations
(``softmax_c -E(x with x_i = v_c)``), which works for any discrete potential.
:func:`ebm_ppl.kernels.site_gibbs` is this sweep as a BlackJAX ``SamplingAlgorithm``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ebm_ppl.potentials.base import Potential, Support
from ebm_ppl.potentials.capabilities import has_site_logits

__all__ = ["site_sweep", "site_logit", "site_log_weights"]


def site_logit(potential: Potential, x: Array, i: Array) -> Array:
    """The logit of p(x_i = 1 | x_{-i}) for flat index ``i`` of one example ``x``: the
    potential's ``site_logit`` where it has one, else ``E(x with x_i = 0) - E(x with x_i = 1)``."""
    if has_site_logits(potential):
        return potential.site_logit(x, i)
    flat = x.reshape(-1)
    on, off = flat.at[i].set(1).reshape(x.shape), flat.at[i].set(0).reshape(x.shape)
    return potential.unbatched_energy(off) - potential.unbatched_energy(on)


def site_log_weights(potential: Potential, x: Array, i: Array, values: Array) -> Array:
    """``-E(x with x_i = v)`` for each of the ``values`` ``(q,)`` of flat index ``i``: the
    unnormalized log conditional of coordinate i, shape ``(q,)``."""
    flat = x.reshape(-1)
    return jax.vmap(lambda v: -potential.unbatched_energy(flat.at[i].set(v).reshape(x.shape)))(values)


def site_sweep(key: PRNGKeyArray, potential: Potential, x: Array) -> Array:
    """One sweep over every coordinate of one example ``x`` (shape ``event_shape``); returns the
    new example. The values a coordinate takes are the potential's support's."""
    shape = x.shape
    uniforms = jax.random.uniform(key, (x.size,), x.dtype)
    values = jnp.asarray(potential.support.values, x.dtype)

    if potential.support == Support.BINARY:
        def visit(flat, i):
            logit = site_logit(potential, flat.reshape(shape), i)
            return flat.at[i].set((uniforms[i] < jax.nn.sigmoid(logit)).astype(flat.dtype)), None
    else:
        def visit(flat, i):  # inverse CDF of the conditional over the values
            probs = jax.nn.softmax(site_log_weights(potential, flat.reshape(shape), i, values))
            index = jnp.sum(uniforms[i] > jnp.cumsum(probs)[:-1])
            return flat.at[i].set(values[index]), None

    flat, _ = jax.lax.scan(visit, x.reshape(-1), jnp.arange(x.size))
    return flat.reshape(shape)
