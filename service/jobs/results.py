"""What the API serves from a finished job's stored parameters: predictions and exports (the
API's /predict and /evaluate go through model_cache.ModelCache's built models)."""
import numpy as np

from service.training import (NonFiniteOutput, TrainingError, export_with_preprocess,
                              load_source, parameters_from_bytes, predict_arrays, state_shapes)
from service.training.params import parameters_with_header

from .records import Job

__all__ = ["EXPORT_FORMATS", "EXPORT_LAYOUTS", "NonFiniteOutput", "TrainingError", "architecture_mismatch",
           "load_source", "model_extras", "export_parameters", "predict"]
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
