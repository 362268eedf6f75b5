"""CPU time the hypervisor takes back from this virtual machine ("steal" in /proc/stat).

On the shared build machine it was 1-2 % when idle and 10-25 % while both virtual CPUs were busy,
and every figure measured meanwhile suffers; the benchmarks print it next to the load average.
"""
import os
import time

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def steal_ticks() -> int | None:
    """The machine's stolen CPU time so far, in clock ticks (None where /proc/stat has none)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()  # cpu user nice system idle iowait irq softirq steal
    except OSError:
        return None
    return int(fields[8]) if len(fields) > 8 else None


class StealMeter:
    """Stolen time from its creation to `report()`, as a share of all CPUs' time."""

    def __init__(self):
        self.start, self.started = steal_ticks(), time.monotonic()

    def report(self) -> str:
        """One line for the benchmark's output."""
        end = steal_ticks()
        if self.start is None or end is None:
            return "CPU time stolen by the host: not reported by this system"
        seconds, cpus = time.monotonic() - self.started, os.cpu_count() or 1
        share = (end - self.start) / TICKS_PER_SECOND / (seconds * cpus)
        return f"CPU time stolen by the host: {share:.1%} of the {cpus} CPUs' time over {seconds:.0f} s"
