"""audio-vaegan against the seed (MusiGAN, seed 002), measured side by side in one run:

1. Generator training step (forward, backward, AdamW step; batch 4, one thread): our generator at the
   seed's size and depth (2 stride-2 encoder convs, width 128, latent 512, one 8-head Transformer
   layer, 2 decoder stages, envelope, 2 channels x 33 keys x 500 frames) against a seed-style one
   rebuilt from the technical notes (white noise 2 x 48,000 samples in, encoder on the raw samples,
   decoder to 20,000 then adaptive pooling to 16,500, the 131 M-parameter `TokenLinear` that is never
   used but sits in the optimizer, the Gaussian MLP on the flattened latents). Parameter counts beside.
2. Key-energy overlap of a checkpoint's generated chunks (from noise, and continuing held-out chunks)
   against the held-out real chunks of its corpus, with the real-vs-real ceiling (one half of the
   held-out chunks against the other) beside it (`evaluation/audio_metrics.py`).
3. Clicks: the share of output energy at 50 Hz and its harmonics (`pianokeys_dsp.frame_click_ratio`)
   for the same generated keys through our phase-continuous inverse and through the seed's inverse.

Usage: python benchmarks/audio.py --audio BACH_AUDIO_DIR [--checkpoint audio-vaegan-bach] [--n 64]
(BACH_AUDIO_DIR: `tunesmith corpus render bach --out DIR`, the checkpoint's training folder). Writes
benchmarks/results/audio.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from tunesmith.core.constants import pitch_name
from tunesmith.evaluation.audio_metrics import chunk_table, compare_key_sets, key_overlaps, split_chunks
from tunesmith.io.atomic import write_atomic
from tunesmith.models import make_config, model_class

OUT = Path(__file__).parent / "results" / "audio.md"


class SeedGenerator(nn.Module):
    """The seed's `VariationalAttentionModel` as the technical notes describe it (section 2.2)."""

    def __init__(self, width: int = 128, latent: int = 512, steps: int = 500, out_len: int = 16_500) -> None:
        super().__init__()
        self.steps, self.out_len = steps, out_len
        self.conv1, self.bn1 = nn.Conv1d(2, width, 9, 2, 4), nn.BatchNorm1d(width)
        self.conv2, self.bn2 = nn.Conv1d(width, width, 7, 2, 3), nn.BatchNorm1d(width)
        self.mu, self.logvar = nn.Linear(width, latent), nn.Linear(width, latent)
        layer = nn.TransformerEncoderLayer(latent, 8, 1024, 0.1)
        self.transformer = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.token_linear = nn.Linear(steps * latent, latent)  # defined, never used (131 M parameters)
        self.gaussians = nn.Sequential(nn.Linear(steps * latent, 12), nn.ReLU(), nn.Linear(12, 6))
        self.inp = nn.Linear(latent, width)
        self.up1, self.bn3 = nn.ConvTranspose1d(width, width, 7, 2, 3, 1), nn.BatchNorm1d(width)
        self.up2, self.bn4 = nn.ConvTranspose1d(width, width, 2, 2), nn.BatchNorm1d(width)
        self.up3, self.bn5 = nn.ConvTranspose1d(width, width, 3, 5, 1, 4), nn.BatchNorm1d(width)
        self.up4 = nn.ConvTranspose1d(width, 2, 9, 2, 4, 1)
        self.drop = nn.Dropout(0.2)

    def forward(self, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.drop(self.bn1(self.conv1(noise)))
        h = F.max_pool1d(h, 2) + F.interpolate(h, size=h.shape[-1] // 2)
        h = F.adaptive_avg_pool1d(self.drop(self.bn2(self.conv2(h))), self.steps).transpose(1, 2)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        z = self.transformer(z.transpose(0, 1)).transpose(0, 1)
        g = self.gaussians(z.flatten(1))
        x = self.inp(z).transpose(1, 2)
        for up, bn in ((self.up1, self.bn3), (self.up2, self.bn4), (self.up3, self.bn5)):
            y = self.drop(bn(up(x)))
            x = y + F.interpolate(x, size=y.shape[-1])
        x = F.adaptive_avg_pool1d(F.hardsigmoid(self.up4(x)), self.out_len)
        centre, width = g[:, :3, None].abs(), 4 * torch.sigmoid(g[:, 3:, None].abs() - 10)
        index = torch.arange(self.out_len, dtype=x.dtype)[None, None]
        envelope = torch.exp(-0.5 * ((index - (-8000 + 16000 * centre)) / (4000 * width + 1e-3)) ** 2).sum(1)
        return mu, logvar, x * envelope[:, None]


def median_step(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def generator_speed(batch: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    seed = SeedGenerator()
    seed_opt = torch.optim.AdamW(seed.parameters(), lr=2e-4)
    noise, target = torch.randn(batch, 2, 48_000), torch.rand(batch, 2, 16_500)

    def seed_step() -> None:
        seed_opt.zero_grad(set_to_none=True)
        _, _, out = seed(noise)
        F.smooth_l1_loss(out, target).backward()
        seed_opt.step()

    config = {"channels": 2, "n_keys": 33, "chunk_frames": 500, "mode": "noise", "width": 128, "latent_dim": 512,
              "heads": 8, "layers": 1, "envelope": 3, "dropout": 0.2}
    ours = model_class("audio-vaegan")(make_config("audio-vaegan", config, {}))
    params = list(ours.generator_parameters())
    ours_opt = torch.optim.AdamW(params, lr=2e-4)
    keys = {"context": torch.rand(batch, 2, 33, 500), "target": torch.rand(batch, 2, 33, 500) ** 4}

    def our_step() -> None:
        ours_opt.zero_grad(set_to_none=True)
        ours.pretrain_generator_loss(keys)["loss"].backward()
        ours_opt.step()

    seed_time, our_time = median_step(seed_step, repeats), median_step(our_step, repeats)
    unused = sum(p.numel() for p in seed.token_linear.parameters())
    return {"seed_s": seed_time, "ours_s": our_time, "speedup": seed_time / our_time,
            "seed_params": sum(p.numel() for p in seed.parameters()), "seed_unused": unused,
            "ours_params": sum(p.numel() for p in params)}


def held_out(checkpoint: str, audio: Path):
    """(loaded model, held-out (context, target) pairs as two lists of (C, K, T) arrays) of the checkpoint's
    corpus: its recipe's data section with `audio` as the source, split as in training."""
    from tunesmith.data.audio import prepare_audio_data
    from tunesmith.data.config import DataConfig
    from tunesmith.models.checkpoint import load_model

    loaded = load_model(checkpoint)
    recipe = loaded.checkpoint["run_config"]["data"]
    data = prepare_audio_data(DataConfig(**{**recipe, "source": str(audio)}), loaded.representation)
    frames = loaded.model.config.chunk_frames
    valid = data.valid
    targets = split_chunks(valid.arrays, frames)  # every held-out 10 s, not overlapping
    contexts = [valid[i]["context"] for i in range(0, len(valid), 2)]  # pairs overlap by half: every other
    return loaded, [t.astype(np.float32) for t in targets], contexts


def generated(loaded, contexts: list[np.ndarray], n: int) -> dict[str, list[np.ndarray]]:
    generator = torch.Generator().manual_seed(0)
    model, out = loaded.model, {}
    if model.config.mode != "continuation":
        out["from noise"] = list(model.sample_keys(n, None, generator))
    if model.config.mode != "noise":
        out["continuation"] = [model.sample_keys(1, c, generator)[0] for c in contexts[:n]]
    return out


def clicks(rep, keys: list[np.ndarray]) -> dict[str, float]:
    """Mean share of energy at 50 Hz and harmonics (not within 5 Hz of a key): our inverse vs the seed's."""
    from tunesmith.representations.pianokeys_dsp import frame_click_ratio, seed_style_inverse

    c, freqs, ours, seed = rep.config, rep.key_frequencies(), [], []
    for k in keys[:16]:
        amplitude = rep.amplitudes(k)
        ours.append(frame_click_ratio(rep.decode_audio(k), c.sample_rate, 1 / c.frame_seconds, avoid_hz=freqs))
        seed_audio = np.stack([seed_style_inverse(a, freqs, c.sample_rate, c.frame) for a in amplitude])
        seed.append(frame_click_ratio(seed_audio, c.sample_rate, 1 / c.frame_seconds, avoid_hz=freqs))
    return {"ours": float(np.mean(ours)), "seed": float(np.mean(seed))}


def weakest_keys(real: list[np.ndarray], keys: list[np.ndarray], seconds: float, lowest: int, count: int = 6) -> str:
    """The `count` keys whose share over chunks overlaps least with the real one: "C2 0.46 (weight 1.7 %), ..."
    (the parts of the key-energy overlap that cost most)."""
    ref, gen = (chunk_table(x, seconds, lowest)["key_share"] for x in (real, keys))
    oas, weights = key_overlaps(ref, gen), ref.mean(0) / ref.mean(0).sum()
    worst = np.argsort((1 - oas) * weights)[::-1][:count]
    return ", ".join(f"{pitch_name(lowest + int(k) + 20)} {oas[k]:.2f}" for k in worst)


def report(speed: dict, overlap: dict | None, click: dict | None, command: str) -> str:
    lines = ["# audio-vaegan benchmark", "", f"`{command}` (one run, one CPU thread)", "",
             "## Generator training step (batch 4, forward + backward + AdamW)", "",
             "| generator | parameters | unused | step (s) |", "|---|---|---|---|",
             f"| seed-style (noise 2 x 48,000 -> 16,500) | {speed['seed_params']:,} | {speed['seed_unused']:,} | "
             f"{speed['seed_s']:.3f} |",
             f"| audio-vaegan at the seed's size (2 x 33 keys x 500 frames) | {speed['ours_params']:,} | 0 | "
             f"{speed['ours_s']:.3f} |", "", f"Speed-up: **{speed['speedup']:.1f}x** (target >= 3x).", ""]
    if overlap:
        lines += ["## Generated vs held-out real chunks", "",
                  "| set | chunks | key-energy overlap | key profile intersection | key Frechet | onset rate OA | "
                  "silence OA | flatness OA | polyphony OA | onsets per s | flatness |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, (count, row, means, _) in overlap.items():
            lines.append(f"| {name} | {count} | {row['key_energy_overlap']:.3f} | "
                         f"{row['key_profile_intersection']:.3f} | {row.get('key_frechet', float('nan')):.4f} | "
                         f"{row['onset_rate_oa']:.3f} | {row['silence_oa']:.3f} | {row['flatness_oa']:.3f} | "
                         f"{row['polyphony_oa']:.3f} | {means['onset_rate']:.1f} | {means['flatness']:.2f} |")
        lines += ["", "Key-energy overlap target >= 0.8; the real-vs-real row is the ceiling (one half of the "
                  "held-out chunks against the other; its means are those of all held-out chunks). Generated "
                  "chunks are sampled (latent temperature 1), seed 0.", "",
                  "Keys that cost most (per-key overlap of the share over chunks; weighted by the real share):", ""]
        lines += [f"- {name}: {weak}" for name, (_, _, _, weak) in overlap.items() if weak]
        lines.append("")
    if click:
        lines += ["## Frame clicks (share of output energy at 50 Hz and harmonics, away from the keys)", "",
                  f"- phase-continuous inverse (ours): {click['ours']:.2e}",
                  f"- seed-style inverse (phase restarts every 20 ms): {click['seed']:.2e}",
                  f"- ratio: {click['seed'] / max(click['ours'], 1e-12):.0f}x less click energy", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="audio-vaegan-bach")
    parser.add_argument("--audio", type=Path, help="the checkpoint's training folder (rendered Bach)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speed = generator_speed(4, args.repeats)
    print(f"generator step: seed-style {speed['seed_s']:.3f} s, ours {speed['ours_s']:.3f} s, "
          f"{speed['speedup']:.1f}x; parameters {speed['seed_params']:,} (unused {speed['seed_unused']:,}) vs "
          f"{speed['ours_params']:,}")
    overlap = click = None
    if args.audio:
        loaded, real, contexts = held_out(args.checkpoint, args.audio)
        seconds = loaded.representation.config.frame_seconds
        lowest = loaded.representation.config.lowest_key
        overlap = {}
        for name, keys in generated(loaded, contexts, args.n).items():
            result = compare_key_sets(real, keys, seconds, lowest)
            overlap[f"{name} vs held-out real"] = (len(keys), result["generated"], result["means"]["generated"],
                                                   weakest_keys(real, keys, seconds, lowest))
            print(f"{name}: key-energy overlap {result['generated']['key_energy_overlap']:.3f} "
                  f"(real vs real {result['ceiling']['key_energy_overlap']:.3f}), means {result['means']}")
            click = click or clicks(loaded.representation, keys)
        half = len(real) // 2
        overlap["real vs real (ceiling)"] = (half, result["ceiling"], result["means"]["reference"],
                                             weakest_keys(real[:half], real[half:], seconds, lowest))
        print(f"clicks: ours {click['ours']:.2e}, seed-style {click['seed']:.2e}")
    command = "python benchmarks/audio.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if v is not None and k != "threads")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(OUT, (report(speed, overlap, click, command) + "\n").encode())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
