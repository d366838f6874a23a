"""Start-up: what ``import ebm_ppl`` loads, and the persistent compilation cache
(ep.compiler.enable_persistent_cache and the command line's default).

Each check runs fresh processes (the cache matters across processes, and enabling it changes
JAX's settings for the whole process); compilations are counted with ``jax.monitoring`` events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

import ebm_ppl as ep
from ebm_ppl import compiler

ROOT = Path(__file__).resolve().parents[1]

_AIS_RUN = """
import json, sys
import jax, jax.monitoring as mon
events = {}
mon.register_event_listener(lambda name, **kw: events.__setitem__(name, events.get(name, 0) + 1))
import ebm_ppl as ep
ep.compiler.enable_persistent_cache(sys.argv[1])
rbm = ep.BernoulliRBM.init(jax.random.key(0), 16, 4)
est = ep.ais(jax.random.key(0), rbm, num_chains=10, num_temperatures=20)
print(json.dumps({"log_z": est.log_z, "blackjax": "blackjax" in sys.modules, "hits": events.get("/jax/compilation_cache/cache_hits", 0),
                  "misses": events.get("/jax/compilation_cache/cache_misses", 0)}))
"""


def _python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=full_env,
                          cwd=ROOT, timeout=300)


def test_import_leaves_the_plotting_and_arviz_stack_for_later():
    """ArviZ, xarray, matplotlib and scipy.stats were two thirds of the import time (2.25 s -> 1.1 s
    without them, Intel Xeon); every public name now loads on first use (PEP 562), so ``import
    ebm_ppl`` loads not even JAX, and ``ebm_ppl.cli`` starts no backend (BlackJAX's import does).
    Training and AIS import no BlackJAX (0.3 s): their moves live in ``ebm_ppl.moves``."""
    code = ("import sys, ebm_ppl as ep\n"
            "heavy = [m for m in ('arviz', 'xarray', 'matplotlib', 'scipy.stats', 'blackjax', 'numpyro', 'jax')\n"
            "         if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "import ebm_ppl.cli\n"  # the command line starts no backend before it may join jax.distributed
            "from jax._src import xla_bridge\n"
            "assert not xla_bridge.backends_are_initialized()\n"
            "assert ep.fit is ep.training.fit and ep.ais is ep.partition.ais and 'blackjax' not in sys.modules\n"
            "assert ep.kernels.block_gibbs and 'blackjax' in sys.modules\n"
            "assert callable(ep.report) and callable(ep.diagnose) and ep.diagnostics.report is ep.report\n"
            "assert 'arviz' in sys.modules and 'report' in dir(ep)\n"
            "from ebm_ppl import diagnostics\n"
            "try:\n    ep.no_such_name\nexcept AttributeError as e:\n    assert 'no_such_name' in str(e)\n"
            "else:\n    raise SystemExit('no AttributeError')\n")
    run = _python(code)
    assert run.returncode == 0, run.stderr
    # the BlackJAX-free moves are reachable as attributes before anything imported them
    run = _python("import ebm_ppl as ep\nassert callable(ep.moves.ladders.ladder) and callable(ep.moves.langevin.run)\n")
    assert run.returncode == 0, run.stderr
    # so is ep.inference, which the docs name (ep.inference.default_kernel, .sampling.draw_bucket)
    run = _python("import ebm_ppl as ep\nassert callable(ep.inference.default_kernel)\n"
                  "assert ep.inference.sampling.thin_bucket(9) == 10\n")
    assert run.returncode == 0, run.stderr


def test_numpyro_loaded_on_first_use_is_complete():
    """NumPyro is imported on first use; importing a submodule first (the support's transform, in
    an AIS on a bounded support) left ``numpyro.distributions`` without its ``distribution``
    attribute when ArviZ had been imported before, so a later ``numpyro.factor`` (and
    test_function.py run alone) failed with an AttributeError inside NumPyro."""
    code = ("import arviz, jax, jax.numpy as jnp, ebm_ppl as ep\n"  # ArviZ first, as a notebook may
            "beta = ep.potential(lambda x: -jnp.sum(jnp.log(x) + 2.0 * jnp.log1p(-x)), event_shape=(2,),\n"
            "                    support=ep.box(0.0, 1.0))\n"
            "ep.ais(jax.random.key(0), beta, num_chains=4, num_temperatures=10)\n"
            "import numpyro\n"
            "assert hasattr(numpyro.distributions, 'distribution')\n"
            "numpyro.handlers.trace(lambda: numpyro.factor('f', 0.0)).get_trace()\n")
    run = _python(code)
    assert run.returncode == 0, run.stderr


def test_a_second_process_loads_the_programs_from_the_cache(tmp_path):
    first = _python(_AIS_RUN, str(tmp_path / "cache"))
    assert first.returncode == 0, first.stderr
    second = _python(_AIS_RUN, str(tmp_path / "cache"))
    assert second.returncode == 0, second.stderr
    a, b = json.loads(first.stdout.splitlines()[-1]), json.loads(second.stdout.splitlines()[-1])
    assert a["misses"] > 0 and a["hits"] == 0
    assert b["hits"] == a["misses"] and b["misses"] == 0  # every program the first compiled, loaded
    assert b["log_z"] == a["log_z"]  # the loaded programs compute the same thing
    assert any((tmp_path / "cache").iterdir())
    # AIS's Gibbs moves live in ebm_ppl.moves: a script that only estimates log Z does not pay for
    # importing BlackJAX (0.26-0.35 s of a 1.5 s cached process, Intel Xeon)
    assert not a["blackjax"] and not b["blackjax"]


@pytest.fixture(scope="module")
def saved_rbm(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "rbm.ebm"
    ep.save(path, ep.BernoulliRBM.init(jax.random.key(0), 64, 4))
    return path


_CLI = "import sys; from ebm_ppl.cli import main; sys.exit(main(sys.argv[1:]))"


def _logz(model: Path, out: Path, *flags: str, env: dict) -> subprocess.CompletedProcess:
    return _python(_CLI, *flags, "logz", str(model), "--chains", "4", "--temperatures", "10", "--quiet",
                   "--out", str(out), env=env)


def test_a_command_imports_only_its_own_module(saved_rbm, tmp_path):
    """``ebm-ppl logz`` builds its own subparser only: ArviZ, xarray and BlackJAX (1.6 s of the
    second logz process's 3.9 s, Intel Xeon) stay unimported, and ``train`` imports no ArviZ;
    ``ebm-ppl --help`` still lists every command."""
    code = ("import sys\nfrom ebm_ppl.cli import main\n"
            f"code = main(['logz', {str(saved_rbm)!r}, '--chains', '4', '--temperatures', '10', '--quiet', "
            f"'--out', {str(tmp_path / 'out')!r}])\n"
            "heavy = [m for m in ('arviz', 'xarray', 'blackjax', 'numpyro') if m in sys.modules]\n"
            "assert code == 0 and not heavy, (code, heavy)\n"
            "assert main(['train', '--help']) == 0\n"  # its figures need matplotlib, not ArviZ
            "assert not [m for m in ('arviz', 'xarray') if m in sys.modules]\n")
    run = _python(code, env={"EBM_PPL_COMPILE_CACHE": "off"})
    assert run.returncode == 0, run.stderr
    listing = _python(_CLI, "--help")
    assert listing.returncode == 0 and all(f"ebm-ppl {name}" in listing.stdout
                                           for name in ("quickstart", "train", "sample", "report", "logz"))


def test_the_command_line_caches_unless_told_not_to(saved_rbm, tmp_path):
    cache = tmp_path / "cache"
    run = _logz(saved_rbm, tmp_path / "a", env={compiler.CACHE_ENV: str(cache)})
    assert run.returncode == 0, run.stderr
    assert cache.is_dir() and any(cache.iterdir())

    off = tmp_path / "off"
    run = _logz(saved_rbm, tmp_path / "b", "--no-compile-cache", env={compiler.CACHE_ENV: str(off)})
    assert run.returncode == 0, run.stderr
    assert not off.exists()  # (CACHE_ENV=off takes the same path: cache_dir() is None, tested below)


def test_an_unusable_cache_folder_is_a_warning_not_a_failure(saved_rbm, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run = _logz(saved_rbm, tmp_path / "out", env={compiler.CACHE_ENV: str(blocker / "cache")})
    assert run.returncode == 0, run.stderr
    assert "ebm-ppl: warning: compile cache disabled" in run.stderr and "Traceback" not in run.stderr


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(compiler.CACHE_ENV, str(tmp_path / "x"))
    assert compiler.cache_dir() == tmp_path / "x"
    for off in ("off", "0", "FALSE", "no"):
        monkeypatch.setenv(compiler.CACHE_ENV, off)
        assert compiler.cache_dir() is None
    monkeypatch.delenv(compiler.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compiler.cache_dir() == tmp_path / "xdg" / "ebm_ppl" / "xla"
    monkeypatch.setenv(compiler.CACHE_ENV, "off")
    with pytest.raises(ValueError, match="disables the cache"):
        compiler.enable_persistent_cache()


@pytest.mark.parametrize("kwargs, message", [
    (dict(path=""), "path must name a folder, got ''"),
    (dict(path=3), "path must name a folder, got 3"),
    (dict(min_compile_time=float("nan")), "min_compile_time must be finite"),
    (dict(min_compile_time=-5), "min_compile_time must be >= 0"),
    (dict(min_compile_time="1"), "min_compile_time must be a real number"),
])
def test_enable_persistent_cache_refuses_bad_arguments(kwargs, message):
    """Before, path='' turned the cache on in the working directory and any min_compile_time
    was passed to JAX as it came. Refused before anything is set."""
    with pytest.raises(ValueError, match=message):
        compiler.enable_persistent_cache(**kwargs)
