"""Reference audio prompts by MuseTalk's own rules (musetalk/utils/audio_processor.py
get_whisper_chunk, and musetalk/models/unet.py PositionalEncoding as inference.py applies it),
on synthetic whisper hidden states, written as a JSON fixture for
worker/test/musetalk-reference.test.ts.

    python3 scripts/reference/musetalk_audio.py worker/test/fixtures/musetalk-reference

Needs numpy only.
"""
import math

import numpy as np

from fixture import run, write_fixture

SR = 16000
AUDIO_FPS = 50
SEGMENT_FRAMES = 1500  # whisper frames per 30 s window
LAYERS, HIDDEN = 5, 384
STRIDE = 211


def hidden_states(frames):
    """Synthetic encoder output [frames, 5, 384], the same formula as the TypeScript test's."""
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    layer = np.arange(LAYERS, dtype=np.float64)[None, :, None]
    channel = np.arange(HIDDEN, dtype=np.float64)[None, None, :]
    return np.sin(t * 0.013 + layer * 0.7 + channel * 0.0031).astype(np.float32)


def positional_encoding(length=50, d_model=HIDDEN):
    """PositionalEncoding(d_model=384) in float32, as torch builds it."""
    position = np.arange(length, dtype=np.float32)[:, None]
    div_term = np.exp(np.arange(0, d_model, 2, dtype=np.float32) * np.float32(-math.log(10000.0) / d_model)).astype(np.float32)
    pe = np.zeros((length, d_model), dtype=np.float32)
    pe[:, 0::2] = np.sin((position * div_term).astype(np.float32))
    pe[:, 1::2] = np.cos((position * div_term).astype(np.float32))
    return pe


def whisper_chunks(librosa_length, fps, left=2, right=2):
    """get_whisper_chunk after the encoder: [num_frames, 50, 384] audio prompts, plus pe()."""
    per_frame = 2 * (left + right + 1)
    segments = math.ceil(librosa_length / (30 * SR))
    feature = hidden_states(segments * SEGMENT_FRAMES)  # the segments' outputs, concatenated
    fps = int(fps)
    multiplier = AUDIO_FPS / fps
    num_frames = math.floor((librosa_length / SR) * fps)
    actual_length = math.floor((librosa_length / SR) * AUDIO_FPS)
    feature = feature[:actual_length]
    padding = math.ceil(multiplier)
    feature = np.concatenate([np.zeros_like(feature[: padding * left]), feature, np.zeros_like(feature[: padding * 3 * right])])
    prompts = []
    for frame_index in range(num_frames):
        audio_index = math.floor(frame_index * multiplier)
        clip = feature[audio_index: audio_index + per_frame]
        assert clip.shape[0] == per_frame
        prompts.append(clip.reshape(per_frame * LAYERS, HIDDEN))  # 'b c h w -> b (c h) w'
    return np.stack(prompts) + positional_encoding()[None]


def main(folder):
    cases = []
    for seconds, fps in [(61.0, 25), (10.3, 30), (7.0, 29.97)]:
        samples = int(round(seconds * SR))
        prompts = whisper_chunks(samples, fps)
        picked = sorted({0, 1, 2, len(prompts) // 2, 747, 748, 749, 750, len(prompts) - 2, len(prompts) - 1} & set(range(len(prompts))))
        cases.append({
            "samples": samples, "fps": fps, "frames": len(prompts),
            "prompts": [{"frame": i, "stride": STRIDE, "values": [v.item() for v in prompts[i].reshape(-1)[::STRIDE]]} for i in picked],
        })
    write_fixture(folder, "audio.json", {"source": "scripts/reference/musetalk_audio.py", "numpy": np.__version__, "cases": cases})


if __name__ == "__main__":
    run(main, "musetalk_audio.py")
