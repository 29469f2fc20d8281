"""Evaluates a deepreduce model directory in PyTorch on raw IDX test images, preparing them as docs/export.md says.

usage: torch_preprocess.py MODEL_DIR IMAGES_IDX_GZ LABELS_IDX_GZ N

Prints JSON: {"documented": [top-1 per image], "zero_pad_after": [...], "labels": [...]}. `documented` follows the
recipe of docs/export.md ("Preparing inputs") word for word, reading only model.json's `input` and `spec.inputSize`;
`zero_pad_after` is the recipe the docs used to give (normalise, then pad with zeros), which the test must reject.
"""
import gzip
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import build, load_safetensors  # noqa: E402


def read_idx(path, n):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(f'>{ndim}I', data[4:4 + 4 * ndim])
    body = torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8)
    return body.reshape(dims)[:n]


def prepare(pixels, inp, input_size):
    """docs/export.md: x = pixel/255; pad with black pixels (x = 0) from padFrom to inputSize; then normalise."""
    x = pixels.float() / 255
    if 'padFrom' in inp:
        p = (input_size - inp['padFrom']) // 2
        x = F.pad(x, (p, p, p, p), value=0.0)
    mean = torch.tensor(inp['mean']).view(1, -1, 1, 1)
    std = torch.tensor(inp['std']).view(1, -1, 1, 1)
    return (x - mean) / std


def prepare_zero_pad_after(pixels, inp, input_size):
    """What the docs said before: pixel/255, normalise, then zero-pad."""
    mean = torch.tensor(inp['mean']).view(1, -1, 1, 1)
    std = torch.tensor(inp['std']).view(1, -1, 1, 1)
    x = (pixels.float() / 255 - mean) / std
    if 'padFrom' in inp:
        p = (input_size - inp['padFrom']) // 2
        x = F.pad(x, (p, p, p, p), value=0.0)
    return x


def main():
    model_dir, images, labels, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(1)
    with open(os.path.join(model_dir, 'model.json')) as f:
        info = json.load(f)
    spec, inp = info['spec'], info['input']
    model = build(spec)
    model.load_state_dict(load_safetensors(os.path.join(model_dir, 'model.safetensors')), strict=True)
    model.eval()
    pixels = read_idx(images, n).unsqueeze(1)  # IDX images are [N, H, W]: one channel
    out = {'labels': read_idx(labels, n).tolist()}
    with torch.no_grad():
        for name, fn in (('documented', prepare), ('zero_pad_after', prepare_zero_pad_after)):
            out[name] = model(fn(pixels, inp, spec['inputSize'])).argmax(1).tolist()
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
