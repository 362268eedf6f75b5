"""POST /v1/jobs/{id}/predict, all in a worker thread: parse the body, check it against the
model and the inference budget, run the cached model in chunks, write the JSON answer."""
import json
import math

import numpy as np
from fastapi import HTTPException
from pydantic import ValidationError

from ..jobs import Job, JobStore
from ..jobs.model_cache import ModelCache
from ..jobs.results import NonFiniteOutput
from ..settings import Settings
from ..specs import is_regression, model_input_shape, model_widths, parse_model
from ..specs.cost import model_cost
from .errors import validation_error
from .inference_budget import check_json_body, check_prediction, chunk_rows
from .npz_reader import BadArchive, read_npz_arrays
from .schemas import PredictRequest

NPZ_TYPES = ("application/octet-stream", "application/x-npz", "application/zip")
ANSWER_PIECE_VALUES = 65_536  # values written to JSON text at a time (the Python floats alive)


def predict_job(job: Job, body: bytes, content_type: str, store: JobStore, settings: Settings,
                cache: ModelCache) -> tuple[bytes, bool]:
    """(the JSON answer, whether the built model came from the cache); 415/422 as HTTP errors."""
    spec = job.brief or job.spec  # brief: the model part is never elided
    model = parse_model(spec["model"])
    rows_per_chunk = chunk_rows(model_cost(model), settings, ("body",))  # before parsing
    x = predict_inputs(body, content_type, settings)
    if len(x) > settings.max_inline_rows:
        raise validation_error([(("body", "x"), f"at most {settings.max_inline_rows} rows per "
                                 "request", None)])
    check_input_shape(tuple(x.shape[1:]), model)
    classification = not is_regression(spec["training"].get("loss"))
    check_prediction(len(x), model_widths(model)[1], classification, settings)
    trained, cached = cache.lookup(job, lambda: stored_parameters(store, job))
    try:
        arrays = trained.predict(x, rows_per_chunk)
    except NonFiniteOutput as exc:
        raise validation_error([(("body", "x", exc.rows[0]), str(exc), None)]) from None
    return json_answer(arrays), cached


def stored_parameters(store: JobStore, job: Job) -> bytes:
    """The job's parameters blob (a 409 if the job has none, e.g. deleted meanwhile)."""
    parameters = store.get_parameters(job.id, tenant=job.tenant)
    if parameters is None:
        raise HTTPException(409, f"job {job.id} has no parameters yet (status {job.status.value})")
    return parameters


def predict_inputs(body: bytes, content_type: str, settings: Settings) -> np.ndarray:
    """x (N, F) rows or (N, C, H, W) images, float32, from a JSON or .npz body (at most
    max_body_bytes inflated); 415/422 otherwise, and for JSON that would not parse in budget."""
    if content_type.startswith("application/json"):
        check_json_body(body, settings)
        try:
            payload = PredictRequest.model_validate_json(body)
        except ValidationError as exc:
            raise validation_error([(("body", *e["loc"]), e["msg"], None) for e in exc.errors()]) from None
        x = np.asarray(payload.x, dtype=np.float32)  # (N, F) or (N, C, H, W)
    elif content_type.startswith(NPZ_TYPES):
        x = _npz_x(body, settings.max_body_bytes)
    else:
        raise HTTPException(415, "send JSON {\"x\": [[...]]} or an .npz archive (application/octet-stream)")
    if x.ndim not in (2, 4) or 0 in x.shape:
        raise validation_error([(("body", "x"), f"x must be (N, F) or (N, C, H, W) with N >= 1, "
                                 f"got {x.shape}", None)])
    if not np.isfinite(x).all():
        raise validation_error([(("body", "x"), "values are NaN, infinite or overflow float32", None)])
    return x


def _npz_x(body: bytes, max_inflated_bytes: int) -> np.ndarray:
    """The numeric `x` of an .npz body as float32 (headers checked before inflating, never
    unpickled, at most max_inflated_bytes inflated: a zip bomb is a 422)."""
    try:
        (x,) = read_npz_arrays(body, max_inflated_bytes, members=("x",))
    except BadArchive as exc:
        raise validation_error([(("body",), str(exc), None)]) from None
    if x.dtype.kind not in "fiu":
        raise validation_error([(("body",), f"x must be numeric; got dtype {x.dtype}", None)])
    with np.errstate(over="ignore"):
        return x.astype(np.float32)


def check_input_shape(shape: tuple[int, ...], model) -> None:
    """Rows of the model's width, or images (of its input_shape, if it has one); else a 422."""
    in_width, _ = model_widths(model)
    input_shape = model_input_shape(model)
    if len(shape) == 3 and input_shape is not None and shape != input_shape:
        raise validation_error([(("body", "x", 0), f"x[0] is an image {list(shape)} but the model "
                                 f"takes images {list(input_shape)}", None)])
    if math.prod(shape) != in_width:
        raise validation_error([(("body", "x", 0), f"rows have {math.prod(shape)} features but "
                                 f"the model expects {in_width}", None)])


def json_answer(arrays: dict[str, np.ndarray]) -> bytes:
    """{"name": [...], ...} as compact JSON (what JSONResponse writes), ~65,536 values at a
    time: Python floats exist for one piece at once, not for the whole answer."""
    pieces = [b"{"]
    for i, (name, array) in enumerate(arrays.items()):
        pieces.append(f'{"," if i else ""}"{name}":['.encode())
        rows = max(1, ANSWER_PIECE_VALUES // max(1, array[:1].size))
        for start in range(0, len(array), rows):
            text = json.dumps(array[start:start + rows].tolist(), allow_nan=False,
                              separators=(",", ":"))
            pieces.append((b"," if start else b"") + text[1:-1].encode())
        pieces.append(b"]")
    pieces.append(b"}")
    return b"".join(pieces)
