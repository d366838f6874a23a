"""Exact answers the discrete gradient samplers' tests share: tiny and 10-unit models, their
enumerated probabilities, exact draws, the chi-square test against them, and a runner of many
chains (tests/kernels/test_gibbs_with_gradients.py and test_discrete_langevin.py)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import ebm_ppl as ep
from ebm_ppl.potentials.enumeration import all_binary_states

def tiny_models():
    """Three-coordinate models (float64: build inside ``jax.enable_x64``) of every support, with
    energies whose first-order estimate of a change is inexact (the RBM, spin and Potts ones), so
    the reverse proposal q(i | x') differs from what the forward one implies."""
    bm = ep.BoltzmannMachine(jnp.array([[0.0, 1.5, -2.0], [1.5, 0.0, 1.0], [-2.0, 1.0, 0.0]]),
                             jnp.array([0.5, -1.0, 0.3]))
    rbm = ep.BernoulliRBM(jnp.array([[2.0, -1.0], [-1.5, 1.0], [1.0, 2.0]]), jnp.array([0.3, -0.5, 0.2]),
                          jnp.array([-1.0, 0.5]))
    spin = ep.potential(lambda s: -0.8 * s[0] * s[1] + 0.6 * s[1] * s[2] - 0.3 * jnp.sum(s) - 0.4 * jnp.tanh(s[0] + s[2]),
                        event_shape=(3,), support="spin")
    potts = ep.potential(lambda x: 0.5 * (x[0] - x[1]) ** 2 - 0.7 * x[2] + 0.3 * jnp.sin(2.0 * x[0] * x[2]) - 0.2 * x[1],
                         event_shape=(3,), support=ep.categorical(3))
    return {"boltzmann": bm, "rbm": rbm, "spin": spin, "potts": potts}


def strong_boltzmann():
    """A 10-unit Boltzmann machine with strong couplings (W_ij ~ N(0, 1.5^2)) and biases."""
    bm = ep.BoltzmannMachine.init(jax.random.key(3), 10, scale=1.5)
    return ep.BoltzmannMachine(bm.W, 0.5 * jax.random.normal(jax.random.key(4), (10,)))


def rbm_10x4():
    k1, k2, k3 = jax.random.split(jax.random.key(7), 3)
    return ep.BernoulliRBM(1.5 * jax.random.normal(k1, (10, 4)), 0.5 * jax.random.normal(k2, (10,)),
                           0.5 * jax.random.normal(k3, (4,)))


def all_states(values, size):
    """Every state, the last coordinate varying fastest, as float64 ``(q^size, size)``."""
    return np.array(list(itertools.product(values, repeat=size)), np.float64)


def state_index(x, values):
    digits = np.searchsorted(np.asarray(values), np.asarray(x).reshape(len(x), -1))
    return digits @ (len(values) ** np.arange(digits.shape[1])[::-1])


def exact_probs(model, states):
    log_w = -np.asarray(model.energy(jnp.asarray(states)), np.float64)
    return np.exp(log_w - np.logaddexp.reduce(log_w))


def chi_square_pvalue(codes, p):
    """Pearson's test of the state counts against the exact probabilities ``p``; states expected
    fewer than 5 times are pooled into one cell (Cochran's rule)."""
    counts = np.bincount(codes, minlength=len(p))
    big = p * len(codes) >= 5
    observed = np.append(counts[big], counts[~big].sum())
    expected = np.append(p[big], p[~big].sum()) * len(codes)
    return stats.chisquare(observed, expected).pvalue


def binary_exact(potential):
    """The exact probabilities of the 2^D binary states, state k having bit j = x_j (as
    :func:`all_binary_states` orders them)."""
    with jax.enable_x64(True):
        d = potential.event_shape[0]
        states = all_binary_states(d, jnp.float64)
        p = np.exp(np.asarray(-potential.energy(states) - ep.log_partition(potential), np.float64))
    return p / p.sum()  # float32 parameters: log Z to ~1e-7, which scipy's chisquare notices


def exact_draws(p, num, seed):
    """``num`` independent exact draws of the state index from the enumerated probabilities ``p``
    (NumPy: the same law as the potentials' ``exact_samples``, without compiling their sampler)."""
    return np.random.default_rng(seed).choice(len(p), size=num, p=p)


def bits(codes, dim):
    """The binary states numbered ``codes`` (bit j = x_j, as :func:`all_binary_states`), float32."""
    return jnp.asarray((codes[:, None] >> np.arange(dim)) & 1, jnp.float32)


def codes(xs):
    xs = np.asarray(xs).reshape(-1, xs.shape[-1])
    return (xs @ (2 ** np.arange(xs.shape[-1]))).astype(int)


def run(steps, states, num_steps, seed):
    """``num_steps`` steps of every chain (``vmap``) for each of ``steps`` (functions
    ``step(key, state) -> (state, info)``, compiled together, the same keys for each): the final
    states, one per step function."""
    num = states.position.shape[0]

    @jax.jit
    def go(states):
        def body(carry, key):
            keys = jax.random.split(key, num)
            return tuple(jax.vmap(step)(keys, s)[0] for step, s in zip(steps, carry)), None

        return jax.lax.scan(body, (states,) * len(steps), jax.random.split(jax.random.key(seed), num_steps))[0]

    return go(states)
