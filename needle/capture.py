"""Capture and replay of repeated identical module calls (training steps), transparently.

The first outermost call `model(x)` of a capturable module runs define-by-run as always and records
the ops it creates (in creation order) and the graph's backward order. A later call that is a
repeat — same module structure and hyperparameters, same training flags, same input shapes, dtypes
and requires_grad, same parameter shapes — replays the recorded ops on the new arrays instead of
running the Python modules: no Tensors, no module calls, one graph node for the whole model, whose
gradient runs the recorded backward on numpy arrays. Results are bit-identical to define-by-run
(same kernels, same order, same random draws); anything that is not a repeat runs define-by-run.

Capturable: every module in the tree opts in with `_static_forward = True` on its own class (its
forward builds a graph that depends only on the things above; its side effects happen inside ops,
e.g. BatchNorm's running statistics and dropout's mask draw), every op it creates is
`replayable`, and every leaf it reads is the call's input or a parameter/buffer of the tree.
Otherwise that module call (for that input signature) simply runs define-by-run. Structure and
hyperparameter changes are noticed through `Module.__setattr__`, which bumps `EPOCH`.
"""
from contextlib import contextmanager
from operator import is_, is_not
from sys import getrefcount

from . import autograd
from .autograd import Tensor, TensorOp, Value, _GRAD_MODE, find_topo_sort
from .capture_codegen import compile_tape
from .optim import GRAD_BUFFERS, GRAD_BUFFERS_VERSION

ENABLED = True  # switch off with `disabled()` to compare against plain define-by-run
MAX_TAPES_PER_MODULE = 4  # input signatures kept per module (e.g. full and last partial batch)
EPOCH = 0  # bumped whenever any Module attribute is set


def bump_epoch():
    """Note that some module's structure or hyperparameters may have changed."""
    global EPOCH
    EPOCH += 1


@contextmanager
def disabled():
    """Run everything define-by-run inside the block (replay and recording off)."""
    global ENABLED
    previous, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = previous


def module_call(module, args, kwargs):
    """Module.__call__: the outermost call of a module may replay or record; all others run forward."""
    if _GRAD_MODE.module_depth or kwargs or not ENABLED or not _GRAD_MODE.enabled or autograd.LAZY_MODE:
        return module.forward(*args, **kwargs)
    _GRAD_MODE.module_depth = 1
    try:
        return _outermost_call(module, args)
    finally:
        _GRAD_MODE.module_depth = 0


class _Entry:
    """Per module: the structural signature it was validated against and its tapes by input key."""

    __slots__ = ("epoch", "signature", "modules", "tapes", "earlier")

    def __init__(self):
        self.epoch, self.signature, self.modules, self.tapes = -1, None, (), {}
        self.earlier = {}  # signature -> (modules, tapes) seen before, e.g. training mode during eval

    def __reduce__(self):  # a pickled or copied module starts without tapes (they record again)
        return (_Entry, ())

    def __deepcopy__(self, memo):
        return _Entry()


_ENTRY_ATTR = "_capture_entry"  # where a module keeps its _Entry (set without bumping EPOCH)


def _outermost_call(module, args):
    entry = _valid_entry(module)
    key = _input_key(args) if entry.signature is not None else None
    if key is None:
        return module.forward(*args)
    tape = entry.tapes.get(key, _MISSING)
    if tape is None:  # this signature was found not capturable
        return module.forward(*args)
    if tape is not _MISSING:
        out = tape.replay(args)
        if out is not None:
            return out
    return _record(module, args, entry, key)


_MISSING = object()


def _valid_entry(module):
    """The module's entry, revalidated (structure walked again) only when some module changed."""
    entry = module.__dict__.get(_ENTRY_ATTR)
    if entry is None:
        entry = _Entry()
        object.__setattr__(module, _ENTRY_ATTR, entry)
    if entry.epoch != EPOCH:
        epoch = EPOCH
        signature, modules = _signature(module)
        if signature != entry.signature:
            if entry.signature is not None:
                entry.earlier[entry.signature] = (entry.modules, entry.tapes)
            entry.modules, entry.tapes = entry.earlier.pop(signature, (modules, {}))
            entry.signature = signature
            while len(entry.earlier) > MAX_TAPES_PER_MODULE:
                entry.earlier.pop(next(iter(entry.earlier)))
        entry.epoch = epoch
    return entry


def _signature(root):
    """Structure, hyperparameters and training flags of the module tree, or (None, ()) if not static."""
    from .nn import functional as F  # switch points: rebinding one changes what forward builds
    from .nn.nn_basic import Module

    modules = [root] + root._children()
    parts = [tuple(id(fn) for fn in (F.linear, F.batchnorm_block, F.layernorm, F.random_dropout, F.add_relu))]
    for m in modules:
        if not type(m).__dict__.get("_static_forward"):
            return None, ()
        items = []
        for name, value in m.__dict__.items():
            if name == _ENTRY_ATTR:
                continue
            if isinstance(value, (Value, Module)):
                items.append((name, id(value)))
            elif isinstance(value, tuple):
                items.append((name, tuple(id(v) for v in value)))
            elif value is None or isinstance(value, (bool, int, float, str)):
                items.append((name, value))
            else:  # lists, dicts, arrays...: could change without notice
                return None, ()
        parts.append((id(m), type(m), tuple(items)))
    # the descendants are kept alive so their ids stay theirs (the root holds the entry: no cycle)
    return tuple(parts), tuple(modules[1:])


def _input_key(args):
    """Shapes, dtypes and requires_grad of the call's Tensor arguments (None: not capturable)."""
    key = []
    for a in args:
        if not isinstance(a, Tensor):
            return None
        data = a.cached_data
        key.append((data.shape, data.dtype, a.requires_grad))
    return tuple(key)


def _record(module, args, entry, key):
    """Run forward define-by-run while recording; keep a tape when the graph can be replayed."""
    events = []
    _GRAD_MODE.recording = events
    try:
        out = module.forward(*args)
    finally:
        _GRAD_MODE.recording = None
    tape = _Tape.build(module, args, events, out)
    if len(entry.tapes) >= MAX_TAPES_PER_MODULE and key not in entry.tapes:
        entry.tapes.pop(next(iter(entry.tapes)))
    entry.tapes[key] = tape
    return out


class _Tape:
    """Recorded ops of one call: slots (arguments, leaves, op outputs), forward and backward order."""

    @classmethod
    def build(cls, module, args, events, out):
        """A tape from the recorded (value, op, inputs) events, or None if it cannot be replayed."""
        if not isinstance(out, Tensor) or not events:
            return None
        known_leaves = {id(t): t for t in _tree_tensors(module)}
        slot_of = {id(a): i for i, a in enumerate(args)}
        self = cls()
        self.n_args = len(args)
        self.leaves = []  # (slot, tensor, shape, dtype, requires_grad)
        self.entries = []  # (op, input slots, output slot)
        requires = [a.requires_grad for a in args]
        dtypes = [a.cached_data.dtype for a in args]  # per slot
        for value, op, inputs in events:
            if not type(op).__dict__.get("replayable") or not isinstance(value, Tensor):
                return None
            in_slots = []
            for x in inputs:
                slot = slot_of.get(id(x))
                if slot is None:
                    if id(x) not in known_leaves or x.op is not None:
                        return None  # a constant made during forward, or a foreign tensor
                    slot = slot_of[id(x)] = len(requires)
                    data = x.cached_data
                    self.leaves.append((slot, x, data.shape, data.dtype, x.requires_grad))
                    requires.append(x.requires_grad)
                    dtypes.append(data.dtype)
                in_slots.append(slot)
            slot_of[id(value)] = len(requires)
            requires.append(value.requires_grad)
            dtypes.append(value.cached_data.dtype)
            self.entries.append((op, tuple(in_slots), slot_of[id(value)], bool(op.__dict__)))
        if id(out) not in slot_of:
            return None
        self.out_slot = slot_of[id(out)]
        self.requires, self.dtypes = requires, dtypes
        self.input_slots = list(range(self.n_args)) + [leaf[0] for leaf in self.leaves]  # ReplayedCall's inputs
        self.backward_order = [(k, self.entries[k][1], self.entries[k][2], [requires[i] for i in self.entries[k][1]])
                               for k in _backward_order(out, events, slot_of)]
        uses, leaf_slots = {}, {leaf[0] for leaf in self.leaves}
        for _, in_slots, _, _ in self.entries:
            for slot in in_slots:
                uses[slot] = uses.get(slot, 0) + 1
        # where a single-use leaf's gradient may be written straight into the optimizer's buffer
        self.dest_positions = [[(pos, in_slots[pos]) for pos in getattr(op, "writes_gradients_into", ())
                                if pos < len(in_slots) and uses[in_slots[pos]] == 1
                                and in_slots[pos] in leaf_slots]
                               for op, in_slots, _, _ in self.entries]
        self.dest_version, self.dests = None, {}
        self.view_grads = self.view_arrays = (None,) * len(self.input_slots)  # see gradient_tensors
        self.view_tensors, self.view_objects, self.view_refcounts = [], [], []
        self.no_outs = (None,) * len(self.entries)
        self.entry_outs = self.no_outs  # per entry: the arrays its gradient may write into, or None
        self.templates = tuple(entry[0] for entry in self.entries)
        self.forward = self.backward = None  # compiled on the first replay (see capture_codegen)
        self.leaf_tensors = [leaf[1] for leaf in self.leaves]
        self.leaf_requires = [leaf[4] for leaf in self.leaves]
        self.last_arrays = [t.cached_data for t in self.leaf_tensors]
        return self

    def gradient_destinations(self):
        """({leaf slot: view of the optimizer's gradient buffer}, per entry the list of arrays
        its gradient_arrays may write into or None) usable by this backward."""
        if self.dest_version != GRAD_BUFFERS_VERSION[0]:
            self._find_destinations()
            self.view_refcounts = list(map(getrefcount, self.view_objects))  # held by this tape only
        if not self.dests or list(map(getrefcount, self.view_objects)) != self.view_refcounts:
            return {}, self.no_outs  # last step's gradients (buffer views) are still held: keep them
        return self.dests, self.entry_outs

    def _find_destinations(self):
        """Look up the optimizer's gradient buffer views for the current packing."""
        self.dest_version = GRAD_BUFFERS_VERSION[0]
        slots = {slot for positions in self.dest_positions for _, slot in positions}
        tensor_of = {leaf[0]: leaf[1] for leaf in self.leaves}
        self.dests = {}
        for slot in slots:
            view = GRAD_BUFFERS.get(tensor_of[slot])
            if view is not None and view.shape == tensor_of[slot].cached_data.shape:
                self.dests[slot] = view
        self.entry_outs = tuple(_entry_outs(positions, self._entry_dtypes(k), self.dests)
                                for k, positions in enumerate(self.dest_positions))
        make = Tensor.make_const
        self.view_grads = tuple([None if slot not in self.dests else make(self.dests[slot])
                                 for slot in self.input_slots])
        self.view_arrays = [None if t is None else t.cached_data for t in self.view_grads]
        # the view Tensors and their arrays: a reference held elsewhere (or an array rebound with
        # `grad.data = ...`) changes one of their reference counts
        self.view_tensors = [t for t in self.view_grads if t is not None]
        self.view_objects = self.view_tensors + [t.cached_data for t in self.view_tensors]

    def _entry_dtypes(self, k):
        """The dtypes of entry k's inputs and output."""
        _, in_slots, out_slot, _ = self.entries[k]
        return [self.dtypes[slot] for slot in (*in_slots, out_slot)]

    def gradient_tensors(self, grads):
        """The backward's arrays (one per input slot, or None) as Tensors. A gradient written into
        the optimizer's buffer gets this tape's own Tensor for that view, the same one every step:
        gradient_destinations hands the buffer out only while nobody else holds these Tensors
        (their reference counts are back to what this tape alone gives them), so reusing them
        spares creating and freeing one Tensor per parameter per step."""
        if all(map(is_, grads, self.view_arrays)):  # the usual step: each gradient is its buffer view
            return self.view_grads
        make = Tensor.make_const
        return tuple([None if g is None else view if view is not None and view.cached_data is g else make(g)
                      for g, view in zip(grads, self.view_grads)])

    def _leaves_still_fit(self, current):
        """Leaves whose array was replaced (e.g. by load_state_dict) must keep shape and dtype."""
        for index, (data, last) in enumerate(zip(current, self.last_arrays)):
            if data is not last:
                _, _, shape, dtype, _ = self.leaves[index]
                if data is None or data.shape != shape or data.dtype != dtype:
                    return False
        self.last_arrays = current
        return True

    def replay(self, args):
        """Run the recorded ops on the arguments' and leaves' current arrays -> one output Tensor,
        or None when a leaf no longer fits the recording (its shape, dtype or requires_grad changed)."""
        current = [t.cached_data for t in self.leaf_tensors]
        if any(map(is_not, current, self.last_arrays)) and not self._leaves_still_fit(current):
            return None
        if [t.requires_grad for t in self.leaf_tensors] != self.leaf_requires:
            return None
        if self.forward is None:
            self.forward, self.backward, self.forward_source, self.backward_source = compile_tape(self)
        # stateful ops are cloned: a fresh instance per replay, whose saved state is this step's
        arrays, ops = self.forward([a.cached_data for a in args] + current, self.templates, _clone)
        out = Tensor.make_const(arrays[self.out_slot])
        if self.requires[self.out_slot]:
            out.requires_grad = True
            out.op, out.inputs = ReplayedCall(self, arrays, ops), (*args, *self.leaf_tensors)
        return out


def kept_gradients(module) -> int:
    """How many gradient Tensors the module's tapes keep for reuse (see _Tape.gradient_tensors)."""
    entry = module.__dict__.get(_ENTRY_ATTR)
    if entry is None:
        return 0
    tape_sets = [entry.tapes] + [tapes for _, tapes in entry.earlier.values()]  # all signatures
    return sum(len(tape.view_tensors) for tapes in tape_sets for tape in tapes.values() if tape is not None)


def _entry_outs(positions, dtypes, dests):
    """The outs list of one entry's gradient_arrays (None where it must not write), or None. An op
    gets a buffer only when the buffer, its inputs and its output (so also its gradient, see
    ReplayedCall.gradient) share one dtype: writing into it then rounds as a fresh result would."""
    if not positions:
        return None
    outs = [None] * (len(dtypes) - 1)  # one per input (dtypes ends with the output's)
    for position, slot in positions:
        dest = dests.get(slot)
        if dest is not None and all(dtype == dest.dtype for dtype in dtypes):
            outs[position] = dest
    return outs


def _clone(op):
    copy = object.__new__(type(op))
    copy.__dict__ = op.__dict__.copy()  # cheaper than copy.__dict__.update(op.__dict__)
    return copy


def _tree_tensors(module):
    """Every parameter and buffer of the module tree."""
    from .nn.state import named_tensors
    return [t for _, t in named_tensors(module)]


def _backward_order(out, events, slot_of):
    """Entry indices in the order define-by-run backward visits them (reversed find_topo_sort)."""
    index_of = {id(value): k for k, (value, _, _) in enumerate(events)}
    order = []
    for node in reversed(find_topo_sort([out])):
        k = index_of.get(id(node))
        if k is not None and node.op is not None:
            order.append(k)
    return order


class ReplayedCall(TensorOp):
    """The graph node of a replayed call; its gradient runs the recorded backward on arrays."""

    def __init__(self, tape, arrays, ops):
        self.tape, self.arrays, self.ops = tape, arrays, ops
        self.leaf_inputs_from = tape.n_args  # inputs: the call's arguments, then the tape's leaves

    def compute(self, *args):
        raise RuntimeError("a replayed call is computed by its tape")

    def gradient(self, out_grad, node):
        tape = self.tape
        dests, outs = tape.gradient_destinations()
        g = out_grad.realize_cached_data()
        if g.dtype != tape.dtypes[tape.out_slot]:  # every op's gradient has its output's dtype, or
            outs = tape.no_outs                     # no op writes into a buffer (see _entry_outs)
        grads = tape.backward(self.arrays, self.ops, g, outs,
                              _gradient_via_tensors)  # one per ReplayedCall input, or None
        return tape.gradient_tensors(grads)


def _gradient_via_tensors(op, g, inputs, out, needs):
    """An op's partial adjoints as arrays, for an op without `gradient_arrays`: its Tensor gradient."""
    node = Tensor.make_const(out)
    node.op, node.inputs = op, tuple(Tensor.make_const(a, requires_grad=n) for a, n in zip(inputs, needs))
    previous = _GRAD_MODE.enabled
    _GRAD_MODE.enabled = False
    try:
        parts = op.gradient_as_tuple(Tensor.make_const(g), node)
    finally:
        _GRAD_MODE.enabled = previous
    return [None if p is None else p.realize_cached_data() for p in parts]
