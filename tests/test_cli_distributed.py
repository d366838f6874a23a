"""Smoke test: ``ebm-ppl train`` and ``ebm-ppl logz`` as two cooperating processes (2 CPU devices each)
under ``jax.distributed``, joined through JAX's environment variables, as docs/sampling.md
describes: process 0 prints and writes, process 1 computes its share silently."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(args: list[str], cwd, second_args: list[str] | None = None) -> list[subprocess.CompletedProcess]:
    """``ebm-ppl args`` in processes 0 and 1 (``second_args`` in process 1 when given)."""
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = []
    for i in range(2):
        env = dict(base, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
                   JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i))
        command = args if i == 0 or second_args is None else second_args
        procs.append(subprocess.Popen([sys.executable, "-m", "ebm_ppl", *command], cwd=cwd, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    done = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


@pytest.mark.slow
def test_train_and_logz_run_as_two_processes(tmp_path):
    first, second = _two_processes(["train", "rbm", "--out", "run", "--epochs", "1", "--hidden", "8", "--quiet"],
                                   tmp_path)
    assert first.returncode == 0 and second.returncode == 0, (first.stderr[-2000:], second.stderr[-2000:])
    assert "Saved to run/" in first.stdout and second.stdout == ""  # process 0 alone reports
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint.ckpt", "figure.png", "model.ebm", "train.json"]
    assert json.loads((tmp_path / "run" / "train.json").read_text())["status"] == "completed"

    first, second = _two_processes(["logz", "run/model.ebm", "--chains", "8", "--temperatures", "100", "--quiet",
                                    "--out", "lz"], tmp_path)
    assert first.returncode == 0 and second.returncode == 0, (first.stderr[-2000:], second.stderr[-2000:])
    assert "forward AIS" in first.stdout and second.stdout == ""
    result = json.loads((tmp_path / "lz" / "logz.json").read_text())
    assert abs(result["forward"]["log_z"] - result["exact"]["log_z"]) < 0.5, result


def test_processes_given_different_options_are_refused_not_left_waiting(tmp_path):
    """--chains 8 in one process, --chains 4 in the other: both waited for each other forever
    (and JAX's preemption handler swallowed timeout's SIGTERM); now both exit with a usage error."""
    import ebm_ppl as ep
    import jax

    ep.save(tmp_path / "m.ebm", ep.BernoulliRBM.init(jax.random.key(0), 6, 3, scale=0.5))
    args = ["sample", "m.ebm", "--warmup", "10", "--samples", "20", "--out", "d", "--quiet", "--chains"]
    first, second = _two_processes([*args, "8"], tmp_path, second_args=[*args, "4"])
    for run in (first, second):
        assert run.returncode == 2, run.stderr[-2000:]
        assert "were given different commands or options (process 1 differs from process 0)" in run.stderr
