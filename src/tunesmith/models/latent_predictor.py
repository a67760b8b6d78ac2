"""Latent predictors of the next window (the egrillot "MelodyNNs", fixed): the `band` family's stage two.

Latents are per instrument group, (B, 5, D), from the shared window autoencoder (`window_ae.py`).

- Piano: z_t -> z_{t+1}. Conditional, every other group i: (w_t^i, z_{t+1}) -> w_{t+1}^i, as the seed.
  Both also see the whole band at t (all five latents): in the band files piano is silent in 59 % of
  the songs, and a chain whose only memory is a silent piano forgets the music. Each conditional
  predictor also sees the t+1 latents of the groups before it (guitar sees piano's; bass piano's and
  guitar's; ... drums all four): the seed drew every instrument independently given the piano, so their
  noises disagreed (guitar and bass in different keys); drawn one after the other they agree.
- Each predictor is an MLP (`layers` x [Linear `hidden`, ReLU, Dropout]) plus a linear map of the same
  input, and outputs a diagonal Gaussian (mean, log-variance) of the next latent. The mean is trained by
  squared error and the log-variance by the Gaussian negative log-likelihood of the target given the
  mean (held fixed: with one joint NLL the mean of the high-variance dimensions learns slowly). A first
  version added the MLP to the group's own latent at t (copy the last window, then correct): copying is
  worse than the mean for the melodic groups (consecutive 2-bar latents correlate about 0.5), and that
  predictor ended no better than the mean; the linear term gives the least-squares start instead
  (measured on frozen latents, 600 steps: piano MSE / variance 1.02 residual, 0.79 with the linear term).
  The seed's MSE regression predicts the mean of the possible futures, which decodes to ever thinner
  windows (the drift to silence); a distribution can be sampled, so pieces differ and stay full.
- In training the inputs get Gaussian noise of std `input_noise`: at generation time the inputs are
  the predictor's own samples, not encoder outputs, and must not throw it off.
- With `presence` (band-5 from session 5 on): whether a group plays in the next window is a coin of its
  own, drawn before its latent. Each group has a presence head (an MLP of one hidden layer of `hidden` / 4
  plus a linear term, on the same input as its predictor, trained by BCE: "pres_bce", nats per group-window),
  and its predictor reads the presence too (teacher forced in training, the drawn coin in generation).
  Every head and predictor also reads which groups play at t (`carry`: one more number per group beside
  its latent): measured on a run without it, the heads read "piano plays" from the latents alone, and the
  model's own drawn latents blurred that, so piano survived a continuation's windows like a coin of 0.9
  each (60 % of the bars where the real continuation has it).
  Without it a group's next latent is one Gaussian over "plays" and "silent" windows: its mean lies between
  the two, regresses towards silence for instruments that are absent in most songs (piano: 59 %), and its
  draws decode to half-filled windows, so the continuation dropped piano in a quarter of the bars it has.

- With `context` K > 0 (session 6; default 0, the old one-window chain): every predictor also reads a summary of
  the piece so far (`context_features`): per group whether it sounded in window t, t-1, ..., t-K and whether it
  sounded at all before that, and how many windows came before t (capped at K + 1: "early in the piece").
  A one-window chain cannot know that a silent piano played before (in the band files piano returns after
  one silent window with p 0.22 if it played earlier in the piece, 0.012 if it never did) nor that a piece
  is still in its intro. The summary goes after each predictor's own input, so a trained one-window
  predictor grows into a context one that starts as the same function (`BandModel.grown_weight`,
  `trainer.init_from`).
- With `gate` (context only): piano's presence in the next window is a coin of a small head on the summary alone
  (trained by BCE, `gate_loss`), not left to whether its drawn latent happens to decode to notes, and piano's
  predictor reads that presence as its last input (teacher forced in training, the coin in generation): given
  "plays" its Gaussian is that of playing windows, where one Gaussian over both kinds drew latents that decode
  to nothing in pieces whose piano had not played yet (session 7: piano came in after a piano-less primer in
  28-36 % of the bars where real piano did, although at odds x1000 the gate said "plays" in most windows).
  Where the coin says "plays", a drawn latent that sounds is kept (`_gated_piano`). Latents drift, the summary's
  0/1 flags do not (the session-5 presence heads read the chain's own blurred latents as a fading piano).
- With `group_gates` (context only; band-5 since session 10: strings): the same kind of coin for other groups, from
  one head (`band_gates.GroupGates`); their predictors do not read it, a gated group's draw is redrawn until its
  window sounds where the coin says "plays" (`band_gates.py` says why and what was tried).

Logs: "pred_nll" (nats per latent dimension; the loss is the squared error / 2 plus this NLL),
"pred_mse/GROUP" (mean squared error of the predicted mean per dimension: the seed's figure; piano 0.029
there) and "target_var/GROUP" (variance of the target latents: MSE / variance is the share of the
latent's variation left unexplained).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tunesmith.core.constants import MULTITRACK_GROUPS
from tunesmith.models.band_gates import GroupGateDraws, GroupGates, PianoGate, kept_draw
from tunesmith.models.layers import SkipMLP, gaussian_draw

N_GROUPS = len(MULTITRACK_GROUPS)
PIANO = MULTITRACK_GROUPS.index("piano")
LOGVAR_RANGE = (-9.0, 4.0)  # variances from about 1e-4 to 55: keeps the NLL finite on a flat batch


class LatentPredictors(nn.Module):
    """The piano predictor and one conditional predictor per other group (see module docstring)."""

    def __init__(self, latent_dim: int, hidden: int, layers: int, dropout: float, presence: bool = False,
                 context: int = 0, gate: bool = False, group_gates: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.latent_dim = d = latent_dim
        self.with_presence = presence
        self.context = context
        self.n_context = context_size(context)
        flag = 1 if presence else 0
        band = N_GROUPS * (d + flag)  # the band at t: each latent, and with presence whether it plays (`carry`)
        sizes = [band] + [band + (1 + j) * d for j in range(N_GROUPS - 1)]
        extra = flag + self.n_context  # the group's own presence at t+1 and the piece so far: last inputs
        gated = 1 if gate else 0  # with a gate, piano's predictor reads the gate's coin last (`piano_next`)
        self.piano = SkipMLP(sizes[0] + extra + gated, 2 * d, hidden, layers, dropout)
        self.others = nn.ModuleList(SkipMLP(n + extra, 2 * d, hidden, layers, dropout) for n in sizes[1:])
        if presence:  # piano's head first, then the others' in group order without piano
            self.presence = nn.ModuleList(SkipMLP(n, 1, max(hidden // 4, 1), 1, dropout) for n in sizes)
        if gate and not self.n_context:
            raise ValueError("a piano gate reads the piece so far: it needs context > 0")
        self.gate = SkipMLP(self.n_context, 1, max(hidden // 8, 1), 1, dropout) if gate else None
        if group_gates and (not self.n_context or PIANO in group_gates):
            raise ValueError("group gates read the piece so far (context > 0) and gate groups other than piano")
        self.group_gates = GroupGates(group_gates, self.n_context, hidden, dropout) if group_gates else None

    def carry(self, z: Tensor, plays: Tensor) -> Tensor:
        """The band at t as the predictors read it: latents (B, 5, D), with presence heads beside each group's
        presence at t (`plays` (B, 5), 0/1): (B, 5, D + 1); without heads z itself."""
        return torch.cat([z, plays.to(z.dtype)[:, :, None]], dim=2) if self.with_presence else z

    def piano_next(self, band: Tensor, plays: Tensor | None = None, history: Tensor | None = None,
                   gated: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """band (B, 5, D), with presence `carry`'s (B, 5, D + 1), at t (and with presence, piano's presence at
        t+1, (B,) 0/1) -> (mean, logvar) (B, D) of piano's latent at t+1; with `context`, `history` (B, n_context)
        is the piece so far (`context_features`); with a gate, `gated` (B,) 0/1 says whether piano plays at t+1
        (the gate's coin in generation, the truth in training): the latent of a playing piano is then one
        Gaussian, not a blur of "plays" and "silent" windows."""
        x = self._with(band.flatten(1), plays, history)
        if self.gate is not None:
            if gated is None:
                raise ValueError("a latent predictor with a piano gate needs piano's presence at t+1 (`gated`)")
            x = torch.cat([x, gated.to(x.dtype)[:, None]], dim=1)
        return _gaussian(self.piano(x))

    def others_next(self, band: Tensor, following: Tensor, plays: Tensor | None = None,
                    history: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """band (B, 5, D) at t and `following` (B, 5, D), latents at t+1 of which each group's predictor reads
        those before it (piano first) -> (mean, logvar) (B, 4, D) of the other groups at t+1, in group order
        without piano (teacher forcing: training and measuring). Each group's own w_t is in the band. With
        presence, `plays` (B, 5) 0/1 in group order: each group's presence at t+1."""
        ahead = _order(following)  # (B, 5, D): piano, then the others in group order
        own = _order(plays[:, :, None])[:, :, 0] if plays is not None else None
        stats = [self._other(j, band, ahead[:, : j + 1], None if own is None else own[:, j + 1], history)
                 for j in range(N_GROUPS - 1)]
        return torch.stack([m for m, _ in stats], 1), torch.stack([v for _, v in stats], 1)

    def _other(self, j: int, band: Tensor, ahead: Tensor, plays: Tensor | None = None,
               history: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(mean, logvar) (B, D) of the j-th non-piano group at t+1 from the band (B, 5, D) at t and the t+1
        latents (B, j + 1, D) of piano and the non-piano groups before it (and its presence (B,))."""
        return _gaussian(self.others[j](self._with(_other_input(band, ahead), plays, history)))

    def _with(self, x: Tensor, plays: Tensor | None, history: Tensor | None = None) -> Tensor:
        """A predictor's input x (B, n), with the group's presence (B,) appended when the model has heads and
        the piece-so-far summary (B, n_context) last when it has `context`."""
        if self.with_presence:
            if plays is None:
                raise ValueError("a latent predictor with presence heads needs each group's presence at t+1")
            x = torch.cat([x, plays.to(x.dtype)[:, None]], dim=1)
        if self.n_context:
            if history is None or history.shape[-1] != self.n_context:
                raise ValueError(f"a latent predictor with context {self.context} needs the piece so far "
                                 f"({self.n_context} numbers per item, `context_features`)")
            x = torch.cat([x, history.to(x.dtype)], dim=1)
        return x

    def presence_logits(self, band: Tensor, following: Tensor) -> Tensor:
        """Logits (B, 5) in group order that each group plays at t+1, from the band (B, 5, D) at t and the
        t+1 latents `following` (B, 5, D) (each head reads those of the groups before it, as its predictor)."""
        ahead = _order(following)
        logits = [self.presence[0](band.flatten(1))]
        logits += [self.presence[j + 1](_other_input(band, ahead[:, : j + 1])) for j in range(N_GROUPS - 1)]
        ordered = torch.cat(logits, 1)  # (B, 5): piano, then the others
        return _insert(ordered[:, 1:, None], ordered[:, 0:1])[:, :, 0]

    @torch.no_grad()
    def expected_next(self, z_t: Tensor, z_next: Tensor, now: Tensor | None = None,
                      history: Tensor | None = None) -> Tensor:
        """The predicted mean (B, 5, D) of the t+1 latents (teacher forced as `others_next`): with presence, the
        mixture's mean p x mean(plays) + (1 - p) x mean(silent), the squared-error figure's fair prediction
        (it uses no knowledge of which groups play next); `now` (B, 5): which groups play at t."""
        if self.gate is not None:  # the gate's mixture: p x mean(plays) + (1 - p) x mean(silent)
            p = torch.sigmoid(self.gate(history))
            plays, silent = (self.piano_next(z_t, None, history, torch.full_like(p[:, 0], v))[0] for v in (1.0, 0.0))
            return _insert(self.others_next(z_t, z_next, None, history)[0], silent + p * (plays - silent))
        if not self.with_presence:
            return _insert(self.others_next(z_t, z_next, None, history)[0], self.piano_next(z_t, None, history)[0])
        z_t = self.carry(z_t, now)
        p = torch.sigmoid(self.presence_logits(z_t, z_next))
        means = [_insert(self.others_next(z_t, z_next, torch.full_like(p, v))[0],
                         self.piano_next(z_t, torch.full_like(p[:, 0], v))[0]) for v in (0.0, 1.0)]
        return means[0] + p[:, :, None] * (means[1] - means[0])

    def loss(self, z_t: Tensor, z_next: Tensor, valid: Tensor, input_noise: float, training: bool,
             plays: Tensor | None = None, now: Tensor | None = None,
             history: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Squared error of the predicted mean / 2 + Gaussian NLL (nats per dimension) of z_next (B, 5, D)
        given the mean held fixed, from z_t (B, 5, D) and, for the conditional predictors, the z_next of the
        groups before each; `valid` (B,) bool marks items whose next window is real music (not padding past
        a piece's end). With presence heads, `plays` (B, 5) bool (each group sounds in window t+1) is their
        target and the predictors' input, their BCE is added, and `now` (B, 5) bool (each group sounds in
        window t) goes beside z_t (`carry`); with `context`, `history` (B, n_context) is the piece so far; with
        a gate, piano's predictor reads `plays`' piano column (teacher forced, as the gate's coin in generation).
        Targets and inputs carry no gradient to the encoder."""
        z_t, z_next = z_t.detach(), z_next.detach()
        noise = (lambda x: x + input_noise * torch.randn_like(x)) if training else (lambda x: x)
        given = plays.float() if plays is not None and self.with_presence else None
        noisy_t, noisy_next = noise(z_t), noise(z_next)
        if given is not None:
            noisy_t = self.carry(noisy_t, now)
        gated = None
        if self.gate is not None:
            if plays is None:
                raise ValueError("a latent predictor with a piano gate trains on piano's presence at t+1 (`plays`)")
            gated = plays[:, PIANO].float()
        mean_p, logvar_p = self.piano_next(noisy_t, None if given is None else given[:, PIANO], history, gated)
        mean_o, logvar_o = self.others_next(noisy_t, noisy_next, given, history)
        mean = _insert(mean_o, mean_p)
        logvar = _insert(logvar_o, logvar_p)
        error = (z_next - mean).pow(2)
        nll = 0.5 * (logvar + error.detach() / logvar.exp() + math.log(2 * math.pi))
        weight = valid.float()[:, None, None]
        count = weight.sum().clamp(min=1)
        per_dim = count * N_GROUPS * self.latent_dim
        nll, mse = (nll * weight).sum() / per_dim, (error * weight).sum() / per_dim
        sq = (error.detach() * weight).sum((0, 2)) / (count * self.latent_dim)
        var = _masked_var(z_next, valid)
        logs = {"pred_nll": nll.detach()}
        for g, name in enumerate(MULTITRACK_GROUPS):
            logs[f"pred_mse/{name}"], logs[f"target_var/{name}"] = sq[g], var[g]
        total = 0.5 * mse + nll
        if given is not None:
            bce = nn.functional.binary_cross_entropy_with_logits(self.presence_logits(noisy_t, noisy_next), given,
                                                                 reduction="none")
            bce = (bce * valid.float()[:, None]).sum() / (count * N_GROUPS)
            total, logs["pres_bce"] = total + bce, bce.detach()
        return total, logs

    def gate_loss(self, history: Tensor, plays: Tensor, valid: Tensor) -> Tensor:
        """BCE (nats per pair) of the piano gate's logit from `history` (B, n_context) against piano sounding at
        t+1 (`plays` (B, 5) bool), over the `valid` (B,) items."""
        bce = nn.functional.binary_cross_entropy_with_logits(self.gate(history)[:, 0], plays[:, PIANO].float(),
                                                             reduction="none")
        return (bce * valid.float()).sum() / valid.float().sum().clamp(min=1)

    def _gated_piano(self, band: Tensor, temperature: float, generator: torch.Generator | None, history: Tensor,
                     gate: PianoGate, silent: Tensor) -> tuple[Tensor, Tensor]:
        """Piano's latent at t+1 (B, D) and whether it plays (B,) bool, from the band (B, 5, D) at t: a coin at the
        gate's probability with its odds times `gate.odds`; where it says "plays", piano's predictor given that
        it plays is drawn until a draw's window sounds (`gate.sounds`), at most `gate.draws` times (the last is
        kept when none does), elsewhere piano's latent is the encoding of an empty window `silent` (D,)."""
        p = torch.sigmoid(self.gate(history)[:, 0])
        p = p * gate.odds / (1 - p + p * gate.odds)
        coin = torch.rand(p.shape, generator=generator, device=p.device) < p
        mean, logvar = self.piano_next(band, None, history, torch.ones_like(p))
        return kept_draw(mean, logvar, temperature, generator, coin, gate.sounds, gate.draws, silent), coin

    @torch.no_grad()
    def step(self, band: Tensor, temperature: float, generator: torch.Generator | None,
             silent: Tensor | None = None, draw: str = "sample", now: Tensor | None = None,
             history: Tensor | None = None, piano_factor: float = 1.0,
             gate: PianoGate | None = None, group_gate: GroupGateDraws | None = None) -> tuple[Tensor, Tensor]:
        """One window ahead: band (B, 5, D) at t -> (a draw (B, 5, D) at t+1, plays (B, 5) bool), piano first,
        then each other group on the draws before it; the predicted std is scaled by `temperature` (0: the
        means), piano's by `temperature` x `piano_factor`. With presence heads each group's presence is decided
        first (`draw` "sample": a coin at the head's probability; "threshold": plays when that probability is
        above 1/2), and a silent group's latent is `silent` (5, D), the encoding of an empty window (what the
        predictors read in training); without heads every group plays. `now` (B, 5) bool: which groups play at
        t (heads only; default all). `history` (B, n_context): the piece so far (`context` only). With a piano
        `gate` (and the model's gate head) piano's presence is the gate's coin (`_gated_piano`); with group gates
        (`group_gate`: their draws) so is each gated group's (`band_gates.kept_draw`)."""
        n = band.shape[0]
        gated = self.group_gates.groups if self.group_gates is not None else ()
        if gated and group_gate is None:
            raise ValueError("a latent predictor with group gates steps with its `GroupGateDraws` settings")
        if self.with_presence:
            band = self.carry(band, now if now is not None else torch.ones(band.shape[:2], dtype=torch.bool))
        ahead, plays = [], []
        for j in range(N_GROUPS):
            head_input = band.flatten(1) if j == 0 else _other_input(band, torch.stack(ahead, 1))
            if j == 0 and self.gate is not None:
                if gate is None:
                    raise ValueError("a latent predictor with a piano gate steps with its `PianoGate` settings")
                z, coin = self._gated_piano(band, temperature * piano_factor, generator, history, gate, silent[PIANO])
                ahead.append(z)
                plays.append(coin)
                continue
            group = PIANO if j == 0 else _GROUP_OF[j - 1]
            if group in gated:  # its coin drawn in turn: the groups before it draw as without gates
                coin = self.group_gates.coin(history, group, generator)
                stats = self._other(j - 1, band, torch.stack(ahead, 1), None, history)
                ahead.append(kept_draw(*stats, temperature, generator, coin, lambda z, g=group: group_gate.sounds(z, g),
                                       group_gate.draws, silent[group]))
                plays.append(coin)
                continue
            coin = None
            if self.with_presence:
                p = torch.sigmoid(self.presence[j](head_input))[:, 0]
                cut = torch.rand(n, generator=generator, device=band.device) if draw == "sample" else 0.5
                coin = (cut < p).to(band.dtype)
            stats = (self.piano_next(band, coin, history) if j == 0
                     else self._other(j - 1, band, torch.stack(ahead, 1), coin, history))
            z = gaussian_draw(*stats, temperature * (piano_factor if j == 0 else 1.0), generator)
            if coin is not None and silent is not None:
                z = torch.where(coin[:, None] > 0, z, silent[group].to(z.dtype))
            ahead.append(z)
            plays.append(coin > 0 if coin is not None else torch.ones(n, dtype=torch.bool, device=band.device))
        ordered = torch.stack(plays, 1)
        return _insert(torch.stack(ahead[1:], 1), ahead[0]), _insert(ordered[:, 1:, None], ordered[:, 0:1])[:, :, 0]


def context_size(context: int) -> int:
    """Numbers in the piece-so-far summary of `context` K: 5 x (K + 2) presence flags and the windows seen."""
    return N_GROUPS * (context + 2) + 1 if context else 0


def context_features(sounded: Tensor, context: int) -> Tensor:
    """The piece so far as the context predictors read it, at its last window t.

    sounded (B, T, 5) bool: whether each group sounded in windows 0 .. t of the piece (T = t + 1, oldest
    first) -> (B, 5 x (K + 2) + 1) float: per group, sounded in t, t-1, ..., t-K (0 before the piece's start),
    then whether it sounded anywhere before t-K, and min(t, K + 1) / (K + 1), how far the piece has gone."""
    b, steps, groups = sounded.shape
    s = sounded.to(torch.float32)
    recent = torch.zeros(b, context + 1, groups)
    take = min(steps, context + 1)
    recent[:, :take] = s.flip(1)[:, :take]  # newest first
    earlier = s[:, : max(steps - context - 1, 0)].amax(1) if steps > context + 1 else torch.zeros(b, groups)
    seen = torch.full((b, 1), min(steps - 1, context + 1) / (context + 1))
    return torch.cat([recent.transpose(1, 2).flatten(1), earlier, seen], dim=1)


def _other_input(band: Tensor, ahead: Tensor) -> Tensor:
    """A conditional predictor's input: the band (B, 5, D) at t and the t+1 latents (B, k, D) before it."""
    return torch.cat([band.flatten(1), ahead.flatten(1)], dim=1)


def _gaussian(out: Tensor) -> tuple[Tensor, Tensor]:
    mean, logvar = out.chunk(2, dim=-1)
    return mean, logvar.clamp(*LOGVAR_RANGE)


_GROUP_OF = [g for g in range(N_GROUPS) if g != PIANO]  # the j-th non-piano group


def _order(z: Tensor) -> Tensor:
    """(B, 5, D) in group order -> (B, 5, D) with piano first, then the other groups in group order."""
    return torch.cat([z[:, PIANO : PIANO + 1], z[:, _GROUP_OF]], dim=1)


def _insert(others: Tensor, piano: Tensor) -> Tensor:
    """(B, 4, D) of the non-piano groups and (B, D) of piano -> (B, 5, D) in group order."""
    return torch.cat([others[:, :PIANO], piano[:, None], others[:, PIANO:]], dim=1)


def _masked_var(z: Tensor, valid: Tensor) -> Tensor:
    """Variance over the valid items of z (B, 5, D), mean over dimensions: (5,); 0 with under 2 items."""
    rows = z[valid]
    if len(rows) < 2:
        return torch.zeros(z.shape[1])
    return rows.var(0, unbiased=False).mean(-1)
