#!/usr/bin/env node
// accuracy.js - runs an exported pstrain model in ONNX Runtime over an IDX
// image file (raw or .gz), as a serving system would: pixels scaled to [0,1],
// input named "input", output "probabilities". With a label file it counts
// the images classified right.
//
//   node accuracy.js MODEL.onnx IMAGES.idx[.gz] [LABELS.idx[.gz]] [--limit N]
//                    [--batch 1000] [--preds OUT.bin]
//
// One sample's shape comes from the model's input (all but the batch axis);
// --limit N uses the first N images only.
// --preds writes each image's predicted class as a little-endian int32.
// Prints one JSON line: {"n", "correct", "accuracy", "predictions_sha"}.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const crypto = require('crypto');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

function fail(msg) {
    process.stderr.write(`accuracy.js: ${msg}\n`);
    process.exit(1);
}

// Reads an IDX file: returns {dims, data (Uint8Array)}; ubyte data only.
function readIdx(file) {
    let buf;
    try {
        buf = fs.readFileSync(file);
    } catch (e) {
        fail(`${file}: ${e.message}`);
    }
    if (file.endsWith('.gz')) {
        try {
            buf = zlib.gunzipSync(buf);
        } catch (e) {
            fail(`${file}: not a gzip file: ${e.message}`);
        }
    }
    if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08)
        fail(`${file}: not an unsigned-byte IDX file`);
    const nd = buf[3];
    if (buf.length < 4 + 4 * nd) fail(`${file}: truncated header`);
    const dims = [];
    for (let i = 0; i < nd; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
    const count = dims.reduce((a, b) => a * b, 1);
    const off = 4 + 4 * nd;
    if (buf.length !== off + count) fail(`${file}: ${buf.length - off} data bytes, header says ${count}`);
    return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + off, count) };
}

async function main() {
    const args = process.argv.slice(2);
    const pos = [];
    let batch = 1000, predsOut = null, limit = 0;
    for (let i = 0; i < args.length; i++) {
        if (args[i] === '--limit') limit = Number(args[++i]);
        else if (args[i] === '--batch') batch = Number(args[++i]);
        else if (args[i] === '--preds') predsOut = args[++i];
        else pos.push(args[i]);
    }
    if (pos.length < 2 || pos.length > 3 || !(batch >= 1))
        fail('usage: accuracy.js MODEL.onnx IMAGES [LABELS] [--limit N] [--batch N] [--preds FILE]');
    const images = readIdx(pos[1]);
    const labels = pos[2] ? readIdx(pos[2]) : null;
    const all = images.dims[0];
    const dim = images.data.length / all;
    if (labels && labels.dims[0] !== all) fail(`${pos[2]}: ${labels.dims[0]} labels for ${all} images`);
    if (!(limit >= 0) || limit > all) fail(`--limit ${limit}: the file has ${all} images`);
    const n = limit || all;

    const session = await ort.InferenceSession.create(pos[0]);
    const meta = session.inputMetadata && session.inputMetadata[0];
    if (!meta || meta.name !== 'input') fail(`${pos[0]}: no input named "input"`);
    const shape = meta.shape.slice(1);
    if (shape.reduce((a, b) => a * b, 1) !== dim)
        fail(`${pos[0]}: input [${meta.shape}] does not take images of ${dim} pixels`);
    const preds = new Int32Array(n);
    let correct = 0;
    for (let lo = 0; lo < n; lo += batch) {
        const B = Math.min(batch, n - lo);
        const x = new Float32Array(B * dim);
        for (let i = 0; i < B * dim; i++) x[i] = images.data[lo * dim + i] / 255;
        const out = await session.run({ input: new ort.Tensor('float32', x, [B].concat(shape)) });
        const p = out.probabilities;
        if (!p) fail(`${pos[0]}: no output named "probabilities"`);
        const classes = p.dims[1];
        for (let b = 0; b < B; b++) {
            let best = 0; // first maximum, as pstrain's argmax
            for (let k = 1; k < classes; k++)
                if (p.data[b * classes + k] > p.data[b * classes + best]) best = k;
            preds[lo + b] = best;
            if (labels && labels.data[lo + b] === best) correct++;
        }
    }
    if (predsOut) fs.writeFileSync(predsOut, Buffer.from(preds.buffer));
    const sha = crypto.createHash('sha256').update(Buffer.from(preds.buffer)).digest('hex');
    console.log(JSON.stringify({ n, correct: labels ? correct : null,
                                 accuracy: labels ? correct / n : null, predictions_sha: sha }));
}

main().catch((e) => fail(e.message));
