"""The main CLI reports bad settings as one clear line (no traceback) and exits non-zero."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "override, message",
    [
        ("--config.engine.nucleus=foo", "config.engine.nucleus='foo': expected one of ('inclusive', 'exclusive2025')"),
        ("--config.tasks=mcqa,xyz", "config.tasks must be a comma-separated subset of ('mcqa', 'fr')"),
        ("--config.model.checkpoint=/no/such/checkpoint", "checkpoint path /no/such/checkpoint does not exist"),
        ("--config.engine.buckets=64,x", "engine.buckets must be comma-separated integers"),
    ],
)
def test_bad_settings_give_one_clear_error(override, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jaxunc.main", f"--config={ROOT / 'configs' / 'smollm2.py'}",
                           f"--config.output_dir={tmp_path}", override],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"jaxunc: error: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr
