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
            "data": {"type": "teacher", "n_samples": 1000, "n_features": 20, "n_classes": 4,
                     "validation": {"type": "data", "data": {"type": "teacher", "n_samples": 200,
                                                             "n_features": 20, "n_classes": 4,
                                                             "seed": 1}}},
            "training": {"epochs": 3, "batch_size": 64},
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
}

PREDICT_EXAMPLES = {
    "two_features": {"summary": "Two rows for a 2-feature model (spirals, XOR)",
                     "value": {"x": [[0.1, -0.3], [0.0, 1.0]]}},
}

DATASET_JSON_EXAMPLE = {"name": "xor", "x": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 1, 1, 0]}
