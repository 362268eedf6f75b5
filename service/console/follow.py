"""Follow a job live: a progress bar (epoch/step, steps/s, ETA, latest loss, last validation
metrics) fed by the job's event stream, then a one-paragraph summary and the exit status."""
from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn

from ..client import Client, Event
from .common import (EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, metrics_text, print_json, stderr,
                     stdout)

# a pruned sweep trial was stopped early, like a cancelled job
EXIT_BY_STATUS = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED,
                  "pruned": EXIT_CANCELLED}
VALIDATION_KEYS = ("val_loss", "val_error")


class Rate:
    """Steps per second and ETA from the steps seen since following began."""

    def __init__(self):
        self.first: tuple[float, int] | None = None
        self.per_second: float | None = None

    def update(self, step: int) -> None:
        """Note that `step` steps are done now."""
        now = time.monotonic()
        if self.first is None or step < self.first[1]:
            self.first = (now, step)
        elif now > self.first[0] and step > self.first[1]:
            self.per_second = (step - self.first[1]) / (now - self.first[0])

    def eta(self, remaining: int) -> str:
        """Remaining time as m:ss, or "?" before a rate is known."""
        if not self.per_second:
            return "?"
        seconds = int(remaining / self.per_second)
        return f"{seconds // 60}:{seconds % 60:02d}"


def follow(client: Client, job_id: str, as_json: bool) -> int:
    """Show the job until it ends; the exit status for its final state."""
    if as_json:
        job = client.wait(job_id)
        print_json(job)
        return EXIT_BY_STATUS.get(job["status"], EXIT_FAILED)
    job = _follow_with_progress(client, job_id)
    print_summary(job)
    return EXIT_BY_STATUS.get(job["status"], EXIT_FAILED)


def _follow_with_progress(client: Client, job_id: str) -> dict[str, Any]:
    bar = FollowBar()
    job: dict[str, Any] = {}
    with bar.progress:
        for event in client.events(job_id):
            job = bar.apply(event) or job
    return job


class FollowBar:
    """The live bar on stderr (stdout stays for the summary)."""

    def __init__(self):
        self.live = stderr.is_terminal  # in logs and pipes: one plain line per epoch instead
        self.progress = Progress(
            TextColumn("{task.fields[status]:<9}"), TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(), TextColumn("step {task.completed:.0f}/{task.fields[steps]}"),
            TextColumn("{task.fields[rate]}"), TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[loss]}"), TextColumn("{task.fields[val]}"),
            console=stderr, disable=not self.live)
        self.task = self.progress.add_task("job", total=None, status="", epoch="-", steps="?",
                                           rate="", eta="?", loss="", val="")
        self.rate = Rate()
        self.epochs = 0
        self.steps = 0

    def apply(self, event: Event) -> dict[str, Any] | None:
        """Update the bar from one event; the job when the event carries one."""
        if event.type in ("status", "end"):
            job = event.data
            self.epochs, self.steps = job["progress"]["epochs"], job["progress"]["steps"]
            self._step(job["progress"]["step"], status=job["status"],
                       epoch=f"{job['progress']['epoch']}/{self.epochs}")
            return job
        point = event.data
        if point["kind"] == "step":
            loss = point["values"].get("loss")
            self._step(point["step"], loss="" if loss is None else f"loss {loss:.4g}")
        else:
            self.progress.update(self.task, epoch=f"{point['epoch']}/{self.epochs}",
                                 val=metrics_text(point["values"], VALIDATION_KEYS))
            if not self.live:
                stderr.print(f"epoch {point['epoch']}/{self.epochs} step {point['step']}/"
                             f"{self.steps}  {metrics_text(point['values'])}", markup=False)
        return None

    def _step(self, done: int, **fields) -> None:
        self.rate.update(done)
        rate = f"{self.rate.per_second:.1f} steps/s" if self.rate.per_second else ""
        self.progress.update(self.task, completed=done, total=self.steps or None,
                             steps=self.steps, rate=rate,
                             eta=self.rate.eta(max(self.steps - done, 0)), **fields)


def print_summary(job: dict[str, Any]) -> None:
    """The final state: status, steps, runtime and every final metric (or the error)."""
    progress = job["progress"]
    stdout.print(f"job {job['id']} {job['status']} after {progress['epoch']}/{progress['epochs']} "
                 f"epochs, {progress['step']}/{progress['steps']} steps", markup=False)
    if job.get("result"):
        stdout.print(f"final metrics: {metrics_text(job['result'])}", markup=False)
    if job.get("error"):
        stdout.print(f"error: {job['error']}", markup=False)
