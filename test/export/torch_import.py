# Fixtures for test/export/import.test.ts: torchvision resnet18s (ImageNet layout, and a CIFAR variant with a 3x3
# stem and no max-pool) and a narrow CIFAR ResNet18 of torchvision BasicBlocks (for PI), random weights with BN
# statistics from a batch, saved as safetensors (written by hand: Debian has no safetensors package), torch.save state
# dicts and torch.onnx.export graphs, with n inputs and the eval-mode logits PyTorch computes for them.
import json
import struct
import sys

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
torch.manual_seed(0)
torch.set_num_threads(1)
DT = {torch.float32: 'F32', torch.int64: 'I64'}


def save_safetensors(path, sd):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        b = v.detach().contiguous().numpy().tobytes()
        header[k] = {'dtype': DT[v.dtype], 'shape': list(v.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def calibrate(m, size):
    # running statistics of one random batch, random affine BN: activations stay O(1), as in a trained network
    bns = [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
    with torch.no_grad():
        for b in bns:
            b.weight.uniform_(0.5, 1.5)
            b.bias.normal_(0, 0.2)
            b.momentum = 1.0
        m.train()(torch.randn(16, 3, size, size))
        for b in bns:
            b.momentum = 0.1
    return m.eval()


class Tiny(nn.Module):
    """ResNet18's (or, with Bottleneck and one block per stage, ResNet50's) structure and torchvision names at 1/16
    of its widths (4, 8, 16, 32), CIFAR stem."""

    def __init__(self, classes, width=4, block=BasicBlock, blocks=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        layers, inp = [], width
        for s in range(4):
            w, stride = width << s, 1 if s == 0 else 2
            o = w * block.expansion
            down = None if stride == 1 and inp == o else nn.Sequential(conv1x1(inp, o, stride), nn.BatchNorm2d(o))
            layers.append(nn.Sequential(block(inp, w, stride, down), *[block(o, w) for _ in range(blocks - 1)]))
            inp = o
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inp, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def make(name, size, classes, layout):
    if layout == 'tiny':
        m = Tiny(classes)
    elif layout == 'tiny-bottleneck':
        m = Tiny(classes, block=Bottleneck, blocks=1)
    else:
        m = torchvision.models.resnet18(num_classes=classes)
    if layout == 'cifar':
        m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
    calibrate(m, size)
    x = torch.randn(n, 3, size, size)
    with torch.no_grad():
        logits = m(x)
    sd = m.state_dict()
    save_safetensors(f'{out}/{name}.safetensors', sd)
    torch.save(sd, f'{out}/{name}.pth')
    if layout == 'tiny':
        torch.save(m, f'{out}/{name}.module.pth')  # the whole module: the importer must refuse it by name
        torch.save({'epoch': 3, 'state_dict': sd}, f'{out}/{name}.ckpt.pth')  # a checkpoint dict
    save_safetensors(f'{out}/{name}.io.safetensors', {'x': x, 'logits': logits})
    # ImageNet: the default export (BN folded into the convs); CIFAR: BN kept as BatchNormalization nodes
    folded = layout in ('imagenet', 'tiny-bottleneck')
    mode = torch.onnx.TrainingMode.EVAL if folded else torch.onnx.TrainingMode.PRESERVE
    torch.onnx.export(m, x[:1], f'{out}/{name}.onnx', input_names=['input'], output_names=['logits'],
                      dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}}, training=mode,
                      do_constant_folding=folded, opset_version=13)


make('imagenet', 32, 5, 'imagenet')
make('cifar', 32, 10, 'cifar')
make('tiny', 8, 3, 'tiny')
make('tinyb', 16, 4, 'tiny-bottleneck')
print(json.dumps({'torch': torch.__version__, 'torchvision': torchvision.__version__}))
