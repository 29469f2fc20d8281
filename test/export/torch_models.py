"""Loads deepreduce model directories into PyTorch and prints their logits as JSON.

usage: torch_models.py INPUTS_DIR MODEL_DIR...   (INPUTS_DIR/<basename of MODEL_DIR>.safetensors holds 'x', and
'y' for labelled images: then the model's accuracy is printed instead of its logits)

The modules mirror torchvision's resnet.py (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, fc, ...) with one
module per ReLU site, nn.ReLU where the mask keeps the site, nn.Identity where it removes it, and PartialReLU
(torch.where(mask, relu(x), x)) where it keeps some elements (mask.json `partial`: channels or bitmap); WRN mirrors
deepreduce's own layout. Weights load with load_state_dict(strict=True). If torchvision is installed, a model
directory of resnet18-imagenet at alpha 1 with every site kept also loads into torchvision.models.resnet18 itself.
Debian has no `safetensors` Python package, so the format is parsed here (json + struct + torch.frombuffer).
"""
import base64
import importlib.util
import json
import math
import os
import struct
import sys

import torch
from torch import nn

DTYPES = {'F32': torch.float32, 'F64': torch.float64, 'I64': torch.int64, 'I32': torch.int32, 'U8': torch.uint8}


def load_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        b, e = info['data_offsets']
        out[name] = torch.frombuffer(bytearray(body[b:e]), dtype=DTYPES[info['dtype']]).reshape(info['shape'])
    return out


def scale(w, alpha):
    return max(1, math.floor(w * alpha + 0.5))  # JavaScript Math.round, not Python's round-half-even


def conv3x3(i, o, stride=1):
    return nn.Conv2d(i, o, 3, stride, 1, bias=False)


def conv1x1(i, o, stride=1):
    return nn.Conv2d(i, o, 1, stride, bias=False)


class PartialReLU(nn.Module):
    """A partial ReLU site: ReLU on the mask's elements, identity elsewhere (mask: bool [C, H, W])."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer('mask', mask, persistent=False)  # not in the state dict, as in deepreduce

    def forward(self, x):
        return torch.where(self.mask, torch.relu(x), x)


def partial_mask(doc, site):
    """Decodes a mask.json partial entry: {shape, relus, channels | bitmap} (see docs/models.md)."""
    c, h, w = doc['shape']
    numel = c * h * w
    if 'channels' in doc:
        flags = torch.zeros(c, dtype=torch.bool)
        flags[torch.tensor(doc['channels'], dtype=torch.long)] = True
        mask = flags[:, None, None].expand(c, h, w).clone()
    else:
        raw = torch.frombuffer(bytearray(base64.b64decode(doc['bitmap'])), dtype=torch.uint8)
        bits = (raw[:, None] >> torch.arange(8, dtype=torch.uint8)) & 1  # bit i of byte k = element 8k + i
        mask = bits.flatten()[:numel].bool().reshape(c, h, w)
    if int(mask.sum()) != doc['relus']:
        raise SystemExit(f'partial site {site}: relus {doc["relus"]} but the mask keeps {int(mask.sum())}')
    return mask


def relu_site(kept, name):
    if name in kept.partial:
        return PartialReLU(partial_mask(kept.partial[name], name))
    return nn.ReLU() if name in kept else nn.Identity()


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, kept, site, inp, width, stride):
        super().__init__()
        self.conv1 = conv3x3(inp, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = relu_site(kept, f'{site}.relu1')
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = nn.Sequential(conv1x1(inp, width, stride), nn.BatchNorm2d(width)) if stride != 1 or inp != width else None
        self.relu2 = relu_site(kept, f'{site}.relu2')

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, kept, site, inp, width, stride):
        super().__init__()
        out_c = width * 4
        self.conv1 = conv1x1(inp, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = relu_site(kept, f'{site}.relu1')
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = relu_site(kept, f'{site}.relu2')
        self.conv3 = conv1x1(width, out_c)
        self.bn3 = nn.BatchNorm2d(out_c)
        self.downsample = nn.Sequential(conv1x1(inp, out_c, stride), nn.BatchNorm2d(out_c)) if stride != 1 or inp != out_c else None
        self.relu3 = relu_site(kept, f'{site}.relu3')

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, spec, kept):
        super().__init__()
        a = spec['alpha']
        block = Bottleneck if spec['blockType'] == 'bottleneck' else BasicBlock
        imagenet = spec['family'] == 'resnet-imagenet'
        k = 7 if imagenet else 3
        inp = scale(spec.get('stemWidth', spec['widths'][0]), a)
        self.conv1 = nn.Conv2d(spec['inChannels'], inp, k, round(1 / spec['rho']), (k - 1) // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(inp)
        self.relu = relu_site(kept, 'stem.relu')
        self.maxpool = nn.MaxPool2d(3, 2, 1) if imagenet else nn.Identity()
        for s, (n, w) in enumerate(zip(spec['blocks'], spec['widths'])):
            blocks = []
            for b in range(n):
                blocks.append(block(kept, f'stage{s + 1}.block{b}', inp, scale(w, a), 2 if b == 0 and s > 0 else 1))
                inp = scale(w, a) * block.expansion
            setattr(self, f'layer{s + 1}', nn.Sequential(*blocks))
        self.stages = len(spec['blocks'])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inp, spec['numClasses'])

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for s in range(self.stages):
            x = getattr(self, f'layer{s + 1}')(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class WideBasic(nn.Module):
    def __init__(self, kept, site, inp, out_c, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inp)
        self.relu1 = relu_site(kept, f'{site}.relu1')
        self.conv1 = conv3x3(inp, out_c, stride)
        self.bn2 = nn.BatchNorm2d(out_c)
        self.relu2 = relu_site(kept, f'{site}.relu2')
        self.conv2 = conv3x3(out_c, out_c)
        self.downsample = conv1x1(inp, out_c, stride) if stride != 1 or inp != out_c else None

    def forward(self, x):
        a = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(a))))
        return out + (x if self.downsample is None else self.downsample(a))


class WideResNet(nn.Module):
    def __init__(self, spec, kept):
        super().__init__()
        a = spec['alpha']
        inp = scale(spec.get('stemWidth', 16), a)
        self.conv1 = nn.Conv2d(spec['inChannels'], inp, 3, round(1 / spec['rho']), 1, bias=False)
        for s, (n, w) in enumerate(zip(spec['blocks'], spec['widths'])):
            blocks = []
            for b in range(n):
                blocks.append(WideBasic(kept, f'stage{s + 1}.block{b}', inp, scale(w, a), 2 if b == 0 and s > 0 else 1))
                inp = scale(w, a)
            setattr(self, f'layer{s + 1}', nn.Sequential(*blocks))
        self.stages = len(spec['blocks'])
        self.bn = nn.BatchNorm2d(inp)
        self.relu = relu_site(kept, 'head.relu')
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inp, spec['numClasses'])

    def forward(self, x):
        x = self.conv1(x)
        for s in range(self.stages):
            x = getattr(self, f'layer{s + 1}')(x)
        return self.fc(torch.flatten(self.avgpool(self.relu(self.bn(x))), 1))


def build(spec):
    mask = spec.get('mask')
    if mask and 'removed' in mask:
        raise SystemExit('expected a mask with "kept" (saveModelDir writes that form)')
    kept = _Kept(mask)
    return WideResNet(spec, kept) if spec['family'] == 'wrn' else ResNet(spec, kept)


class _Kept:
    """The sites a mask keeps whole (every site without a mask), and its partial sites."""

    def __init__(self, mask):
        self.whole = set(mask['kept']) if mask else None
        self.partial = mask.get('partial', {}) if mask else {}

    def __contains__(self, site):
        return self.whole is None or site in self.whole


def main():
    inputs_dir, dirs = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    has_tv = importlib.util.find_spec('torchvision') is not None
    result = {'torch': torch.__version__, 'torchvision': has_tv, 'models': {}}
    for d in dirs:
        name = os.path.basename(d.rstrip('/'))
        with open(os.path.join(d, 'model.json')) as f:
            spec = json.load(f)['spec']
        sd = load_safetensors(os.path.join(d, 'model.safetensors'))
        inputs = load_safetensors(os.path.join(inputs_dir, f'{name}.safetensors'))
        x = inputs['x']
        model = build(spec)
        # strict: every key of both sides matches (BN's num_batches_tracked, which deepreduce does not store,
        # is filled in by BatchNorm's loader for a state dict without version metadata)
        model.load_state_dict(sd, strict=True)
        entry = {'keys': len(sd)}
        with torch.no_grad():
            if 'y' in inputs:  # labelled images: accuracy (in chunks), not logits
                pred = torch.cat([model.eval()(c).argmax(1) for c in x.split(500)])
                entry['acc'] = (pred == inputs['y'].long()).float().mean().item()
                entry['images'] = len(pred)
                result['models'][name] = entry
                continue
            entry['logits'] = model.eval()(x).flatten().tolist()
            if has_tv and spec['family'] == 'resnet-imagenet' and spec['alpha'] == 1 and spec['blocks'] == [2, 2, 2, 2] and not spec.get('mask'):
                import torchvision
                tv = torchvision.models.resnet18(num_classes=spec['numClasses'])
                tv.load_state_dict(sd, strict=True)
                entry['torchvision_logits'] = tv.eval()(x).flatten().tolist()
        result['models'][name] = entry
    json.dump(result, sys.stdout)


if __name__ == '__main__':
    main()
