#!/usr/bin/env python3
"""PyTorch reference for `ffw bench`: the same steps, shapes and thread count, written the way a
user of the authors' code would run them. Prints the same table as `ffw bench`.

    python3 bench/torch_reference.py --threads 2 --steps 5
"""
import argparse
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class SimpleConvNet(nn.Module):
    """The authors' SimpleConvNet: 4 same-padded convs + BN, ReLU x3, tanh, GAP, linear."""

    def __init__(self, kernel, n_classes=10):
        super().__init__()
        chans = [3, 16, 32, 64, 128]
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], kernel, padding=kernel // 2) for i in range(4))
        self.bns = nn.ModuleList(nn.BatchNorm2d(chans[i + 1]) for i in range(4))
        self.fc = nn.Linear(128, n_classes)

    def features(self, x, weights=None):
        h = x
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            w = conv.weight if weights is None else weights[i]
            h = bn(F.conv2d(h, w, conv.bias, padding=conv.padding))
            h = torch.tanh(h) if i == 3 else F.relu(h)
        return h.mean((2, 3))

    def head(self, f, weight=None):
        return F.linear(f, self.fc.weight if weight is None else weight, self.fc.bias)

    def gated(self):
        return [c.weight for c in self.convs] + [self.fc.weight]


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(2352, 100), nn.Linear(100, 100), nn.Linear(100, 100)])
        self.fc = nn.Linear(100, 10)

    def features(self, x, weights=None):
        h = x.flatten(1)
        for i, l in enumerate(self.hidden):
            h = F.relu(F.linear(h, l.weight if weights is None else weights[i], l.bias))
        return h

    def head(self, f, weight=None):
        return F.linear(f, self.fc.weight if weight is None else weight, self.fc.bias)

    def gated(self):
        return [l.weight for l in self.hidden] + [self.fc.weight]


class BasicBlock(nn.Module):
    """torchvision's BasicBlock (same parameter names)."""

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
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision's resnet18 (state-dict names and init) with `width` channels in layer1 and
    the ImageNet stem (7x7/2 conv + 3x3/2 max-pool, the authors' choice on every benchmark)
    or the CIFAR stem (3x3/1 conv, no pool). `forward` returns the pooled features."""

    def __init__(self, n_classes=10, width=64, stem="imagenet"):
        super().__init__()
        self.stem = stem
        k, s = (7, 2) if stem == "imagenet" else (3, 1)
        self.conv1 = nn.Conv2d(3, width, k, s, k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, stride in enumerate([1, 2, 2, 2]):
            cout = width << i
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.fc = nn.Linear(cin, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.gated_names = [n for n, p in self.named_parameters() if p.dim() > 1]

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        if self.stem == "imagenet":
            h = F.max_pool2d(h, 3, 2, 1)
        for i in range(1, 5):
            h = getattr(self, f"layer{i}")(h)
        return h.mean((2, 3))

    def features(self, x, weights=None):
        if weights is None:
            return self(x)
        return torch.func.functional_call(self, dict(zip(self.gated_names, weights)), (x,), strict=False)

    def head(self, f, weight=None):
        return F.linear(f, self.fc.weight if weight is None else weight, self.fc.bias)

    def gated(self):
        params = dict(self.named_parameters())
        return [params[n] for n in self.gated_names]


class Gate(torch.autograd.Function):
    """min(2*sigmoid(x), 1) with the gradient of 2*sigmoid(x) (the authors' straight-through)."""

    @staticmethod
    def forward(ctx, x):
        s = torch.sigmoid(x)
        ctx.save_for_backward(s)
        return torch.clamp(2 * s, max=1.0)

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        return g * 2 * s * (1 - s)


def mutual_information(p, b, k):
    onehot = F.one_hot(b, k).float()
    joint = torch.clamp(onehot.t() @ p / p.shape[0], min=1e-15)
    prod = torch.clamp(joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True), min=1e-15)
    return (joint * torch.log(joint / prod)).sum() / torch.log(torch.tensor(float(k)))


def measure(batch, steps, step):
    step()
    rates = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        rates.append(batch / (time.perf_counter() - t))
    return sorted(rates)[len(rates) // 2]


def bench(name, model, batch, steps, side=28, adam=False):
    x = torch.randn(max(batch, 1000), 3, side, side)
    y = torch.arange(x.shape[0]) % 10
    b = (torch.arange(x.shape[0]) // 10) % 10
    xb, yb, bb = x[:batch], y[:batch], b[:batch]

    if adam:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def vanilla():
        model.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model.head(model.features(xb)), yb).backward()
        opt.step()

    vanilla_rate = measure(batch, steps, vanilla)

    base = [w.detach().clone() for w in model.gated()]
    gates = [torch.zeros_like(w, requires_grad=True) for w in base]
    gate_opt = torch.optim.Adam(gates, lr=1e-3, weight_decay=1e-4)
    probe = nn.Linear(base[-1].shape[1], 10)
    probe_opt = torch.optim.SGD(probe.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def ffw():
        ws = [w * Gate.apply(m) for w, m in zip(base, gates)]
        f = model.features(xb, ws[:-1])
        ce = F.cross_entropy(model.head(f, ws[-1]), yb)
        mi = mutual_information(F.softmax(probe(f), 1), bb, 10)
        gate_opt.zero_grad(set_to_none=True)
        probe_opt.zero_grad(set_to_none=True)
        (ce + 10 * mi).backward()
        probe_opt.zero_grad(set_to_none=True)
        F.cross_entropy(probe(f.detach()), bb).backward()
        gate_opt.step()
        probe_opt.step()

    ffw_rate = measure(batch, steps, ffw)

    def evaluate():
        with torch.no_grad():
            model.head(model.features(x[:1000])).sum().item()

    eval_rate = measure(1000, steps, evaluate)
    print(f"{name:<14} {batch:>6} {vanilla_rate:>14.1f} {ffw_rate:>14.1f} {eval_rate:>14.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=[], help="cases to run (default all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{'case':<14} {'batch':>6} {'vanilla img/s':>14} {'ffw img/s':>14} {'eval img/s':>14}"
          f"   (torch {torch.__version__}, threads {args.threads}, median of {args.steps} steps)")
    cases = {
        "simpleconv-k7": (lambda: SimpleConvNet(7), 100, {}),
        "simpleconv-k3": (lambda: SimpleConvNet(3), 100, {}),
        "mlp": (Mlp, 256, {}),
        # Corrupted CIFAR-10's model and vanilla optimiser (PROTOCOL section 5).
        "resnet18": (ResNet18, 128, {"side": 32, "adam": True}),
    }
    for name, (build, batch, extra) in cases.items():
        if not args.only or name in args.only:
            bench(name, build(), batch, args.steps, **extra)
    # Peak resident memory of the whole process (run one case with --only to compare a step).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
