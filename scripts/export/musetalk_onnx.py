"""MuseTalk 1.5 to ONNX, as the worker's model contract wants it (docs/models.md).

The wrappers and the export helper that export_musetalk.py uses on the real weights and
standins.py uses on tiny stand-in networks with the same signatures, so the plumbing is proven
without the weights. Runs on torch 1.13 (MuseTalk's Debian-era torch), 2.0 (the version MuseTalk
pins) and newer.
"""
import inspect
import json
import os

import torch

SCALE = 0.18215  # sd-vae-ft-mse's scaling_factor; the worker scales the encoder's mean by it

FILES = {
    "unet": "musetalk_unet.onnx",
    "vae_encoder": "musetalk_vae_encoder.onnx",
    "vae_decoder": "musetalk_vae_decoder.onnx",
    "whisper": "musetalk_whisper_encoder.onnx",
}


class Unet(torch.nn.Module):
    """diffusers' UNet2DConditionModel as MuseTalk calls it: latent, int64 timestep, audio prompt."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, latent, timestep, audio_prompt):
        return self.unet(latent, timestep, encoder_hidden_states=audio_prompt).sample


class VaeEncoder(torch.nn.Module):
    """What AutoencoderKL.encode computes before it builds the distribution: mean and logvar."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, image):
        return self.vae.quant_conv(self.vae.encoder(image))


class VaeDecoder(torch.nn.Module):
    """The worker passes scaled latents: 1 / SCALE is folded in, as MuseTalk's decode_latents does."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latent):
        return self.vae.decode(latent / SCALE).sample.clamp(-1, 1)


class WhisperEncoder(torch.nn.Module):
    """5 states: the embeddings, layers 1-3, and layer 4 after the final layer norm, stacked on
    dim 2 as MuseTalk's get_whisper_chunk does."""

    def __init__(self, whisper):
        super().__init__()
        self.encoder = whisper.encoder

    def forward(self, input_features):
        states = self.encoder(input_features, output_hidden_states=True).hidden_states
        return torch.stack(states, dim=2)


def export(module, args, path, inputs, output, dynamic=None):
    """torch.onnx.export with the TorchScript exporter on every torch version, opset 17, and the
    weights in the .onnx file, or, past protobuf's 2 GB, in one `<file>.data` beside it and nothing
    else left over (model sync uploads every file in the folder)."""
    options = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # torch >= 2.5 would pick the dynamo exporter otherwise
    folder = os.path.dirname(os.path.abspath(path))
    before = set(os.listdir(folder))
    torch.onnx.export(
        module.eval(), args, path,
        input_names=inputs, output_names=[output],
        opset_version=17, do_constant_folding=True,
        dynamic_axes=dynamic, **options,
    )
    leftovers = sorted(set(os.listdir(folder)) - before - {os.path.basename(path)})
    if leftovers:
        gather_external_data(path, leftovers)


def gather_external_data(path, leftovers):
    """A model whose weights the exporter wrote as one file per tensor: all into `<file>.data`,
    then the per-tensor files removed."""
    import onnx

    folder = os.path.dirname(os.path.abspath(path))
    model = onnx.load(path)  # loads the external tensors too
    data = os.path.basename(path) + ".data"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data)
    for name in leftovers:
        if name != data:
            os.remove(os.path.join(folder, name))


def export_all(unet, vae, whisper, folder, batch=8):
    """The four files of the contract; `batch` fixes the UNet and VAE batch, None makes it dynamic.
    The whisper encoder always takes a dynamic batch (the worker sends one 30 s window at a time)."""
    os.makedirs(folder, exist_ok=True)
    b = batch or 2
    dyn = (lambda *names: {n: {0: "batch"} for n in names}) if batch is None else (lambda *names: None)
    with torch.no_grad():
        export(Unet(unet), (torch.randn(b, 8, 32, 32), torch.tensor([0], dtype=torch.int64), torch.randn(b, 50, 384)),
               os.path.join(folder, FILES["unet"]), ["latent", "timestep", "audio_prompt"], "latent_out",
               dyn("latent", "audio_prompt", "latent_out"))
        export(VaeEncoder(vae), (torch.rand(b, 3, 256, 256) * 2 - 1,),
               os.path.join(folder, FILES["vae_encoder"]), ["image"], "moments", dyn("image", "moments"))
        export(VaeDecoder(vae), (torch.randn(b, 4, 32, 32),),
               os.path.join(folder, FILES["vae_decoder"]), ["latent"], "image", dyn("latent", "image"))
        export(WhisperEncoder(whisper), (torch.randn(1, 80, 3000),),
               os.path.join(folder, FILES["whisper"]), ["input_features"], "hidden_states",
               {"input_features": {0: "batch"}, "hidden_states": {0: "batch"}})


def write_metadata(folder, version, batch, precision="fp32", **extra):
    """metadata.json as the worker reads it: `version` changes whenever the weights do."""
    meta = {
        "format": "onnx", "opset": 17, "precision": precision, "batchSize": batch,
        "batchSizes": {FILES["unet"]: batch, FILES["vae_encoder"]: batch, FILES["vae_decoder"]: batch, FILES["whisper"]: None},
        "dev": False, "version": version, "vaeScalingFactor": SCALE, **extra,
    }
    with open(os.path.join(folder, "metadata.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
