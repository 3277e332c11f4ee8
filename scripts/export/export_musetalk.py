"""Exports MuseTalk 1.5's real weights to the worker's model contract (docs/models.md). Untested
here: the weights were never available. The same wrappers and helper were run on stand-ins
(standins.py, check_plumbing.py) on torch 1.13.

Run from MuseTalk's repository folder, in its Python environment (torch, diffusers, transformers),
after its download script has filled models/:

    python3 /path/to/avatar-fleet/scripts/export/export_musetalk.py OUTPUT_FOLDER [--batch N|dynamic] VERSION

then `npm run models:check -- OUTPUT_FOLDER` in avatar-fleet.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from musetalk_onnx import export_all, write_metadata  # noqa: E402


def load():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperModel

    unet = UNet2DConditionModel(**json.load(open("models/musetalkV15/musetalk.json")))
    unet.load_state_dict(torch.load("models/musetalkV15/unet.pth", map_location="cpu"))
    vae = AutoencoderKL.from_pretrained("models/sd-vae")
    try:  # the classic attention code: scaled_dot_product_attention does not export on every torch
        whisper = WhisperModel.from_pretrained("models/whisper", attn_implementation="eager")
    except TypeError:  # transformers before attn_implementation existed always used it
        whisper = WhisperModel.from_pretrained("models/whisper")
    try:
        from diffusers.models.attention_processor import AttnProcessor

        unet.set_attn_processor(AttnProcessor())
        vae.set_attn_processor(AttnProcessor())
    except ImportError:  # diffusers before attention processors: the classic code already
        pass
    for m in (unet, vae, whisper):
        m.eval().requires_grad_(False)
    return unet, vae, whisper


def main(argv):
    args = list(argv)
    batch = 8
    if "--batch" in args:
        i = args.index("--batch")
        value = args[i + 1]
        batch = None if value == "dynamic" else int(value)
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit("usage: export_musetalk.py OUTPUT_FOLDER [--batch N|dynamic] VERSION")
    folder, version = args
    unet, vae, whisper = load()
    export_all(unet, vae, whisper, folder, batch=batch)
    write_metadata(folder, version=version, batch=batch)
    print(f"wrote {folder}; now: npm run models:check -- {folder}")


if __name__ == "__main__":
    main(sys.argv[1:])
