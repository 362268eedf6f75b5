"""needle.allocator: freed training-step arrays stay mapped instead of faulting in again each step."""
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                                reason="malloc tuning applies to glibc on Linux only")

# Like a training step: make eight 4 MiB temporaries, free them all; 20 times; count page faults.
PROBE = """
import resource, numpy as np, needle
def step():
    arrays = [np.ones(1 << 20, dtype=np.float32) for _ in range(8)]
step()  # the first step faults its pages in once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(needle.allocator.MALLOC_TUNED, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(tuning: str) -> tuple[bool, int]:
    env = {"NEEDLE_MALLOC_TUNING": tuning, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", int(out[1])


def test_freed_arrays_are_reused_without_page_faults():
    tuned, faults = _probe("1")
    assert tuned
    assert faults < 100  # 20 x 8 x 1,024 pages would fault in again without the tuning


def test_tuning_can_be_switched_off():
    tuned, faults = _probe("0")
    assert not tuned
    assert faults > 10_000  # glibc's default returns the pages each time: the probe measures that
