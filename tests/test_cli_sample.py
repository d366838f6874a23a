"""``ebm-ppl sample`` and ``ebm-ppl report``: files written and read back, options, one-line errors."""

from __future__ import annotations

import contextlib
import io
import sys

import arviz as az
import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr
from numpyro.infer import MCMC, NUTS

import ebm_ppl as ep
from ebm_ppl.cli import main
from ebm_ppl.cli.sample import read_samples
from cli_helpers import run_cli as _run
from cli_helpers import one_line_error as _one_line_error


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A binary RBM over the 64 digit pixels, a 3-d Gaussian, and a file that is not a model."""
    folder = tmp_path_factory.mktemp("models")
    rbm = ep.BernoulliRBM.init(jax.random.key(0), 64, 8, scale=0.5)
    ep.save(folder / "rbm.ebm", rbm)
    gauss = ep.Gaussian(np.array([1.0, -2.0, 0.5], np.float32), scale_diag=np.array([1.0, 0.5, 2.0], np.float32))
    ep.save(folder / "gauss.ebm", gauss)
    (folder / "notes.ebm").write_text("not a model\n")
    return folder


@pytest.fixture(scope="module")
def rbm_run(models, tmp_path_factory):
    """One small `sample` run of the RBM (the default kernel), shared by several tests."""
    out = tmp_path_factory.mktemp("samples") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["sample", str(models / "rbm.ebm"), "--chains", "3", "--warmup", "5", "--samples", "12",
                     "--thin", "2", "--seed", "7", "--out", str(out)])
    return code, stdout.getvalue(), stderr.getvalue(), out


def test_sample_writes_netcdf_that_loads_back(rbm_run):
    code, stdout, err, out = rbm_run
    assert code == 0, err
    assert err == ""  # stderr is not a TTY under pytest: no progress bar
    path = out / "samples.nc"
    assert sorted(p.name for p in out.iterdir()) == ["samples.nc"]  # no temporary file left behind
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        data = tree.load()
    assert data["posterior"]["x"].shape == (3, 12, 64)
    assert set(np.unique(data["posterior"]["x"].values).tolist()) <= {0.0, 1.0}
    assert data["sample_stats"]["lp"].shape == (3, 12) and "energy" not in data["sample_stats"]  # ArviZ's names
    assert data["posterior"].attrs["stats_schema"] == "arviz"
    assert data.attrs["kernel"] == "block_gibbs" and data.attrs["seed"] == 7 and data.attrs["thin"] == 2
    assert "MCMC diagnostics: 3 chains x 12 draws" in stdout and "verdict:" in stdout
    assert f"to {path}" in stdout
    assert f"ebm-ppl report {out}" in stdout  # the next command (not --quiet)


def test_sample_is_deterministic_in_the_seed(models, rbm_run, tmp_path, capsys):
    again = tmp_path / "again"
    code, stdout, _ = _run(capsys, ["sample", models / "rbm.ebm", "--chains", 3, "--warmup", 5, "--samples", 12,
                                    "--thin", 2, "--seed", 7, "--quiet", "--out", again])
    assert code == 0 and "ebm-ppl report" not in stdout  # --quiet: no hint
    first, second = read_samples(rbm_run[3] / "samples.nc"), read_samples(again / "samples.nc")
    np.testing.assert_array_equal(first["posterior"]["x"].values, second["posterior"]["x"].values)


@pytest.fixture(scope="module")
def mala_run(models, tmp_path_factory):
    """MALA on the Gaussian with a given step size and no warm-up (so no tuning)."""
    out = tmp_path_factory.mktemp("mala") / "run"
    code = main(["sample", str(models / "gauss.ebm"), "--kernel", "mala", "--step-size", "0.3", "--chains", "2",
                 "--warmup", "0", "--samples", "10", "--quiet", "--out", str(out)])
    return code, out


def test_sample_real_model_with_mala(mala_run):
    code, out = mala_run
    assert code == 0
    data = read_samples(out / "samples.nc")
    assert data["posterior"]["x"].shape == (2, 10, 3)
    np.testing.assert_allclose(data["sample_stats"]["step_size"].values, 0.3, rtol=1e-6)
    assert data.attrs["kernel"] == "mala" and data.attrs["kernel_step_size"] == 0.3
    assert "kernel_noise_scale" not in data.attrs


@pytest.mark.parametrize(
    "extra, kernel, options",
    [
        ([], "nuts", {}),
        (["--kernel", "hmc", "--step-size", "0.5"], "hmc", {"step_size": 0.5}),
        (["--kernel", "langevin", "--noise-scale", "0"], "langevin", {"noise_scale": 0.0}),
        (["--kernel", "langevin", "--step-size", "1e-3", "--noise-scale", "0.1"], "langevin",
         {"step_size": 1e-3, "noise_scale": 0.1}),
    ],
)
def test_sample_passes_kernel_options_only_when_given(models, mala_run, tmp_path, capsys, monkeypatch,
                                                      extra, kernel, options):
    calls = []
    canned = read_samples(mala_run[1] / "samples.nc")

    def fake_sample(key, potential, kernel_name, **kwargs):
        calls.append((kernel_name, kwargs))
        return canned

    monkeypatch.setattr(ep, "sample", fake_sample)
    code, _, err = _run(capsys, ["sample", models / "gauss.ebm", *extra, "--chains", 2, "--warmup", 0,
                                 "--samples", 10, "--quiet", "--out", tmp_path / "o"])
    assert code == 0, err
    [(kernel_name, kwargs)] = calls
    assert kernel_name == kernel
    assert kwargs == {"num_chains": 2, "num_warmup": 0, "num_samples": 10, "thin": 1, "progress": False, **options}


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--kernel", "gibbs"], "invalid choice: 'gibbs'"),
        (["--kernel", "nuts"], "--kernel nuts follows gradients, so it needs a real-valued model"),
        (["--kernel", "mala"], "Use --kernel block_gibbs or site_gibbs"),
        (["--step-size", "0.1"], "--step-size applies to --kernel discrete_langevin, langevin, mala, hmc, nuts, parallel_tempering, not to block_gibbs"),
        (["--kernel", "site_gibbs", "--noise-scale", "1"], "--noise-scale applies to --kernel langevin, not"),
        (["--samples", "2"], "--samples: must be an integer >= 4"),
        (["--step-size", "-1"], "--step-size: must be a finite number > 0"),
        (["--noise-scale", "nan"], "--noise-scale: must be a finite number >= 0"),
        (["--num-replicas", "4"], "--num-replicas applies to --kernel parallel_tempering, not to block_gibbs"),
        (["--kernel", "parallel_tempering", "--base-kernel", "mala"], "base_kernel 'mala' does not sample"),
        (["--kernel", "parallel_tempering", "--num-replicas", "1"], "--num-replicas: must be an integer >= 2"),
        (["--kernel", "parallel_tempering", "--step-size", "0.5"], "base_kernel 'block_gibbs' takes no step_size"),
        (["--kernel", "parallel_tempering", "--base-kernel", "site_gibbs", "--step-size", "0.5"],
         "base_kernel 'site_gibbs' takes no step_size"),
    ],
)
def test_sample_impossible_options_are_one_line(models, tmp_path, capsys, extra, fragment):
    out = tmp_path / "never"
    code, stdout, err = _run(capsys, ["sample", models / "rbm.ebm", *extra, "--out", out])
    _one_line_error(code, stdout, err, fragment)
    assert not out.exists()  # refused before anything was created


def test_sample_parallel_tempering_keeps_the_swap_statistics(models, tmp_path, capsys):
    out = tmp_path / "pt"
    code, _, err = _run(capsys, ["sample", models / "rbm.ebm", "--kernel", "parallel_tempering", "--num-replicas", 4,
                                 "--chains", 2, "--warmup", 40, "--samples", 10, "--quiet", "--out", out])
    assert code == 0, err
    stats = read_samples(out / "samples.nc").sample_stats
    assert stats.swap_acceptance.shape == (2, 10, 3) and stats.beta.shape == (2, 10, 4)


def test_sample_bad_model_files_are_one_line(models, tmp_path, capsys):
    missing = tmp_path / "nope.ebm"
    _one_line_error(*_run(capsys, ["sample", missing, "--out", tmp_path / "o"]),
                    f"no such model file: {missing}")
    _one_line_error(*_run(capsys, ["sample", models / "notes.ebm", "--out", tmp_path / "o"]),
                    "not an ebm_ppl model file")
    _one_line_error(*_run(capsys, ["sample", models, "--out", tmp_path / "o"]), "got a directory")
    _one_line_error(*_run(capsys, ["sample", models / "rbm.ebm"]), "required: --out")
    assert not (tmp_path / "o").exists()


def test_sample_without_h5py_says_how_to_install(models, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now raises ImportError
    _one_line_error(*_run(capsys, ["sample", models / "rbm.ebm", "--out", tmp_path / "o"]),
                    "pip install 'h5netcdf[h5py]'")


def test_report_writes_html_with_the_table(rbm_run, capsys):
    out = rbm_run[3]
    code, stdout, err = _run(capsys, ["report", out])
    assert code == 0, err
    page = out / "report.html"
    assert stdout == f"Wrote {page}\n"
    html = page.read_text()
    assert '<table class="diagnostics">' in html
    for column in ("ess_bulk", "ess_tail", "rhat", "mcse_mean"):
        assert f"<th>{column}</th>" in html
    assert "data:image/png;base64," in html
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "samples.nc"]


def test_report_out_title_and_nc_path(mala_run, tmp_path, capsys):
    target = tmp_path / "sub" / "page.html"
    code, stdout, err = _run(capsys, ["report", mala_run[1] / "samples.nc", "--out", target,
                                      "--title", "MALA & a Gaussian", "--quiet"])
    assert code == 0, err
    assert stdout == f"Wrote {target}\n"
    assert "MALA &amp; a Gaussian" in target.read_text()


def test_report_errors_are_one_line(tmp_path, capsys):
    _one_line_error(*_run(capsys, ["report", tmp_path / "nowhere"]), "samples.nc: no such file")
    (tmp_path / "samples.nc").write_text("not netCDF")
    _one_line_error(*_run(capsys, ["report", tmp_path]), "not a NetCDF (HDF5) file or Zarr store of ArviZ data")
    assert not (tmp_path / "report.html").exists()
    az.from_dict({"sample_stats": {"lp": np.zeros((2, 10))}}).to_netcdf(tmp_path / "stats.nc", engine="h5netcdf")
    _one_line_error(*_run(capsys, ["report", tmp_path / "stats.nc"]), "has no 'posterior' group")


def _numpyro_netcdf(path):
    """A plain NumPyro NUTS run of a two-site model, saved as ArviZ writes it."""
    def model():
        numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("sigma", dist.HalfNormal(1.0))

    mcmc = MCMC(NUTS(model), num_warmup=100, num_samples=100, num_chains=2, chain_method="vectorized",
                progress_bar=False)
    mcmc.run(jax.random.key(0), extra_fields=("diverging", "potential_energy", "energy", "accept_prob"))
    az.from_numpyro(mcmc).to_netcdf(path, engine="h5netcdf")


def test_report_reads_any_arviz_netcdf(tmp_path, capsys):
    _numpyro_netcdf(tmp_path / "numpyro_run.nc")
    code, stdout, err = _run(capsys, ["report", tmp_path / "numpyro_run.nc", "--quiet"])
    assert code == 0, err
    html = (tmp_path / "report.html").read_text()
    assert ">mu<" in html and ">sigma<" in html and ">lp<" in html
    assert "<h2>Energy and BFMI</h2>" in html and "E-BFMI per chain" in html


def test_report_reads_a_zarr_store(tmp_path, capsys):
    pytest.importorskip("zarr")
    rng = np.random.default_rng(0)
    data = az.from_dict({"posterior": {"a": rng.normal(size=(2, 50))},
                         "sample_stats": {"lp": rng.normal(size=(2, 50))}})
    data.to_zarr(tmp_path / "run.zarr")
    code, stdout, err = _run(capsys, ["report", tmp_path / "run.zarr", "--quiet"])
    assert code == 0, err
    assert ">a<" in (tmp_path / "report.html").read_text()


def test_report_without_zarr_says_how_to_install(tmp_path, capsys, monkeypatch):
    store = tmp_path / "run.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "zarr", None)
    _one_line_error(*_run(capsys, ["report", store]), "pip install zarr")


def test_report_reads_an_old_samples_file_as_lp(tmp_path, capsys):
    """A samples.nc written before ArviZ's schema (energy = E(x)): read, mapped to lp, and said so."""
    x = np.random.default_rng(1).normal(size=(2, 40, 3))
    attrs = {"kernel": "mala", "potential": "gaussian", "inference_library": "ebm_ppl"}
    old = az.from_dict({"posterior": {"x": x}, "sample_stats": {"energy": 0.5 * (x**2).sum(-1)}},
                       attrs={"posterior": attrs, "sample_stats": attrs})
    old.to_netcdf(tmp_path / "samples.nc", engine="h5netcdf")
    code, stdout, err = _run(capsys, ["report", tmp_path, "--quiet"])
    assert code == 0, err
    html = (tmp_path / "report.html").read_text()
    assert "Note: this run was written by an older ebm_ppl" in html and ">lp<" in html


@pytest.mark.parametrize("name", ["sample", "report"])
def test_help_has_examples(capsys, name):
    code, out, _ = _run(capsys, [name, "--help"])
    assert code == 0
    example = out.split("example:")[1]
    assert f"ebm-ppl {name} " in example
    if name == "sample":
        assert "--seed" in out and "--kernel" in out and "nuts" in out
