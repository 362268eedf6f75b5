"""Request examples shown in Swagger UI; each one is valid and trains in a few seconds."""

JOB_EXAMPLES = {
    "spirals": {
        "summary": "MLP-ResNet on 3-arm spirals, 20% held out",
        "value": {
            "model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 32, "num_blocks": 1,
                      "num_classes": 3},
            "optimizer": {"type": "adam", "lr": 0.01},
            "data": {"type": "spirals", "n_samples": 600, "n_classes": 3,
                     "validation": {"type": "fraction", "fraction": 0.2}},
            "training": {"epochs": 5, "batch_size": 32, "seed": 0},
        },
    },
    "teacher": {
        "summary": "Sequential stack with a residual block on teacher-network data",
        "value": {
            "model": {"type": "sequential", "layers": [
                {"type": "linear", "in_features": 20, "out_features": 64},
                {"type": "relu"},
                {"type": "residual", "layers": [
                    {"type": "linear", "in_features": 64, "out_features": 64},
                    {"type": "batchnorm1d", "dim": 64},
                    {"type": "relu"},
                    {"type": "dropout", "p": 0.1}]},
                {"type": "linear", "in_features": 64, "out_features": 4}]},
            "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
            "data": {"type": "teacher", "n_samples": 2000, "n_features": 20, "n_classes": 4,
                     "validation": {"type": "fraction", "fraction": 0.2}},
            "training": {"epochs": 20, "batch_size": 64},
        },
    },
    "cnn": {
        "summary": "Convolutional network on 1x8x8 images (teacher rows of 64 features reshaped)",
        "value": {
            "model": {"type": "sequential", "input_shape": [1, 8, 8], "layers": [
                {"type": "conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3},
                {"type": "batchnorm2d", "dim": 8},
                {"type": "relu"},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "flatten"},
                {"type": "linear", "in_features": 128, "out_features": 4}]},
            "optimizer": {"type": "adam", "lr": 0.01},
            "data": {"type": "teacher", "n_samples": 1000, "n_features": 64, "n_classes": 4,
                     "validation": {"type": "fraction", "fraction": 0.2}},
            "training": {"epochs": 5, "batch_size": 32},
        },
    },
    "inline": {
        "summary": "Tiny inline data (XOR)",
        "value": {
            "model": {"type": "sequential", "layers": [
                {"type": "linear", "in_features": 2, "out_features": 8},
                {"type": "relu"},
                {"type": "linear", "in_features": 8, "out_features": 2}]},
            "optimizer": {"type": "adam", "lr": 0.05},
            "data": {"type": "inline", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0]},
            "training": {"epochs": 50, "batch_size": 4, "stopping": {"max_runtime_s": 10}},
        },
    },
    "early_stopping": {
        "summary": "AdamW, cosine schedule with warmup, clipping, early stopping on val_loss",
        "value": {
            "name": "teacher-early-stop", "tags": {"team": "docs", "stage": "dev"},
            "model": {"type": "mlp_resnet", "in_features": 20, "hidden_dim": 64, "num_blocks": 1,
                      "num_classes": 4, "activation": "gelu", "norm": "layernorm"},
            "optimizer": {"type": "adamw", "lr": 0.003, "weight_decay": 0.01,
                          "schedule": {"type": "cosine", "min_lr": 0.0001, "warmup_steps": 20}},
            "data": {"type": "teacher", "n_samples": 1000, "n_features": 20, "n_classes": 4,
                     "validation": {"type": "fraction", "fraction": 0.2},
                     "preprocess": {"type": "standardize"}},
            "training": {"epochs": 100, "batch_size": 32, "clip_grad_norm": 1.0,
                         "loss": {"type": "cross_entropy", "label_smoothing": 0.05},
                         "early_stopping": {"metric": "val_loss", "patience": 5}},
        },
    },
    "regression": {
        "summary": "Regression (MSE) on a known linear function with 2 targets",
        "value": {
            "model": {"type": "sequential", "layers": [
                {"type": "linear", "in_features": 8, "out_features": 32},
                {"type": "silu"},
                {"type": "linear", "in_features": 32, "out_features": 2}]},
            "optimizer": {"type": "adam", "lr": 0.01,
                          "schedule": {"type": "step", "step_size": 10, "gamma": 0.5}},
            "data": {"type": "linear", "n_samples": 2000, "n_features": 8, "n_targets": 2,
                     "noise": 0.1, "validation": {"type": "fraction", "fraction": 0.2}},
            "training": {"epochs": 30, "batch_size": 64, "loss": {"type": "mse"},
                         "early_stopping": {"metric": "val_rmse", "patience": 5}},
        },
    },
}

EVALUATE_EXAMPLES = {
    "spirals": {"summary": "A fresh sample of the spirals task (for the spirals example job)",
                "value": {"data": {"type": "spirals", "n_samples": 500, "n_classes": 3, "seed": 7}}},
    "dataset": {"summary": "An uploaded dataset, streamed in batches",
                "value": {"data": {"type": "dataset", "id": "9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"}}},
}
EVALUATION_EXAMPLE = {"task": "classification", "rows": 500, "loss": 0.08, "error": 0.02,
                      "accuracy": 0.98, "precision": [0.99, 0.97, 0.98],
                      "recall": [0.98, 0.98, 0.98],
                      "confusion_matrix": [[164, 2, 1], [1, 163, 2], [1, 2, 164]]}

PREDICT_EXAMPLES = {
    "two_features": {"summary": "Two rows for a 2-feature model (spirals, XOR)",
                     "value": {"x": [[0.1, -0.3], [0.0, 1.0]]}},
}

DATASET_JSON_EXAMPLE = {"name": "xor", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0]}

JOB_SUMMARY_EXAMPLE = {
    "id": "3f1c0b6a9e2d4c5b8a7f6e5d4c3b2a19", "status": "succeeded",
    "progress": {"epoch": 5, "epochs": 5, "step": 75, "steps": 75}, "attempt": 1,
    "created_at": "2026-01-01T12:00:00Z", "started_at": "2026-01-01T12:00:01Z",
    "finished_at": "2026-01-01T12:00:02Z", "cancel_requested": False, "has_parameters": True,
    "param_count": 3779,
    "result": {"train_loss": 0.09, "train_error": 0.02, "val_loss": 0.06, "val_error": 0.017,
               "epochs": 5, "steps": 75, "runtime_s": 0.09},
    "error": None, "tenant": "default", "priority": 0,
}
JOB_EXAMPLE = {**JOB_SUMMARY_EXAMPLE, "spec": {
    "model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 32, "num_blocks": 1,
              "num_classes": 3, "norm": "batchnorm", "drop_prob": 0.1},
    "optimizer": {"type": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                  "weight_decay": 0.0},
    "data": {"type": "spirals", "n_samples": 600, "n_classes": 3, "noise": 0.2, "seed": 0,
             "validation": {"type": "fraction", "fraction": 0.2}},
    "training": {"epochs": 5, "batch_size": 32, "shuffle": True, "seed": 0,
                 "stopping": {"max_steps": None, "max_runtime_s": None}}, "priority": 0}}
METRICS_EXAMPLE = {"points": [
    {"seq": 41, "kind": "step", "epoch": 0, "step": 15, "values": {"loss": 0.82}},
    {"seq": 42, "kind": "epoch", "epoch": 1, "step": 15,
     "values": {"train_loss": 0.95, "train_error": 0.41, "val_loss": 0.78, "val_error": 0.33}}],
    "next_after": 42}
PREDICTION_EXAMPLE = {"logits": [[2.1, -0.4, -1.3]], "probabilities": [[0.89, 0.07, 0.03]],
                      "classes": [0]}
DATASET_EXAMPLE = {"id": "9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e", "name": "xor", "n_rows": 4,
                   "n_features": 2, "n_classes": 2, "size_bytes": 530,
                   "created_at": "2026-01-01T12:00:00Z", "tenant": "default"}

_SWEEP_BASE = {
    "model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 32, "num_blocks": 1,
              "num_classes": 3},
    "optimizer": {"type": "adam", "lr": 0.01},
    "data": {"type": "spirals", "n_samples": 600, "n_classes": 3,
             "validation": {"type": "fraction", "fraction": 0.2}},
    "training": {"epochs": 9, "batch_size": 32, "seed": 0},
}
SWEEP_EXAMPLES = {
    "grid": {
        "summary": "3 x 3 grid over learning rate and width, 2 trials at a time",
        "value": {"base": _SWEEP_BASE,
                  "parameters": {"optimizer.lr": {"values": [0.0001, 0.003, 0.03]},
                                 "model.hidden_dim": {"values": [8, 16, 32]}},
                  "strategy": {"type": "grid"},
                  "objective": {"metric": "val_loss", "mode": "min"},
                  "max_parallel": 2},
    },
    "random_asha": {
        "summary": "12 random trials (log-uniform learning rate), pruned by ASHA",
        "value": {"base": _SWEEP_BASE,
                  "parameters": {"optimizer.lr": {"type": "loguniform", "low": 1e-5, "high": 0.1},
                                 "model.hidden_dim": {"type": "int_uniform", "low": 8, "high": 48}},
                  "strategy": {"type": "random", "n_trials": 12, "seed": 7},
                  "objective": {"metric": "val_error", "mode": "min"},
                  "max_parallel": 2,
                  "early_stopping": {"type": "asha", "grace_epochs": 1, "reduction_factor": 3}},
    },
}
