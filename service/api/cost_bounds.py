"""Cost bounds decided at submission: steps, total FLOPs, activation memory (a training step, and
an evaluation chunk sized by the rule workers use), model size and the
runtime limit; each refusal is a 422 naming the bound and by how much the job exceeds it."""
from ..settings import Settings
from ..specs import JobSpec
from ..specs.cost import (ModelCost, eval_chunk_bytes, eval_rows_per_chunk, human_bytes,
                          human_flops, model_cost, training_activation_bytes, training_flops)

Issue = tuple[tuple, str, object]


def spec_cost(spec: JobSpec) -> ModelCost:
    """The per-row cost of the spec's model (the per-layer table in specs/cost.py)."""
    return model_cost(spec.model)


def job_flops(spec: JobSpec, cost: ModelCost, *, steps: int, epochs: int, train_rows: int,
              val_rows: int, parameters: int) -> int:
    """Estimated total FLOPs of the planned job (training steps, optimizer, evaluation)."""
    return training_flops(cost, steps=steps, batch_size=spec.training.batch_size,
                          train_rows=train_rows, epochs=epochs, val_rows=val_rows,
                          parameters=parameters)


def cost_issues(spec: JobSpec, settings: Settings, cost: ModelCost, *, steps: int,
                flops: int) -> list[Issue]:
    """Every server-wide bound the planned job breaks (empty when it fits)."""
    issues = _size_issues(cost, settings) + _memory_issues(spec, cost, settings)
    runtime = spec.training.stopping.max_runtime_s
    if runtime is not None and runtime > settings.max_runtime_s:
        issues.append((("body", "training", "stopping", "max_runtime_s"), f"at most "
                       f"{settings.max_runtime_s:g} s are allowed (asked {runtime:g} s)", runtime))
    if steps > settings.max_job_steps:
        over = steps / settings.max_job_steps
        issues.append((("body", "training"), f"the job plans {steps} optimizer steps; this "
                       f"server runs at most {settings.max_job_steps} per job ({over:.3g}x over): "
                       "lower epochs, raise batch_size or set stopping.max_steps", steps))
    if flops > settings.max_job_flops:
        issues.append((("body", "training"), f"the job needs an estimated {human_flops(flops)} "
                       f"({steps} steps of {human_flops(flops / max(steps, 1))} each, evaluation "
                       f"included), over this server's cap of {human_flops(settings.max_job_flops)}"
                       f" by {flops / settings.max_job_flops:.3g}x", None))
    return issues


def _size_issues(cost: ModelCost, settings: Settings) -> list[Issue]:
    if cost.modules <= settings.max_modules:
        return []
    return [(("body", "model"), f"the model has {cost.modules} modules; this server accepts at "
             f"most {settings.max_modules} (by {cost.modules - settings.max_modules})", None)]


def _memory_issues(spec: JobSpec, cost: ModelCost, settings: Settings) -> list[Issue]:
    budget = settings.worker_memory_bytes
    issues = []
    train = training_activation_bytes(cost, spec.training.batch_size)
    if train > budget:
        largest = max(1, spec.training.batch_size * budget // train)
        issues.append((("body", "training", "batch_size"), f"a training step needs an estimated "
                       f"{human_bytes(train)} of activations, over the per-worker budget of "
                       f"{human_bytes(budget)} by {human_bytes(train - budget)}; batch_size "
                       f"{largest} or a narrower model would fit", spec.training.batch_size))
    # the workers' rule (training/loop.py): evaluation runs in chunks of this many rows
    chunk_rows = eval_rows_per_chunk(cost, budget)
    evaluation = eval_chunk_bytes(cost, chunk_rows)
    if evaluation > budget:  # even one row does not fit
        issues.append((("body", "model"), f"evaluating a single row needs an estimated "
                       f"{human_bytes(evaluation)} (widest layer {cost.widest} values), over the "
                       f"per-worker budget of {human_bytes(budget)} by "
                       f"{human_bytes(evaluation - budget)}", None))
    return issues


def with_runtime_default(normalised: dict, settings: Settings) -> dict:
    """The stored spec: a job that sets no max_runtime_s gets the server's default, visibly."""
    stopping = normalised["training"].setdefault("stopping", {})
    if stopping.get("max_runtime_s") is None:
        stopping["max_runtime_s"] = settings.default_max_runtime_s
    return normalised
