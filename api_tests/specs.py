"""Small job specs the black-box tests submit (they train in well under a second)."""


def spirals(seed: int = 0, epochs: int = 2, **training) -> dict:
    """A tiny MLP-ResNet on 3-arm spirals, with a validation split."""
    return {
        "model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16, "num_blocks": 1,
                  "num_classes": 3},
        "optimizer": {"type": "adam", "lr": 0.01},
        "data": {"type": "spirals", "n_samples": 200, "seed": seed,
                 "validation": {"type": "fraction", "fraction": 0.25}},
        "training": {"epochs": epochs, "batch_size": 32, "seed": seed, **training},
    }


def batchnorm_stack(seed: int = 0) -> dict:
    """linear -> batchnorm1d -> relu -> linear on spirals (no dropout: eval is deterministic)."""
    return {
        "model": {"type": "sequential", "layers": [
            {"type": "linear", "in_features": 2, "out_features": 16},
            {"type": "batchnorm1d", "dim": 16, "momentum": 0.2},
            {"type": "relu"},
            {"type": "linear", "in_features": 16, "out_features": 3}]},
        "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.5},
        "data": {"type": "spirals", "n_samples": 300, "seed": seed},
        "training": {"epochs": 3, "batch_size": 16, "seed": seed},
    }


def long_teacher(epochs: int, seed: int = 0, optimizer: dict | None = None, **training) -> dict:
    """A job of about 60 steps per epoch on teacher data; `epochs` sets how long it runs."""
    return {
        "model": {"type": "mlp_resnet", "in_features": 20, "hidden_dim": 64, "num_blocks": 2,
                  "num_classes": 4},
        "optimizer": optimizer or {"type": "adam", "lr": 0.001},
        "data": {"type": "teacher", "n_samples": 2000, "n_features": 20, "n_classes": 4},
        "training": {"epochs": epochs, "batch_size": 32, "seed": seed, **training},
    }


def tuned_teacher(epochs: int, seed: int = 0) -> dict:
    """long_teacher with everything that a resume must carry over: a warmup + cosine schedule,
    AdamW, gradient clipping, early stopping (it fires after the restart), and checkpoints every
    0.3 s of training."""
    return long_teacher(epochs, seed, optimizer={"type": "adamw", "lr": 0.003, "schedule": {
                            "type": "cosine", "warmup_steps": 50, "min_lr": 0.0001}},
                        clip_grad_norm=0.5, checkpoint_interval_s=0.3,
                        early_stopping={"metric": "train_loss", "patience": 2, "min_delta": 0.01})


def sweep_base(epochs: int = 9) -> dict:
    """A small, stable spirals job for sweeps (layer norm, no dropout): about 0.1 s of training."""
    return {
        "model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 32, "num_blocks": 1,
                  "num_classes": 3, "norm": "layernorm", "drop_prob": 0.0},
        "optimizer": {"type": "adam", "lr": 0.01},
        "data": {"type": "spirals", "n_samples": 600, "seed": 0,
                 "validation": {"type": "fraction", "fraction": 0.25}},
        "training": {"epochs": epochs, "batch_size": 32, "seed": 0},
    }
