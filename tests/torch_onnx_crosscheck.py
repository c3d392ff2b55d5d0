#!/usr/bin/env python3
"""Cross-checks ONNX import against a real exporter: torchvision's AlexNet (its architecture
written out here in torch.nn, random seeded weights) exported with torch.onnx at several
opsets, classified with `classify --model FILE.onnx`, against the same weights through the
native description model/alexnet-torchvision.json. And the paper's network written as its two
towers (torch.split and torch.cat around conv2 and conv4-conv5, which torch.onnx exports as
Split and Concat; without LRN, which torch.onnx does not export as one op) against the grouped
description (alexnet2012.json without its LRN layers) with the towers' weights joined. Not
part of the CI tests (PyTorch is heavy); run it by hand:

    /usr/bin/python3 tests/torch_onnx_crosscheck.py build/bin/classify [IMAGE...]

Prints, per opset, whether the top 5 of every image agree and the relative L2 distance of all
probabilities and of all logits; exit status 1 unless the top 5 agree and both distances are
at most 1e-5.
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "..", "model")
SAMPLES = os.path.join(HERE, "..", "samples", "data")


class AlexNet(nn.Module):
    """torchvision.models.alexnet's layers and state_dict names."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(256 * 36, 4096), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, 1000))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Towers(nn.Module):
    """alexnet2012 without LRN, its groups-2 convolutions as two towers: conv2 split and joined
    again, conv4 and conv5 one tower each from the split to the join (as on the paper's GPUs)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 11, 4)
        self.conv2 = nn.ModuleList([nn.Conv2d(48, 128, 5, padding=2) for _ in range(2)])
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.ModuleList([nn.Conv2d(192, 192, 3, padding=1) for _ in range(2)])
        self.conv5 = nn.ModuleList([nn.Conv2d(192, 128, 3, padding=1) for _ in range(2)])
        self.fc = nn.ModuleList([nn.Linear(9216, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1000)])

    def forward(self, x):
        pool = nn.functional.max_pool2d
        x = pool(torch.relu(self.conv1(x)), 3, 2)
        x = torch.cat([torch.relu(c(h)) for c, h in zip(self.conv2, torch.split(x, 48, dim=1))], 1)
        x = torch.relu(self.conv3(pool(x, 3, 2)))
        x = torch.cat([torch.relu(c5(torch.relu(c4(h)))) for c4, c5, h in zip(self.conv4, self.conv5, torch.split(x, 192, dim=1))], 1)
        x = torch.flatten(pool(x, 3, 2), 1)
        x = torch.relu(self.fc[0](x))
        x = torch.relu(self.fc[1](x))
        return self.fc[2](x)

    def grouped_weights(self):
        """The weights of the grouped description: each tower pair joined along the outputs."""
        w = {"conv1.weight": self.conv1.weight, "conv1.bias": self.conv1.bias,
             "conv3.weight": self.conv3.weight, "conv3.bias": self.conv3.bias}
        for name in ("conv2", "conv4", "conv5"):
            pair = getattr(self, name)
            w[name + ".weight"] = torch.cat([c.weight for c in pair], 0)
            w[name + ".bias"] = torch.cat([c.bias for c in pair], 0)
        for i, name in enumerate(("fc6", "fc7", "fc8")):
            w[name + ".weight"], w[name + ".bias"] = self.fc[i].weight, self.fc[i].bias
        return w


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        data = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def classify(exe, args, images):
    out = subprocess.run([exe, "--json", "--top", "1000"] + args + images, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    exe = sys.argv[1]
    images = sys.argv[2:] or sorted(os.path.join(SAMPLES, f) for f in os.listdir(SAMPLES))[:4]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = AlexNet().eval()
        weights = os.path.join(tmp, "alexnet.safetensors")
        write_safetensors(weights, model.state_dict())
        description = os.path.join(MODEL_DIR, "alexnet-torchvision.json")
        ok = compare(exe, "torchvision", model, 224, description, weights, images, tmp) and ok
        # The towers against alexnet2012.json without its LRN layers, in the model folder's
        # terms (labels), the joined weights beside it.
        torch.manual_seed(1)
        towers = Towers().eval()
        with open(os.path.join(MODEL_DIR, "alexnet2012.json")) as f:
            grouped = json.load(f)
        grouped["layers"] = [l for l in grouped["layers"] if l["type"] != "lrn"]
        grouped["labels"] = os.path.join(MODEL_DIR, grouped["labels"])
        grouped["weights"] = os.path.join(tmp, "grouped.safetensors")
        write_safetensors(grouped["weights"], towers.grouped_weights())
        description = os.path.join(tmp, "grouped.json")
        with open(description, "w") as f:
            json.dump(grouped, f)
        ok = compare(exe, "two towers", towers, 227, description, grouped["weights"], images, tmp) and ok
    return 0 if ok else 1


def compare(exe, name, model, size, description, weights, images, tmp):
    """Exports `model` at several opsets and classifies with each as with the description."""
    with open(description) as f:
        preprocess = json.load(f)["preprocess"]
    native = classify(exe, ["--model", description, "--weights", weights], images)
    ok = True
    for opset in (9, 11, 13, 17):
        path = os.path.join(tmp, f"{name.replace(' ', '-')}-{opset}.onnx")
        torch.onnx.export(model, torch.randn(1, 3, size, size), path, input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset)
        with open(path + ".json", "w") as f:
            json.dump({"preprocess": preprocess}, f)
        got = classify(exe, ["--model", path], images)
        same = True
        rel = {}
        for key in ("probability", "logit"):  # random weights give nearly even probabilities: the logits tell more
            num = den = 0.0
            for a, b in zip(native["images"], got["images"]):
                pa = {e["index"]: e[key] for e in a["top"]}
                pb = {e["index"]: e[key] for e in b["top"]}
                same = same and [e["index"] for e in a["top"][:5]] == [e["index"] for e in b["top"][:5]]
                for k, v in pa.items():
                    num += (v - pb[k]) ** 2
                    den += v * v
            rel[key] = math.sqrt(num / den)
        print(f"{name}, opset {opset}: top 5 {'the same' if same else 'DIFFERENT'} for {len(images)} images, "
              f"relative L2 of the probabilities {rel['probability']:.3g}, of the logits {rel['logit']:.3g}")
        ok = ok and same and rel["probability"] <= 1e-5 and rel["logit"] <= 1e-5
    return ok


if __name__ == "__main__":
    sys.exit(main())
