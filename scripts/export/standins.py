"""Tiny stand-ins for MuseTalk's four networks, with the real ones' call signatures, exported by
musetalk_onnx.py exactly as the real weights would be: proof of the export plumbing where the
weights are not available. Their outputs mean nothing.

    python3 scripts/export/standins.py worker/test/fixtures/torch-standins/musetalk

Needs only torch (Debian's python3-torch 1.13 will do) and onnx; the files it writes are committed,
so `npm test` runs them without Python.
"""
import math
import sys
from types import SimpleNamespace

import torch

from musetalk_onnx import export_all, write_metadata


def timestep_embedding(timestep, dim):
    """diffusers' get_timestep_embedding: the int64 timestep through sines and cosines."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    angles = timestep[:, None].float() * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class StandInUnet(torch.nn.Module):
    """Called as UNet2DConditionModel is: (latent, timestep, encoder_hidden_states=) -> .sample."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 4, 3, padding=1)
        self.audio = torch.nn.Linear(384, 4)
        self.time = torch.nn.Linear(32, 4)

    def forward(self, latent, timestep, encoder_hidden_states):
        audio = self.audio(encoder_hidden_states.mean(dim=1))  # [B, 4]
        time = self.time(timestep_embedding(timestep, 32))  # [1, 4]
        sample = self.conv(latent) + (audio + time)[:, :, None, None]
        return SimpleNamespace(sample=sample)


class StandInVae(torch.nn.Module):
    """AutoencoderKL's parts the wrappers use: encoder, quant_conv, decode(z).sample."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Conv2d(3, 8, 8, stride=8)  # [B,3,256,256] -> [B,8,32,32]
        self.quant_conv = torch.nn.Conv2d(8, 8, 1)
        self.post = torch.nn.Conv2d(4, 3, 3, padding=1)

    def decode(self, z):
        up = torch.nn.functional.interpolate(z, scale_factor=8, mode="nearest")
        return SimpleNamespace(sample=torch.tanh(self.post(up)))


class StandInWhisperEncoder(torch.nn.Module):
    """whisper-tiny's encoder shape: a strided conv to 1500 frames of 384, four layers, a final
    layer norm on the last; `hidden_states` holds the embeddings and each layer's output."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(80, 384, 3, stride=2, padding=1)
        self.scales = torch.nn.Parameter(torch.linspace(0.5, 1.5, 4)[:, None] * torch.ones(4, 384))
        self.layer_norm = torch.nn.LayerNorm(384)

    def forward(self, input_features, output_hidden_states=False):
        x = torch.nn.functional.gelu(self.conv(input_features)).transpose(1, 2)  # [B, 1500, 384]
        states = [x]
        for i in range(4):
            x = x + torch.nn.functional.gelu(x * self.scales[i])
            states.append(self.layer_norm(x) if i == 3 else x)
        return SimpleNamespace(last_hidden_state=states[-1], hidden_states=tuple(states))


def main(folder):
    torch.manual_seed(20261203)
    whisper = SimpleNamespace(encoder=StandInWhisperEncoder())
    for module in (whisper.encoder,):
        module.eval()
    export_all(StandInUnet(), StandInVae(), whisper, folder, batch=4)
    write_metadata(folder, version="torch-standins-1", batch=4,
                   notes=f"tiny stand-ins exported by scripts/export/standins.py with torch {torch.__version__}: proof of the export plumbing, not weights")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: standins.py OUTPUT_FOLDER")
    main(sys.argv[1])
