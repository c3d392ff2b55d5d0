#!/usr/bin/env python3
"""Cross-checks samples/classify against PyTorch: the same weights, the same exact-size image,
logits compared. Not part of the CI tests (PyTorch is heavy); run it by hand:

    /usr/bin/python3 tests/torch_crosscheck.py build/bin/classify [--device N|NAME]

For each of alexnet2012 (227x227) and alexnet-torchvision (224x224) it writes random weights
(seeded) as safetensors, a random exact-size PNG, runs classify --json --top 1000, builds the
same network in PyTorch (torch.nn layers, written here independently of vkalex), and prints
the relative L2 error and the largest absolute difference of the logits. Exit status 1 if
the relative error exceeds 1e-4.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "..", "model")


def write_safetensors(path, tensors):
    header, offset = {}, 0
    for name, a in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for a in tensors.values():
            f.write(a.astype("<f4").tobytes())


def alexnet2012():
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
        nn.Linear(4096, 1000))


def names2012(net):
    convs = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    layers = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    out = {}
    for n, m in zip(convs, layers):
        out[n + ".weight"] = m.weight
        out[n + ".bias"] = m.bias
    return out


def run(classify, device, model_json, size, net, params, seed):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in params.items():
            fan_in = p[0].numel() if p.dim() > 1 else 0
            bound = np.sqrt(6.0 / fan_in) if fan_in else 0.1
            p.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=tuple(p.shape)).astype(np.float32)))
    pixels = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "w.safetensors")
        image = os.path.join(tmp, "x.png")
        write_safetensors(weights, {k: v.detach().numpy() for k, v in params.items()})
        Image.fromarray(pixels).save(image)
        cmd = [classify, "--model", os.path.join(MODEL_DIR, model_json), "--weights", weights,
               "--top", "1000", "--json", image]
        if device:
            cmd += ["--device", device]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        # Forward times (median of 3 runs) for batch 1 and batch 8 of the same weights.
        times = {}
        for batch in (1, 8):
            runs = []
            for _ in range(3):
                c = cmd[:-1] + ["--top", "1"] + [image] * batch
                runs.append(json.loads(subprocess.run(c, check=True, capture_output=True, text=True).stdout)["timings_ms"]["gpu_forward"])
            times[batch] = sorted(runs)[1]
    got = np.zeros(1000, dtype=np.float64)
    for e in out["images"][0]["top"]:
        got[e["index"]] = e["logit"]
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    x = ((pixels.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)[None]
    net.eval()
    with torch.no_grad():
        # float64 in PyTorch: the reference should not share float32 rounding with the GPU.
        want = net.double()(torch.from_numpy(np.ascontiguousarray(x)).double()).numpy()[0]
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    print(f"{model_json}: device {out['device']['name']}: relative L2 {rel:.3g}, "
          f"max abs diff {np.abs(got - want).max():.3g}, largest logit {np.abs(want).max():.3g}, "
          f"top-1 {int(np.argmax(got))} vs {int(np.argmax(want))}; GPU forward (median of 3): batch 1 {times[1]:.2f} ms, "
          f"batch 8 {times[8]:.2f} ms")
    return rel


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    classify = sys.argv[1]
    device = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else None
    import torchvision
    torch.manual_seed(0)
    net = alexnet2012()
    worst = run(classify, device, "alexnet2012.json", 227, net, names2012(net), 1)
    tv = torchvision.models.alexnet()
    worst = max(worst, run(classify, device, "alexnet-torchvision.json", 224, tv, dict(tv.named_parameters()), 2))
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()
