"""Reference values for the worker's MuseTalk preprocessing, computed by MuseTalk's own rules
(musetalk/utils/preprocessing.py, musetalk/models/vae.py) with numpy and OpenCV, written as JSON
fixtures that worker/test/musetalk-reference.test.ts compares the TypeScript stages with.

    python3 scripts/reference/musetalk_preprocess.py worker/test/fixtures/musetalk-reference

Needs Debian's python3-numpy and python3-opencv only; `npm test` reads the committed JSON.
"""

import cv2
import numpy as np

from fixture import run, write_fixture

SIZE = 256
# Strided samples keep the fixtures small; primes, so every channel and many rows are hit.
STRIDE = 97  # uint8 crops
FLOAT_STRIDE = 1009  # float tensors


def pattern(width, height):
    """A deterministic RGB frame with edges and texture, the same formula as the TypeScript test's."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    channels = [(x * 31 + y * 17 + c * 101 + (x * y) % 97) % 256 for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def crop_resized(frame_rgb, box):
    """inference.py / realtime_inference.py: crop_frame = frame[y1:y2, x1:x2], then
    cv2.resize(crop_frame, (256, 256), interpolation=cv2.INTER_LANCZOS4)."""
    x1, y1, x2, y2 = box
    return cv2.resize(frame_rgb[y1:y2, x1:x2], (SIZE, SIZE), interpolation=cv2.INTER_LANCZOS4)


def preprocess_img(img_rgb, half_mask):
    """vae.py preprocess_img on an already resized crop: [0,1], the lower half zeroed when masked
    (mask rows < 128 kept), then Normalize([0.5], [0.5]); float32 CHW."""
    x = img_rgb.astype(np.float32) / 255.0
    x = np.transpose(x, (2, 0, 1))
    if half_mask:
        mask = np.zeros((SIZE, SIZE), dtype=np.float32)
        mask[: SIZE // 2, :] = 1
        x = x * (mask > 0.5)
    return ((x - 0.5) / 0.5).astype(np.float32)


def landmark_rect(landmarks, detector_box, bbox_shift, frame_height, extra_margin=10):
    """get_landmark_and_bbox's rectangle for one face (68 points, int32 as MuseTalk truncates them),
    then v1.5's extra_margin (scripts/inference.py): the crop is frame[y1:y2, x1:x2]."""
    lm = landmarks.astype(np.int32)
    half_face_coord = lm[29].copy()
    if bbox_shift != 0:
        half_face_coord[1] = bbox_shift + half_face_coord[1]
    half_face_dist = np.max(lm[:, 1]) - half_face_coord[1]
    upper_bond = half_face_coord[1] - half_face_dist
    x1, y1, x2, y2 = (int(np.min(lm[:, 0])), int(upper_bond), int(np.max(lm[:, 0])), int(np.max(lm[:, 1])))
    if y2 - y1 <= 0 or x2 - x1 <= 0 or x1 < 0:
        x1, y1, x2, y2 = detector_box
    y2 = min(y2 + extra_margin, frame_height)
    return [x1, y1, x2, y2]


def landmark_cases(width, height):
    """Faces of several sizes and places (some at the frame's edges), and bbox_shift values."""
    rng = np.random.default_rng(20261203)
    cases = []
    for i in range(40):
        size = int(rng.integers(40, 300))
        cx = int(rng.integers(-size // 3, width + size // 3))
        cy = int(rng.integers(size // 2, height))
        # 68 points scattered over a face-shaped area; what the rules read is their extent and 28-30.
        points = np.stack([cx + rng.normal(0, size / 4, 68), cy + rng.normal(0, size / 4, 68)], axis=1)
        points[28:31, 0] = cx
        points[28:31, 1] = cy - size // 6 + np.array([0, size // 12, size // 6])
        detector = [cx - size // 2, cy - size // 2, cx + size // 2, cy + size // 2]
        shift = [0, -10, 7, -40, 60][i % 5]
        cases.append({
            "landmarks": np.round(points, 1).tolist(),
            "detector": detector,
            "bboxShift": shift,
            "rect": landmark_rect(np.round(points, 1), detector, shift, height),
        })
    return cases


def samples(array, stride=STRIDE):
    flat = array.reshape(-1)
    return {"stride": stride, "values": [v.item() for v in flat[::stride]]}


def main(folder):
    width, height = 640, 360
    frame = pattern(width, height)
    cases = []
    # Boxes as MuseTalk's rectangles come: taller than wide (downscaled across, upscaled down),
    # larger than the crop both ways, smaller both ways, and touching the frame's edges.
    for box in [(200, 40, 400, 330), (100, 20, 420, 350), (300, 100, 420, 230), (0, 0, 180, 260), (500, 150, 640, 360)]:
        crop = crop_resized(frame, box)
        cases.append({
            "box": list(box),
            "crop": samples(crop),
            "whole": samples(preprocess_img(crop, False), FLOAT_STRIDE),
            "masked": samples(preprocess_img(crop, True), FLOAT_STRIDE),
        })
    out = {
        "source": "scripts/reference/musetalk_preprocess.py",
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "frame": {"width": width, "height": height},
        "cases": cases,
        "rects": landmark_cases(width, height),
    }
    write_fixture(folder, "preprocess.json", out)


if __name__ == "__main__":
    run(main, "musetalk_preprocess.py")
