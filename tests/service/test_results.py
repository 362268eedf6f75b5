"""Predictions and parameter exports from stored (safetensors) parameters."""
import io
import json

import numpy as np
import pytest
from safetensors.numpy import load as st_load

from service.jobs import Job, Status
from service.jobs.results import export_parameters, predict
from service.specs import JobSpec
from service.training import parameters_from_bytes, parameters_to_bytes, prepare_run, StepDone

SEQUENTIAL = {"type": "sequential", "layers": [
    {"type": "linear", "in_features": 3, "out_features": 8}, {"type": "batchnorm1d", "dim": 8},
    {"type": "relu"}, {"type": "dropout", "p": 0.3},
    {"type": "residual", "layers": [{"type": "linear", "in_features": 8, "out_features": 8, "bias": False},
                                    {"type": "layernorm1d", "dim": 8}, {"type": "relu"}]},
    {"type": "sequential", "layers": [{"type": "identity"}, {"type": "linear", "in_features": 8,
                                                             "out_features": 4}]}]}
MLP = {"type": "mlp_resnet", "in_features": 3, "hidden_dim": 10, "num_blocks": 2, "num_classes": 4}


def trained(model_spec):
    """(job, stored parameters) after a few steps, so running stats and weights are non-trivial."""
    spec = JobSpec.model_validate({"model": model_spec, "data": {"type": "teacher", "n_samples": 64,
                                                                 "n_features": 3, "n_classes": 4},
                                   "training": {"epochs": 2, "batch_size": 16}}).model_dump(mode="json")
    run = prepare_run(spec, mnist_dir=None, fetch_dataset=None)
    steps = sum(isinstance(e, StepDone) for e in run.events())
    job = Job(id="j1", status=Status.succeeded, spec=spec, param_count=0, created_at=0.0, step=steps,
              has_parameters=True)
    return job, parameters_to_bytes(run.state_dict(), spec["model"]), run


def test_stored_parameters_roundtrip_with_the_model_spec():
    job, blob, run = trained(MLP)
    state, model_spec = parameters_from_bytes(blob)
    assert model_spec == job.spec["model"] and list(state) == list(run.state_dict())
    assert all(np.array_equal(state[k], v) for k, v in run.state_dict().items())


@pytest.mark.parametrize("model_spec", [SEQUENTIAL, MLP], ids=["sequential", "mlp_resnet"])
def test_predict_runs_in_eval_mode_one_row_equals_row_in_batch(model_spec):
    job, blob, _ = trained(model_spec)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    batch = predict(job, blob, x)
    alone = predict(job, blob, x[2:3])
    np.testing.assert_allclose(alone["logits"][0], batch["logits"][2], rtol=1e-5, atol=1e-6)
    assert predict(job, blob, x) == batch  # no dropout noise: eval mode
    probs = np.array(batch["probabilities"])
    assert probs.shape == (5, 4) and np.allclose(probs.sum(axis=1), 1.0)
    assert batch["classes"] == np.argmax(batch["logits"], axis=1).tolist()
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        predict(job, blob, np.ones((2, 4)))


def test_predict_leaves_the_global_rng_alone():
    job, blob, _ = trained(MLP)
    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    predict(job, blob, np.ones((1, 3)))
    assert np.random.rand() == expected


@pytest.mark.parametrize("layout", ["needle", "torch"])
def test_export_formats_roundtrip(layout):
    job, blob, run = trained(SEQUENTIAL)
    state = run.state_dict()
    body, media = export_parameters(job, blob, "json", layout)
    doc = json.loads(body)
    assert media == "application/json"
    st_body, _ = export_parameters(job, blob, "safetensors", layout)
    from_st = st_load(st_body)
    npz_body, _ = export_parameters(job, blob, "npz", layout)
    with np.load(io.BytesIO(npz_body), allow_pickle=False) as npz:
        from_npz = {k: npz[k] for k in npz.files}
    assert set(doc) == set(from_st) == set(from_npz)
    for key, entry in doc.items():
        array = np.array(entry["data"], dtype=entry["dtype"]).reshape(entry["shape"])
        assert np.array_equal(array, from_st[key]) and np.array_equal(array, from_npz[key])
    if layout == "needle":
        assert set(doc) == set(state)
        assert all(np.array_equal(from_st[k], v) for k, v in state.items())
    else:
        assert np.array_equal(from_st["0.weight"], state["0.weight"].T)
        assert from_st["0.bias"].shape == (8,) and from_st["1.weight"].shape == (8,)
        assert from_st["1.num_batches_tracked"] == job.step


def test_export_rejects_unknown_format_and_layout():
    job, blob, _ = trained(MLP)
    with pytest.raises(ValueError):
        export_parameters(job, blob, "pickle", "needle")
    with pytest.raises(ValueError):
        export_parameters(job, blob, "json", "tf")
