"""SubspaceRBM: free energy, conditionals and both exact log-Z routes against brute force."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl.potentials as potentials
from ebm_ppl.potentials import SubspaceRBM, log_partition
from ebm_ppl.potentials.enumeration import all_binary_states
from ebm_ppl.potentials.subspace_rbm import decode_hidden

logsumexp = jax.scipy.special.logsumexp


@pytest.fixture
def x64():
    """Run the test body in float64, so exactness checks can use tight tolerances."""
    with jax.enable_x64(True):
        yield


def _model(seed: int, n_visible: int, n_gates: int, n_subspace: int) -> SubspaceRBM:
    """Random parameters of scale ~1, so every term of the energy matters."""
    rng = np.random.default_rng(seed)
    return SubspaceRBM(
        rng.normal(size=(n_visible, n_gates, n_subspace)),
        rng.normal(size=n_visible),
        rng.normal(size=n_gates),
        rng.normal(size=(n_gates, n_subspace)),
    )


def _all_latents(n_gates: int, n_subspace: int) -> tuple[jax.Array, jax.Array]:
    """Every (h, S): 2^(M (K + 1)) pairs, ``(T, M)`` and ``(T, M, K)`` (naive enumeration)."""
    bits = all_binary_states(n_gates * (n_subspace + 1))
    return bits[:, :n_gates], bits[:, n_gates:].reshape(-1, n_gates, n_subspace)


def _joint_table(rbm: SubspaceRBM) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """-E(x, h, S) for all x and all (h, S): ``(2^D, T)`` with the states enumerated."""
    xs = all_binary_states(rbm.n_visible)
    hs, Ss = _all_latents(rbm.n_gates, rbm.n_subspace)
    neg_e = jax.vmap(lambda x: -rbm.energy_joint(jnp.broadcast_to(x, (hs.shape[0], rbm.n_visible)), hs, Ss))(xs)
    return neg_e, xs, hs, Ss


def test_registered():
    assert potentials.get_potential("subspace_rbm") is SubspaceRBM
    assert SubspaceRBM.support == potentials.Support.BINARY


def test_init_shapes():
    rbm = SubspaceRBM.init(jax.random.PRNGKey(0), 6, 3, 2, scale=0.1)
    assert rbm.W.shape == (6, 3, 2) and rbm.b.shape == (6,) and rbm.c.shape == (3,) and rbm.d.shape == (3, 2)
    assert (rbm.n_visible, rbm.n_gates, rbm.n_subspace) == (6, 3, 2)
    assert rbm.event_shape == (6,)
    assert rbm.n_hidden_terms == 5**3


# -- (a) free energy ------------------------------------------------------------------------
def test_energy_joint_convention(x64):
    """Pins E = -sum_ijk W_ijk x_i h_j S_jk - b^T x - c^T h - sum_jk h_j d_jk S_jk, term by term."""
    rbm = _model(12, 3, 2, 2)
    W, b, c, d = (np.asarray(a) for a in (rbm.W, rbm.b, rbm.c, rbm.d))
    x, h, S = np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0]), np.array([[1.0, 0.0], [1.0, 1.0]])
    expected = -sum(W[i, j, k] * x[i] * h[j] * S[j, k] for i in range(3) for j in range(2) for k in range(2))
    expected -= b @ x + c @ h + sum(h[j] * d[j, k] * S[j, k] for j in range(2) for k in range(2))
    np.testing.assert_allclose(rbm.energy_joint(x, h, S), expected, rtol=1e-12)


def test_free_energy_is_minus_log_sum_over_all_latents(x64):
    """F(x) = -log sum_{h,S} exp(-E(x, h, S)) over all 2^(M(K+1)) = 2^9 latent states, every x."""
    rbm = _model(0, 4, 3, 2)
    neg_e, xs, _, _ = _joint_table(rbm)
    expected = -logsumexp(neg_e, axis=1)
    np.testing.assert_allclose(rbm.free_energy(xs), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rbm.logdensity(xs), -expected, rtol=1e-12, atol=1e-12)


def test_energy_batches_and_jits(x64):
    rbm = _model(1, 4, 2, 3)
    xs = all_binary_states(4).reshape(2, 8, 4)
    e = rbm.energy(xs)
    assert e.shape == (2, 8)
    np.testing.assert_allclose(jax.jit(lambda m, x: m.energy(x))(rbm, xs), e, rtol=1e-12)
    np.testing.assert_allclose(e[1, 3], rbm.energy(xs[1, 3]), rtol=1e-12)


# -- (b) conditionals ------------------------------------------------------------------------
def test_gate_probs_match_enumeration(x64):
    """p(h_j = 1 | x) = sum over (h, S) with h_j = 1 of exp(-E) / sum over all (h, S)."""
    rbm = _model(2, 4, 3, 2)
    neg_e, xs, hs, _ = _joint_table(rbm)
    p = jnp.exp(neg_e - logsumexp(neg_e, axis=1, keepdims=True))  # p(h, S | x), (16, 512)
    np.testing.assert_allclose(rbm.hidden_probs(xs), p @ hs, rtol=1e-12, atol=1e-14)


def test_subspace_probs_match_enumeration(x64):
    """For each x and each h, p(S_jk = 1 | x, h) from the enumerated 2^(MK) patterns of S."""
    rbm = _model(3, 3, 2, 2)
    xs = all_binary_states(3)
    hs = all_binary_states(2)
    Ss = all_binary_states(4).reshape(-1, 2, 2)
    for x in xs:
        for h in hs:
            neg_e = -rbm.energy_joint(
                jnp.broadcast_to(x, (16, 3)), jnp.broadcast_to(h, (16, 2)), Ss
            )
            p = jnp.exp(neg_e - logsumexp(neg_e))
            marg = jnp.einsum("t,tjk->jk", p, Ss)
            np.testing.assert_allclose(rbm.subspace_probs(x, h), marg, rtol=1e-12, atol=1e-14)
    # an off gate leaves its subspace units uniform
    np.testing.assert_allclose(rbm.subspace_probs(xs, jnp.zeros((8, 2))), np.full((8, 2, 2), 0.5))


def test_visible_probs_match_enumeration(x64):
    """For every (h, S), p(x_i = 1 | h, S) from the enumerated 2^D visible states."""
    rbm = _model(4, 4, 2, 2)
    neg_e, xs, hs, Ss = _joint_table(rbm)  # (16, 64)
    p = jnp.exp(neg_e - logsumexp(neg_e, axis=0, keepdims=True))  # p(x | h, S), columns sum to 1
    np.testing.assert_allclose(rbm.visible_probs(hs, Ss), p.T @ xs, rtol=1e-12, atol=1e-14)


# -- (c) exact log Z -------------------------------------------------------------------------
def test_log_partition_routes_agree_with_brute_force(x64):
    """Both routes equal logsumexp of -E(x, h, S) over every (x, h, S) (2^4 * 2^9 states)."""
    rbm = _model(5, 4, 3, 2)
    neg_e, _, _, _ = _joint_table(rbm)
    brute = logsumexp(neg_e)
    hidden = rbm.log_partition(route="hidden")
    visible = rbm.log_partition(route="visible")
    np.testing.assert_allclose(hidden, visible, rtol=0, atol=1e-6)
    np.testing.assert_allclose(hidden, brute, rtol=1e-12)
    np.testing.assert_allclose(visible, brute, rtol=1e-12)


def test_log_partition_routes_agree_larger(x64):
    """D = 12 (4096 visible states) against (1 + 2^2)^4 = 625 latent states, with chunking."""
    rbm = _model(6, 12, 4, 2)
    hidden = rbm.log_partition(route="hidden", chunk_size=100)  # 625 = 6 * 100 + 25
    visible = rbm.log_partition(route="visible", chunk_size=1000)  # 4096 = 4 * 1000 + 96
    np.testing.assert_allclose(hidden, visible, rtol=0, atol=1e-6)
    np.testing.assert_allclose(rbm.log_partition(), hidden, rtol=1e-13)
    np.testing.assert_allclose(log_partition(rbm), hidden, rtol=1e-13)


def test_route_none_picks_cheaper():
    """route=None must work where only the cheaper route is under max_terms."""
    wide = SubspaceRBM.init(jax.random.PRNGKey(0), 30, 2, 2)  # 2^30 visible vs 25 hidden
    assert np.isfinite(wide.log_partition(max_terms=100))
    narrow = SubspaceRBM.init(jax.random.PRNGKey(1), 5, 8, 3)  # 32 visible vs 9^8 hidden
    assert np.isfinite(narrow.log_partition(max_terms=100))


def test_base_model_log_partition(x64):
    """W = c = d = 0: Z = prod_i (1 + e^{b_i}) * 2^(M (K + 1))."""
    rbm = _model(7, 5, 3, 2)
    base = rbm.base_model()
    np.testing.assert_array_equal(base.b, rbm.b)
    expected = np.sum(np.logaddexp(0.0, np.asarray(rbm.b))) + 3 * 3 * math.log(2)
    np.testing.assert_allclose(base.log_partition(route="hidden"), expected, rtol=1e-13)
    np.testing.assert_allclose(base.log_partition(route="visible"), expected, rtol=1e-13)


# -- (d) the mixed-radix route ---------------------------------------------------------------
def test_mixed_radix_matches_naive_latent_enumeration(x64):
    """(1 + 2^K)^M = 125 terms equal the naive 2^(M(K+1)) = 512-term sum with x summed out."""
    rbm = _model(8, 3, 3, 2)
    hs, Ss = _all_latents(3, 2)
    hS = hs[..., None] * Ss
    naive_terms = (
        hs @ rbm.c
        + jnp.sum(rbm.d * hS, axis=(-2, -1))
        + jnp.sum(jax.nn.softplus(rbm.b + jnp.einsum("tjk,ijk->ti", hS, rbm.W)), axis=-1)
    )
    np.testing.assert_allclose(rbm.log_partition(route="hidden"), logsumexp(naive_terms), rtol=1e-13)


def test_mixed_radix_decoding_covers_each_state_once():
    """Decoded (h, S) are distinct, S_j = 0 when h_j = 0, and multiplicities add up to 2^(M(K+1))."""
    n_gates, n_subspace = 3, 2
    idx = jnp.arange(5**3, dtype=jnp.int32)
    h, S, log_mult = (np.asarray(a) for a in decode_hidden(idx, n_gates, n_subspace, jnp.float32))
    assert h.shape == (125, 3) and S.shape == (125, 3, 2) and log_mult.shape == (125,)
    assert np.all(S * (1 - h)[..., None] == 0)
    assert len(np.unique(np.concatenate([h, S.reshape(125, -1)], axis=1), axis=0)) == 125
    np.testing.assert_allclose(np.sum(np.exp(log_mult.astype(np.float64))), 2 ** (3 * 3), rtol=1e-6)
    # a state with `off` gates off stands for 2^(K * off) naive states
    off = 3 - h.sum(1)
    np.testing.assert_allclose(log_mult, off * n_subspace * math.log(2), rtol=1e-6)


# -- (e) sampling ----------------------------------------------------------------------------
def test_sample_shapes_and_dtypes():
    rbm = SubspaceRBM.init(jax.random.PRNGKey(0), 6, 3, 2, scale=0.5)
    x = jnp.zeros((2, 4, 6), jnp.float32)
    h, S = rbm.sample_hidden(jax.random.PRNGKey(1), x)
    assert h.shape == (2, 4, 3) and S.shape == (2, 4, 3, 2)
    assert h.dtype == S.dtype == jnp.float32
    xv = rbm.sample_visible(jax.random.PRNGKey(2), (h, S))
    assert xv.shape == (2, 4, 6) and xv.dtype == jnp.float32
    assert set(np.unique(np.asarray(xv))) <= {0.0, 1.0}
    h2, S2 = jax.jit(lambda m, k, x: m.sample_hidden(k, x))(rbm, jax.random.PRNGKey(1), x)
    np.testing.assert_array_equal(h2, h)


def test_sample_hidden_frequencies():
    """Counts are Binomial(n, p) with p = p(h_j=1|x), p(h_j=1|x) p(S_jk=1|x,h_j=1) and
    (1 - p(h_j=1|x)) / 2 for (h_j=0, S_jk=1); allow 5 binomial standard errors."""
    rbm = _model(9, 5, 3, 2)
    x = jnp.asarray([1.0, 0.0, 1.0, 1.0, 0.0], jnp.float32)
    n = 20_000
    h, S = rbm.sample_hidden(jax.random.PRNGKey(3), jnp.broadcast_to(x, (n, 5)))
    h, S = np.asarray(h), np.asarray(S)
    p_h = np.asarray(rbm.hidden_probs(x), np.float64)
    p_s_on = np.asarray(rbm.subspace_probs(x, jnp.ones(3)), np.float64)
    cases = [
        (h.mean(0), p_h),
        ((h[..., None] * S).mean(0), p_h[:, None] * p_s_on),
        (((1 - h)[..., None] * S).mean(0), (1 - p_h)[:, None] * 0.5),
    ]
    for freq, p in cases:
        se = np.sqrt(p * (1 - p) / n) + 1e-12
        assert np.all(np.abs(freq - p) <= 5 * se), (freq, p)


def test_sample_visible_frequencies():
    rbm = _model(10, 5, 3, 2)
    h = jnp.asarray([1.0, 0.0, 1.0], jnp.float32)
    S = jnp.asarray([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], jnp.float32)
    n = 20_000
    xs = rbm.sample_visible(jax.random.PRNGKey(4), (jnp.broadcast_to(h, (n, 3)), jnp.broadcast_to(S, (n, 3, 2))))
    p = np.asarray(rbm.visible_probs(h, S), np.float64)
    se = np.sqrt(p * (1 - p) / n) + 1e-12
    assert np.all(np.abs(np.asarray(xs).mean(0) - p) <= 5 * se)


# -- (f) bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros((3, 2)), np.zeros(3), np.zeros(2), np.zeros((2, 1))), r"parameter W must have 3 dimension"),
        ((np.zeros((3, 2, 2)), np.zeros(2), np.zeros(2), np.zeros((2, 2))), r"parameter b must have shape \(3,\)"),
        ((np.zeros((3, 2, 2)), np.zeros(3), np.zeros(3), np.zeros((2, 2))), r"parameter c must have shape \(2,\)"),
        ((np.zeros((3, 2, 2)), np.zeros(3), np.zeros(2), np.zeros((2, 3))), r"parameter d must have shape \(2, 2\)"),
        ((np.zeros((3, 2, 2)), np.zeros(3), [0.0, np.nan], np.zeros((2, 2))), r"parameter c contains NaN"),
        ((np.full((3, 2, 2), np.inf), np.zeros(3), np.zeros(2), np.zeros((2, 2))), r"parameter W contains NaN or inf"),
    ],
)
def test_bad_parameters_refused(args, match):
    with pytest.raises(ValueError, match=match):
        SubspaceRBM(*args)


def test_bad_inputs_refused():
    rbm = SubspaceRBM.init(jax.random.PRNGKey(0), 3, 2, 2)
    with pytest.raises(ValueError, match=r"x must be binary \(0/1\).*found values such as \[0\.5\]"):
        rbm.energy([0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"x has shape \(4,\); expected \(\*batch, 3\)"):
        rbm.energy(np.zeros(4))
    with pytest.raises(ValueError, match=r"x contains 1 NaN"):
        rbm.hidden_probs([0.0, np.nan, 1.0])
    with pytest.raises(ValueError, match=r"h must be binary"):
        rbm.energy_joint(np.zeros(3), [0.0, 2.0], np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"S has shape \(2, 3\); expected \(\*batch, 2, 2\)"):
        rbm.energy_joint(np.zeros(3), np.zeros(2), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"S must be binary"):
        rbm.visible_probs(np.zeros(2), np.full((2, 2), -1.0))
    with pytest.raises(ValueError, match=r"h has shape \(3,\)"):
        rbm.subspace_probs(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"route must be 'hidden', 'visible' or None"):
        rbm.log_partition(route="gates")


# -- (g) too large ---------------------------------------------------------------------------
def test_too_large_enumeration_points_to_ais():
    rbm = SubspaceRBM.init(jax.random.PRNGKey(0), 40, 20, 3)  # 2^40 visible, 9^20 latent
    with pytest.raises(ValueError, match=r"terms.*ais"):
        rbm.log_partition()
    with pytest.raises(ValueError, match=r"2\^40 terms.*visible.*ebm_ppl\.ais"):
        rbm.log_partition(route="visible")
    small = SubspaceRBM.init(jax.random.PRNGKey(1), 6, 2, 2)  # 64 visible, 25 latent
    with pytest.raises(ValueError, match=r"hidden.*ais"):
        small.log_partition(route="hidden", max_terms=20)
    with pytest.raises(ValueError, match=r"ais"):
        log_partition(small, max_terms=10)


def test_rebuildfrom_config():
    """The default ``from_config`` (used by ebm_ppl.io) rebuilds the model, validating it."""
    rbm = _model(11, 3, 2, 2)
    arrays = {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(rbm)[0]}
    rebuilt = SubspaceRBM.from_config(rbm.to_config(), arrays)
    np.testing.assert_array_equal(rebuilt.d, rbm.d)
    arrays[".d"] = arrays[".d"][:, :1]
    with pytest.raises(ValueError, match=r"parameter d must have shape"):
        SubspaceRBM.from_config(rbm.to_config(), arrays)
