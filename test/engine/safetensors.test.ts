import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  tensor,
  tidy,
  saveSafetensors,
  loadSafetensors,
  decodeSafetensors,
  encodeSafetensors,
} from '../../src/engine/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dr-st-'));

test('safetensors round trip keeps names, shapes, dtypes, values and metadata', () =>
  tidy(() => {
    const file = join(dir, 'a.safetensors');
    saveSafetensors(
      file,
      {
        'conv1.weight': tensor(Float32Array.from([1.5, -2, 3, 4.25]), [1, 1, 2, 2]),
        'bn1.num_batches_tracked': tensor(BigInt64Array.from([7n]), []),
        'x.f64': tensor(Float64Array.from([Math.PI]), [1]),
      },
      { format: 'pt' },
    );
    const { tensors, metadata } = loadSafetensors(file);
    assert.deepEqual(metadata, { format: 'pt' });
    assert.deepEqual(tensors.get('conv1.weight')!.shape, [1, 1, 2, 2]);
    assert.deepEqual(Array.from(tensors.get('conv1.weight')!.toFloat32()), [1.5, -2, 3, 4.25]);
    assert.equal(tensors.get('bn1.num_batches_tracked')!.dtype, 'int64');
    assert.equal((tensors.get('x.f64')!.toArray() as Float64Array)[0], Math.PI);
    // Header layout: u64 LE length, JSON, data aligned to 8.
    const raw = readFileSync(file);
    const n = Number(raw.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0);
    assert.ok(JSON.parse(raw.subarray(8, 8 + n).toString()).__metadata__);
  }));

test('corrupt safetensors give errors naming the file and the problem', () => {
  const bad = join(dir, 'bad.safetensors');
  writeFileSync(bad, Buffer.from([1, 2, 3]));
  assert.throws(() => loadSafetensors(bad), new RegExp(`${bad}.*too short`));
  const good = tidy(() => encodeSafetensors({ w: tensor([1, 2, 3, 4]) }));
  assert.throws(
    () => decodeSafetensors(good.subarray(0, good.length - 4), 'cut.st'),
    /cut.st: tensor 'w' data_offsets/,
  );
  const big = good.slice();
  new DataView(big.buffer).setBigUint64(0, 1n << 40n, true);
  assert.throws(() => decodeSafetensors(big, 'big.st'), /big.st: header length/);
});

const py = '/usr/bin/python3';
const hasTorch = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

// PyTorch has no safetensors package on Debian 12: the Python side parses the format itself (json + struct).
const PY_IO = `
import json, struct, sys, torch
DT = {'F32': torch.float32, 'F64': torch.float64, 'I64': torch.int64, 'I32': torch.int32, 'U8': torch.uint8}
NAME = {v: k for k, v in DT.items()}
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8+n]); d = b[8+n:]
    return {k: torch.frombuffer(bytearray(d[v['data_offsets'][0]:v['data_offsets'][1]]), dtype=DT[v['dtype']]).reshape(v['shape'])
            for k, v in h.items() if k != '__metadata__'}
def save(p, ts):
    h, blobs, off = {}, [], 0
    for k in sorted(ts):
        raw = ts[k].contiguous().numpy().tobytes(); h[k] = {'dtype': NAME[ts[k].dtype], 'shape': list(ts[k].shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw); off += len(raw)
    j = json.dumps(h).encode(); open(p, 'wb').write(struct.pack('<Q', len(j)) + j + b''.join(blobs))
`;

test(
  "PyTorch reads our safetensors and we read PyTorch's",
  { skip: hasTorch ? false : 'python3-torch not installed (apt-get install python3-torch)' },
  () =>
    tidy(() => {
      const ours = join(dir, 'ours.safetensors');
      const theirs = join(dir, 'theirs.safetensors');
      saveSafetensors(ours, {
        w: tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]),
        i: tensor(BigInt64Array.from([5n, -1n]), [2]),
      });
      const script = `${PY_IO}
ts = load(sys.argv[1])
assert ts['w'].shape == (2, 3) and ts['w'].sum().item() == 21.0, ts
assert ts['i'].tolist() == [5, -1]
torch.manual_seed(0)
save(sys.argv[2], {'conv.weight': torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) / 8, 'n': torch.tensor([3], dtype=torch.int64)})
print('ok')`;
      const r = spawnSync(py, ['-c', script, ours, theirs], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const { tensors } = loadSafetensors(theirs);
      assert.deepEqual(tensors.get('conv.weight')!.shape, [2, 3, 2, 2]);
      assert.deepEqual(
        Array.from(tensors.get('conv.weight')!.toFloat32()),
        Array.from({ length: 24 }, (_, i) => i / 8),
      );
      assert.deepEqual(Array.from(tensors.get('n')!.toArray() as BigInt64Array), [3n]);
    }),
);
