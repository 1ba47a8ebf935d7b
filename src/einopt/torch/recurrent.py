"""``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` tracked over their time steps.

While tracked, a recurrent module runs a forward pass of the same value written step
by step, so that each weight is an einsum layer with the time steps as positions:
``weight_ih`` multiplies the whole input sequence at once (``x[n, t, i] W[o, i]``);
``weight_hh`` multiplies each step's previous state, recorded as one einsum over the
stacked states whose output gradient is gathered from every step (and ``weight_hr``,
the LSTM's projection, alike). The uses of a weight over time are positions of one
einsum, so the per-example quantities are exact without cross terms. Packed sequences
and second-order quantities are not offered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import EinsumError
from .layers import Entry, linear_entries

__all__ = ["RECURRENT", "recurrent_forward", "recurrent_params"]

RECURRENT = (torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU)

Record = Callable[[torch.Tensor, list[Entry]], torch.Tensor]
RecordSteps = Callable[[list[tuple[int, torch.Tensor]], list[Entry]], None]


def recurrent_params(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters(recurse=False) if p.requires_grad]


def recurrent_forward(module: torch.nn.Module, record: Record, record_steps: RecordSteps,
                      input: Any, hx: Any = None) -> tuple[torch.Tensor, Any]:
    """``module(input, hx)`` step by step, each weight's einsum recorded (see above)."""
    if isinstance(input, torch.nn.utils.rnn.PackedSequence):
        raise EinsumError("tracking a recurrent module on a PackedSequence is not offered; "
                          "pad the batch instead")
    if input.dim() != 3:
        raise EinsumError("tracking a recurrent module needs batched (3-d) inputs")
    lstm = isinstance(module, torch.nn.LSTM)
    x = input if module.batch_first else input.transpose(0, 1)  # (N, T, I)
    n, steps = x.shape[:2]
    dirs = 2 if module.bidirectional else 1
    proj = getattr(module, "proj_size", 0)
    out_size = proj or module.hidden_size
    h0, c0 = _initial(module, hx, n, out_size, x)
    layer_input = x
    last_h, last_c = [], []
    for layer in range(module.num_layers):
        outputs = []
        for d in range(dirs):
            k = layer * dirs + d
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = getattr(module, "weight_ih" + sfx), getattr(module, "weight_hh" + sfx)
            b_ih = getattr(module, "bias_ih" + sfx) if module.bias else None
            b_hh = getattr(module, "bias_hh" + sfx) if module.bias else None
            w_hr = getattr(module, "weight_hr" + sfx) if proj else None
            a = record(torch.nn.functional.linear(layer_input, w_ih, b_ih),
                       linear_entries(w_ih, b_ih, layer_input))
            h, c = h0[k], (c0[k] if c0 is not None else None)
            order = range(steps) if d == 0 else range(steps - 1, -1, -1)
            prev, hh, raw, projected = [], [], [], []
            out: list[Any] = [None] * steps
            for t in order:
                z = torch.nn.functional.linear(h, w_hh, b_hh)
                prev.append(h)
                hh.append((t, z))
                h, c = _cell(module, a[:, t], z, h, c)
                if w_hr is not None:
                    raw.append(h)
                    h = torch.nn.functional.linear(h, w_hr)
                    projected.append((t, h))
                out[t] = h
            times = [t for t, _ in hh]
            record_steps(hh, linear_entries(w_hh, b_hh, _in_time(prev, times)))
            if w_hr is not None:
                record_steps(projected, linear_entries(w_hr, None, _in_time(raw, times)))
            outputs.append(torch.stack(out, 1))
            last_h.append(h)
            last_c.append(c)
        layer_input = torch.cat(outputs, -1) if dirs > 1 else outputs[0]
        if module.dropout and module.training and layer < module.num_layers - 1:
            layer_input = torch.nn.functional.dropout(layer_input, module.dropout, True)
    output = layer_input if module.batch_first else layer_input.transpose(0, 1)
    h_n = torch.stack(last_h)
    return output, ((h_n, torch.stack(last_c)) if lstm else h_n)


def _in_time(states: list[torch.Tensor], times: list[int]) -> torch.Tensor:
    """The states ``(N, T, H)`` ordered by time (a reverse direction ran backwards)."""
    by_time = sorted(zip(times, range(len(states)), strict=True))
    return torch.stack([states[k] for _, k in by_time], 1)


def _initial(module: torch.nn.Module, hx: Any, n: int, out_size: int, x: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    layers = module.num_layers * (2 if module.bidirectional else 1)
    lstm = isinstance(module, torch.nn.LSTM)
    if hx is None:
        h0 = x.new_zeros(layers, n, out_size)
        c0 = x.new_zeros(layers, n, module.hidden_size) if lstm else None
        return h0, c0
    if lstm:
        return hx[0], hx[1]
    return hx, None


def _cell(module: torch.nn.Module, a: torch.Tensor, z: torch.Tensor, h: torch.Tensor,
          c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step from the input part ``a`` and the state part ``z`` of the gates."""
    if isinstance(module, torch.nn.LSTM):
        i, f, g, o = (a + z).chunk(4, 1)
        assert c is not None
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if isinstance(module, torch.nn.GRU):
        ar, az, an = a.chunk(3, 1)
        zr, zz, zn = z.chunk(3, 1)
        r, u = torch.sigmoid(ar + zr), torch.sigmoid(az + zz)
        cand = torch.tanh(an + r * zn)
        return (1 - u) * cand + u * h, None
    act = torch.tanh if module.nonlinearity == "tanh" else torch.relu
    return act(a + z), None
