"""Reference values for the worker's MuseTalk 1.5 blend mask and composite, by MuseTalk's own rules
(musetalk/utils/face_parsing/__init__.py FaceParsing.__call__ in "jaw" mode with cheek widths 90,
musetalk/utils/blending.py get_crop_box, get_image_prepare_material and get_image_blending as
scripts/realtime_inference.py calls them), ported to numpy and OpenCV: PIL is not used, so its crop
(zeros outside the image), paste (clipped to the target) and L-mask blend (Paste.c: BLEND with DIV255)
are written out here. Writes blending.json for worker/test/blend-mask.test.ts.

    python3 scripts/reference/musetalk_blending.py worker/test/fixtures/musetalk-reference

Needs Debian's python3-numpy and python3-opencv only.

Two substitutions, the same as the TypeScript's (worker/src/pipelines/avatar-prepare/blend-mask.ts):
- BiSeNet's parsing is replaced by a label map rasterised from 68 landmarks. The bit-exact chain
  starts from the cv2.fillPoly label map stored here (run-length coded), so the polygon fill is
  compared on its own, loosely.
- face_seg's PIL resize (bicubic) of the 512x512 parsing back to the expanded crop's size is a
  pixel-centre nearest-neighbour resize: exact in integers in both languages.
"""

import cv2
import numpy as np

from fixture import run, write_fixture
from musetalk_preprocess import landmark_rect, pattern

PARSING = 512
EXPAND = 1.5
UPPER_BOUNDARY_RATIO = 0.5
CHEEK_WIDTH = 90  # the v1.5 scripts' left_cheek_width / right_cheek_width
SKIN, NOSE, LIPS = 1, 10, 12
# Strided samples (primes) plus whole-array sums keep the fixture small.
MASK_STRIDE = 61
FRAME_STRIDE = 97

# Polygons over iBUG 300-W landmarks (0-based): the jaw closed over the brows, the bridge top down
# the nose sides and across the lower nose, the outer lips.
POLYGONS = [
    (SKIN, list(range(0, 17)) + list(range(26, 16, -1))),
    (NOSE, [27, 31, 32, 33, 34, 35]),
    (LIPS, list(range(48, 60))),
]

# A frontal 68-point face in a unit box (jaw extent about 0.08-0.97 across, chin at 1.06).
TEMPLATE = np.array([
    (0.079, 0.339), (0.083, 0.457), (0.097, 0.576), (0.122, 0.692), (0.169, 0.800), (0.240, 0.896),
    (0.326, 0.977), (0.422, 1.043), (0.532, 1.061), (0.641, 1.040), (0.738, 0.972), (0.824, 0.890),
    (0.895, 0.792), (0.939, 0.682), (0.961, 0.562), (0.971, 0.442), (0.971, 0.322), (0.164, 0.249),
    (0.218, 0.204), (0.291, 0.192), (0.367, 0.204), (0.439, 0.233), (0.586, 0.228), (0.660, 0.196),
    (0.737, 0.182), (0.813, 0.193), (0.871, 0.235), (0.515, 0.319), (0.516, 0.396), (0.517, 0.474),
    (0.518, 0.553), (0.434, 0.604), (0.476, 0.621), (0.521, 0.634), (0.566, 0.619), (0.607, 0.602),
    (0.252, 0.331), (0.299, 0.303), (0.356, 0.303), (0.404, 0.339), (0.353, 0.350), (0.297, 0.350),
    (0.631, 0.334), (0.679, 0.296), (0.736, 0.295), (0.783, 0.321), (0.740, 0.342), (0.685, 0.344),
    (0.353, 0.746), (0.415, 0.719), (0.478, 0.707), (0.523, 0.717), (0.570, 0.705), (0.635, 0.716),
    (0.700, 0.739), (0.639, 0.805), (0.576, 0.835), (0.525, 0.842), (0.476, 0.838), (0.414, 0.810),
    (0.380, 0.750), (0.478, 0.745), (0.523, 0.749), (0.571, 0.743), (0.672, 0.744), (0.573, 0.777),
    (0.524, 0.783), (0.478, 0.778),
])


def face_landmarks(width, cx, cy, degrees):
    """The template scaled to `width` px across the jaw, point 29 at (cx, cy), turned by `degrees`;
    rounded to 0.01 px and then to float32, the precision the TypeScript reads them at."""
    points = (TEMPLATE - TEMPLATE[29]) * (width / (TEMPLATE[16, 0] - TEMPLATE[0, 0]))
    t = np.deg2rad(degrees)
    rotated = points @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    return np.round(rotated + [cx, cy], 2).astype(np.float32)


def get_crop_box(box, expand=EXPAND):
    """blending.get_crop_box: a square of side 2s round the box's centre."""
    x, y, x1, y1 = box
    x_c, y_c = (x + x1) // 2, (y + y1) // 2
    s = int(max(x1 - x, y1 - y) // 2 * expand)
    return [x_c - s, y_c - s, x_c + s, y_c + s], s


def cone_kernel():
    """FaceParsing's dilation kernel: a 21-row cone (widening downwards from its middle row) over a
    12-row 21-wide tail, in a 33x33 square."""
    cone_height, tail_height = 21, 12
    total = cone_height + tail_height
    kernel = np.zeros((total, total), dtype=np.uint8)
    centre = total // 2
    for row in range(cone_height // 2, cone_height):
        width = 2 * (row - cone_height // 2) + 1
        kernel[row, centre - width // 2:centre + width // 2 + 1] = 1
    base = int(kernel[cone_height - 1].sum())
    kernel[cone_height:, max(0, centre - base // 2):min(total, centre + base // 2 + 1)] = 1
    return kernel


def cheek_mask(left=CHEEK_WIDTH, right=CHEEK_WIDTH):
    """FaceParsing._create_cheek_mask: 255 on the outer bands, where the dilated skin is eroded."""
    mask = np.zeros((PARSING, PARSING), dtype=np.uint8)
    centre = PARSING // 2
    cv2.rectangle(mask, (0, 0), (centre - left, PARSING), 255, -1)
    cv2.rectangle(mask, (centre + right, 0), (PARSING, PARSING), 255, -1)
    return mask


CONE = cone_kernel()
CHEEK_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (35, 3))
CHEEKS = cheek_mask()


def jaw_mode(labels):
    """FaceParsing.__call__(mode="jaw") after BiSeNet's argmax: 255 where the (dilated; eroded on the
    cheeks) skin is not nose, and on lips and mouth; 0 elsewhere."""
    parsing = labels.astype(np.int64)
    face_region = (np.isin(parsing, [SKIN]) * 255).astype(np.uint8)
    dilated = cv2.dilate(face_region, CONE, iterations=1)
    eroded = cv2.erode(dilated, CHEEK_KERNEL, iterations=2)
    face_region = cv2.bitwise_and(eroded, CHEEKS)
    face_region = cv2.bitwise_or(face_region, cv2.bitwise_and(dilated, ~CHEEKS))
    parsing[(face_region == 255) & (~np.isin(parsing, [NOSE]))] = 255
    parsing[np.isin(parsing, [11, 12, 13])] = 255
    parsing[parsing != 255] = 0
    return parsing.astype(np.uint8)


def resize_nearest(square, size):
    """The stand-in for face_seg's PIL resize: output pixel d takes input pixel floor((d + 0.5) * n / size)."""
    index = ((2 * np.arange(size) + 1) * square.shape[0]) // (2 * size)
    return square[index][:, index]


def pil_crop(image, box):
    """Image.crop: the box's pixels, zeros where it leaves the image."""
    x1, y1, x2, y2 = box
    out = np.zeros((y2 - y1, x2 - x1) + image.shape[2:], dtype=image.dtype)
    h, w = image.shape[:2]
    ax, ay, bx, by = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if bx > ax and by > ay:
        out[ay - y1:by - y1, ax - x1:bx - x1] = image[ay:by, ax:bx]
    return out


def div255(v):
    """Paste.c's DIV255: v / 255 rounded, in shifts."""
    t = v + 128
    return ((t >> 8) + t) >> 8


def pil_paste(target, image, x, y, mask=None):
    """Image.paste at (x, y), clipped to the target; with an L mask each channel becomes
    BLEND(m, out, in) = DIV255(out * (255 - m) + in * m)."""
    h, w = image.shape[:2]
    th, tw = target.shape[:2]
    ax, ay, bx, by = max(x, 0), max(y, 0), min(x + w, tw), min(y + h, th)
    if bx <= ax or by <= ay:
        return
    src = image[ay - y:by - y, ax - x:bx - x]
    if mask is None:
        target[ay:by, ax:bx] = src
        return
    m = mask[ay - y:by - y, ax - x:bx - x].astype(np.int64)[..., None]
    out = target[ay:by, ax:bx].astype(np.int64)
    target[ay:by, ax:bx] = div255(out * (255 - m) + src.astype(np.int64) * m).astype(np.uint8)


def prepare_material(labels, rect):
    """get_image_prepare_material with face_seg's parsing given as `labels` (512x512)."""
    x, y, x1, y1 = rect
    crop_box, s = get_crop_box(rect)
    x_s, y_s = crop_box[:2]
    width, height = crop_box[2] - x_s, crop_box[3] - y_s
    parsed = resize_nearest(jaw_mode(labels), width)
    mask_small = pil_crop(parsed, (x - x_s, y - y_s, x1 - x_s, y1 - y_s))
    mask = np.zeros((height, width), dtype=np.uint8)
    pil_paste(mask, mask_small, x - x_s, y - y_s)
    top = int(height * UPPER_BOUNDARY_RATIO)
    modified = np.zeros((height, width), dtype=np.uint8)
    pil_paste(modified, pil_crop(mask, (0, top, width, height)), 0, top)
    kernel = int(0.1 * width // 2 * 2) + 1
    return cv2.GaussianBlur(modified, (kernel, kernel), 0), crop_box


def image_blending(frame, face, rect, mask, crop_box):
    """get_image_blending on RGB (PIL's per-channel arithmetic does not care about channel order)."""
    x, y, x1, y1 = rect
    x_s, y_s = crop_box[:2]
    body = frame.copy()
    face_large = pil_crop(body, crop_box)
    pil_paste(face_large, face, x - x_s, y - y_s)
    pil_paste(body, face_large, x_s, y_s, mask)
    return body


def to_parsing(landmarks, crop_box):
    """Landmarks (pixel-centre coordinates) to the 512x512 parsing of the expanded crop, which
    FaceParsing resizes to 512 with pixel centres aligned."""
    scale = PARSING / (crop_box[2] - crop_box[0])
    return (landmarks.astype(np.float64) - [crop_box[0], crop_box[1]] + 0.5) * scale - 0.5


def fillpoly_labels(landmarks, crop_box):
    """The label map by cv2.fillPoly (8 fractional bits), painted skin, nose, lips in that order."""
    points = np.round(to_parsing(landmarks, crop_box) * 256).astype(np.int32)
    labels = np.zeros((PARSING, PARSING), dtype=np.uint8)
    for label, index in POLYGONS:
        cv2.fillPoly(labels, [points[index]], label, lineType=cv2.LINE_8, shift=8)
    return labels


def face_pattern(width, height):
    """The generated face at the face box's size: a formula the TypeScript test repeats."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    return np.stack([(x * 7 + y * 3 + c * 85 + 40) % 256 for c in range(3)], axis=-1).astype(np.uint8)


def run_lengths(flat):
    """[value, count, value, count, ...] over a flat uint8 array."""
    edges = np.flatnonzero(np.diff(flat.astype(np.int16))) + 1
    starts = np.concatenate([[0], edges])
    counts = np.diff(np.concatenate([starts, [flat.size]]))
    return [int(v) for pair in zip(flat[starts], counts) for v in pair]


def samples(array, stride):
    flat = array.reshape(-1)
    return {"stride": stride, "sum": int(flat.astype(np.int64).sum()), "values": [v.item() for v in flat[::stride]]}


def main(folder):
    width, height = 640, 360
    frame = pattern(width, height)
    cases = []
    # Jaw widths 96, 180 (turned 12 degrees) and 300 (partly outside the frame, right and top).
    for face_width, cx, cy, degrees in [(96, 300, 160, 0), (180, 220, 170, -12), (300, 560, 90, 5)]:
        landmarks = face_landmarks(face_width, cx, cy, degrees)
        rect = landmark_rect(landmarks, [0, 0, 1, 1], 0, height)
        crop_box, _ = get_crop_box(rect)
        labels = fillpoly_labels(landmarks, crop_box)
        mask, _ = prepare_material(labels, rect)
        face = face_pattern(rect[2] - rect[0], rect[3] - rect[1])
        blended = image_blending(frame, face, rect, mask, crop_box)
        # Only the expanded crop can change: its part inside the frame is what is sampled.
        region = [max(crop_box[0], 0), max(crop_box[1], 0), min(crop_box[2], width), min(crop_box[3], height)]
        counts = np.bincount(labels.reshape(-1), minlength=256)
        cases.append({
            "landmarks": [round(float(v), 2) for v in landmarks.reshape(-1)],
            "rect": [int(v) for v in rect],
            "cropBox": [int(v) for v in crop_box],
            "labels": run_lengths(labels.reshape(-1)),
            "labelCounts": {str(label): int(counts[label]) for label, _ in POLYGONS},
            "jaw": run_lengths(jaw_mode(labels).reshape(-1)),
            "blurKernel": int(0.1 * (crop_box[2] - crop_box[0]) // 2 * 2) + 1,
            "mask": samples(mask, MASK_STRIDE),
            "region": region,
            "blended": samples(blended[region[1]:region[3], region[0]:region[2]], FRAME_STRIDE),
        })
    out = {
        "source": "scripts/reference/musetalk_blending.py",
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "frame": {"width": width, "height": height},
        "cheekKernel": CHEEK_KERNEL.reshape(-1).tolist(),
        "coneKernel": run_lengths(CONE.reshape(-1)),
        "cases": cases,
    }
    write_fixture(folder, "blending.json", out)


if __name__ == "__main__":
    run(main, "musetalk_blending.py")
