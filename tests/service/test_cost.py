"""The per-layer cost table and the estimates built on it (service/specs/cost.py)."""
import pytest

from pydantic import TypeAdapter

from service.specs import JobSpec, ModelSpec, count_parameters
from service.specs.cost import (LAYER_COSTS, MAX_EVAL_CHUNK, eval_rows_per_chunk,
                                mlp_resnet_layers, model_cost, training_activation_bytes,
                                training_flops)

SPEC = TypeAdapter(ModelSpec).validate_python
MLP = {"type": "mlp_resnet", "in_features": 20, "hidden_dim": 64, "num_blocks": 2,
       "num_classes": 4, "norm": "batchnorm", "drop_prob": 0.1}


def test_linear_flops_and_widths_through_a_stack():
    model = {"type": "sequential", "layers": [
        {"type": "linear", "in_features": 10, "out_features": 30}, {"type": "relu"},
        {"type": "residual", "layers": [{"type": "linear", "in_features": 30,
                                         "out_features": 30}]},
        {"type": "linear", "in_features": 30, "out_features": 3, "bias": False}]}
    cost = model_cost(SPEC(model))
    assert cost.flops == (2 * 10 * 30 + 30) + 30 + (2 * 30 * 30 + 30) + 30 + 2 * 30 * 3
    assert cost.widest == 30 and cost.depth == 2 and cost.modules == 1 + 4 + 1
    assert cost.activations == 30 + 30 + 30 + 30 + 3


def test_mlp_resnet_expands_to_the_module_tree_needle_builds():
    layers = [layer.model_dump(mode="json") for layer in mlp_resnet_layers(SPEC(MLP))]
    assert len(layers) == 2 + 2 + 1 and layers[2]["layers"][0]["type"] == "residual"
    data = {"type": "teacher", "n_features": 20, "n_classes": 4}
    as_stack = JobSpec.model_validate({"model": {"type": "sequential", "layers": layers},
                                       "data": data})
    as_resnet = JobSpec.model_validate({"model": MLP, "data": data})
    assert count_parameters(as_stack.model) == count_parameters(as_resnet.model)
    assert model_cost(SPEC(MLP)) == model_cost(as_stack.model)


def test_every_leaf_layer_type_of_the_specs_has_a_cost_entry():
    from typing import get_args
    from service.specs.layers import LayerSpec
    union = get_args(get_args(LayerSpec)[0])
    kinds = {get_args(model.model_fields["type"].annotation)[0] for model in union}
    assert kinds - {"sequential", "residual"} <= set(LAYER_COSTS)


def test_training_flops_count_steps_backward_optimizer_and_evaluation():
    cost = model_cost(SPEC(MLP))
    base = training_flops(cost, steps=10, batch_size=32, train_rows=1000, epochs=1, val_rows=0,
                          parameters=100)
    assert base == 10 * 32 * cost.flops * 3 + 10 * 10 * 100
    with_eval = training_flops(cost, steps=10, batch_size=32, train_rows=1000, epochs=2,
                               val_rows=500, parameters=100)
    assert with_eval - base == 2 * 500 * cost.flops


def test_memory_grows_with_batch_and_eval_chunks_fit_the_budget():
    cost = model_cost(SPEC({"type": "sequential", "layers": [
        {"type": "linear", "in_features": 2, "out_features": 1_000_000}]}))
    assert training_activation_bytes(cost, 64) == 2 * training_activation_bytes(cost, 32)
    assert eval_rows_per_chunk(cost, 10**12) == MAX_EVAL_CHUNK
    # a row holds its input (twice: the caller's batch and the layer's input) and the output
    assert cost.eval_peak == 2 + 2 + 1_000_000
    assert eval_rows_per_chunk(cost, 120_000_000) == 120_000_000 // (4 * 1_000_004) == 29
    assert eval_rows_per_chunk(cost, 1) == 1


@pytest.mark.parametrize("depth, ok", [(31, True), (32, False)])
def test_container_depth_is_bounded(depth, ok):
    layer = {"type": "linear", "in_features": 2, "out_features": 3}
    for _ in range(depth):
        layer = {"type": "sequential", "layers": [layer]}
    spec = {"model": {"type": "sequential", "layers": [layer]},
            "data": {"type": "spirals", "n_samples": 10}}
    if ok:
        JobSpec.model_validate(spec)
    else:
        with pytest.raises(ValueError, match="nested more than 32"):
            JobSpec.model_validate(spec)


def test_conv_layers_cost_two_k_squared_c_in_c_out_ho_wo_per_image():
    model = SPEC({"type": "sequential", "input_shape": [3, 8, 8], "layers": [
        {"type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3},
        {"type": "batchnorm2d", "dim": 4}, {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"},
        {"type": "linear", "in_features": 64, "out_features": 2}]})
    cost = model_cost(model)
    conv = (2 * 3 * 3 * 3 + 1) * 4 * 8 * 8
    assert cost.flops == conv + 8 * 256 + 256 + 4 * 64 + 0 + (2 * 64 * 2 + 2)
    padded = 3 * 10 * 10  # the padded input the conv's backward makes for its kernel gradient
    assert cost.widest == 256 and cost.activations == 256 * 3 + 64 + 64 + 2 + padded
