"""Spec -> needle model, data, a resumable training loop, checkpoints and parameter files."""
from pathlib import Path
from typing import Any, Callable

from .builders import build_model, build_optimizer, parameter_count, state_shapes
from .checkpoint import Checkpoint
from .checkpoint import from_bytes as checkpoint_from_bytes
from .checkpoint import to_bytes as checkpoint_to_bytes
from .data import DatasetFetcher, TrainingData, check_fits_model, load_source, load_training_data
from .errors import TrainingError
from .inference import (NonFiniteOutput, TrainedModel, evaluate_arrays, export_arrays,
                        export_with_preprocess, load_model, predict_arrays)
from .loop import EpochDone, StepDone, TrainingRun, evaluate
from .params import parameters_from_bytes, parameters_to_bytes

__all__ = ["Checkpoint", "DatasetFetcher", "EpochDone", "StepDone", "TrainingData", "TrainingError",
           "NonFiniteOutput", "TrainedModel", "TrainingRun", "build_model", "build_optimizer", "check_fits_model", "checkpoint_from_bytes",
           "checkpoint_to_bytes", "evaluate", "export_arrays", "load_model", "load_training_data",
           "parameter_count", "parameters_from_bytes", "parameters_to_bytes", "predict_arrays", "prepare_run",
           "evaluate_arrays", "export_with_preprocess", "load_source", "state_shapes"]


def prepare_run(spec: dict[str, Any], *, mnist_dir: Path | None, fetch_dataset: DatasetFetcher,
                fetch_parameters: Callable[[str], bytes] | None = None,
                eval_memory_bytes: int | None = None) -> TrainingRun:
    """Load the job's data, check it fits the model, and build a fresh run (warm-started from
    training.init_from's parameters, fetched by job id, when the spec says so). Validation runs
    in chunks whose activations fit eval_memory_bytes (the rule the submission estimate uses)."""
    from service.specs import is_regression, model_input_shape, model_widths, parse_model
    from service.specs.cost import MAX_EVAL_CHUNK, eval_rows_per_chunk, model_cost

    data = load_training_data(spec["data"], spec["training"]["seed"], mnist_dir=mnist_dir,
                              fetch_dataset=fetch_dataset,
                              regression=is_regression(spec["training"].get("loss")))
    model = parse_model(spec["model"])
    in_features, num_classes = model_widths(model)
    check_fits_model(data, in_features, num_classes, model_input_shape(model))
    eval_rows = (MAX_EVAL_CHUNK if eval_memory_bytes is None
                 else eval_rows_per_chunk(model_cost(model), eval_memory_bytes))
    run = TrainingRun(spec, data, eval_rows)
    init_from = spec["training"].get("init_from")
    if init_from is not None:
        if fetch_parameters is None:
            raise TrainingError("this run cannot fetch the parameters of training.init_from")
        run.warm_start(parameters_from_bytes(fetch_parameters(init_from["job"]))[0])
    return run
