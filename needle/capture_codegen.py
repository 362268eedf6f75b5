"""A capture tape compiled to straight-line Python: its forward and its backward as two functions.

Replaying a tape op by op in a loop costs interpreter work per op (list lookups, argument lists,
zip loops over the partial adjoints) that an MLPResNet step repeats ~40 times; generated code
does the same calls in the same order with every slot a local variable, so only the op calls
remain. The generated source (`tape.forward_source`, `tape.backward_source`) reads like the
hand-written floor in bench/mlp_resnet_floor.py:

    def forward(arrays, T, clone):
        s0, s1, s2, s5, s6 = arrays    # the call's arguments and the tape's leaves, by slot
        s3 = T[0].compute(s0, s1, s2)  # Linear
        o1 = clone(T[1])               # a stateful op: a fresh instance per replay
        s4 = o1.compute(s3, s5, s6)    # BatchNorm, which keeps its input centred...
        s3 = None                      # ...so no gradient reads s3 (Op.gradient_reads): let it go
        ...
        return [s0, s1, s2, s3, ...], [T[0], o1, ...]

    def backward(arrays, ops, g9, outs, via_tensors):
        s0, s1, s2, s3, ... = arrays
        g1 = g2 = g3 = ... = None
        if g9 is not None:             # the last entry, the first in backward order
            g7, g8 = ops[4].gradient_arrays(g9, [s7, s8], s9, (True, True))
            g9 = None
        ...
        if g5 is not None:             # s4 feeds two ops: this is its second partial adjoint
            p = ops[2].gradient_arrays(g5, [s4, s2], s5, (True, True))
            g5 = None
            _, g2 = p
            q = p[0]
            if q is not None:
                g4 = q if g4 is None else g4 + q
        ...
        return (None, g1, g2, ...)

A slot's first partial adjoint is unpacked straight from its op's gradient; later ones are summed
in define-by-run's backward order (`previous + part`, never in place: a part may alias another),
so results are bit-identical to define-by-run.
"""
from functools import lru_cache


def compile_tape(tape):
    """(forward, backward, forward source, backward source) for a built _Tape."""
    forward_source, backward_source = _forward_source(tape), _backward_source(tape)
    return _compiled(forward_source, "forward"), _compiled(backward_source, "backward"), \
        forward_source, backward_source


@lru_cache(maxsize=16)  # a few model structures per process; a big model's source is megabytes
def _compiled(source: str, name: str):
    """The function `name` defined by source (cached: a new model of the same structure, e.g. each
    trial of a sweep, generates the same source; the functions keep no state of their own)."""
    namespace = {}
    exec(compile(source, f"<needle.capture {name}>", "exec"), namespace)
    return namespace[name]


def _unpack(slots) -> str:
    names = ", ".join(f"s{slot}" for slot in slots)
    return f"    {names}{',' if len(slots) == 1 else ''} = arrays"


def _forward_source(tape) -> str:
    lines = ["def forward(arrays, T, clone):", _unpack(tape.input_slots)]
    ops, released = [], _released_after(tape)
    for k, (_, in_slots, out_slot, stateful) in enumerate(tape.entries):
        op = f"o{k}" if stateful else f"T[{k}]"
        if stateful:
            lines.append(f"    o{k} = clone(T[{k}])")
        args = ", ".join(f"s{slot}" for slot in in_slots)
        lines.append(f"    s{out_slot} = {op}.compute({args})")
        if released[k]:
            lines.append("    " + " = ".join(f"s{slot}" for slot in released[k]) + " = None")
        ops.append(op)
    every_slot = ", ".join(f"s{slot}" for slot in range(len(tape.requires)))
    lines.append(f"    return [{every_slot}], [{', '.join(ops)}]")
    return "\n".join(lines) + "\n"


def _released_after(tape):
    """Per entry, the op outputs no gradient reads (Op.gradient_reads) whose last use in the
    forward is that entry's: the forward drops them there (the backward gets None for them)."""
    read = set(tape.input_slots) | {tape.out_slot}
    for op, in_slots, out_slot, _ in tape.entries:
        reads = op.gradient_reads()
        if reads is None:
            read.update(in_slots, (out_slot,))
        else:
            read.update(out_slot if r == "out" else in_slots[r] for r in reads
                        if r == "out" or r < len(in_slots))
    last_use = {slot: k for k, (_, in_slots, _, _) in enumerate(tape.entries) for slot in in_slots}
    released = [[] for _ in tape.entries]
    for slot, k in sorted(last_use.items()):
        if slot not in read:
            released[k].append(slot)
    return released


def _backward_source(tape) -> str:
    out_slot = tape.out_slot
    lines = [f"def backward(arrays, ops, g{out_slot}, outs, via_tensors):",
             _unpack(range(len(tape.requires)))]
    receiving = sorted({slot for _, in_slots, _, needs in tape.backward_order
                        for slot, need in zip(in_slots, needs) if need} - {out_slot})
    if receiving:
        lines.append("    " + " = ".join(f"g{slot}" for slot in receiving) + " = None")
    seen = set()  # slots that received a partial adjoint in an earlier line
    for k, in_slots, entry_out, needs in tape.backward_order:
        op = tape.entries[k][0]
        inputs = "[" + ", ".join(f"s{slot}" for slot in in_slots) + "]"
        needs_literal = "(" + ", ".join(map(str, needs)) + ("," if len(needs) == 1 else "") + ")"
        if getattr(type(op), "gradient_arrays", None) is None:
            call = f"via_tensors(ops[{k}], g{entry_out}, {inputs}, s{entry_out}, {needs_literal})"
        elif tape.dest_positions[k]:
            call = f"ops[{k}].gradient_arrays(g{entry_out}, {inputs}, s{entry_out}, {needs_literal}, outs[{k}])"
        else:
            call = f"ops[{k}].gradient_arrays(g{entry_out}, {inputs}, s{entry_out}, {needs_literal})"
        lines.append(f"    if g{entry_out} is not None:")
        lines += _adjoint_updates(call, in_slots, needs, seen)
        lines.append(f"        g{entry_out} = None")
    results = [f"g{slot}" if tape.requires[slot] and slot in receiving else "None"
               for slot in tape.input_slots]
    lines.append(f"    return ({', '.join(results)}{',' if len(results) == 1 else ''})")
    return "\n".join(lines) + "\n"


def _adjoint_updates(call, in_slots, needs, seen):
    """Lines calling one op's gradient and adding its partial adjoints into its inputs' adjoints. A
    slot's first partial becomes its adjoint by unpacking (the adjoint is still None: nothing to add);
    later ones are added in backward order, as define-by-run sums them."""
    targets, later = [], []
    for position, (slot, need) in enumerate(zip(in_slots, needs)):
        if need and slot not in seen:
            seen.add(slot)
            targets.append(f"g{slot}")
        else:
            targets.append("_")
            if need:
                later.append((position, slot))
    unpack = ", ".join(targets) + ("," if len(targets) == 1 else "")
    if not later:
        return [f"        {unpack} = {call}"]
    lines = [f"        p = {call}", f"        {unpack} = p"]
    for position, slot in later:
        lines += [f"        q = p[{position}]", "        if q is not None:",
                  f"            g{slot} = q if g{slot} is None else g{slot} + q"]
    return lines
