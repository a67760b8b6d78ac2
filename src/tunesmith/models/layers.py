"""Layers shared by model families.

`RecurrentStepper` runs a trained `nn.LSTM` / `nn.GRU` one time step at a time with plain matrix
products over the same weights. Calling `nn.LSTM` on one step costs about 3x more on this CPU (its
per-call overhead dominates at batch 1), and re-feeding a window costs far more again. The step is
memory-bound (every weight is read once per token), so `quantize=True` stores the weights as int8
(dynamic quantization: activations stay float) to read 4x fewer bytes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

State = list[tuple[Tensor, Tensor]] | list[Tensor]


class RecurrentStepper(nn.Module):
    """One-step inference view of a multi-layer, unidirectional, batch-first `nn.LSTM` or `nn.GRU`."""

    def __init__(self, rnn: nn.LSTM | nn.GRU, quantize: bool = False) -> None:
        super().__init__()
        if rnn.bidirectional or getattr(rnn, "proj_size", 0):
            raise ValueError("only unidirectional recurrent layers without projection can be stepped")
        self.is_lstm = isinstance(rnn, nn.LSTM)
        self.hidden_size = rnn.hidden_size
        self.input_layers = nn.ModuleList()
        self.hidden_layers = nn.ModuleList()
        for layer in range(rnn.num_layers):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
            self.input_layers.append(_linear(w_ih, b_ih, quantize))
            self.hidden_layers.append(_linear(w_hh, b_hh, quantize))

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        zeros = lambda: torch.zeros(batch_size, self.hidden_size, device=device)  # noqa: E731
        return [(zeros(), zeros()) if self.is_lstm else zeros() for _ in self.input_layers]

    def forward(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """x (batch, input) -> output of the top layer (batch, hidden), new state (one entry per layer)."""
        new_state = []
        for inp, hid, layer_state in zip(self.input_layers, self.hidden_layers, state, strict=True):
            if self.is_lstm:
                h, c = layer_state
                i, f, g, o = (inp(x) + hid(h)).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                x = torch.sigmoid(o) * torch.tanh(c)
                new_state.append((x, c))
            else:
                x = _gru_cell(inp(x), hid(layer_state), layer_state)
                new_state.append(x)
        return x, new_state


def _gru_cell(gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """PyTorch's GRU equations: r, z gates; n = tanh(W_in x + r * (W_hn h)); h' = (1 - z) n + z h."""
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def _linear(weight: Tensor, bias: Tensor, quantize: bool) -> nn.Module:
    layer = torch.nn.utils.skip_init(nn.Linear, weight.shape[1], weight.shape[0])  # the weights are copied in
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    if not quantize:
        return layer
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return DynamicLinear.from_float(_with_qconfig(layer))


def _with_qconfig(layer: nn.Linear) -> nn.Linear:
    from torch.ao.quantization import default_dynamic_qconfig

    layer.qconfig = default_dynamic_qconfig
    return layer


def zero_padded(weight: Tensor, shape: tuple[int, ...]) -> Tensor | None:
    """`weight` in the leading corner of a zero tensor of `shape` (a trained weight given new trailing rows
    or columns: new inputs then contribute nothing and new outputs start at zero, so a widened model
    starts as the old function), or None when `shape` is smaller on some axis or of another rank."""
    if weight.dim() != len(shape) or any(o > n for o, n in zip(weight.shape, shape, strict=True)):
        return None
    grown = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
    grown[tuple(slice(0, n) for n in weight.shape)] = weight
    return grown


def masked_cross_entropy(logits: Tensor, targets: Tensor, pad_id: int,
                         weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy (nats per token) and accuracy over positions whose target is not padding.

    logits (..., vocab), targets (...) int64. `weights` (...) float, optional: per-target loss weights
    (e.g. a piece's last bars up-weighted, `data/end_windows.end_weights`); the loss is then
    sum(w * ce) / sum(w) over non-padding targets. None: the plain mean (the same computation as
    without the argument). Accuracy is never weighted.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_targets = targets.reshape(-1)
    mask = flat_targets != pad_id
    if weights is None:
        loss = F.cross_entropy(flat_logits, flat_targets, ignore_index=pad_id)
    else:
        per_token = F.cross_entropy(flat_logits, flat_targets, ignore_index=pad_id, reduction="none")
        w = weights.reshape(-1).to(per_token.dtype) * mask
        loss = (per_token * w).sum() / w.sum().clamp(min=1e-12)
    correct = (flat_logits.argmax(-1) == flat_targets) & mask
    accuracy = correct.sum() / mask.sum().clamp(min=1)
    return loss, accuracy


class SkipMLP(nn.Module):
    """`layers` x [Linear hidden, ReLU, Dropout] -> Linear n_out, plus a linear map of the input."""

    def __init__(self, n_in: int, n_out: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        parts: list[nn.Module] = []
        for i in range(layers):
            parts += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.ReLU(), nn.Dropout(dropout)]
        parts.append(nn.Linear(hidden if layers else n_in, n_out))
        self.deep = nn.Sequential(*parts)
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.deep(x) + self.linear(x)


def gaussian_draw(mean: Tensor, logvar: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
    """A draw of the diagonal Gaussian (mean, log-variance), its std scaled by `temperature` (0: the mean)."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + temperature * eps * (0.5 * logvar).exp()
