#!/usr/bin/env python3
"""Writes torchvision's AlexNet weights as a safetensors file for alexnet-torchvision.json.

Needs PyTorch and torchvision (Debian: apt-get install python3-torch python3-torchvision).

    python3 model/export_torchvision.py                      # downloads IMAGENET1K_V1 weights
    python3 model/export_torchvision.py --state-dict alexnet-owt-7be5be79.pth
    python3 model/export_torchvision.py --random --seed 1    # random weights, for checking

The output (default model/alexnet-torchvision.safetensors) holds every tensor of
torchvision's state_dict under its own name, as little-endian float32.
"""
import argparse
import json
import os
import struct
import sys


def write_safetensors(path, tensors):
    """tensors: dict name -> contiguous float32 torch tensor. Written atomically."""
    header, offset = {}, 0
    for name, t in tensors.items():
        n = t.numel() * 4
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - (8 + len(text)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for t in tensors.values():
            f.write(t.numpy().astype("<f4").tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(here, "alexnet-torchvision.safetensors"))
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--state-dict", help="a torchvision AlexNet .pth file already on disk")
    src.add_argument("--random", action="store_true", help="torchvision's random initialisation")
    ap.add_argument("--seed", type=int, default=0, help="seed for --random")
    args = ap.parse_args()

    try:
        import torch
        import torchvision
    except ImportError as e:
        sys.exit(f"export_torchvision: needs PyTorch and torchvision ({e})")

    if args.random:
        torch.manual_seed(args.seed)
        model = torchvision.models.alexnet()
    elif args.state_dict:
        model = torchvision.models.alexnet()
        model.load_state_dict(torch.load(args.state_dict, map_location="cpu"))
    else:
        model = torchvision.models.alexnet(weights="IMAGENET1K_V1")
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    write_safetensors(args.out, state)
    print(f"wrote {args.out}: {len(state)} tensors, {sum(t.numel() for t in state.values())} parameters")


if __name__ == "__main__":
    main()
