"""Issue 15: hostile and careless inputs to the Python API, by class.

Each case asserts the error type, a fragment of the message that names the problem, and (for
errors) that it was raised by ebm_ppl's own checks at the public boundary, not from inside JAX or
NumPy. Cases that must be accepted (NumPy and JAX scalars where Python numbers are) run the call.
The CLI's cases are in ``test_cli_hostile.py``.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import ebm_ppl as ep
from ebm_ppl.partition.estimate import summarize_log_weights, warn_if_degenerate

KEY = jax.random.key(0)
RBM = ep.BernoulliRBM.init(KEY, 6, 3, scale=0.5)
BM = ep.BoltzmannMachine.init(KEY, 4)
GAUSS = ep.Gaussian(np.zeros(2, np.float32))
PACKAGE = os.path.dirname(ep.__file__)


def _refused(call, error, fragment):
    """``call()`` raises ``error`` naming ``fragment``, from ebm_ppl's own code."""
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value), str(info.value)
    assert str(info.traceback[-1].path).startswith(PACKAGE), f"raised in {info.traceback[-1].path}"


# -- item 5: every option of ais / reverse_ais, EnergyKernel and EnergyDistribution --------------------

def _ais(**kw):
    return lambda: ep.ais(KEY, GAUSS, **{"num_chains": 4, "num_temperatures": 16, **kw})


@pytest.mark.parametrize("call, fragment", [
    (_ais(kernel="hmc", num_integration_steps=-2), "num_integration_steps must be an integer >= 1"),
    (_ais(kernel="hmc", num_integration_steps=0), "num_integration_steps must be an integer >= 1"),
    (_ais(kernel="hmc", num_integration_steps=2.5), "num_integration_steps must be an integer >= 1"),
    (_ais(num_chains=1), "num_chains must be an integer >= 2"),
    (_ais(num_chains=True), "num_chains must be an integer >= 2"),
    (_ais(num_chains=4.0), "num_chains must be an integer >= 2"),
    (_ais(num_temperatures=16.5), "num_temperatures must be an integer >= 10"),
    (_ais(num_temperatures="100"), "num_temperatures must be an integer >= 10"),
    (_ais(kernel=3), "kernel must be a name"),
    (_ais(kernel="nuts"), "must be 'mala' or 'hmc'"),
    (_ais(progress="yes"), "progress must be True or False"),
    (_ais(schedule="0 0.5 1"), "schedule must be a 1-d array of real numbers"),
    (_ais(schedule=np.linspace(0, 1, 11) + 0j), "schedule must be a 1-d array of real numbers"),
    (_ais(base="gaussian"), "base of a real potential must be an ep.Gaussian"),
    (lambda: ep.reverse_ais(KEY, GAUSS, np.zeros((3, 2)), exact="no"), "exact must be True or False"),
    (lambda: ep.reverse_ais(KEY, GAUSS, np.zeros((3, 2)), kernel="hmc", num_integration_steps=0),
     "num_integration_steps must be an integer >= 1"),
    (lambda: ep.reverse_ais(KEY, GAUSS, np.zeros((1, 2))), "num_chains must be an integer >= 2"),
    (lambda: ep.numpyro.EnergyKernel(GAUSS, step_size=-1.0), "EnergyKernel: step_size must be a positive number"),
    (lambda: ep.training.centered(ep.training.pcd(), rate=True), "rate must be a real number, got a bool (True)"),
    (lambda: ep.numpyro.EnergyKernel(GAUSS, step_size="a"), "step_size must be a real number"),
    (lambda: ep.numpyro.EnergyKernel(GAUSS, step_size=1 + 1j), "step_size must be a real number"),
    (lambda: ep.numpyro.EnergyKernel(GAUSS, noise_scale=-1.0), "noise_scale must be >= 0"),
    (lambda: ep.numpyro.EnergyKernel(GAUSS, noise_scale=float("nan")), "noise_scale must be finite"),
    (lambda: ep.numpyro.EnergyDistribution(RBM, sampler_steps=-5), "sampler_steps must be a positive integer"),
    (lambda: ep.numpyro.EnergyDistribution(RBM, sampler_steps=2.5), "sampler_steps must be a positive integer"),
    (lambda: ep.numpyro.EnergyDistribution(RBM, kernel="bogus"), "unknown kernel 'bogus'"),
    (lambda: ep.numpyro.EnergyDistribution(RBM, kernel="mala"), "needs gradients"),
])
def test_sampler_options_are_checked(call, fragment):
    _refused(call, ValueError, fragment)


# -- item 6: complex input is refused wherever input is validated ---------------------------------------

Z2 = np.array([1 + 1j, 0])


@pytest.mark.parametrize("call, fragment", [
    (lambda: GAUSS.energy(Z2), "x has complex dtype"),
    (lambda: RBM.energy(np.ones(6) + 0j), "x has complex dtype"),
    (lambda: RBM.hidden_probs(np.ones(6) + 0j), "x has complex dtype"),
    (lambda: RBM.energy_joint(np.ones(6), np.ones(3) + 0j), "h has complex dtype"),
    (lambda: ep.Gaussian(Z2), "parameter mean has complex dtype"),
    (lambda: ep.Gaussian(np.zeros(2), scale_diag=np.ones(2) + 0j), "parameter scale_diag has complex dtype"),
    (lambda: ep.BernoulliRBM(np.zeros((2, 2)) + 0j, np.zeros(2), np.zeros(2)), "parameter W has complex dtype"),
    (lambda: ep.BernoulliRBM.init(KEY, 3, 2, dtype=jnp.complex64), "real floating dtype"),
    (lambda: ep.BernoulliRBM.base_rate(np.ones((2, 6)) + 0j, 2), "data has complex dtype"),
    (lambda: RBM.base_model(np.ones((2, 6)) + 0j), "data has complex dtype"),
    (lambda: ep.sample(KEY, GAUSS, "mala", num_chains=2, init=Z2), "init has complex dtype"),
    (lambda: ep.ais(KEY, GAUSS, num_chains=4, num_temperatures=16, data=np.ones((3, 2)) + 1j),
     "data has complex dtype"),
    (lambda: ep.reverse_ais(KEY, GAUSS, np.zeros((3, 2)) + 1j), "start has complex dtype"),
    (lambda: ep.fit(RBM, np.ones((10, 6)) + 0j, ep.training.cd(), key=KEY, batch_size=5), "data has complex dtype"),
    (lambda: ep.training.langevin_samples(KEY, GAUSS, 2, steps=1, init=np.zeros((2, 2)) + 1j),
     "init has complex dtype"),
    (lambda: ep.log_likelihood(RBM, np.ones((2, 6)), 1 + 1j), "log_z must be a real number"),
    (lambda: ep.numpyro.EnergyDistribution(GAUSS).log_prob(Z2), "complex dtype"),
    (lambda: ep.numpyro.EnergyKernel(GAUSS).init(KEY, 0, Z2, (), {}), "init_params has complex dtype"),
])
def test_complex_input_is_refused(call, fragment):
    _refused(call, ValueError, fragment)


# -- NumPy and 0-d JAX numbers are accepted wherever Python numbers are -----------------------------------

@pytest.mark.parametrize("call, check", [
    (lambda: ep.training.pcd(k=np.int64(1), num_chains=np.int32(10)), lambda e: (e.k, e.num_chains) == (1, 10)),
    (lambda: ep.training.cd(k=jnp.asarray(2)), lambda e: e.k == 2 and type(e.k) is int),
    (lambda: ep.training.jem(langevin_steps=np.int64(3), step_size=jnp.asarray(0.5), persistent=np.bool_(True)),
     lambda e: (e.langevin_steps, e.step_size, e.persistent) == (3, 0.5, True)),
    (lambda: ep.ais(KEY, RBM, num_chains=np.int32(4), num_temperatures=jnp.asarray(16)),
     lambda est: est.num_chains == 4 and est.num_temperatures == 16),
    (lambda: ep.sample(KEY, GAUSS, "mala", num_chains=jnp.asarray(2), num_warmup=np.int64(3),
                       num_samples=np.int16(5), step_size=np.float32(0.1)),
     lambda d: d.posterior["x"].shape == (2, 5, 2)),
    (lambda: ep.partition.exact_samples(KEY, RBM, jnp.asarray(3)), lambda x: x.shape == (3, 6)),
    (lambda: ep.BernoulliRBM.init(KEY, np.int64(5), jnp.asarray(2), scale=np.float32(0.1)),
     lambda m: m.W.shape == (5, 2)),
    (lambda: ep.log_partition(RBM, chunk_size=np.int64(4), max_terms=jnp.asarray(64)),
     lambda z: np.isclose(float(z), float(ep.log_partition(RBM)), rtol=1e-5)),
    (lambda: ep.numpyro.EnergyKernel(GAUSS, step_size=np.float32(0.1), noise_scale=jnp.asarray(0.2)),
     lambda k: k.kernel == "langevin"),
    (lambda: ep.numpyro.EnergyDistribution(RBM, np.float32(3.0), sampler_steps=np.int64(5)),
     lambda d: d.sampler_steps == 5 and float(d.log_z) == 3.0),
    (lambda: ep.Gaussian.standard(np.int8(3)).sample(KEY, (np.int64(2),)), lambda x: x.shape == (2, 3)),
])
def test_numpy_and_jax_scalars_are_accepted(call, check):
    assert check(call())


def test_fit_accepts_numpy_and_jax_integers():
    data = np.asarray(jax.random.bernoulli(KEY, 0.5, (20, 6)), np.float32)
    model, history = ep.fit(RBM, data, ep.training.pcd(k=np.int64(1), num_chains=np.int32(5)), key=KEY,
                            epochs=np.int64(2), batch_size=jnp.asarray(10), eval_every=np.int8(1),
                            metrics=False, shuffle=np.bool_(True))
    assert len(history.records) == 2


# -- errors at the boundary, never from inside JAX: sizes, enumeration options, log_z ------------------

@pytest.mark.parametrize("call, fragment", [
    (lambda: ep.BernoulliRBM.init(KEY, -3, 2), "n_visible must be a positive integer"),
    (lambda: ep.BernoulliRBM.init(KEY, 2.5, 2), "n_visible must be a positive integer"),
    (lambda: ep.BernoulliRBM.init(KEY, 0, 2), "n_visible must be a positive integer"),
    (lambda: ep.BernoulliRBM.init(KEY, 3, 2, scale="a"), "scale must be a real number"),
    (lambda: ep.BernoulliRBM.init(KEY, 3, 2, dtype=jnp.int32), "real floating dtype"),
    (lambda: ep.GaussianBernoulliRBM.init(KEY, 3, -1), "n_hidden must be a positive integer"),
    (lambda: ep.SubspaceRBM.init(KEY, 3, 2, 2.5), "n_subspace must be a positive integer"),
    (lambda: ep.BoltzmannMachine.init(KEY, -2), "dim must be a positive integer"),
    (lambda: ep.BoltzmannMachine.init(KEY, 1.5), "dim must be a positive integer"),
    (lambda: ep.JEM.init(KEY, 2.5, 3), "in_features must be a positive integer"),
    (lambda: ep.JEM.init(KEY, 4, 3, depth=-1), "depth must be a non-negative integer"),
    (lambda: ep.Gaussian.standard(-1), "dim must be a positive integer"),
    (lambda: ep.BernoulliRBM.base_rate(np.ones((2, 6)), -1), "n_hidden must be a positive integer"),
    (lambda: ep.BernoulliRBM.base_rate(np.ones((2, 6)), 2, smoothing=float("nan")), "smoothing must be finite"),
    (lambda: GAUSS.initial_positions(KEY, -1), "num must be a non-negative integer"),
    (lambda: GAUSS.sample(KEY, (-1,)), "sample_shape entry must be a non-negative integer"),
    (lambda: ep.log_partition(RBM, chunk_size=0), "chunk_size must be a positive integer"),
    (lambda: ep.log_partition(RBM, chunk_size=-1), "chunk_size must be a positive integer"),
    (lambda: ep.log_partition(BM, chunk_size=2.5), "chunk_size must be a positive integer"),
    (lambda: ep.log_partition(RBM, max_terms="a"), "max_terms must be a positive integer"),
    (lambda: ep.log_partition(BM, max_terms=-1), "max_terms must be a positive integer"),
    (lambda: ep.log_likelihood(RBM, np.ones((2, 6)), np.ones(3)), "log_z must be a scalar"),
    (lambda: ep.numpyro.EnergyDistribution(RBM, np.ones(3)), "log_z must be a scalar"),
    (lambda: ep.numpyro.factor("f", RBM, np.ones(6), np.ones((1, 1))), "log_z must be a scalar"),
    (lambda: ep.sample(KEY, GAUSS, "mala", num_chains=0), "num_chains must be an integer >= 1"),
    (lambda: ep.inference.sampling.draw(KEY, GAUSS, -1, kernel="mala"), "num must be an integer >= 1"),
    (lambda: ep.training.langevin_samples(KEY, GAUSS, 2, init_low=1.0, init_high="2"), "init_high must be a real"),
    (lambda: ep.training.jem_metrics(num_negatives=0), "num_negatives must be an integer >= 1"),
    (lambda: ep.fit(RBM, np.ones((10, 6)), ep.training.cd(), key=KEY, batch_size=5, patience=0),
     "patience must be an integer >= 1"),
    (lambda: ep.fit(RBM, np.ones((10, 6)), ep.training.cd(), key=KEY, batch_size=5, resume="no"),
     "resume must be True or False"),
    (lambda: ep.fit(RBM, np.ones((10, 6)), ep.training.cd(), key=KEY, batch_size=5, freeze="Wb"),
     "no field(s) ['Wb']"),
    (lambda: ep.diagnostics.diagnose(None), "xarray.DataTree"),
])
def test_bad_values_are_refused_at_the_boundary(call, fragment):
    error = TypeError if fragment == "xarray.DataTree" else ValueError
    _refused(call, error, fragment)


def _energy(fn, support="binary"):
    return ep.potential(fn, event_shape=(3,), support=support)


_NAN_AT_ONE = _energy(lambda x: jnp.where(x[0] > 0, jnp.nan, jnp.sum(x)))


@pytest.mark.parametrize("call, fragment", [
    (lambda: ep.log_partition(_NAN_AT_ONE), "exact log Z of FunctionPotential is NaN"),
    (lambda: ep.partition.exact_samples(KEY, _NAN_AT_ONE, 4), "the energy is NaN at some states"),
    (lambda: ep.log_partition(_energy(lambda x: jnp.where(x[0] > 0, -jnp.inf, 0.0))), "cannot be normalized"),
    (lambda: ep.log_partition(_energy(lambda x: jnp.inf * jnp.ones(()), "spin")), "+inf (or overflows) at every state"),
    (lambda: ep.partition.exact_samples(KEY, _energy(lambda x: jnp.inf * jnp.ones(())), 4), "+inf at every state"),
])
def test_exact_routes_refuse_energies_that_are_not_normalizable(call, fragment):
    """Before, NaN energies gave a NaN log Z and garbage exact samples, silently."""
    _refused(call, ValueError, fragment)


class _PerCoordinate(ep.Potential):
    """A subclass whose energy returns one value per coordinate instead of their sum."""

    name: ClassVar[str] = "per_coordinate_test"
    support: ClassVar = ep.Support.BINARY

    @property
    def event_shape(self):
        return (3,)

    def unbatched_energy(self, x):
        return 1.0 * x


class _Broken(_PerCoordinate):
    name: ClassVar[str] = "broken_test"

    def unbatched_energy(self, x):
        return jnp.sum(x @ jnp.ones((4, 2)))  # (3,) @ (4, 2)


def test_a_model_potentials_sites_check_the_point_shape():
    """Was JAX's "Sum of sizes 3 must be equal to dimension 0" from inside the unravelling."""
    import numpyro
    import numpyro.distributions as dist

    def model():
        numpyro.sample("a", dist.Normal(0.0, 1.0).expand([3]).to_event(1))

    potential = ep.numpyro.potential_from_model(model)
    _refused(lambda: potential.sites(jnp.zeros(5)), ValueError, "sites: z has shape (5,); expected (*batch, 3)")
    assert np.isnan(potential.sites(jnp.full((1, 3), jnp.nan))["a"]).all()  # a diverged draw maps to NaN
    assert potential.sites(jnp.zeros((2, 3)))["a"].shape == (2, 3)


@pytest.mark.parametrize("call, fragment", [
    (lambda: ep.log_partition(_PerCoordinate()), "log_partition: _PerCoordinate.unbatched_energy must return a real "
                                                 "scalar for one example of shape (3,), got shape (3,)"),
    (lambda: ep.sample(KEY, _PerCoordinate(), num_chains=2, num_samples=4), "sample: _PerCoordinate.unbatched_energy"),
    (lambda: ep.ais(KEY, _PerCoordinate(), num_chains=4, num_temperatures=8), "_PerCoordinate.unbatched_energy"),
    (lambda: ep.sample(KEY, _Broken(), num_chains=2, num_samples=4), "sample: _Broken.unbatched_energy fails on one example"),
])
def test_a_subclass_energy_that_is_not_a_scalar_is_refused(call, fragment):
    """Before, log_partition failed inside JAX's broadcasting and sample inside jnp's utilities."""
    _refused(call, ValueError, fragment)


@pytest.mark.parametrize("call, fragment", [
    (lambda: ep.log_likelihood(RBM, np.ones((2, 6)), "3"), "log_z must be a number, a 0-d array or an AISEstimate"),
    (lambda: ep.numpyro.EnergyDistribution(RBM, "a"), "log_z must be a number"),
    (lambda: ep.numpyro.factor("f", RBM, np.ones(6), [1.0]), "log_z must be a number"),
])
def test_a_log_z_that_is_not_a_number_is_a_type_error(call, fragment):
    _refused(call, TypeError, fragment)


# -- NaN is never passed through silently ---------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: ep.log_likelihood(RBM, np.ones((2, 6)), float("nan")),
    lambda: ep.log_likelihood(RBM, np.ones((2, 6)), np.float32("inf")),
    lambda: ep.numpyro.EnergyDistribution(RBM, float("nan")),
    lambda: ep.numpyro.factor("f", RBM, np.ones(6), jnp.asarray(np.nan)),
])
def test_a_non_finite_log_z_is_refused(call):
    _refused(call, ValueError, "log Z must be finite")


class _NaNEnergy(ep.Potential):
    """A real potential whose energy is NaN everywhere (a diverged model, say)."""

    name = "nan_energy"
    support = ep.Support.REAL

    @property
    def event_shape(self):
        return (2,)

    def unbatched_energy(self, x):
        return jnp.nan * jnp.sum(x)


def test_an_ais_run_with_nan_weights_warns_and_says_so():
    with pytest.warns(RuntimeWarning, match=r"include 4 NaN, so the estimate is NaN"):
        est = ep.ais(KEY, _NaNEnergy(), num_chains=4, num_temperatures=16)
    assert np.isnan(est.log_z)
    with pytest.raises(ValueError, match="the AIS estimate is not finite"):
        ep.log_likelihood(GAUSS, np.zeros((1, 2)), est)


@pytest.mark.parametrize("log_weights, fragment", [
    ([np.nan] * 4, "4 NaN"),
    ([0.0, np.nan, 1.0, 2.0], "1 NaN"),
    ([0.0, np.inf, 1.0, 2.0], "1 +inf"),
    ([-np.inf] * 4, "4 -inf"),
])
def test_non_finite_weights_give_nan_and_a_warning(log_weights, fragment):
    log_mean, stderr, ess = summarize_log_weights(log_weights)
    assert np.isnan(log_mean) and np.isnan(stderr) and np.isnan(ess)
    with pytest.warns(RuntimeWarning, match=re.escape(fragment)):
        warn_if_degenerate(ess, 4, "ais", np.asarray(log_weights))


def test_a_nan_ess_still_counts_as_degenerate():
    with pytest.warns(RuntimeWarning, match="degenerate"):
        warn_if_degenerate(float("nan"), 10, "ais")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_degenerate(9.0, 10, "ais", np.zeros(10))  # healthy weights: no warning


# -- misleading messages: the wrong kind of object is named ----------------------------------------------

@pytest.mark.parametrize("call, fragment", [
    (lambda: ep.log_partition("rbm"), "log_partition expects an ebm_ppl.Potential, got str 'rbm'; a saved model is ep.load"),
    (lambda: ep.ais(KEY, "rbm"), "ais expects an ebm_ppl.Potential, got str"),
    (lambda: ep.reverse_ais(KEY, "rbm", np.zeros((2, 6))), "reverse_ais expects an ebm_ppl.Potential, got str"),
    (lambda: ep.partition.exact_samples(KEY, "rbm", 3), "exact_samples expects an ebm_ppl.Potential"),
    (lambda: ep.log_likelihood("rbm", np.zeros(6), 0.0), "log_likelihood expects an ebm_ppl.Potential"),
    (lambda: ep.sandwich("lower", "upper"), "sandwich takes two AISEstimates"),
    (lambda: ep.inference.sampling.draw(KEY, "rbm", 2), "draw expects an ebm_ppl.Potential"),
    (lambda: ep.numpyro.factor("f", "rbm", np.zeros(6)), "factor expects an ebm_ppl.Potential"),
    # a NumPyro distribution is callable: it was named 'the function energy_fn'
    (lambda: ep.numpyro.EnergyDistribution(dist.Normal(0.0, 1.0)),
     "EnergyDistribution expects an ebm_ppl.Potential, got the NumPyro distribution Normal: in a model, use it"),
])
def test_the_wrong_kind_of_object_is_a_type_error_naming_it(call, fragment):
    _refused(call, TypeError, fragment)
