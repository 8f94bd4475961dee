"""Run a :class:`~.network.LavaNetwork` under ``Loihi2SimCfg(select_tag='fixed_pt')`` and collect every node's
output at every step, the final states and the saturation counts (:class:`LavaResult`).

One runtime per :func:`run` call, always stopped in ``finally``; on an error or Ctrl-C the Lava workers are
stopped, and killed if they do not stop (``runtime.py``). Samples run one at a time, or ``batch`` side by side;
every sample starts from zero state (neurocompile's Processes reset on the source's ``reset`` flag, Lava's own
Processes get their Vars zeroed between samples).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from neurocompile.backends.lava.network import (
    LavaNetwork,
    _as_inputs,
    _load_artifact_graph,
    _Tap,
    load,
    quantize_inputs,
)
from neurocompile.backends.lava.runtime import _Interrupts, _recv, shutdown
from neurocompile.errors import BackendError
from neurocompile.ir.graph import Graph


# ------------------------------------------------------------------------------------------------- results
class LavaResult(dict):
    """node -> int64 [n, T, size]: every node's output at every step, as Lava computed it.

    The layout of the simulator's ``SimResult.trace``: QAccumulate holds its running sum [n, T, size]; the
    nodes after a sequence end hold their one value, [n, size]. ``states``: node -> {variable: int64 [n, ...]}
    final states, named as the simulator names them (QModeBank 're'/'im' [n, H, M], QLIF 'v', QRefractory
    'v'/'s'/'r', QAccumulate 'acc', QLavaLIF 'u'/'v', QDense with delay 'pipe' [n, delay, size], index 0 is
    emitted next). ``outputs``/``predictions`` as in ``SimResult``. ``wall_s``: seconds of the whole run
    (compile and start included), ``compile_s``: of Lava's compile, ``start_s``: compile + starting the
    worker processes, ``run_s``: stepping the samples, ``steps``: T.
    """

    def __init__(self) -> None:
        super().__init__()
        self.states: dict[str, dict[str, np.ndarray]] = {}
        self.outputs: dict[str, np.ndarray] = {}
        self.predictions: np.ndarray = np.zeros(0, np.int64)
        self.saturations: dict[str, int] = {}  # values clipped per node, counted by the Lava models
        self.plan: dict[str, str] = {}  # node -> Lava Process that ran it ('lava.*': Lava's own, no counts)
        self.wall_s: float = 0.0
        self.compile_s: float = 0.0
        self.start_s: float = 0.0  # compile + runtime start (Lava's worker processes)
        self.run_s: float = 0.0  # stepping the samples (wall_s - start_s)
        self.steps: int = 0


# ------------------------------------------------------------------------------------------------- running
def run(network: LavaNetwork | Graph | str | Path, x: Any, steps: int | None = None,
        progress: bool = False) -> LavaResult:
    """Run ``x`` ([n, T, d] floats, [n, T] token ids, or {input: array}) through the Lava network.

    Returns a :class:`LavaResult`: per-node int64 [n, T, size] outputs and the final states of every sample.
    Samples run one at a time (``batch`` None) or ``batch`` side by side; every sample starts from zero state.
    The runtime is always stopped (also on errors and Ctrl-C).
    """
    if not isinstance(network, LavaNetwork):
        network = load(network)
    if network._used:
        network.build()
    network._used = True
    graph = network.graph
    q, n, t_len, q_clipped = quantize_inputs(graph, x, steps, count=True)
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    res = LavaResult()
    res.steps = t_len
    post = graph.sequence_end_nodes()
    b = network.batch or 1
    lead = network.lead
    traces = {tap.node: np.zeros((n, t_len, tap.n_out), np.int64) for tap in network._taps}
    state_out: dict[str, dict[str, np.ndarray]] = {
        tap.node: {k: np.zeros((n,) + shape, np.int64) for k, shape in tap.states}
        for tap in network._taps if tap.states
    }
    for name, node in graph.items():
        if node.OUTPUT_IS_STATE:  # read back from the output after the run
            state_out[name] = {v.name: np.zeros((n, *v.shape(node)), np.int64) for v in node.STATE}
    sats: dict[str, int] = {name: 0 for name in graph.order()}
    sats.update(q_clipped)
    anchor = network.any_process()
    procs = (list(network.procs.values()) + [t.proc for t in network._taps if t.native is not None]
             + list(network._delay_lines))
    runtime = None
    bar = None
    t0 = time.perf_counter()
    ok = False
    try:
        cfg = Loihi2SimCfg(select_tag="fixed_pt")
        try:
            executable = anchor.compile(cfg)
        except Exception as e:
            raise BackendError(f"Lava could not compile the network of graph '{graph.name}': "
                               f"{type(e).__name__}: {e}") from e
        res.compile_s = time.perf_counter() - t0
        with _Interrupts(reraise=True):
            try:
                anchor.create_runtime(executable=executable)
            finally:
                runtime = anchor.runtime
        window = max(1, network.tap_buffer - 1)
        res.start_s = time.perf_counter() - t0
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            bar = Progress(TextColumn("running on Lava"), BarColumn(), MofNCompleteColumn(), TextColumn("samples"),
                           TimeRemainingColumn(), transient=True)
            bar.start()
            task = bar.add_task("lava", total=n)
        for lo in range(0, n, b):
            hi = min(n, lo + b)
            rows = {}
            for name, data in q.items():
                chunk = np.zeros((b, t_len, data.shape[2]), np.int64)
                chunk[: hi - lo] = data[lo:hi]
                rows[name] = chunk
            if lo > 0:
                _reset_native(network)
            anchor.run(RunSteps(num_steps=t_len, blocking=False))
            bufs = {tap.node: np.zeros((b, t_len, tap.proc.tap.shape[-1]), np.int64) for tap in network._taps}
            sent = 0
            for t in range(t_len):
                while sent < t_len and sent <= t + window - 1:
                    ctrl = np.array([1 if sent == 0 else 0, 1 if sent == t_len - 1 else 0], np.int64)
                    for name, src in network._sources.items():
                        row = np.concatenate([np.broadcast_to(ctrl, (b, 2)), rows[name][:, sent]], axis=1)
                        src.inp.external_pipe_csp_send_port.send(row if lead else row[0])
                    sent += 1
                for tap in network._taps:
                    msg = _recv(tap.proc.tap.external_pipe_csp_recv_port, runtime, network.stall_timeout_s,
                                f"running step {t} of samples {lo}..{hi - 1}")
                    bufs[tap.node][:, t] = msg.reshape(b, -1)
            anchor.wait()
            for tap in network._taps:
                buf = bufs[tap.node][: hi - lo]
                if graph.node(tap.node).SEQUENCE_END:  # trace: the running value (its state)
                    traces[tap.node][lo:hi] = buf[..., tap.n_out: 2 * tap.n_out]
                else:
                    traces[tap.node][lo:hi] = buf[..., : tap.n_out]
                if tap.native is not None:
                    _read_native_state(tap, state_out[tap.node], lo, hi, buf)
                else:
                    clipped = buf[:, -1:, -1] if tap.node in post else buf[..., -1]  # post-sequence: once
                    sats[tap.node] = sats.get(tap.node, 0) + int(clipped.sum())
                    off = tap.n_out
                    for k, shape in tap.states:
                        size = int(np.prod(shape))
                        state_out[tap.node][k][lo:hi] = buf[:, -1, off: off + size].reshape((hi - lo,) + shape)
                        off += size
            if bar is not None:
                bar.update(task, advance=hi - lo)
        ok = True
    except KeyboardInterrupt:
        shutdown(runtime, procs, graceful=False)
        runtime = None
        raise
    except BackendError:
        raise
    except Exception as e:
        raise BackendError(f"Lava run of graph '{graph.name}' failed: {type(e).__name__}: {e}") from e
    finally:
        if bar is not None:
            bar.stop()
        if runtime is not None:
            shutdown(runtime, procs, graceful=ok)
    res.wall_s = time.perf_counter() - t0
    res.run_s = res.wall_s - res.start_s
    for name, node in graph.items():
        if node.IS_INPUT:
            res[name] = q[name]
            continue
        tr = traces[name]
        if name in post:
            tr = tr[:, -1]  # evaluated once, after the last step
        res[name] = tr
        if node.OUTPUT_IS_STATE:
            last = tr[:, -1].reshape(n, *node.STATE[0].shape(node), len(node.STATE))
            for i, v in enumerate(node.STATE):
                state_out[name][v.name] = last[..., i].copy()
    res.states = state_out
    res.saturations = sats
    res.plan = dict(network.plan)
    res.outputs = {o: (res[o][:, -1] if graph.node(o).SEQUENCE_END else res[o]) for o in graph.outputs}
    if graph.outputs:
        first = res.outputs[graph.outputs[0]]
        logits = first if first.ndim == 2 else first[:, -1, :]
        res.predictions = np.argmax(logits, axis=-1).astype(np.int64)
    return res


def _read_native_state(tap: _Tap, out: dict[str, np.ndarray], lo: int, hi: int, buf: np.ndarray) -> None:
    """Final state of Lava's own Dense (a_buff: the output due next step) or LIF (u, v), via Var.get."""
    proc = tap.native
    if "pipe" in out:
        out["pipe"][lo:hi] = np.asarray(proc.a_buff.get()).astype(np.int64).reshape(1, 1, -1)
    else:
        out["u"][lo:hi] = np.asarray(proc.u.get()).astype(np.int64)
        out["v"][lo:hi] = np.asarray(proc.v.get()).astype(np.int64)


def _reset_native(network: LavaNetwork) -> None:
    """Zero the state of Lava's own Processes between samples (ours reset on the ctrl 'reset' flag)."""
    for tap in network._taps:
        proc = tap.native
        if proc is None:
            continue
        if hasattr(proc, "a_buff"):
            proc.a_buff.set(np.zeros(proc.a_buff.shape, np.int64))
        else:
            proc.u.set(np.zeros(proc.u.shape, np.int64))
            proc.v.set(np.zeros(proc.v.shape, np.int64))


def simulate_lava(graph: Graph | str | Path, x: Any, *, batch: int | None = 32, native: bool = True,
                  progress: bool = False, record: bool = False, target: Any = None, check: bool = True) -> Any:
    """Run ``x`` on Lava and return a :class:`neurocompile.sim.engine.SimResult` (what ``--backend lava`` prints).

    Outputs, predictions, spikes and saturations are Lava's. The activity counters (``counts``: synaptic
    operations, messages, energy inputs) are defined by the simulator's model of the chip, so they come from
    the simulator run on the same input; with ``check`` (default) that run must equal Lava's at every node and
    step, else BackendError. ``batch`` samples run side by side (None: one at a time). With ``record``,
    ``trace`` and ``final_states`` are Lava's. The comparison is in ``result.lava_comparison``.
    """
    from neurocompile.backends.lava.compare import Reference, compare
    from neurocompile.sim.engine import SimResult, is_spiking, simulate

    if not isinstance(graph, Graph):
        graph = _load_artifact_graph(Path(graph))
    n_in = len(next(iter(_as_inputs(graph, x).values())))
    net = load(graph, batch=None if batch is None else max(1, min(int(batch), n_in)), native=native)
    res = run(net, x, progress=progress)
    sim = simulate(graph, x, record=True, counters=True, target=target)
    ref = Reference(dict(sim.trace or {}), dict(sim.final_states or {}), 0.0, dict(sim.saturations))
    cmp = compare(graph, res, ref)
    if check and not cmp.equal:
        raise BackendError(f"Lava and the simulator disagree on graph '{graph.name}': {cmp}")
    spiking = [k for k in graph.order() if is_spiking(graph.node(k)) and res[k].ndim == 3]
    sats = {k: (sim.saturations.get(k, 0) if res.plan.get(k, "").startswith("lava.") else v)
            for k, v in res.saturations.items()}
    out = SimResult(
        outputs=res.outputs,
        predictions=res.predictions,
        spikes={k: int(np.count_nonzero(res[k])) for k in spiking},
        spikes_per_step={k: np.count_nonzero(res[k], axis=(0, 2)).astype(np.int64) for k in spiking},
        saturations=sats,
        counts=sim.counts,
        samples=int(sim.samples),
        steps=int(sim.steps),
        trace=dict(res) if record else None,
        final_states=res.states if record else None,
        placement=sim.placement,
        paths={k: f"lava:{v}" for k, v in res.plan.items()},
        spiking=tuple(sim.spiking),
    )
    out.lava_comparison = cmp  # type: ignore[attr-defined]
    out.lava_wall_s = res.wall_s  # type: ignore[attr-defined]
    return out
