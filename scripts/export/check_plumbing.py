"""The export paths standins.py does not take, on the stand-ins: a dynamic batch, and weights kept
as external data (what a real fp32 UNet over 2 GB gets), gathered into one `<file>.data` with no
per-tensor files left behind. Writes two model folders; check each with
`npm run models:check -- FOLDER`.

    python3 scripts/export/check_plumbing.py /tmp/plumbing
"""
import os
import sys
from types import SimpleNamespace

import onnx
import torch

from musetalk_onnx import FILES, export_all, gather_external_data, write_metadata
from standins import StandInUnet, StandInVae, StandInWhisperEncoder


def main(root):
    torch.manual_seed(1)
    dynamic = os.path.join(root, "dynamic", "musetalk")
    export_all(StandInUnet(), StandInVae(), SimpleNamespace(encoder=StandInWhisperEncoder()), dynamic, batch=None)
    write_metadata(dynamic, version="plumbing-dynamic", batch=None)

    external = os.path.join(root, "external", "musetalk")
    export_all(StandInUnet(), StandInVae(), SimpleNamespace(encoder=StandInWhisperEncoder()), external, batch=2)
    write_metadata(external, version="plumbing-external", batch=2)
    # As the exporter leaves a model past 2 GB: one file per tensor beside the .onnx.
    whisper = os.path.join(external, FILES["whisper"])
    before = set(os.listdir(external))
    onnx.save_model(onnx.load(whisper), whisper, save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)
    leftovers = sorted(set(os.listdir(external)) - before)
    assert len(leftovers) > 1, leftovers
    gather_external_data(whisper, leftovers)
    remaining = sorted(set(os.listdir(external)) - before)
    assert remaining == [FILES["whisper"] + ".data"], remaining
    print(f"external data: {len(leftovers)} per-tensor files gathered into {remaining[0]}, none left over")
    print(f"now: npm run models:check -- {os.path.dirname(dynamic)} and npm run models:check -- {os.path.dirname(external)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_plumbing.py OUTPUT_FOLDER")
    main(sys.argv[1])
