"""What the API serves from a finished job's stored parameters: predictions and exports."""
import numpy as np

from service.training import ModelCache, NonFiniteOutput, TrainedModel, export_arrays

from .records import Job

__all__ = ["EXPORT_FORMATS", "EXPORT_LAYOUTS", "ModelCache", "NonFiniteOutput", "TrainedModel",
           "export_parameters", "predict"]
EXPORT_FORMATS = ("json", "safetensors", "npz")
EXPORT_LAYOUTS = ("needle", "torch")


def predict(job: Job, parameters: bytes, x: np.ndarray, chunk_rows: int = 1024) -> dict:
    """{"logits", "probabilities", "classes"} for x (N, F), model in eval mode, `chunk_rows`
    rows per forward pass. ValueError when x does not have the model's input width;
    NonFiniteOutput (a ValueError) when the model's outputs overflow for some rows.
    (The API keeps built models in a ModelCache and calls TrainedModel.predict itself.)"""
    return TrainedModel(parameters).predict(x, chunk_rows)


def export_parameters(job: Job, parameters: bytes, fmt: str = "safetensors",
                      layout: str = "needle") -> tuple[bytes, str]:
    """(body, media type); layout "torch" loads strictly into an equivalent PyTorch module.
    ValueError for an unknown format or layout."""
    return export_arrays(parameters, fmt, layout, batches_tracked=job.step)
