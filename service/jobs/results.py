"""What the API serves from a finished job's stored parameters: predictions, evaluations and exports."""
from pathlib import Path
from typing import Callable

import numpy as np

from service.training import (NonFiniteOutput, TrainingError, evaluate_arrays, export_with_preprocess,
                              load_source, parameters_from_bytes, predict_arrays, state_shapes)
from service.training.params import parameters_with_header

from .records import Job

__all__ = ["EXPORT_FORMATS", "EXPORT_LAYOUTS", "NonFiniteOutput", "TrainingError", "architecture_mismatch", "evaluate", "model_extras",
           "export_parameters", "predict"]
EXPORT_FORMATS = ("json", "safetensors", "npz")
EXPORT_LAYOUTS = ("needle", "torch")


def predict(job: Job, parameters: bytes, x: np.ndarray) -> dict:
    """{"logits", "probabilities", "classes"} for x (N, F), model in eval mode.
    ValueError when x does not have the model's input width; NonFiniteOutput (a ValueError)
    when the model's outputs overflow for some rows."""
    return predict_arrays(parameters, x)


def export_parameters(job: Job, parameters: bytes, fmt: str = "safetensors",
                      layout: str = "needle") -> tuple[bytes, str]:
    """(body, media type); layout "torch" loads strictly into an equivalent PyTorch module.
    The safetensors metadata carries the model spec, preprocessing and task.
    ValueError for an unknown format or layout."""
    body, media_type, _ = export_with_preprocess(parameters, fmt, layout, batches_tracked=job.step)
    return body, media_type


def model_extras(parameters: bytes) -> str:
    """JSON {"preprocess", "task"} of stored parameters (sent with every download)."""
    import json
    _, header = parameters_with_header(parameters)
    return json.dumps({"preprocess": header["preprocess"], "task": header["task"]})


def evaluate(job: Job, parameters: bytes, source: dict | None = None, *, arrays=None,
             mnist_dir: Path | None = None, fetch_dataset: Callable[[str], bytes] | None = None) -> dict:
    """Metrics of the job's model on a data source (a SourceSpec dict) or on (x, y) arrays.
    TrainingError when the source cannot be loaded; ValueError when it does not fit the model."""
    if arrays is None:
        arrays = load_source(source, mnist_dir=mnist_dir, fetch_dataset=fetch_dataset)
    loss = ((job.brief or job.spec)["training"]).get("loss")
    return evaluate_arrays(parameters, [arrays], loss)


def architecture_mismatch(parameters: bytes, model_spec: dict) -> str | None:
    """None when the stored parameters fit model_spec's model key for key and shape for shape;
    otherwise the first mismatching parameter with both shapes."""
    source, _ = parameters_from_bytes(parameters)
    target = state_shapes(model_spec)
    for key, shape in target.items():
        if key not in source:
            return f"this model has parameter {key!r} {list(shape)}, which the source job lacks"
        if tuple(source[key].shape) != shape:
            return (f"parameter {key!r} has shape {list(source[key].shape)} in the source job but "
                    f"{list(shape)} in this model")
    extra = [key for key in source if key not in target]
    if extra:
        return f"the source job has parameter {extra[0]!r} {list(source[extra[0]].shape)}, which this model lacks"
    return None
