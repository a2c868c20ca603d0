// run_ctr.js - runs the ONNX model of a click-through model (a model with
// embedding tables: inputs "num" float32 [N,D] and "ids" int64 [N,F]) with
// ONNX Runtime, for the tables suite of test_pstrain (tests/test_tables.c)
// and tests/onnx/verify_ctr.sh:
//
//   node run_ctr.js MODEL NUM IDS OUT [--compare NATIVE --tol T]
//
// NUM and IDS are what `pstrain predict --criteo --dump-inputs PREFIX`
// writes (PREFIX.num: float32, PREFIX.ids: int64, little-endian, a sample
// after another); D and F come from the model's inputs. The samples run in
// batches of BATCH; their probabilities go to OUT as raw little-endian
// float32. With --compare, NATIVE holds pstrain's probabilities, one a line:
// prints the largest difference and exits 1 if it is over T (or NaN) or the
// counts differ. Prints "N,1" (the output's shape for all samples) first.
'use strict';

const fs = require('fs');
const ort = require('onnxruntime-node');

const BATCH = 4096;

function dimOf(session, name, k) {
  const meta = session.inputMetadata ? session.inputMetadata.find((m) => m.name === name) : null;
  if (meta && meta.shape && Number.isInteger(meta.shape[k])) return meta.shape[k];
  throw new Error(`cannot read the shape of input ${name}`);
}

async function main(args) {
  const [model, numPath, idsPath, outPath] = args;
  if (!outPath) throw new Error('usage: node run_ctr.js MODEL NUM IDS OUT [--compare NATIVE --tol T]');
  const ci = args.indexOf('--compare'), ti = args.indexOf('--tol');
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const D = dimOf(session, 'num', 1), F = dimOf(session, 'ids', 1);
  const num = fs.readFileSync(numPath), ids = fs.readFileSync(idsPath);
  const n = num.length / (4 * D);
  if (!Number.isInteger(n) || ids.length !== 8 * F * n)
    throw new Error(`${numPath} and ${idsPath}: not [N,${D}] float32 and [N,${F}] int64 of one N`);
  const out = Buffer.alloc(4 * n);
  for (let b = 0; b < n; b += BATCH) {
    const m = Math.min(BATCH, n - b);
    const x = new Float32Array(m * D), k = new BigInt64Array(m * F);
    for (let i = 0; i < m * D; i++) x[i] = num.readFloatLE(4 * (b * D + i));
    for (let i = 0; i < m * F; i++) k[i] = ids.readBigInt64LE(8 * (b * F + i));
    const r = await session.run({
      num: new ort.Tensor('float32', x, [m, D]),
      ids: new ort.Tensor('int64', k, [m, F]),
    });
    const p = r.probabilities;
    if (!p || p.type !== 'float32' || p.data.length !== m) throw new Error('no float32 [N,1] "probabilities"');
    for (let i = 0; i < m; i++) out.writeFloatLE(p.data[i], 4 * (b + i));
  }
  fs.writeFileSync(outPath, out);
  console.log(`${n},1`);
  if (ci < 0) return;
  const native = fs.readFileSync(args[ci + 1], 'utf8').split('\n').filter((l) => l.length > 0).map(Number);
  const tol = ti >= 0 ? Number(args[ti + 1]) : 1e-5;
  if (native.length !== n) throw new Error(`${args[ci + 1]}: ${native.length} probabilities, ${n} samples`);
  let worst = 0, at = 0;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(out.readFloatLE(4 * i) - native[i]);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  console.log(`${n} samples: max |onnxruntime - pstrain predict| = ${worst.toExponential(3)} (sample ${at}), tolerance ${tol}`);
  if (!(worst <= tol)) process.exit(1);
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`run_ctr.js: ${e.message}`);
  process.exit(1);
});
