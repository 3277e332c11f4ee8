/**
 * 68 facial landmarks (iBUG 300-W order, the points MuseTalk's rectangle rules read) from the
 * weights of face-api's FaceLandmark68Net, which the npm package `@vladmandic/face-api` ships (MIT;
 * TF.js format: a JSON manifest and a uint8-quantised .bin). The network is rebuilt here as an ONNX
 * graph when the worker loads, so it runs on onnxruntime like every other model and nothing is
 * downloaded.
 *
 * The network (face-api's src/faceFeatureExtractor and src/faceLandmarkNet): a 112x112 RGB input,
 * minus a mean colour, over 255; four dense blocks, each a stride-2 convolution (a plain 3x3 in the
 * first block, depthwise-separable after) and three depthwise-separable 3x3s whose inputs are the
 * ReLU'd running sums of the earlier outputs, 32-64-128-256 channels at 56-28-14-7 px; a 7x7
 * average pool; a fully connected layer to 136 values: x, y per point in [0, 1] of the input.
 * TensorFlow's SAME padding on an even input with stride 2 pads only after (right and bottom).
 *
 * Checked against face-api itself (its bundled TensorFlow.js on the CPU) by
 * scripts/reference/face_landmarks_faceapi.cjs, and against points placed by hand on three faces.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Tensor, type InferenceSession } from 'onnxruntime-node';
import { attr, encodeModel, floatInitializer, node, valueInfo } from './onnx-writer';
import type { onnx } from 'onnx-proto';

export const LANDMARK_COUNT = 68;
/** The network's input side. */
export const LANDMARK_INPUT = 112;
/** face-api's mean RGB, subtracted from 0-255 pixels before the division by 255. */
const MEAN_RGB = [122.782, 117.001, 104.298] as const;
const INPUT = 'image';
const OUTPUT = 'landmarks';

/** Where the weights are: the package has no `exports` map, so its package.json resolves. */
export function faceApiModelDir(): string {
  return path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
}

interface ManifestWeight {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; scale: number; min: number };
}

/** A weight as TF.js stores it: its shape in TensorFlow's layout (HWIO for convolutions). */
export interface TfWeight {
  shape: number[];
  values: Float32Array;
}

/**
 * Reads a TF.js weights manifest and its .bin files: weights lie back to back in manifest order;
 * a quantised one is q * scale + min (TF.js's affine uint8/uint16 quantisation).
 */
export function readTfjsWeights(dir: string, model = 'face_landmark_68_model'): Map<string, TfWeight> {
  const manifestFile = path.join(dir, `${model}-weights_manifest.json`);
  const groups = JSON.parse(readFileSync(manifestFile, 'utf8')) as Array<{ paths: string[]; weights: ManifestWeight[] }>;
  const out = new Map<string, TfWeight>();
  for (const group of groups) {
    const bin = Buffer.concat(group.paths.map((file) => readFileSync(path.join(dir, file))));
    let offset = 0;
    for (const w of group.weights) {
      const count = w.shape.reduce((a, b) => a * b, 1);
      const values = new Float32Array(count);
      const q = w.quantization;
      if (w.dtype !== 'float32') throw new Error(`${manifestFile}: weight ${w.name} is ${w.dtype}, only float32 weights are supported`);
      if (q?.dtype === 'uint8') {
        for (let i = 0; i < count; i++) values[i] = bin[offset + i]! * q.scale + q.min;
        offset += count;
      } else if (q?.dtype === 'uint16') {
        for (let i = 0; i < count; i++) values[i] = bin.readUInt16LE(offset + 2 * i) * q.scale + q.min;
        offset += 2 * count;
      } else if (!q) {
        for (let i = 0; i < count; i++) values[i] = bin.readFloatLE(offset + 4 * i);
        offset += 4 * count;
      } else {
        throw new Error(`${manifestFile}: weight ${w.name} uses ${q.dtype} quantisation, which is not supported`);
      }
      if (offset > bin.length) throw new Error(`${manifestFile}: the weights need ${offset} bytes, the .bin files hold ${bin.length}`);
      out.set(w.name, { shape: w.shape, values });
    }
  }
  return out;
}

/** TensorFlow's [h, w, in, out] filter as ONNX's [out, in, h, w]. */
function toOihw(w: TfWeight): { values: Float32Array; dims: number[] } {
  const [h, kw, cin, cout] = w.shape as [number, number, number, number];
  const values = new Float32Array(w.values.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < kw; x++) {
      for (let i = 0; i < cin; i++) {
        for (let o = 0; o < cout; o++) values[((o * cin + i) * h + y) * kw + x] = w.values[((y * kw + x) * cin + i) * cout + o]!;
      }
    }
  }
  return { values, dims: [cout, cin, h, kw] };
}

/** TensorFlow's depthwise [h, w, in, 1] filter as ONNX's grouped [in, 1, h, w]. */
function depthwiseToOnnx(w: TfWeight): { values: Float32Array; dims: number[] } {
  const [h, kw, cin, mult] = w.shape as [number, number, number, number];
  if (mult !== 1) throw new Error(`depthwise multiplier ${mult} is not supported`);
  const { values } = toOihw({ shape: [h, kw, 1, cin], values: w.values });
  return { values, dims: [cin, 1, h, kw] };
}

/**
 * The ONNX model (opset 17) of FaceLandmark68Net from its TF.js weights: input `image`
 * [batch, 3, 112, 112] float32 with pixels 0-255, output `landmarks` [batch, 136].
 */
export function landmarkNetOnnx(weights: Map<string, TfWeight>): Buffer {
  const nodes: onnx.INodeProto[] = [];
  const initializers: onnx.ITensorProto[] = [];
  let counter = 0;
  const get = (name: string): TfWeight => {
    const w = weights.get(name);
    if (!w) throw new Error(`the landmark weights have no ${name}`);
    return w;
  };
  const op = (type: string, inputs: string[], attributes: Parameters<typeof node>[3] = {}): string => {
    const out = `${type.toLowerCase()}_${counter++}`;
    nodes.push(node(type, inputs, [out], attributes));
    return out;
  };
  const tensor = (name: string, values: Float32Array, dims: number[]): string => {
    initializers.push(floatInitializer(name, values, dims));
    return name;
  };
  // SAME padding: 1 each side at stride 1; at stride 2 on an even input, 1 after only.
  const pads = (stride: number) => attr.ints(stride === 2 ? [0, 0, 1, 1] : [1, 1, 1, 1]);
  const conv = (x: string, prefix: string, stride: number): string => {
    const w = toOihw(get(`${prefix}/filters`));
    return op('Conv', [x, tensor(`${prefix}/filters`, w.values, w.dims), tensor(`${prefix}/bias`, get(`${prefix}/bias`).values, [w.dims[0]!])], {
      kernel_shape: attr.ints([3, 3]), strides: attr.ints([stride, stride]), pads: pads(stride),
    });
  };
  const separable = (x: string, prefix: string, stride: number): string => {
    const dw = depthwiseToOnnx(get(`${prefix}/depthwise_filter`));
    const depthwise = op('Conv', [x, tensor(`${prefix}/depthwise_filter`, dw.values, dw.dims)], {
      kernel_shape: attr.ints([3, 3]), strides: attr.ints([stride, stride]), pads: pads(stride), group: attr.int(dw.dims[0]!),
    });
    const pw = toOihw(get(`${prefix}/pointwise_filter`));
    return op('Conv', [depthwise, tensor(`${prefix}/pointwise_filter`, pw.values, pw.dims), tensor(`${prefix}/bias`, get(`${prefix}/bias`).values, [pw.dims[0]!])], {
      kernel_shape: attr.ints([1, 1]),
    });
  };
  const denseBlock = (x: string, prefix: string, first: boolean): string => {
    const out1 = op('Relu', [first ? conv(x, `${prefix}/conv0`, 2) : separable(x, `${prefix}/conv0`, 2)]);
    const out2 = separable(out1, `${prefix}/conv1`, 1);
    const sum2 = op('Add', [out1, out2]);
    const out3 = separable(op('Relu', [sum2]), `${prefix}/conv2`, 1);
    const sum3 = op('Add', [sum2, out3]);
    const out4 = separable(op('Relu', [sum3]), `${prefix}/conv3`, 1);
    return op('Relu', [op('Add', [sum3, out4])]);
  };

  const mean = tensor('mean_rgb', Float32Array.from(MEAN_RGB), [1, 3, 1, 1]);
  const scale = tensor('inv_255', Float32Array.of(1 / 255), [1]);
  let x = op('Mul', [op('Sub', [INPUT, mean]), scale]);
  ['dense0', 'dense1', 'dense2', 'dense3'].forEach((prefix, i) => {
    x = denseBlock(x, prefix, i === 0);
  });
  const pooled = op('AveragePool', [x], { kernel_shape: attr.ints([7, 7]), strides: attr.ints([2, 2]) });
  const flat = op('Flatten', [pooled], { axis: attr.int(1) });
  const fcWeights = get('fc/weights');
  const fc = op('Gemm', [flat, tensor('fc/weights', fcWeights.values, fcWeights.shape), tensor('fc/bias', get('fc/bias').values, [LANDMARK_COUNT * 2])]);
  nodes.push(node('Identity', [fc], [OUTPUT]));
  return encodeModel({
    graphName: 'face_landmark_68',
    nodes,
    inputs: [valueInfo(INPUT, 'float32', ['batch', 3, LANDMARK_INPUT, LANDMARK_INPUT])],
    outputs: [valueInfo(OUTPUT, 'float32', ['batch', LANDMARK_COUNT * 2])],
    initializers,
    producerName: 'avatar-fleet face-landmarks.ts',
    docString: 'FaceLandmark68Net of @vladmandic/face-api (MIT), rebuilt from its TF.js weights',
  });
}

/** A square region of a frame, in whole pixels; it may reach past the frame's edges. */
export interface SquareBox {
  x: number;
  y: number;
  size: number;
}

/**
 * The region the network sees for a detected face: the detector's box (BlazeFace's is square,
 * hairline to chin and cheek to cheek), in whole pixels.
 */
export function landmarkBox(face: { x: number; y: number; width: number; height: number }): SquareBox {
  const size = Math.max(2, Math.round(Math.max(face.width, face.height)));
  return { x: Math.round(face.x + (face.width - size) / 2), y: Math.round(face.y + (face.height - size) / 2), size };
}

/**
 * Fills `out` (3 x 112 x 112, pixels 0-255) from `box` of an rgb24 frame, as face-api feeds its
 * network: TensorFlow's resizeBilinear without align-corners or half-pixel centres (source =
 * destination * size / 112). Pixels outside the frame are black, as face-api pads to a square.
 */
export function landmarkInput(rgb: Uint8Array, width: number, height: number, box: SquareBox, out: Float32Array, offset = 0): void {
  const n = LANDMARK_INPUT;
  const plane = n * n;
  const step = box.size / n;
  const px = (x: number, y: number, c: number) => (x < 0 || y < 0 || x >= width || y >= height ? 0 : rgb[(y * width + x) * 3 + c]!);
  for (let oy = 0; oy < n; oy++) {
    const sy = oy * step;
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, box.size - 1);
    const dy = sy - y0;
    for (let ox = 0; ox < n; ox++) {
      const sx = ox * step;
      const x0 = Math.floor(sx);
      const x1 = Math.min(x0 + 1, box.size - 1);
      const dx = sx - x0;
      for (let c = 0; c < 3; c++) {
        const tl = px(box.x + x0, box.y + y0, c), tr = px(box.x + x1, box.y + y0, c);
        const bl = px(box.x + x0, box.y + y1, c), br = px(box.x + x1, box.y + y1, c);
        const top = tl + (tr - tl) * dx;
        const bottom = bl + (br - bl) * dx;
        out[offset + c * plane + oy * n + ox] = top + (bottom - top) * dy;
      }
    }
  }
}

/** Runs the landmark network on face regions; calls are queued (one input buffer). */
export class FaceLandmarker {
  private readonly input = new Float32Array(3 * LANDMARK_INPUT * LANDMARK_INPUT);
  private readonly tensor = new Tensor('float32', this.input, [1, 3, LANDMARK_INPUT, LANDMARK_INPUT]);
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly session: InferenceSession) {}

  /** The ONNX bytes of the network from the weights that @vladmandic/face-api ships. */
  static modelBytes(dir = faceApiModelDir()): Buffer {
    return landmarkNetOnnx(readTfjsWeights(dir));
  }

  /**
   * The 68 points in `box` of an rgb24 frame, in frame pixels: x0, y0, x1, y1, ... The frame is
   * read when the call's turn comes: do not refill `rgb` before the promise settles.
   */
  detect(rgb: Uint8Array, width: number, height: number, box: SquareBox): Promise<Float32Array> {
    if (rgb.length < width * height * 3) return Promise.reject(new RangeError(`frame has ${rgb.length} bytes, expected ${width * height * 3} for ${width}x${height} rgb24`));
    if (!Number.isInteger(box.x) || !Number.isInteger(box.y) || !Number.isInteger(box.size) || box.size < 2) return Promise.reject(new RangeError(`bad landmark box ${JSON.stringify(box)}`));
    const result = this.queue.then(async () => {
      landmarkInput(rgb, width, height, box, this.input);
      const out = await this.session.run({ [INPUT]: this.tensor });
      const raw = out[OUTPUT]!.data as Float32Array;
      const points = new Float32Array(LANDMARK_COUNT * 2);
      for (let i = 0; i < LANDMARK_COUNT; i++) {
        points[2 * i] = box.x + raw[2 * i]! * box.size;
        points[2 * i + 1] = box.y + raw[2 * i + 1]! * box.size;
      }
      return points;
    });
    this.queue = result.catch(() => undefined);
    return result;
  }
}
