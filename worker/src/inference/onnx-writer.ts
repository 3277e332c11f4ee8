import { endianness } from 'node:os';
import { onnx } from 'onnx-proto';
import { toHalfArray } from './float16';

/**
 * Small typed helpers to write ONNX models with `onnx-proto` (protobufjs static classes for ONNX
 * 1.10.2, IR version 8). Used to generate the dev model set; nothing here runs a model.
 *
 * Tensor payloads always go in `rawData` (little-endian bytes): the typed repeated fields
 * (`floatData`, `int64Data`) would need protobufjs `Long` values for int64 and are several
 * times slower to encode for the ~0.5 M-weight tensors the dev set holds.
 */

/** Opset the generated models import; ONNX 1.12 semantics (ReduceMean axes attribute, Unsqueeze axes input). */
export const OPSET = 17;
/** IR version 8 is the newest `onnx-proto` 8.0.1 knows, and the one ONNX 1.12 wrote for opset 17. */
export const IR_VERSION = 8;

export type DType = 'float32' | 'float16' | 'int64';
/** A dimension: a fixed size, or a symbolic name (dynamic, e.g. `'batch'`). */
export type Dim = number | string;

const DATA_TYPE: Record<DType, onnx.TensorProto.DataType> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
};

/** The ONNX `TensorProto.DataType` number of a dtype, e.g. for Cast's `to` attribute. */
export function dataTypeOf(dtype: DType): number {
  return DATA_TYPE[dtype];
}

/** A graph input or output: name, element type and shape. */
export function valueInfo(name: string, dtype: DType, dims: readonly Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DATA_TYPE[dtype],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

// rawData is little-endian by the ONNX spec; every platform Node ships on is too, so typed-array
// bytes are copied as they are rather than swapped.
function littleEndianBytes(view: ArrayBufferView): Uint8Array {
  if (endianness() !== 'LE') throw new Error('onnx-writer: big-endian hosts are not supported');
  return new Uint8Array(Buffer.from(view.buffer, view.byteOffset, view.byteLength));
}

function checkSize(name: string, length: number, dims: readonly number[]): void {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (length !== expected) throw new Error(`onnx-writer: initializer ${name} has ${length} values for dims [${dims.join(',')}] (${expected})`);
}

/** A float initializer, stored as float32 or converted to float16 (round to nearest even). */
export function floatInitializer(name: string, values: Float32Array, dims: readonly number[], dtype: 'float32' | 'float16' = 'float32'): onnx.ITensorProto {
  checkSize(name, values.length, dims);
  const payload = dtype === 'float16' ? toHalfArray(values) : values;
  return { name, dims: [...dims], dataType: DATA_TYPE[dtype], rawData: littleEndianBytes(payload) };
}

/** An int64 initializer (shapes, axes, Slice bounds). */
export function int64Initializer(name: string, values: readonly number[], dims: readonly number[] = [values.length]): onnx.ITensorProto {
  checkSize(name, values.length, dims);
  return { name, dims: [...dims], dataType: DATA_TYPE.int64, rawData: littleEndianBytes(BigInt64Array.from(values, (v) => BigInt(v))) };
}

/**
 * A node attribute. Tagged, because a bare JS number cannot say whether it is an ONNX INT or FLOAT
 * (`alpha: 1` must be a FLOAT, `axis: 1` an INT).
 */
export type Attribute =
  | { kind: 'int'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'float'; value: number }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'string'; value: string };

export const attr = {
  int: (value: number): Attribute => ({ kind: 'int', value }),
  ints: (value: readonly number[]): Attribute => ({ kind: 'ints', value }),
  float: (value: number): Attribute => ({ kind: 'float', value }),
  floats: (value: readonly number[]): Attribute => ({ kind: 'floats', value }),
  string: (value: string): Attribute => ({ kind: 'string', value }),
};

function attributeProto(name: string, a: Attribute): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case 'int':
      return { name, type: T.INT, i: a.value };
    case 'ints':
      return { name, type: T.INTS, ints: [...a.value] };
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'floats':
      return { name, type: T.FLOATS, floats: [...a.value] };
    case 'string':
      return { name, type: T.STRING, s: new Uint8Array(Buffer.from(a.value, 'utf8')) };
  }
}

/** A node of the default (ai.onnx) domain. */
export function node(opType: string, inputs: readonly string[], outputs: readonly string[], attributes: Record<string, Attribute> = {}, name?: string): onnx.INodeProto {
  return {
    opType,
    input: [...inputs],
    output: [...outputs],
    name: name ?? `${opType}_${outputs[0] ?? ''}`,
    attribute: Object.entries(attributes).map(([key, value]) => attributeProto(key, value)),
  };
}

export interface ModelSpec {
  graphName: string;
  nodes: readonly onnx.INodeProto[];
  inputs: readonly onnx.IValueInfoProto[];
  outputs: readonly onnx.IValueInfoProto[];
  initializers: readonly onnx.ITensorProto[];
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  /** Written into the model's metadata_props (visible in Netron and to onnxruntime). */
  metadata?: Record<string, string>;
}

/** Encodes a whole model (IR 8, opset {@link OPSET}) to protobuf bytes. Deterministic for equal input. */
export function encodeModel(spec: ModelSpec): Buffer {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: spec.producerName ?? 'avatar-fleet',
    producerVersion: spec.producerVersion ?? '',
    docString: spec.docString ?? '',
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: spec.graphName,
      node: [...spec.nodes],
      input: [...spec.inputs],
      output: [...spec.outputs],
      initializer: [...spec.initializers],
    },
  });
  const bytes = onnx.ModelProto.encode(model).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
