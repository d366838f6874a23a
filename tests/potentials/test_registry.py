"""Registry: built-in families, decorator registration and entry-point plugins."""

import subprocess
import sys
import textwrap

import pytest

import ebm_ppl as ep
from ebm_ppl.potentials import registry

BUILT_IN = {"gaussian", "boltzmann", "bernoulli_rbm", "gaussian_bernoulli_rbm", "subspace_rbm", "jem"}


def test_every_family_is_registered_under_its_name():
    found = ep.list_potentials()
    assert BUILT_IN <= set(found)
    for name in BUILT_IN:
        cls = ep.get_potential(name)
        assert cls is found[name] and cls.name == name and issubclass(cls, ep.Potential)
    assert list(found) == sorted(found)


def test_unknown_name_lists_what_exists():
    with pytest.raises(KeyError, match="no potential named 'nope'.*bernoulli_rbm"):
        ep.get_potential("nope")


def test_register_refuses_clashes_and_non_potentials(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Other(ep.BernoulliRBM):
        name = "bernoulli_rbm"

    with pytest.raises(ValueError, match="already registered"):
        ep.register_potential()(Other)
    assert ep.register_potential(overwrite=True)(Other) is Other
    assert ep.get_potential("bernoulli_rbm") is Other
    with pytest.raises(TypeError, match="Potential subclass"):
        ep.register_potential("x")(dict)


PLUGIN = '''
import jax.numpy as jnp
import ebm_ppl as ep

class Quartic(ep.Potential):
    """E(x) = sum x^4: a third party's energy."""
    name = "quartic"
    support = ep.Support.REAL
    dim: int = 3

    @property
    def event_shape(self):
        return (self.dim,)

    def unbatched_energy(self, x):
        return jnp.sum(x**4)
'''


def test_third_party_entry_point_is_discovered(tmp_path):
    (tmp_path / "quartic_plugin.py").write_text(PLUGIN)
    info = tmp_path / "quartic_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: quartic-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ebm_ppl.potentials]\nquartic = quartic_plugin:Quartic\n")
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import ebm_ppl as ep
        names = sorted(ep.list_potentials())
        assert "quartic" in names, names
        cls = ep.get_potential("quartic")
        print(float(cls().energy([1.0, 2.0, 0.0])))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "17.0"


def test_broken_plugin_warns_instead_of_breaking(tmp_path):
    info = tmp_path / "broken_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ebm_ppl.potentials]\nbroken = no_such_module:Thing\n")
    script = textwrap.dedent(
        f"""
        import sys, warnings
        sys.path.insert(0, {str(tmp_path)!r})
        import ebm_ppl as ep
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = ep.list_potentials()
        assert "broken" not in names and "bernoulli_rbm" in names
        assert any("broken" in str(w.message) for w in caught), caught
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_subclasses_written_for_the_old_names_still_work_with_a_deprecation_warning():
    """ebm_ppl 0.1 subclasses defined _energy / _config / _from_arrays; they keep working under
    the public names (unbatched_energy, to_config, from_config) and are told to rename."""
    import jax.numpy as jnp
    import pytest

    with pytest.warns(DeprecationWarning, match="define unbatched_energy instead"):

        class Old(ep.Potential):
            name = "test_old_style"
            support = ep.Support.REAL

            @property
            def event_shape(self):
                return (2,)

            def _energy(self, x):
                return jnp.sum(x**2)

    assert float(Old().energy(jnp.ones(2))) == 2.0
    assert float(Old().logdensity_fn()(jnp.ones(2))) == -2.0
