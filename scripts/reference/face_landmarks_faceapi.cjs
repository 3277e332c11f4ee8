/**
 * Reference landmarks from face-api itself: its FaceLandmark68Net on its bundled TensorFlow.js (CPU
 * backend), on square face regions of the fixture photos, written as JSON for
 * worker/test/face-landmarks.test.ts, which runs the ONNX rebuild of the same network
 * (worker/src/inference/face-landmarks.ts) on the same regions.
 *
 *     node scripts/reference/face_landmarks_faceapi.cjs worker/test/fixtures/face-landmarks
 *
 * The region is cut with black outside the photo (what face-api's padToSquare adds), then handed
 * to face-api as a square tensor: face-api resizes it to 112 px and runs the network. Needs only
 * the project's own packages (@vladmandic/face-api, sharp).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const sharp = require('sharp');

const FACES = path.resolve(__dirname, '../../worker/test/fixtures/faces');
/** Regions: the detector's square box on each photo, and two that reach past the photo's edges. */
const CASES = [
  { image: 'astronaut.jpg', box: { x: 178, y: 81, size: 95 } },
  { image: 'astronaut.jpg', box: { x: 150, y: 60, size: 150 } },
  { image: 'astronaut.jpg', box: { x: -40, y: -30, size: 400 } },
];

/**
 * face-api's browser/Node bundle (dist/face-api.js) constructs TextEncoder from a util stub that
 * esbuild left empty, so it throws under plain Node; loaded here with Node's own util instead.
 */
function loadFaceApi() {
  const file = require.resolve('@vladmandic/face-api/dist/face-api.js');
  const source = fs.readFileSync(file, 'utf8');
  const stub = 'this.util=BR(),';
  if (!source.includes(stub)) throw new Error(`${file}: the util stub to replace was not found (another face-api version?)`);
  const mod = new Module(file, module);
  mod.filename = file;
  mod.paths = Module._nodeModulePaths(path.dirname(file));
  mod._compile(`${source.replace(stub, 'this.util=require("util"),')}\nmodule.exports = faceapi;`, file);
  return mod.exports;
}

async function main(outDir) {
  const faceapi = loadFaceApi();
  const tf = faceapi.tf;
  await tf.setBackend('cpu');
  await tf.ready();
  const modelDir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_landmark_68_model-weights_manifest.json'), 'utf8'));
  const bin = fs.readFileSync(path.join(modelDir, 'face_landmark_68_model.bin'));
  const weightMap = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), manifest[0].weights);
  const net = faceapi.nets.faceLandmark68Net;
  net.loadFromWeightMap(weightMap);

  const cases = [];
  for (const { image, box } of CASES) {
    const { data, info } = await sharp(path.join(FACES, image)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const region = new Float32Array(box.size * box.size * 3);
    for (let y = 0; y < box.size; y++) {
      for (let x = 0; x < box.size; x++) {
        const sx = box.x + x, sy = box.y + y;
        if (sx < 0 || sy < 0 || sx >= info.width || sy >= info.height) continue;
        for (let c = 0; c < 3; c++) region[(y * box.size + x) * 3 + c] = data[(sy * info.width + sx) * 3 + c];
      }
    }
    const input = tf.tensor3d(region, [box.size, box.size, 3], 'float32');
    const relative = await net.forward(input);
    const values = await relative.data();
    input.dispose();
    relative.dispose();
    // Frame pixels, as FaceLandmarker.detect returns them.
    const landmarks = Array.from(values, (v, i) => Number(((i % 2 === 0 ? box.x : box.y) + v * box.size).toFixed(4)));
    cases.push({ image, box, landmarks });
  }
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, 'faceapi-reference.json');
  fs.writeFileSync(file, `${JSON.stringify({ faceApi: require('@vladmandic/face-api/package.json').version, tfjs: tf.version_core, cases })}\n`);
  console.log(`wrote ${file}`);
}

if (process.argv.length !== 3) {
  console.error('usage: node scripts/reference/face_landmarks_faceapi.cjs OUTPUT_FOLDER');
  process.exit(2);
}
main(process.argv[2]).catch((error) => {
  console.error(error);
  process.exit(1);
});
