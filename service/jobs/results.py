"""What the API serves from a finished job's stored parameters: predictions and exports."""
import numpy as np

from service.training import NonFiniteOutput, export_arrays, predict_arrays

from .records import Job

__all__ = ["EXPORT_FORMATS", "EXPORT_LAYOUTS", "NonFiniteOutput", "export_parameters", "predict"]
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
    ValueError for an unknown format or layout."""
    return export_arrays(parameters, fmt, layout, batches_tracked=job.step)
