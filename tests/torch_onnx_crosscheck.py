#!/usr/bin/env python3
"""Cross-checks ONNX import against a real exporter: torchvision's AlexNet (its architecture
written out here in torch.nn, random seeded weights) exported with torch.onnx at several
opsets, classified with `classify --model FILE.onnx`, against the same weights through the
native description model/alexnet-torchvision.json. Not part of the CI tests (PyTorch is
heavy); run it by hand:

    /usr/bin/python3 tests/torch_onnx_crosscheck.py build/bin/classify [IMAGE...]

Prints, per opset, whether the top 5 of every image agree and the relative L2 distance of all
probabilities; exit status 1 unless the top 5 agree and the distance is at most 1e-5.
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
    torch.manual_seed(0)
    model = AlexNet().eval()
    with open(os.path.join(MODEL_DIR, "alexnet-torchvision.json")) as f:
        preprocess = json.load(f)["preprocess"]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "alexnet.safetensors")
        write_safetensors(weights, model.state_dict())
        native = classify(exe, ["--model", os.path.join(MODEL_DIR, "alexnet-torchvision.json"), "--weights", weights], images)
        for opset in (9, 11, 13, 17):
            path = os.path.join(tmp, f"alexnet-{opset}.onnx")
            torch.onnx.export(model, torch.randn(1, 3, 224, 224), path, input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset)
            with open(path + ".json", "w") as f:
                json.dump({"preprocess": preprocess}, f)
            got = classify(exe, ["--model", path], images)
            num = den = 0.0
            same = True
            for a, b in zip(native["images"], got["images"]):
                pa = {e["index"]: e["probability"] for e in a["top"]}
                pb = {e["index"]: e["probability"] for e in b["top"]}
                same = same and [e["index"] for e in a["top"][:5]] == [e["index"] for e in b["top"][:5]]
                for k, v in pa.items():
                    num += (v - pb[k]) ** 2
                    den += v * v
            rel = math.sqrt(num / den)
            print(f"opset {opset}: top 5 {'the same' if same else 'DIFFERENT'} for {len(images)} images, "
                  f"probabilities relative L2 {rel:.3g}")
            ok = ok and same and rel <= 1e-5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
