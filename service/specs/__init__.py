"""Pure pydantic job specs (no needle import) and the arithmetic shared by API and workers."""
from .data import (ID_PATTERN, LABEL_LIMIT, DatasetData, DatasetSource, DataSpec,
                   DataValidation, FiniteFloat, FractionValidation, InlineData, InlineSource,
                   Label, LinearData, LinearSource, MnistData, MnistSource, Name,
                   PreprocessSpec, Rows, SourceSpec, SpiralsData, SpiralsSource, TeacherData,
                   TeacherSource, ValidationSpec, known_classes, known_features,
                   known_image_shape, known_rows, sample_shape, table_issues)
from .job import JobSpec, source_issues
from .layers import (AvgPool2dLayer, BatchNorm2dLayer, Conv2dLayer, MaxPool2dLayer,
                     BatchNorm1dLayer, DropoutLayer, FlattenLayer, IdentityLayer, LayerNorm1dLayer,
                     LayerSpec, LinearLayer, ReLULayer, ResidualLayer, SequentialLayer)
from .models import (MLPResNetModel, ModelSpec, SequentialModel, model_input_loc, model_input_shape,
                     model_output_loc, model_widths, parse_model)
from .optimizers import AdamOptimizer, AdamWOptimizer, OptimizerSpec, SGDOptimizer
from .planning import count_parameters, planned_steps, validation_split_sizes
from .training import EarlyStoppingSpec, LossSpec, StoppingSpec, TrainingSpec, is_regression

__all__ = [
    "ID_PATTERN", "LABEL_LIMIT", "AdamOptimizer", "AdamWOptimizer", "EarlyStoppingSpec",
    "LinearData", "LinearSource", "LossSpec", "PreprocessSpec", "is_regression",
    "AvgPool2dLayer", "BatchNorm1dLayer", "BatchNorm2dLayer", "Conv2dLayer",
    "MaxPool2dLayer", "Rows", "known_image_shape", "model_input_shape", "sample_shape", "DataSpec", "DataValidation", "DatasetData",
    "DatasetSource", "DropoutLayer", "FiniteFloat", "FlattenLayer", "FractionValidation",
    "IdentityLayer", "InlineData", "InlineSource", "JobSpec", "Label", "LayerNorm1dLayer", "Name",
    "LayerSpec", "LinearLayer", "MLPResNetModel", "MnistData", "MnistSource", "ModelSpec",
    "OptimizerSpec", "ReLULayer", "ResidualLayer", "SGDOptimizer", "SequentialLayer",
    "SequentialModel", "SourceSpec", "SpiralsData", "SpiralsSource", "StoppingSpec",
    "TeacherData", "TeacherSource", "TrainingSpec", "ValidationSpec", "count_parameters",
    "known_classes", "known_features", "known_rows", "model_input_loc", "model_output_loc",
    "model_widths", "parse_model", "planned_steps", "source_issues", "table_issues", "validation_split_sizes",
]
