#!/usr/bin/env python3
"""Evaluates shipped Fashion-MNIST weights with PyTorch, independently of vkalex: its own
safetensors reader, its own IDX reader, the network rebuilt from torch.nn layers (written here
by hand from model/alexnet-fashion.json's structure), on all 10,000 test images. Not part of
the CI tests (PyTorch is heavy); run it by hand:

    /usr/bin/python3 tests/torch_eval_fashion.py [WEIGHTS.safetensors]

Prints the accuracy and the mean cross-entropy; exit status 1 below 91%.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "model", "alexnet-fashion.json")
DATA = "/usr/share/datasets/fashion-mnist"


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", name
        a, b = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(blob[8 + n + a : 8 + n + b], dtype="<f4").reshape(t["shape"]).copy())
    return out


def read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        blob = f.read()
    assert struct.unpack(">I", blob[:4])[0] == magic
    if magic == 2051:
        count, rows, cols = struct.unpack(">III", blob[4:16])
        return np.frombuffer(blob[16:], dtype=np.uint8).reshape(count, 1, rows, cols)
    (count,) = struct.unpack(">I", blob[4:8])
    return np.frombuffer(blob[8:], dtype=np.uint8)


def network():
    lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    return nn.Sequential(
        nn.Conv2d(1, 24, 5, padding=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(24, 48, 3, padding=1, groups=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(48, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(64, 48, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(192, 256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 10),
    )


def main():
    weights = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "model", "alexnet-fashion.safetensors")
    with open(MODEL) as f:
        desc = json.load(f)
    pre = desc["preprocess"]
    net = network().eval()
    tensors = read_safetensors(weights)
    layers = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    names = [l["name"] for l in desc["layers"] if l["type"] in ("conv2d", "linear")]
    assert len(layers) == len(names)
    with torch.no_grad():
        for m, name in zip(layers, names):
            m.weight.copy_(tensors[name + ".weight"])
            m.bias.copy_(tensors[name + ".bias"])
    images = read_idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"), 2051)
    labels = torch.from_numpy(read_idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"), 2049).astype(np.int64))
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - pre["mean"][0]) / pre["std"][0]
    with torch.no_grad():
        logits = torch.cat([net(x[i : i + 1000]) for i in range(0, len(x), 1000)])
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    loss = nn.functional.cross_entropy(logits, labels).item()
    print(f"{weights}: PyTorch accuracy {100 * accuracy:.2f}% on {len(labels)} test images, mean loss {loss:.4f}")
    return 0 if accuracy >= 0.91 else 1


if __name__ == "__main__":
    sys.exit(main())
