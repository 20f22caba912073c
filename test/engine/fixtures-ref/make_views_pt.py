"""Writes views.pt and views_p4.pt: small torch.save files that exercise what real checkpoints
rarely show but a reader must handle: strided and offset views, shared storages, every dtype,
0-dim and empty tensors, big ints and nested containers. Protocol 2 (torch's default) and 4.
Run once with torch installed: python3 make_views_pt.py; the outputs are committed."""
import os
import sys
from collections import OrderedDict

import torch

out_dir = os.path.dirname(os.path.abspath(__file__))
g = torch.Generator().manual_seed(7)
base = torch.randn(4, 6, generator=g)
cube = torch.randn(2, 3, 4, generator=g)

tensors = OrderedDict()
tensors["base"] = base
tensors["transposed"] = base.t()  # strides (1, 6) into base's storage
tensors["slice_offset"] = base[1:3, 2:5]  # storage offset 8, strides (6, 1)
tensors["row"] = base[2]  # contiguous view at offset 12
tensors["step"] = base[:, ::2]  # strides (6, 2)
tensors["permuted"] = cube.permute(2, 0, 1)
tensors["expanded"] = torch.arange(3.0).reshape(3, 1).expand(3, 4)  # stride 0
tensors["f16"] = torch.randn(5, generator=g).half()
tensors["bf16"] = torch.randn(2, 3, generator=g).bfloat16().t()
tensors["f64_scalar"] = torch.tensor(1.0 / 3.0, dtype=torch.float64)
tensors["i64"] = torch.tensor([2**62, -5, 0, 2**53 + 1], dtype=torch.int64)
tensors["i32"] = torch.tensor([[-(2**31), 7], [2**31 - 1, -1]], dtype=torch.int32)
tensors["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
tensors["i8"] = torch.tensor([-128, 127, -1], dtype=torch.int8)
tensors["u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
tensors["bool"] = torch.tensor([True, False, True])
tensors["empty"] = torch.zeros(0, 3)

doc = {
    "tensors": tensors,
    "nested": {"inner": {"weight": cube[1]}},
    "big_int": 2**60,
    "huge_int": 2**70,
    "neg_int": -123456,
    "flag": True,
    "nothing": None,
    "text": "h\u00e9llo",
    "items": [1, 2.5, "x", (3, "y")],
    "raw": b"\x00\x01\xff",
    "param": torch.nn.Parameter(torch.ones(2)),
    "buffers": OrderedDict([("running_mean", torch.zeros(3))]),  # a second dict of tensors
    "device": torch.device("cuda", 0),
}

for name, protocol in (("views.pt", 2), ("views_p4.pt", 4)):
    torch.save(doc, os.path.join(out_dir, name), pickle_protocol=protocol)
    print(f"wrote {name}", file=sys.stderr)
