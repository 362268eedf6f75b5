"""Every client operation, written once as a flow (see protocol.py); Client and AsyncClient
inherit them and only supply the driver (`_run` for results, `_iterate` for iterators)."""
from __future__ import annotations

import functools
import json
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx
import numpy as np

from .errors import NeedleServiceError, NotFound
from .events import Cursor, poll_flow, sse_flow
from .protocol import Emit, Flow, Request, RetryPolicy, Sleep, dumps, json_flow, request_flow
from .results import TERMINAL, Metrics, decode_parameters, npz_bytes, prediction_arrays

JSON = {"Content-Type": "application/json"}
PARAMETER_FORMATS = ("npz", "json", "safetensors")
PREPROCESS_HEADER = "X-Needle-Preprocess"  # JSON {"preprocess": fitted, "task": ...}


def operation(flow_method: Callable[..., Flow]):
    """A public method that runs its flow to a result (sync: the value; async: a coroutine)."""
    @functools.wraps(flow_method)
    def method(self, *args, **kwargs):
        return self._run(flow_method(self, *args, **kwargs))
    return method


def iteration(flow_method: Callable[..., Flow]):
    """A public method that iterates its flow's emitted items (sync or async iterator)."""
    @functools.wraps(flow_method)
    def method(self, *args, **kwargs):
        return self._iterate(flow_method(self, *args, **kwargs))
    return method


class Operations:
    """The methods shared by Client and AsyncClient (jobs, results, datasets, model twins)."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float,
                 retry: RetryPolicy | None, poll_interval: float):
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.poll_interval = poll_interval
        self._has_event_route: bool | None = None  # learnt on the first events() call

    def _build(self, request: Request, timeout: float | None,
               read_timeout: float | None = None) -> httpx.Request:
        timeout = httpx.Timeout(timeout or self.timeout, read=read_timeout or timeout or
                                self.timeout)
        return self._http.build_request(
            request.method, request.path, params=request.params, content=request.content,
            files=request.files, data=request.data, headers=request.headers, timeout=timeout)

    def _json(self, request: Request) -> Flow:
        return json_flow(request, self.retry)

    # ---- jobs ----
    @operation
    def submit(self, spec: Any, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Queue a job (`spec`: a dict or a service.specs.JobSpec); the accepted job. A fresh
        Idempotency-Key per call makes retries after a lost reply return the same job."""
        body = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else spec  # JobSpec
        key = idempotency_key or uuid.uuid4().hex
        return (yield from self._json(Request("POST", "/v1/jobs", content=dumps(body),
                                              headers={**JSON, "Idempotency-Key": key},
                                              retry=True)))

    @operation
    def get(self, job_id: str) -> dict[str, Any]:
        """The job: status, progress, attempt, timestamps, result or error, brief spec."""
        return (yield from self._json(Request("GET", f"/v1/jobs/{job_id}", retry=True)))

    @operation
    def spec(self, job_id: str) -> dict[str, Any]:
        """The job's full normalised spec (inline arrays included)."""
        return (yield from self._json(Request("GET", f"/v1/jobs/{job_id}/spec", retry=True)))

    @iteration
    def list(self, status: str | None = None, *, tags: dict[str, str] | None = None,
             name_prefix: str | None = None, sweep_id: str | None = None,
             limit: int | None = None, page_size: int = 100) -> Flow:
        """Jobs newest first across every page, narrowed by the server's filters: `status`,
        `tags` (jobs carrying every key: value of the dict), `name_prefix` (case-sensitive),
        `sweep_id` (that sweep's trials); `limit` caps how many are yielded."""
        params: dict[str, Any] = {key: value for key, value in {
            "status": status, "name_prefix": name_prefix, "sweep_id": sweep_id}.items()
            if value is not None}
        if tags:
            params["tag"] = [f"{key}:{value}" for key, value in tags.items()]
        yielded, cursor = 0, None
        while limit is None or yielded < limit:
            size = page_size if limit is None else min(page_size, limit - yielded)
            page = yield from self._json(Request("GET", "/v1/jobs", retry=True, params={
                **params, "limit": size, **({"cursor": cursor} if cursor else {})}))
            for job in page["items"]:
                yield Emit(job)
                yielded += 1
            cursor = page.get("next_cursor")
            if not cursor:
                return

    @operation
    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the job to stop (a queued job is cancelled at once); the job. Conflict if over."""
        return (yield from self._json(Request("POST", f"/v1/jobs/{job_id}/cancel")))

    @operation
    def delete(self, job_id: str) -> None:
        """Delete an ended job with its metrics and parameters (Conflict while active)."""
        yield from self._json(Request("DELETE", f"/v1/jobs/{job_id}"))

    @operation
    def wait(self, job_id: str, timeout: float | None = None,
             on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll until the job has ended and return it; `on_progress(job)` is called whenever
        its status or progress changes. TimeoutError after `timeout` s (the job keeps going)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            job = yield from self._json(Request("GET", f"/v1/jobs/{job_id}", retry=True))
            state = (job["status"], job["progress"])
            if on_progress is not None and state != seen:
                on_progress(job)
            seen = state
            if job["status"] in TERMINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")
            pause = self.poll_interval
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - time.monotonic()))
            yield Sleep(pause)

    @iteration
    def events(self, job_id: str, *, after: int = 0, transport: str = "auto") -> Flow:
        """The job's events (results.Event: "status", "metric", "end") until it ends, from the
        server's event stream, reconnecting with Last-Event-ID after a drop; metric points with
        seq <= `after` are skipped. `transport`: "stream" (SSE only), "poll" (the job and its
        metrics cursor, e.g. behind a proxy that buffers streams) or "auto" (stream when the
        server has the route, else poll)."""
        if transport not in ("auto", "stream", "poll"):
            raise ValueError(f"transport must be auto, stream or poll, not {transport!r}")
        yield from self._json(Request("GET", f"/v1/jobs/{job_id}", retry=True))  # 404 first
        cursor = Cursor(seq=after)
        if transport == "stream" or (transport == "auto" and self._has_event_route is not False):
            final = yield from sse_flow(job_id, cursor, self.retry, max(self.timeout, 60.0))
            self._has_event_route = final is not None
            if final is not None:
                return final
            if transport == "stream":
                raise NotFound(f"{self.base_url} has no event stream route "
                               f"(GET /v1/jobs/{job_id}/events)", status=404)
        return (yield from poll_flow(job_id, cursor, self.retry, self.poll_interval))

    # ---- results ----
    @operation
    def metrics(self, job_id: str) -> Metrics:
        """Every metric point, as numpy arrays per series (Metrics.steps, Metrics.epochs)."""
        points, after = [], 0
        while True:
            page = yield from self._json(Request("GET", f"/v1/jobs/{job_id}/metrics", retry=True,
                                                 params={"after": after, "limit": 10_000}))
            points += page["points"]
            if not page["points"]:
                return Metrics.from_points(points)
            after = page["next_after"]

    @operation
    def parameters(self, job_id: str, format: str = "npz", layout: str = "needle", *,
                   output: str | Path | None = None, raw: bool = False):
        """Trained parameters as {name: numpy array}; or the file's bytes (`raw=True`); or
        written to `output` (returns its Path). `layout="torch"` matches to_torch()'s module."""
        body = yield from self._download(job_id, format, layout)
        if output is not None:
            path = Path(output)
            path.write_bytes(body)
            return path
        return body if raw else decode_parameters(body, format)

    def _download(self, job_id: str, format: str, layout: str) -> Flow:
        return (yield from self._download_response(job_id, format, layout)).content

    def _download_response(self, job_id: str, format: str, layout: str) -> Flow:
        if format not in PARAMETER_FORMATS:
            raise ValueError(f"format must be one of {PARAMETER_FORMATS}, not {format!r}")
        return (yield from request_flow(Request(
            "GET", f"/v1/jobs/{job_id}/parameters", params={"format": format, "layout": layout},
            retry=True), self.retry))

    @operation
    def predict(self, job_id: str, x) -> dict[str, np.ndarray]:
        """Run the trained model on rows `x` (N, F), or images (N, C, H, W) for a model with an
        input_shape; {"logits", "probabilities", "classes", ...} as numpy arrays."""
        rows = np.asarray(x, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows[None, :]  # (1, F): a single row
        body = yield from self._json(Request("POST", f"/v1/jobs/{job_id}/predict", headers=JSON,
                                             content=dumps({"x": rows.tolist()}), retry=True))
        return prediction_arrays(body)

    @operation
    def evaluate(self, job_id: str, data: Any = None, *, x=None, y=None) -> dict[str, Any]:
        """Metrics of the trained model (eval mode, its preprocessing) on labelled data: `data`
        a data source as in job specs (e.g. {"type": "dataset", "id": ...}, an inline or
        generated source, mnist), or arrays `x` (N, F) or (N, C, H, W) and `y` (sent as .npz).
        The API's Evaluation: task, rows, loss, and error, accuracy, per-class precision and
        recall, confusion_matrix (classification) or rmse, mae, r2 (regression)."""
        if (data is None) == (x is None or y is None):
            raise ValueError("pass either data (a data source) or x and y")
        if data is not None:
            body = data.model_dump(mode="json") if hasattr(data, "model_dump") else data
            content, headers = dumps({"data": body}), JSON
        else:
            content, headers = npz_bytes(x, y), {"Content-Type": "application/octet-stream"}
        return (yield from self._json(Request("POST", f"/v1/jobs/{job_id}/evaluate",
                                              headers=headers, content=content, retry=True)))

    # ---- datasets ----
    @operation
    def upload_dataset(self, x=None, y=None, *, path: str | Path | None = None,
                       name: str | None = None, label_column: str | None = None) -> dict:
        """Upload numpy arrays x (N, F) and y (N,), or a `.npz` (x, y) or `.csv` file (a header
        row; labels in `label_column`, default "label"); the dataset's metadata."""
        if (path is None) == (x is None or y is None):
            raise ValueError("pass either x and y, or path")
        if path is not None:
            path = Path(path)
            filename, content = path.name, path.read_bytes()
        else:
            filename, content = "arrays.npz", npz_bytes(x, y)
        kind = "text/csv" if filename.lower().endswith(".csv") else "application/octet-stream"
        form = {key: value for key, value in {"name": name, "label_column": label_column}.items()
                if value is not None}
        return (yield from self._json(Request("POST", "/v1/datasets", data=form,
                                              files={"file": (filename, content, kind)})))

    @operation
    def list_datasets(self) -> list[dict[str, Any]]:
        """Every dataset's metadata, newest first."""
        return (yield from self._json(Request("GET", "/v1/datasets", retry=True)))

    @operation
    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        """One dataset's metadata (rows, features, classes, size)."""
        return (yield from self._json(Request("GET", f"/v1/datasets/{dataset_id}", retry=True)))

    @operation
    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a dataset."""
        yield from self._json(Request("DELETE", f"/v1/datasets/{dataset_id}"))

    # ---- sweeps ----
    @operation
    def submit_sweep(self, sweep: Any) -> dict[str, Any]:
        """Create a hyperparameter sweep (a dict or a service.specs.sweep.SweepSpec); the sweep
        with its trials. Sent once: sweeps take no Idempotency-Key, so a lost reply is not
        retried (list_sweeps shows whether it was created)."""
        body = sweep.model_dump(mode="json") if hasattr(sweep, "model_dump") else sweep
        return (yield from self._json(Request("POST", "/v1/sweeps", content=dumps(body),
                                              headers=JSON)))

    @operation
    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        """The sweep: status, counts by trial status, the trials table and the best trial."""
        return (yield from self._json(Request("GET", f"/v1/sweeps/{sweep_id}", retry=True)))

    @iteration
    def list_sweeps(self, *, limit: int | None = None, page_size: int = 100) -> Flow:
        """Sweeps newest first across every page (summaries without trials)."""
        yielded, cursor = 0, None
        while limit is None or yielded < limit:
            size = page_size if limit is None else min(page_size, limit - yielded)
            page = yield from self._json(Request("GET", "/v1/sweeps", retry=True, params={
                "limit": size, **({"cursor": cursor} if cursor else {})}))
            for sweep in page["items"]:
                yield Emit(sweep)
                yielded += 1
            cursor = page.get("next_cursor")
            if not cursor:
                return

    @operation
    def cancel_sweep(self, sweep_id: str) -> dict[str, Any]:
        """Cancel every trial that has not ended; the sweep. Conflict if all have ended."""
        return (yield from self._json(Request("POST", f"/v1/sweeps/{sweep_id}/cancel")))

    @operation
    def delete_sweep(self, sweep_id: str) -> None:
        """Delete an ended sweep with all its trials (Conflict while a trial is active)."""
        yield from self._json(Request("DELETE", f"/v1/sweeps/{sweep_id}"))

    @operation
    def wait_sweep(self, sweep_id: str, timeout: float | None = None,
                   on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll until every trial has ended and return the sweep; `on_progress(sweep)` whenever
        its counts or best trial change. TimeoutError after `timeout` s (the sweep keeps going)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            sweep = yield from self._json(Request("GET", f"/v1/sweeps/{sweep_id}", retry=True))
            best = sweep["best"]
            state = (sweep["status"], sweep["counts"], best and (best["trial"], best["objective"]))
            if on_progress is not None and state != seen:
                on_progress(sweep)
            seen = state
            if sweep["status"] != "running":
                return sweep
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"sweep {sweep_id} is still running after {timeout} s")
            pause = max(self.poll_interval, 1.0)  # a sweep's GET carries its whole trials table
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - time.monotonic()))
            yield Sleep(pause)

    # ---- the trained model, locally ----
    @operation
    def to_needle(self, job_id: str):
        """The trained model as a needle Module (eval mode), built from the job's spec, behind
        the job's fitted input preprocessing: it takes the raw rows (or images) /predict takes
        and gives the same logits. `.model` is the bare model (needle-layout state_dict keys)."""
        spec, state, preprocess = yield from self._trained_model(job_id, "needle")
        from .twins import needle_model  # needle and the spec builder, only when asked for
        return needle_model(spec, state, preprocess)

    @operation
    def to_torch(self, job_id: str):
        """The trained model as the equivalent torch.nn.Module (eval mode, strict state load),
        behind the job's fitted input preprocessing (torch_twin.Preprocess): it takes the raw
        rows (or images) /predict takes. `.model` is the bare twin, whose state_dict keys are
        those of parameters(layout="torch")."""
        spec, state, preprocess = yield from self._trained_model(job_id, "torch")
        from .twins import torch_model  # imports torch
        return torch_model(spec, state, preprocess)

    def _trained_model(self, job_id: str, layout: str) -> Flow:
        """(model spec, state in `layout`, fitted preprocessing from X-Needle-Preprocess)."""
        job = yield from self._json(Request("GET", f"/v1/jobs/{job_id}", retry=True))
        response = yield from self._download_response(job_id, "npz", layout)
        extras = response.headers.get(PREPROCESS_HEADER)
        if extras is None:  # without it the local model would silently see unscaled inputs
            raise NeedleServiceError(f"the server sent parameters without {PREPROCESS_HEADER}: "
                                     "the model's input preprocessing is unknown")
        preprocess = json.loads(extras)["preprocess"] or {"type": "none"}
        return job["spec"]["model"], decode_parameters(response.content, "npz"), preprocess
