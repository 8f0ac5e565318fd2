"""The generator's instance norms, opened so that the windows of a batch share one set of
statistics.

Each AdaIN block in Kokoro's generator normalises its input by the mean and variance over the
whole time axis of the call (InstanceNorm1d without running statistics). A window decoded on
its own gets its own statistics, each window a different normalisation: measured on the int8
model (jf_alpha, jm_kumo), log-mel distance to the whole-batch decode 3.1-8.4 dB, clicks at
the seams (up to +29 dB of high-frequency energy over the whole decode's at that place) and
words lost (WER up to 1.0 on short sentences); statistics pooled over the windows so far
(TorchStream's way) still left +10..+23 dB seams. The statistics depend above all on the style
vector (Kokoro picks a voice's vector by the batch's phoneme count) and much less on the text,
so they are calibrated per voice and style row (adapters/kokoro/engine.py) and every window
normalises with them (`weight` 1): windows agree with one another exactly, and with a
whole-batch decode to 1.6-3.5 dB log-mel, seams within +4 dB, the same WER.

`open_norms` rewrites each norm `(x - mean(x)) / sqrt(var(x) + eps)` as
`(x - m) / sqrt(v + eps)` with `m = (1 - w) mean(x) + w M` and
`v = (1 - w)(var(x) + (mean(x) - m)^2) + w (V + (M - m)^2)`: `w` = 0 is the model as exported,
bit for bit (a calibration run, whose `own_*` outputs are kept); `w` = 1 uses the given `M`,
`V` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

WEIGHT = "norm_weight"  # float scalar: 0 = each call's own statistics, 1 = the given ones


def mean_input(k: int) -> str:
    return f"norm_mean_{k}"


def var_input(k: int) -> str:
    return f"norm_var_{k}"


def own_mean_output(k: int) -> str:
    return f"norm_own_mean_{k}"


def own_var_output(k: int) -> str:
    return f"norm_own_var_{k}"


@dataclass(frozen=True)
class Norm:
    """One instance norm as the exporter spelled it out."""

    x: str
    mean: str  # ReduceMean(x)
    var: str  # ReduceMean((x - mean)^2)
    eps: str
    divide: Any  # the Div node (x - mean) / sqrt(var + eps)


@dataclass(frozen=True)
class NormStats:
    """Per-channel statistics of every norm of the generator, each [1, channels, 1]."""

    means: tuple[np.ndarray, ...]
    vars: tuple[np.ndarray, ...]

    def feeds(self) -> dict[str, np.ndarray]:
        out = {WEIGHT: np.array(1.0, dtype=np.float32)}
        for k, (m, v) in enumerate(zip(self.means, self.vars, strict=True)):
            out[mean_input(k)] = m
            out[var_input(k)] = v
        return out

    def towards(self, other: NormStats, t: float) -> NormStats:
        """Linear interpolation: `t` = 0 is self, 1 is `other`."""
        w = np.float32(t)
        return NormStats(
            tuple(((1 - w) * a + w * b).astype(np.float32)
                  for a, b in zip(self.means, other.means, strict=True)),
            tuple(((1 - w) * a + w * b).astype(np.float32)
                  for a, b in zip(self.vars, other.vars, strict=True)))

    @classmethod
    def from_outputs(cls, outputs: dict[str, np.ndarray], count: int) -> NormStats:
        return cls(tuple(np.asarray(outputs[own_mean_output(k)], np.float32)
                         for k in range(count)),
                   tuple(np.asarray(outputs[own_var_output(k)], np.float32)
                         for k in range(count)))


def own_statistics_feeds(count: int) -> dict[str, np.ndarray]:
    """Feeds that leave every norm to its own statistics (the model as exported)."""
    zero = np.zeros((1, 1, 1), dtype=np.float32)
    out = {WEIGHT: np.array(0.0, dtype=np.float32)}
    for k in range(count):
        out[mean_input(k)] = zero
        out[var_input(k)] = zero
    return out


def find_norms(graph: Any) -> list[Norm]:
    """The instance norms: ReduceMean(x) -> Sub(x, mean) -> Mul(d, d) -> ReduceMean ->
    Add(eps) -> Sqrt -> Div(d, sqrt), in graph order."""
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):
            readers.setdefault(name, []).append(node)

    def only(tensor: str, op: str, test: Any = None) -> Any:
        found = [n for n in readers.get(tensor, []) if n.op_type == op
                 and (test is None or test(n))]
        return found[0] if len(found) == 1 else None

    norms = []
    for node in graph.node:
        if node.op_type != "ReduceMean":
            continue
        x, mean = node.input[0], node.output[0]
        sub = only(mean, "Sub", lambda n: list(n.input) == [x, mean])  # noqa: B023
        if sub is None:
            continue
        d = sub.output[0]
        square = only(d, "Mul", lambda n: list(n.input) == [d, d])  # noqa: B023
        if square is None:
            continue
        var = only(square.output[0], "ReduceMean")
        add = only(var.output[0], "Add") if var is not None else None
        sqrt = only(add.output[0], "Sqrt") if add is not None else None
        if var is None or add is None or sqrt is None:
            continue
        std = sqrt.output[0]
        divide = only(std, "Div", lambda n: list(n.input) == [d, std])  # noqa: B023
        if divide is None:
            continue
        eps = next(i for i in add.input if i != var.output[0])
        norms.append(Norm(x, mean, var.output[0], eps, divide))
    return norms


def open_norms(model: Any) -> int:
    """Rewrite the model's instance norms in place (see the module docstring); returns how
    many. Inputs `norm_weight`, `norm_mean_k`, `norm_var_k`; outputs `norm_own_mean_k`,
    `norm_own_var_k`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    norms = find_norms(graph)
    if not norms:
        return 0
    one = "norm_one"
    graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
    graph.input.append(helper.make_tensor_value_info(WEIGHT, TensorProto.FLOAT, []))
    w, keep = WEIGHT, "norm_keep"  # keep = 1 - w
    added = [helper.make_node("Sub", [one, w], [keep])]
    for k, norm in enumerate(norms):
        p = f"norm{k}_"
        m_in, v_in = mean_input(k), var_input(k)
        graph.input.extend([helper.make_tensor_value_info(m_in, TensorProto.FLOAT, [1, None, 1]),
                            helper.make_tensor_value_info(v_in, TensorProto.FLOAT, [1, None, 1])])
        added += [
            helper.make_node("Mul", [norm.mean, keep], [p + "own_part"]),
            helper.make_node("Mul", [m_in, w], [p + "given_part"]),
            helper.make_node("Add", [p + "own_part", p + "given_part"], [p + "mean"]),
            helper.make_node("Sub", [norm.mean, p + "mean"], [p + "own_shift"]),
            helper.make_node("Mul", [p + "own_shift", p + "own_shift"], [p + "own_shift2"]),
            helper.make_node("Add", [norm.var, p + "own_shift2"], [p + "own_spread"]),
            helper.make_node("Mul", [p + "own_spread", keep], [p + "own_var"]),
            helper.make_node("Sub", [m_in, p + "mean"], [p + "given_shift"]),
            helper.make_node("Mul", [p + "given_shift", p + "given_shift"], [p + "given_shift2"]),
            helper.make_node("Add", [v_in, p + "given_shift2"], [p + "given_spread"]),
            helper.make_node("Mul", [p + "given_spread", w], [p + "given_var"]),
            helper.make_node("Add", [p + "own_var", p + "given_var"], [p + "var"]),
            helper.make_node("Add", [p + "var", norm.eps], [p + "var_eps"]),
            helper.make_node("Sqrt", [p + "var_eps"], [p + "std"]),
            helper.make_node("Sub", [norm.x, p + "mean"], [p + "centred"]),
        ]
        # The norm now divides our centring by our deviation; its own (x - mean(x)) still
        # feeds its own variance, which is an output (calibration) and part of the mixture.
        norm.divide.input[0] = p + "centred"
        norm.divide.input[1] = p + "std"
        for name in (own_mean_output(k), own_var_output(k)):
            info = onnx.ValueInfoProto()
            info.name = name
            graph.output.append(info)
        added += [helper.make_node("Identity", [norm.mean], [own_mean_output(k)]),
                  helper.make_node("Identity", [norm.var], [own_var_output(k)])]
    _insert_sorted(graph, added)
    return len(norms)


def _insert_sorted(graph: Any, added: list[Any]) -> None:
    """Append nodes and restore the topological order ONNX requires (stable otherwise)."""
    nodes = list(graph.node) + added
    have = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    order: list[Any] = []
    pending = nodes
    while pending:
        rest = []
        for node in pending:
            if all(i in have for i in node.input):
                order.append(node)
                have.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"cannot order the generator's nodes ({rest[0].name} waits)")
        pending = rest
    del graph.node[:]
    graph.node.extend(order)


__all__ = [
    "WEIGHT",
    "Norm",
    "NormStats",
    "find_norms",
    "mean_input",
    "open_norms",
    "own_mean_output",
    "own_statistics_feeds",
    "own_var_output",
    "var_input",
]
