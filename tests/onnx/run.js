// run.js - runs an exported ONNX model with ONNX Runtime, for the onnx suite
// of test_pstrain (tests/test_onnx.c):
//
//   node run.js MODEL IN DIMS OUT [IN DIMS OUT ...]
//
// IN holds the input as raw little-endian float32 of shape DIMS ("7,1,28,28");
// the model's "probabilities" go to OUT as raw little-endian float32. One
// session serves every IN/DIMS/OUT triple (several batch sizes in one run).
// Prints the output shape of each run; exits 1 with a message on any error.
'use strict';

const fs = require('fs');
const ort = require('onnxruntime-node');

function readFloats(path, count) {
  const buf = fs.readFileSync(path);
  if (buf.length !== 4 * count)
    throw new Error(`${path}: ${buf.length} bytes, the shape needs ${4 * count}`);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = buf.readFloatLE(4 * i);
  return out;
}

function writeFloats(path, data) {
  const buf = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) buf.writeFloatLE(data[i], 4 * i);
  fs.writeFileSync(path, buf);
}

async function main(args) {
  if (args.length < 4 || (args.length - 1) % 3 !== 0)
    throw new Error('usage: node run.js MODEL IN DIMS OUT [IN DIMS OUT ...]');
  const session = await ort.InferenceSession.create(args[0], {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  for (let k = 1; k < args.length; k += 3) {
    const dims = args[k + 1].split(',').map(Number);
    if (dims.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`bad shape ${args[k + 1]}`);
    const count = dims.reduce((a, b) => a * b, 1);
    const input = new ort.Tensor('float32', readFloats(args[k], count), dims);
    const result = await session.run({ input });
    const probs = result.probabilities;
    if (!probs || probs.type !== 'float32') throw new Error('no float32 output "probabilities"');
    writeFloats(args[k + 2], probs.data);
    console.log(probs.dims.join(','));
  }
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`run.js: ${e.message}`);
  process.exit(1);
});
