"""Run a Python script in a fresh process with 4 forced CPU devices (the sharded paths' tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run_on_four_devices(script: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    """``python -c script args...`` with ``--xla_force_host_platform_device_count=4`` on the CPU;
    the script is dedented. Asserts it exits 0 (showing the end of its stderr otherwise)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                         env=env, cwd=cwd, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def assert_script_ok(script: str, *args: str) -> None:
    """:func:`run_on_four_devices`, and the script's last line is ``ok`` (its own checks passed)."""
    assert run_on_four_devices(script, *args).stdout.strip().endswith("ok")
