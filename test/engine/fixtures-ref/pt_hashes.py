"""Independent reference for the TypeScript torch.save reader: loads each checkpoint with torch and
prints JSON with, per file, every tensor (dotted path, dtype, shape, SHA-256 of the C-order bytes
from numpy) and every other leaf value, both in traversal order.

Usage: python3 pt_hashes.py SHARED_FIXTURES_DIR > pt-hashes.json"""
import hashlib
import json
import os
import sys

try:
    import torch
except ImportError:
    print("pt_hashes.py: needs torch (python3-torch)", file=sys.stderr)
    sys.exit(3)  # tells the test to try another python or skip

HERE = os.path.dirname(os.path.abspath(__file__))
SAFE = 2**53 - 1  # Number.MAX_SAFE_INTEGER: larger ints become bigint in JS


def leaf(v):
    """Non-tensor leaves in a JSON form the TypeScript test reproduces."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if -SAFE <= v <= SAFE else {"int": str(v)}
    if isinstance(v, float):
        return v
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if isinstance(v, torch.device):
        return str(v)
    raise TypeError(f"unexpected leaf {type(v)}")


def walk(v, path, tensors, values):
    if isinstance(v, torch.Tensor):
        t = v.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)  # numpy has no bfloat16; the bytes are the same
        tensors.append(
            {
                "name": path,
                "dtype": str(v.dtype).replace("torch.", ""),
                "shape": list(v.shape),
                "sha256": hashlib.sha256(t.numpy().tobytes(order="C")).hexdigest(),
            }
        )
    elif isinstance(v, dict):
        for k, x in v.items():
            walk(x, f"{path}.{k}" if path else str(k), tensors, values)
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            walk(x, f"{path}.{i}", tensors, values)
    else:
        values[path] = leaf(v)


def describe(path):
    tensors, values = [], {}
    walk(torch.load(path, map_location="cpu"), "", tensors, values)
    return {"tensors": tensors, "values": values}


fixtures = sys.argv[1]
files = {
    "maisi-unet-tiny/unet.pt": os.path.join(fixtures, "maisi-unet-tiny", "unet.pt"),
    "maisi-vae-tiny/autoencoder.pt": os.path.join(fixtures, "maisi-vae-tiny", "autoencoder.pt"),
    "views.pt": os.path.join(HERE, "views.pt"),
    "views_p4.pt": os.path.join(HERE, "views_p4.pt"),
}
json.dump({name: describe(p) for name, p in files.items()}, sys.stdout, indent=1)
print()
