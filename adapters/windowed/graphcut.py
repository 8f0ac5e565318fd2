"""Where an exported ONNX graph can be cut: what a part of it reads from before it.

An engine finds its cut by structure (the decoder's input, the flow's scope, the generator's
scope) and hands the part's first nodes here; what comes back is the set of tensors to feed
the part once it is extracted on its own (onnx's extractor).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def boundary(graph: Any, seeds: Iterable[Any], target: str,
             own_inputs: Iterable[str] = ()) -> set[str]:
    """What the part of the graph from the `seeds` nodes to `target` reads from before it
    (weights and constants aside): the inputs to give the part when it is cut out. What is
    made from weights and `own_inputs` alone (a speaker's embedding from `sid`, a style's
    projections) the part makes itself, from those graph inputs (which it then reads).
    Nodes are in topological order, as ONNX requires."""
    nodes = list(graph.node)
    fixed = {init.name for init in graph.initializer}
    fixed |= {o for n in nodes if n.op_type == "Constant" for o in n.output}
    own = set(own_inputs) & {i.name for i in graph.input}
    seed_ids = {id(n) for n in seeds}
    after: set[str] = set()  # tensors made at or after a seed
    from_own: set[str] = set()  # made from weights and own inputs alone
    for n in nodes:
        if id(n) in seed_ids or any(i in after for i in n.input):
            after.update(n.output)
        elif all(not i or i in fixed or i in own or i in from_own for i in n.input):
            from_own.update(n.output)
    producer = {o: n for n in nodes for o in n.output}
    found: set[str] = set()
    todo, seen = [target], set()
    while todo:
        tensor = todo.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        if tensor in after or (tensor in from_own and tensor not in fixed):
            todo.extend(i for i in producer[tensor].input if i)
        elif tensor not in fixed:
            found.add(tensor)
    return found


__all__ = ["boundary"]
