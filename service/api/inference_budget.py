"""What one /predict or /evaluate may cost the API: its forward passes run in chunks of rows
sized to NEEDLE_PREDICT_MEMORY_BYTES, and its answer must fit the same budget; each refusal is
a 422 naming the bound and by how much the request exceeds it."""
from ..settings import Settings
from ..specs.cost import ModelCost, eval_bytes_per_row, eval_rows_per_chunk, human_bytes
from .errors import Loc, validation_error

# An answer value is a float64 (logits, probabilities), then JSON text (~20 characters) in
# pieces and their join, with Python floats for one piece at a time: ~50 bytes per value
# measured with tracemalloc (tests/service/test_inference_budget.py holds it under this).
ANSWER_BYTES_PER_VALUE = 64
# Parsing JSON rows makes a Python float (24 bytes) and a list slot (8) per value and a list per
# row: measured up to 42x the body for "[0]," rows, 10x for floats (test_inference_budget.py).
# The estimate counts separators and brackets (one pass in C) and charges each:
JSON_BYTES_PER_VALUE = 48      # per "," (values and rows)
JSON_BYTES_PER_LIST = 160      # per "["


def chunk_rows(cost: ModelCost, settings: Settings, loc: Loc) -> int:
    """Rows per forward pass within the budget; a 422 at `loc` when even one row does not fit."""
    budget, per_row = settings.predict_memory_bytes, eval_bytes_per_row(cost)
    if per_row > budget:
        raise validation_error([(loc, f"one row needs an estimated {human_bytes(per_row)} in a "
                                 f"forward pass (widest layer {cost.widest} values), over this "
                                 f"server's inference budget of {human_bytes(budget)} by "
                                 f"{human_bytes(per_row - budget)}", None)])
    return eval_rows_per_chunk(cost, budget)


def check_json_body(body: bytes, settings: Settings) -> None:
    """A 422 when parsing this JSON body into Python lists would not fit the budget."""
    values, lists = body.count(b","), body.count(b"[")
    budget, needed = settings.predict_memory_bytes, values * JSON_BYTES_PER_VALUE + lists * JSON_BYTES_PER_LIST
    if needed > budget:
        raise validation_error([(("body",), f"parsing this JSON body ({len(body)} bytes, ~{values} "
                                 f"values in {lists} lists) needs an estimated {human_bytes(needed)}"
                                 f", over this server's inference budget of {human_bytes(budget)} "
                                 f"by {human_bytes(needed - budget)}: send the arrays as an .npz "
                                 "body (application/octet-stream)", None)])


def check_answer(values: int, what: str, settings: Settings, loc: Loc, *,
                 rows_hint: str = "") -> None:
    """A 422 at `loc` when an answer of `values` numbers would not fit the budget."""
    budget, needed = settings.predict_memory_bytes, values * ANSWER_BYTES_PER_VALUE
    if needed > budget:
        raise validation_error([(loc, f"the answer ({what}: {values} values) needs an estimated "
                                 f"{human_bytes(needed)}, over this server's inference budget of "
                                 f"{human_bytes(budget)} by {human_bytes(needed - budget)}"
                                 f"{rows_hint}", None)])


def check_prediction(rows: int, outputs: int, classification: bool, settings: Settings) -> None:
    """The answer of `rows` rows: logits and probabilities (or outputs) of `outputs` values each."""
    per_row = outputs * (2 if classification else 1) + (1 if classification else 0)
    fits = settings.predict_memory_bytes // (per_row * ANSWER_BYTES_PER_VALUE)
    hint = (f"; send at most {fits} rows per request" if fits else
            "; this model's outputs are too wide to predict here")
    check_answer(rows * per_row, f"{rows} rows x {outputs} outputs", settings, ("body", "x"),
                 rows_hint=hint)
