"""`wit demo` runs every stage end to end on the sample web and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WIT_PROGRESS": "0"}
    result = subprocess.run([sys.executable, "-m", "wit_pipeline", "demo", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("wit demo: finished in")
    assert "sample web" in result.stdout and "served at" in result.stdout
    assert (out / "sampleweb" / "urls.parquet").exists()
    assert (out / "sampleweb" / "eval" / "truth.json").exists()
