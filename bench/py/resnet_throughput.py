"""PyTorch side of bench/train-throughput: the same CIFAR ResNet (BasicBlocks, 1x1 conv+BN shortcuts)
trained and evaluated with the same batch and thread count. Prints one JSON line.
With --serve it then answers lines "train|infer|frozen LAYOUT SECONDS" on stdin with {"img_s": ...}, so the caller
can alternate short runs of both sides (paired measurements on a machine whose speed drifts)."""
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)), inplace=True)


class ResNet(nn.Module):
    def __init__(self, blocks, widths, classes, cin=3):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, c = [], widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            for b in range(n):
                layers.append(Block(c, w, 2 if (b == 0 and i > 0) else 1))
                c = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x)), inplace=True))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def measure(fn, seconds, warmup):
    for _ in range(warmup):
        fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if time.perf_counter() - t0 >= seconds:
            return n / (time.perf_counter() - t0)


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    b, s = cfg["batch"], cfg["size"]
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "layouts": {}}
    runners = {}
    for layout in ("contiguous", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        net = ResNet(cfg["blocks"], cfg["widths"], 10, cfg.get("cin", 3)).to(memory_format=fmt)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
        x = torch.randn(b, cfg.get("cin", 3), s, s).to(memory_format=fmt)
        y = torch.randint(0, 10, (b,))

        def step(net=net, opt=opt, x=x, y=y):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()

        net.train()
        train = measure(step, cfg["seconds"], 2) * b
        net.eval()

        def infer(net=net, x=x):
            with torch.inference_mode():
                net(x)

        inf = measure(infer, cfg["seconds"], 2) * b
        out["layouts"][layout] = {"train_img_s": train, "infer_img_s": inf}
        if cfg.get("frozen"):
            # TorchScript's inference path: BN folded, conv+ReLU fused where its passes can (not eager PyTorch).
            with torch.no_grad():
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(net)))

            def infer_frozen(frozen=frozen, x=x):
                with torch.no_grad():
                    frozen(x)

            out["layouts"][layout]["infer_frozen_img_s"] = measure(infer_frozen, cfg["seconds"], 3) * b
            runners[("frozen", layout)] = (infer_frozen, net, False)
        # (function, the eager net it uses, whether that net must be in training mode)
        runners[("infer", layout)] = (infer, net, False)
        runners[("train", layout)] = (step, net, True)
    out["train_img_s"] = max(v["train_img_s"] for v in out["layouts"].values())
    out["infer_img_s"] = max(v["infer_img_s"] for v in out["layouts"].values())
    if cfg.get("frozen"):
        out["infer_frozen_img_s"] = max(v["infer_frozen_img_s"] for v in out["layouts"].values())
    print(json.dumps(out), flush=True)
    if "--serve" in sys.argv:
        for line in sys.stdin:
            kind, layout, secs = line.split()
            fn, net, training = runners[(kind, layout)]
            net.train(training)
            print(json.dumps({"img_s": measure(fn, float(secs), 1) * b}), flush=True)


if __name__ == "__main__":
    main()
