"""PyTorch reference for bench/engine/bench.ts: the same work through python3-torch, in one process.

Reads one request per line on stdin ("<case> <repetitions>"), runs it, and answers one JSON line
{"case": ..., "seconds": [...]} with the wall time of each repetition (after a warm-up call). The
TypeScript side alternates between itself and this process so that both see the same machine load.
"""
import json
import os
import sys
import time

import torch

torch.set_num_threads(int(os.environ.get("DIFFREG_THREADS") or len(os.sched_getaffinity(0))))
torch.manual_seed(0)


def conv_inputs(grad):
    x = torch.randn(1, 64, 64, 64, 64, requires_grad=grad)
    w = torch.randn(64, 64, 3, 3, 3, requires_grad=grad)
    b = torch.randn(64, requires_grad=grad)
    return x, w, b


def make(case):
    if case == "conv3d_fwd":
        x, w, b = conv_inputs(False)
        return lambda: torch.nn.functional.conv3d(x, w, b, padding=1)
    if case == "conv3d_fwd_bwd":
        x, w, b = conv_inputs(True)
        g = torch.ones(1, 64, 64, 64, 64)

        def step():
            x.grad = w.grad = b.grad = None
            torch.nn.functional.conv3d(x, w, b, padding=1).backward(g)

        return step
    if case == "block":
        x, w, b = conv_inputs(False)
        gw, gb = torch.ones(64), torch.zeros(64)
        F = torch.nn.functional
        return lambda: F.conv3d(F.silu(F.group_norm(x, 32, gw, gb, 1e-5)), w, b, padding=1)
    if case == "matmul_argmax":
        a = torch.randn(4096, 256)
        m = torch.randn(256, 32768)
        return lambda: torch.matmul(a, m).argmax(dim=-1)
    if case == "tiny_op":
        a, c = torch.randn(2), torch.randn(2)

        def calls():
            for _ in range(10000):
                a.add(c)

        return calls
    raise ValueError(f"unknown case {case}")


cache = {}
for line in sys.stdin:
    case, reps = line.split()
    if case not in cache:
        cache.clear()
        cache[case] = make(case)
        cache[case]()
    fn = cache[case]
    times = []
    for _ in range(int(reps)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"case": case, "seconds": times}), flush=True)
