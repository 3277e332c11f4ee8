/**
 * Draws the pictures in docs/images/ that show how avatar.prepare cuts and blends a face, from the
 * worker's own stages on the fixture photos:
 *
 *     npm run docs:faces
 *
 * Per photo, four 256x256 panels: the photo round the face with the 68 landmarks (green), MuseTalk's
 * rectangle (yellow) and the expanded crop the mask lives in (cyan); the rectangle stretched to the
 * 256x256 crop the VAE sees; the jaw-mode blend mask over that crop; and the photo with a stand-in
 * "generated" face (the crop with its colours inverted, so the blended area shows) pasted back
 * through the mask, as get_image_blending does.
 */
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'worker/package.json'));
const sharp = require('sharp');
const ort = require('onnxruntime-node');
const dist = (file) => require(path.join(root, 'worker/dist/src', file));
const { BLAZEFACE_MODEL_PATH, FaceDetector } = dist('inference/face-detector.js');
const { FaceLandmarker, landmarkBox } = dist('inference/face-landmarks.js');
const { cropResize, museTalkRect, rectCrop } = dist('pipelines/avatar-prepare/face-track.js');
const { blendRgb, cropSpaceMask, expandedCropBox, jawMask, landmarkLabelMap, maskOverExpandedCrop } = dist('pipelines/avatar-prepare/blend-mask.js');

const PHOTOS = ['astronaut.jpg', 'grace_hopper.jpg'];
const PANEL = 256;
const out = path.join(root, 'docs/images');

/** Sets the pixels of a filled square of side 2r+1 at (x, y), inside the image. */
function dot(rgb, width, height, x, y, colour, r = 1) {
  for (let dy = -r; dy <= r; dy++) {
    for (let dx = -r; dx <= r; dx++) {
      const [px, py] = [Math.round(x) + dx, Math.round(y) + dy];
      if (px >= 0 && py >= 0 && px < width && py < height) rgb.set(colour, (py * width + px) * 3);
    }
  }
}

/** A rectangle's outline, x2/y2 exclusive. */
function outline(rgb, width, height, { x1, y1, x2, y2 }, colour) {
  for (let x = x1; x < x2; x++) [y1, y2 - 1].forEach((y) => dot(rgb, width, height, x, y, colour, 0));
  for (let y = y1; y < y2; y++) [x1, x2 - 1].forEach((x) => dot(rgb, width, height, x, y, colour, 0));
}

const raw = (rgb, width, height) => sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.length), { raw: { width, height, channels: 3 } });

async function figure(detector, landmarker, file) {
  const { data, info } = await sharp(path.join(root, 'worker/test/fixtures/faces', file)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const [width, height] = [info.width, info.height];
  const frame = new Uint8Array(data.buffer, data.byteOffset, data.length);
  const [face] = await detector.detect(frame, width, height);
  if (!face) throw new Error(`${file}: no face found`);
  const landmarks = await landmarker.detect(frame, width, height, landmarkBox(face));
  const rect = museTalkRect({ ...face, landmarks }, width, height);
  const crop = rectCrop(rect, width, height);
  const box = expandedCropBox(rect);

  // Panel 1: the photo round the expanded crop, annotated.
  const annotated = frame.slice();
  outline(annotated, width, height, { x1: box.x1, y1: box.y1, x2: box.x2, y2: box.y2 }, [0, 220, 255]);
  outline(annotated, width, height, rect, [255, 220, 0]);
  for (let i = 0; i < 68; i++) dot(annotated, width, height, landmarks[2 * i], landmarks[2 * i + 1], [0, 255, 0]);
  const view = { left: Math.max(0, box.x1), top: Math.max(0, box.y1) };
  Object.assign(view, { width: Math.min(width, box.x2) - view.left, height: Math.min(height, box.y2) - view.top });
  const context = await raw(annotated, width, height).extract(view).resize(PANEL, PANEL, { fit: 'contain', background: '#000' }).png().toBuffer();

  // Panels 2 and 3: the crop the VAE sees, and the blend mask over it (jawBlendMask's steps, kept
  // apart here because panel 4 pastes through the mask over the expanded crop).
  const cropped = cropResize(frame, width, height, crop, PANEL);
  const maskOverCrop = maskOverExpandedCrop(jawMask(landmarkLabelMap(landmarks, box)), rect, box);
  const mask = cropSpaceMask(maskOverCrop, box, crop, PANEL);

  // Panel 4: a stand-in face (inverted colours) at the rectangle's size, pasted through the mask.
  const faceWidth = rect.x2 - rect.x1, faceHeight = rect.y2 - rect.y1;
  const inside = { x1: Math.max(0, rect.x1), y1: Math.max(0, rect.y1), x2: Math.min(width, rect.x2), y2: Math.min(height, rect.y2) };
  const standIn = new Uint8Array(faceWidth * faceHeight * 3);
  for (let y = inside.y1; y < inside.y2; y++) {
    for (let x = inside.x1; x < inside.x2; x++) {
      for (let c = 0; c < 3; c++) standIn[((y - rect.y1) * faceWidth + (x - rect.x1)) * 3 + c] = 255 - frame[(y * width + x) * 3 + c];
    }
  }
  const pasted = blendRgb(frame, width, height, { rgb: standIn, width: faceWidth, height: faceHeight }, rect, maskOverCrop);
  const result = await raw(pasted, width, height).extract(view).resize(PANEL, PANEL, { fit: 'contain', background: '#000' }).png().toBuffer();

  const target = path.join(out, `blend-${path.parse(file).name}.png`);
  await sharp({ create: { width: 4 * PANEL + 3 * 8, height: PANEL, channels: 3, background: '#fff' } })
    .composite([
      { input: context, left: 0, top: 0 },
      { input: await raw(cropped, PANEL, PANEL).png().toBuffer(), left: PANEL + 8, top: 0 },
      { input: await sharp(Buffer.from(mask), { raw: { width: PANEL, height: PANEL, channels: 1 } }).png().toBuffer(), left: 2 * (PANEL + 8), top: 0 },
      { input: result, left: 3 * (PANEL + 8), top: 0 },
    ])
    .png({ compressionLevel: 9, palette: true, quality: 95 })
    .toFile(target);
  console.log(`wrote ${path.relative(root, target)}: rect ${JSON.stringify(rect)}, crop ${crop.width}x${crop.height}, expanded crop ${box.side} px`);
}

const options = { executionProviders: ['cpu'], logSeverityLevel: 3 };
const detector = new FaceDetector(await ort.InferenceSession.create(BLAZEFACE_MODEL_PATH, options));
const landmarker = new FaceLandmarker(await ort.InferenceSession.create(FaceLandmarker.modelBytes(), options));
mkdirSync(out, { recursive: true });
for (const file of PHOTOS) await figure(detector, landmarker, file);
