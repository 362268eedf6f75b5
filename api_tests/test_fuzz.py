"""schemathesis against the real server, every check on: zero server errors, zero undocumented
status codes, zero schema violations (a bounded run; the README records a longer one)."""
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from .server import Server

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def run_schemathesis(base_url: str, out_dir: Path, *, examples: int, seed: int | None,
                     headers: dict[str, str]) -> tuple[int, str]:
    """Run `schemathesis run` on the server's openapi.json; (exit code, output)."""
    command = [str(SCHEMATHESIS), "--config-file", str(CONFIG), "run",
               f"{base_url}/openapi.json", "--checks", "all", "-n", str(examples),
               "--workers", "1", "--no-color", "--generation-database", "none",
               "--request-timeout", "60"]
    if seed is not None:
        command += ["--seed", str(seed)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run(command, cwd=out_dir, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


def generated_cases(output: str) -> tuple[int, int]:
    """(generated, passed) from schemathesis's closing summary."""
    match = re.search(r"(\d+) generated, (\d+) passed", output)
    assert match, output[-3000:]
    return int(match.group(1)), int(match.group(2))


def test_schemathesis_finds_nothing(tmp_path):
    if not SCHEMATHESIS.exists() and not os.environ.get("CI"):
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    key = secrets.token_hex(32)  # an admin key, with auth required as on an exposed server
    server = Server(tmp_path / "data", workers=0,
                    env={"NEEDLE_AUTH": "required", "NEEDLE_ADMIN_KEY": key}).start()
    try:
        code, output = run_schemathesis(str(server.client.base_url), tmp_path, examples=5,
                                        seed=7, headers={"Authorization": f"Bearer {key}"})
    finally:
        server.stop()
    generated, passed = generated_cases(output)
    assert code == 0 and generated == passed and generated > 500, output[-6000:]
    assert "Traceback" not in server.log()
