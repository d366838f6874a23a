"""Annealing paths from a tractable base distribution (beta = 0) to a potential (beta = 1).

Two kinds:

* :class:`ParameterPath` for the Boltzmann family (Bernoulli, Gaussian-Bernoulli and subspace
  RBMs, the fully visible BM). The parameters are interpolated, ``theta_beta = (1 - beta)
  theta_base + beta theta``, from a base whose couplings are zero, so every intermediate
  distribution is a model of the same family and its exact block (or site) Gibbs sampler is the
  transition (Salakhutdinov & Murray 2008, Sec. 4.1-4.2: with the base's W = 0 this is their path,
  the hidden units of the base contributing only a constant). :class:`RBMPath` is the same path
  for Bernoulli and Gaussian-Bernoulli RBMs, computed with two matmuls per temperature instead of
  four (see its docstring).
* :class:`GeometricPath` for any real potential: ``log f_beta(x) = (1 - beta) log q(x) + beta
  (-E(x))`` from a Gaussian q, with BlackJAX MALA (or HMC) moves whose step size is adapted
  along the path from the chains' mean acceptance (Neal 2001).
"""

from __future__ import annotations

import math

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ebm_ppl.compiler import filter_jit
from ebm_ppl.kernels.gibbs import gibbs_sweep
from ebm_ppl.potentials import BernoulliRBM, BoltzmannMachine, Gaussian, GaussianBernoulliRBM, SubspaceRBM
from ebm_ppl.potentials.base import Potential, Support, validate_input
from ebm_ppl.ops import softplus

__all__ = ["AnnealingPath", "ParameterPath", "RBMPath", "GeometricPath", "make_path", "factorized_base"]


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

    def from_state(self, state) -> Array:
        """The chains ``(N, *event)`` back from :meth:`to_state`'s layout."""
        return state

    def draws(self, key: PRNGKeyArray, xs: Array):
        """The randomness one :meth:`anneal_step` consumes for chains ``xs``; here the key itself."""
        return key

    def anneal_step(self, draws, xs: Array, beta_from: Array, beta_to: Array, aux):
        """Weight, then move: ``(xs', aux', log f_to(xs) - log f_from(xs))`` for ``xs: (N, *event)``."""
        log_f = jax.vmap(self.log_f, in_axes=(None, 0))
        delta = log_f(beta_to, xs) - log_f(beta_from, xs)
        xs, aux, _ = self.transition(draws, xs, beta_to, aux)
        return xs, aux, delta


class ParameterPath(AnnealingPath):
    """Linear interpolation of parameters between a zero-coupling base and the target."""

    base: Potential
    target: Potential
    base_log_z: Array

    def at(self, beta: Array) -> Potential:
        """The intermediate model theta_beta (same family as the target)."""
        base_params, static = eqx.partition(self.base, eqx.is_array)
        target_params = eqx.filter(self.target, eqx.is_array)
        mixed = jax.tree.map(lambda a, b: (1 - beta) * a + beta * b, base_params, target_params)
        return eqx.combine(mixed, static)

    def log_f(self, beta: Array, x: Array) -> Array:
        """log f_beta(x) = -F_{theta_beta}(x) for one x."""
        return -self.at(beta).unbatched_energy(x)

    def init_aux(self, dim_hint: int) -> Array:
        return jnp.zeros(())

    def transition(self, key: PRNGKeyArray, xs: Array, beta: Array, aux: Array):
        """One exact Gibbs sweep of every chain under theta_beta; ``xs: (N, *event)``."""
        return gibbs_sweep(key, self.at(beta), xs), aux, jnp.ones(())

    def sample_base(self, key: PRNGKeyArray, num: int, dtype) -> Array:
        """Exact base draws: the base has no couplings, so one sweep from anywhere is exact."""
        k0, k1 = jax.random.split(key)
        x0 = jnp.zeros((num, *self.target.event_shape), dtype)
        return self.transition(k1, x0, jnp.zeros((), dtype), jnp.zeros(()))[0]


class RBMPath(ParameterPath):
    """:class:`ParameterPath` for Bernoulli and Gaussian-Bernoulli RBMs, fused.

    With a zero-coupling base (W = 0, hidden biases c0, visible biases b0, the target's sigma) the
    intermediate model's hidden pre-activation is ``(1 - beta) c0 + beta a(x)`` with the target's
    ``a(x) = c + x W`` (``c + (x / sigma) W`` for Gaussian-Bernoulli), so

        log f_beta(x) = v_beta(x) + sum_j softplus((1 - beta) c0_j + beta a_j(x)),

    ``v_beta(x) = x . b_beta`` (Bernoulli) or ``-|x - b_beta|^2 / (2 sigma^2)`` (Gaussian), and
    ``p_beta(h | x)`` uses the same pre-activation. One step computes ``a(x)`` once (one matmul)
    for both log f terms of the weight and for ``h ~ p_beta(h | x)``, then ``x ~ p_beta(x | h)``
    from ``beta (h W^T)`` (the second matmul). The generic path computes ``theta_beta`` and runs
    four matmuls; the two agree to float rounding (tested). The step's random numbers (uniforms
    for h, uniforms or normals for x) come from :meth:`draws`, so AIS can draw them for many
    temperatures in one large, fast call.

    Layout: when there are fewer hidden units than chains, the chains are kept transposed,
    ``(D, N)``, and the hidden layer as ``(M, N)``, so the elementwise kernels run along the
    chain axis with one bias per row. In the ``(N, M)`` layout the rows are M long (20 for the
    digits RBM), which XLA's CPU backend vectorizes poorly once a per-unit bias is broadcast along
    them: the weight's softplus terms took 3.7x longer (100 chains x 20 hidden units). With wide
    hidden layers (784x500) the ``(N, D)`` layout is the faster one (0.69 vs 0.57 of the matmul
    rate), so it is kept there.
    """

    weights_t: Array | None = None  # W^T, set by prepare() for the transposed layout
    transposed: bool = eqx.field(static=True, default=False)

    def prepare(self, num_chains: int) -> "RBMPath":
        """The layout for ``num_chains`` chains, and ``W^T`` stored once: a dot with the transposed
        operand folded in ran on XLA's slow generic path (4.6 vs 2.2 us on 64x20), and copying W^T
        in every step costs as much on 784x500."""
        weights_t = jax.lax.optimization_barrier(self.target.W.T)
        return RBMPath(self.base, self.target, self.base_log_z, weights_t, self.target.c.shape[0] < num_chains)

    def to_state(self, xs: Array) -> Array:
        """``(D, N)``, the chains transposed, in the transposed layout; else ``xs``."""
        return xs.T if self.transposed else xs

    def from_state(self, state: Array) -> Array:
        return state.T if self.transposed else state

    def draws(self, key: PRNGKeyArray, state: Array):
        """For chains in :meth:`to_state`'s layout (``(N, D)`` shown; transposed, every array is).
        Bernoulli: uniforms ``(N, M + D)``, the first M columns for h, the rest for x (one call);
        Gaussian: ``(u_h, z_x)``, uniforms ``(N, M)`` for h and standard normals ``(N, D)`` for x."""
        m, d, t = self.target.c.shape[0], self.target.b.shape[0], self.transposed
        n = state.shape[1] if t else state.shape[0]
        shape = (lambda k: (k, n)) if t else (lambda k: (n, k))
        if isinstance(self.target, GaussianBernoulliRBM):
            key_h, key_x = jax.random.split(key)
            return jax.random.uniform(key_h, shape(m), state.dtype), jax.random.normal(key_x, shape(d), state.dtype)
        return jax.random.uniform(key, shape(m + d), state.dtype)

    def anneal_step(self, draws, state: Array, beta_from: Array, beta_to: Array, aux):
        """:meth:`AnnealingPath.anneal_step` on chains in :meth:`to_state`'s layout."""
        target, base = self.target, self.base
        gaussian = isinstance(target, GaussianBernoulliRBM)
        m, t = target.c.shape[0], self.transposed
        units = 0 if t else -1  # the axis of units (hidden or visible) in every array

        def per_unit(v):  # a (units,) vector broadcast against the layout
            return v[:, None] if t else v

        def hidden_logits(x):  # (M, N) or (N, M)
            return per_unit(target.c) + (self.weights_t @ x if t else x @ target.W)

        b_to = (1 - beta_to) * base.b + beta_to * target.b
        if gaussian:
            u_h, noise_x = draws
            sigma = per_unit(target.sigma)
            a = hidden_logits(state / sigma)  # shared by the weight and p(h | x)
            b_from = (1 - beta_from) * base.b + beta_from * target.b
            visible = jnp.sum(((state - per_unit(b_from)) ** 2 - (state - per_unit(b_to)) ** 2) / (2 * sigma**2),
                              axis=units)
        else:
            u_h, noise_x = (draws[:m], draws[m:]) if t else (draws[:, :m], draws[:, m:])
            a = hidden_logits(state)  # shared by the weight and p(h | x)
            # x . (b_to - b_from) = (beta_to - beta_from) x . (b - b0)
            visible = (beta_to - beta_from) * ((target.b - base.b) @ state if t else state @ (target.b - base.b))
        pre_to = per_unit((1 - beta_to) * base.c) + beta_to * a
        pre_from = per_unit((1 - beta_from) * base.c) + beta_from * a
        delta = visible + jnp.sum(softplus(pre_to) - softplus(pre_from), axis=units)
        h = (u_h < jax.nn.sigmoid(pre_to)).astype(state.dtype)
        wh = beta_to * (target.W @ h if t else h @ target.W.T)
        if gaussian:
            state = per_unit(b_to) + sigma * wh + sigma * noise_x
        else:
            state = (noise_x < jax.nn.sigmoid(per_unit(b_to) + wh)).astype(state.dtype)
        return state, aux, delta


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
        return -(1 - beta) * self.base.unbatched_energy(flat) - beta * self.target.unbatched_energy(x)

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


# -- bases ---------------------------------------------------------------------------------------

_BOLTZMANN_FAMILY = (BernoulliRBM, SubspaceRBM, BoltzmannMachine, GaussianBernoulliRBM)


def _bernoulli_bias(data: Array | None, dim: int, dtype, smoothing: float = 1.0) -> Array:
    if data is None:
        return jnp.zeros(dim, dtype)
    p = (jnp.sum(data, axis=0) + smoothing) / (data.shape[0] + 2 * smoothing)
    return (jnp.log(p) - jnp.log1p(-p)).astype(dtype)


def factorized_base(target: Potential, data: Array | None = None) -> Potential:
    """The zero-coupling model of ``target``'s family (W = 0, hidden biases 0).

    Visible biases come from ``data``'s smoothed marginals when given (the base-rate model of
    Salakhutdinov & Murray 2008), else they make x uniform (binary families) or keep the
    target's visible means and scales (Gaussian-Bernoulli).
    """
    zeros = jnp.zeros_like
    if isinstance(target, GaussianBernoulliRBM):
        b = target.b if data is None else jnp.mean(data, axis=0).astype(target.b.dtype)
        return GaussianBernoulliRBM(zeros(target.W), b, zeros(target.c), target.sigma)
    b = _bernoulli_bias(data, target.event_shape[0], target.b.dtype)
    if isinstance(target, BernoulliRBM):
        return BernoulliRBM(zeros(target.W), b, zeros(target.c))
    if isinstance(target, SubspaceRBM):
        return SubspaceRBM(zeros(target.W), b, zeros(target.c), zeros(target.d))
    if isinstance(target, BoltzmannMachine):
        return BoltzmannMachine(zeros(target.W), b)
    raise TypeError(f"no zero-coupling base is known for {type(target).__name__}")


def factorized_log_z(base: Potential) -> Array:
    """Exact log Z of a zero-coupling model (W = 0, and d = 0 for the subspace RBM).

    Bernoulli RBM ``sum softplus(b) + sum softplus(c)``; subspace RBM ``sum softplus(b) +
    sum_j (K log 2 + softplus(c_j))``; BM ``sum softplus(b)``; Gaussian-Bernoulli RBM
    ``sum log(sqrt(2 pi) sigma) + sum softplus(c)``.
    """
    for name in ("W", "d"):
        value = getattr(base, name, None)
        if value is not None and eqx.is_array(value) and not isinstance(value, jax.core.Tracer) \
                and bool(jnp.any(value != 0)):
            raise ValueError(f"the base model must have zero couplings ({name} is not zero); "
                             "pass base=None for the uniform or base-rate (data=) model")
    if isinstance(base, GaussianBernoulliRBM):
        visible = jnp.sum(jnp.log(jnp.sqrt(2 * jnp.pi) * base.sigma))
    else:
        visible = jnp.sum(softplus(base.b))
    if isinstance(base, BernoulliRBM | GaussianBernoulliRBM):
        return visible + jnp.sum(softplus(base.c))
    if isinstance(base, SubspaceRBM):
        return visible + jnp.sum(base.n_subspace * math.log(2.0) + softplus(base.c))
    return visible


@filter_jit
def _default_base(target: Potential, data: Array | None):
    """``factorized_base(target, data)`` and its log Z in one compiled call (a handful of small
    eager operations, each a dispatch and some a host sync, cost about a millisecond per
    ``ais`` call otherwise)."""
    base = factorized_base(target, data)
    return base, factorized_log_z(base)


def _same_sigma(base: Potential, target: Potential) -> bool:
    """Whether interpolating leaves sigma fixed (always, for Bernoulli RBMs)."""
    if not isinstance(target, GaussianBernoulliRBM):
        return True
    try:
        return bool(jnp.all(base.sigma == target.sigma))
    except jax.errors.ConcretizationTypeError:  # traced parameters: take the generic path
        return False


def make_path(target: Potential, *, base: Potential | None, data: ArrayLike | None, kernel: str | None,
              num_integration_steps: int = 5):
    """Choose the annealing path for ``target`` (see the module docstring)."""
    if data is not None:
        data = validate_input(data, target.event_shape, target.support, name="data", owner="ais")
        if data.ndim != len(target.event_shape) + 1:
            raise ValueError(f"ais: data must have shape (N, *event_shape), got {data.shape}")
    if isinstance(target, _BOLTZMANN_FAMILY):
        if kernel not in (None, "gibbs"):
            raise ValueError(f"ais: {type(target).__name__} anneals with exact Gibbs moves; kernel={kernel!r} "
                             "does not apply")
        if base is None:  # ours: zero couplings by construction, built in one compiled call
            base, base_log_z = _default_base(target, data)
            same_sigma = True  # factorized_base keeps the target's sigma
        elif type(base) is not type(target) or jax.tree.map(jnp.shape, eqx.filter(base, eqx.is_array)) != \
                jax.tree.map(jnp.shape, eqx.filter(target, eqx.is_array)):
            raise ValueError(f"ais: base must be a {type(target).__name__} of the target's shapes")
        else:
            base_log_z, same_sigma = factorized_log_z(base), _same_sigma(base, target)
        if isinstance(target, BernoulliRBM | GaussianBernoulliRBM) and same_sigma:
            return RBMPath(base, target, base_log_z)
        return ParameterPath(base, target, base_log_z)
    if target.support == Support.REAL:
        kernel = "mala" if kernel is None else kernel
        if kernel not in ("mala", "hmc"):
            raise ValueError(f"ais: kernel for a real potential must be 'mala' or 'hmc', got {kernel!r}")
        dim = math.prod(target.event_shape)
        if base is None:
            if data is not None:
                flat = data.reshape(data.shape[0], -1)
                base = Gaussian(jnp.mean(flat, 0), scale_diag=jnp.std(flat, 0) + 1e-3)
            else:
                base = Gaussian.standard(dim)
        if not isinstance(base, Gaussian) or base.event_shape != (dim,):
            raise ValueError(f"ais: the base of a real potential must be an ep.Gaussian over {dim} dimensions")
        return GeometricPath(base, target, base.log_partition(), kernel, int(num_integration_steps))
    raise ValueError(f"ais: no annealing path for {type(target).__name__} (support {target.support.value})")
