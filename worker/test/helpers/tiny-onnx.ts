/**
 * Writes a one-node ONNX model (y = Relu(x), x float [1, n]) from protobuf field numbers, so the
 * model-loading path runs against a real onnxruntime session without shipping a binary fixture.
 */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

const int = (field: number, value: number) => [...varint(field << 3), ...varint(value)];
const bytes = (field: number, body: number[]) => [...varint((field << 3) | 2), ...varint(body.length), ...body];
const str = (field: number, text: string) => bytes(field, [...Buffer.from(text, 'utf8')]);

function tensorValue(name: string, dims: number[]): number[] {
  const shape = dims.flatMap((d) => bytes(1, int(1, d)));
  const tensorType = [...int(1, 1 /* FLOAT */), ...bytes(2, shape)];
  return [...str(1, name), ...bytes(2, bytes(1, tensorType))];
}

export function reluModel(width = 4): Buffer {
  const node = [...str(1, 'x'), ...str(2, 'y'), ...str(3, 'relu'), ...str(4, 'Relu')];
  const graph = [...bytes(1, node), ...str(2, 'tiny'), ...bytes(11, tensorValue('x', [1, width])), ...bytes(12, tensorValue('y', [1, width]))];
  const opset = [...str(1, ''), ...int(2, 13)];
  return Buffer.from([...int(1, 8), ...bytes(8, opset), ...bytes(7, graph)]);
}
