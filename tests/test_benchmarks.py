"""The benchmark scripts' ebm_ppl measurements still run (their smallest settings, in their own
processes as the drivers start them). Nothing here reads a time: the scripts measure, the tests
only keep them from rotting when the library changes under them."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"


def _result(script: str, *args: str) -> dict:
    """Run ``benchmarks/script --only ...`` and return its ``RESULT`` JSON."""
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.slow
def test_rbm_training_measures_ebm_ppls_epoch():
    r = _result("rbm_training.py", "--only", "ep", "--epochs", "2")
    # epoch_s is a difference of two timings (2E - E epochs): at E = 2 on a loaded machine it can
    # fall inside the noise, so only its being a number is checked; the others are whole timings
    assert np.isfinite(r["epoch_s"]) and np.isfinite(r["epoch_shuffled_s"])
    assert r["cached_call_s"] > 0 and r["compiled_update_s"] > 0 and np.isfinite(r["test_ll"])


@pytest.mark.slow
def test_gibbs_sweeps_measures_the_kernel_loop():
    r = _result("gibbs_sweeps.py", "--only", "jax_philox2x32_64", "--size", "64x20", "--lite", "--sweeps", "20",
                "--reps", "1")
    assert r["rate"]["library"] > 0 and 0 < r["mean_x"]["library"] < 1


@pytest.mark.slow
def test_jem_vs_torch_measures_ebm_ppls_epoch():
    r = _result("jem_vs_torch.py", "--only", "ebm_ppl", "--epochs", "1", "--max-epochs", "2")
    assert r["epoch_train_s"] > 0 and 0 <= r["test_acc_at_E"] <= 1


@pytest.mark.slow
def test_xla_cpu_options_names_who_computes_each_product():
    r = _result("xla_cpu_options.py", "--only-probe")
    assert len(r["dots"]) == 3  # x W, h W^T and b.x
    # oneDNN computes the products exactly when the options the script reports ask for it
    assert ("__onednn_fusion" in r["dots"]) == bool(r["compiler_options"].get("xla_cpu_use_onednn"))
