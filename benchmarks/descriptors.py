"""Forward+backward time and peak memory of each descriptor over all 3 x N slices of N^3 volumes.

For every descriptor and size N, a random field of N^3 voxels is sliced along z, y and x (3N
slices of N x N), the descriptor's normalized error against a target is computed for all slices
at once and back-propagated to the field. The VGG-19 part (the network's forward and backward
passes) is compared with plain ``torch.conv2d`` calls of the same shapes on the same machine in
the same run (achieved GFLOP/s and their ratio, ``efficiency``: the target is at least 70 %, i.e.
no overhead beyond the convolutions); the whole Gram descriptor, whose matrix products add about
5 % to the flops, is reported beside it (``descriptor_efficiency``).

Peak memory: CUDA's ``max_memory_allocated`` on a GPU; on the CPU, the growth of the process's
peak RSS is not resettable, so each (descriptor, N) case runs in a fresh subprocess and reports
its own ``ru_maxrss`` minus the RSS before the measured call.

Usage::

    NAPARI_DMCR_VGG19_WEIGHTS=/path/to/vgg19_normalized.npz \\
        python benchmarks/descriptors.py [--device cpu|cuda] [--sizes 32 64 128] [--threads 2]

Writes ``benchmarks/results/descriptors.json`` on the CPU and ``descriptors_cuda.json`` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DESCRIPTORS = ("vf", "s2", "s3", "tv", "gram")


def measure(name, size, device, repeats):
    """Time and memory of one forward+backward of descriptor ``name`` over the 3N slices."""
    import torch

    from napari_dmcr.descriptors import (
        DescriptorSpec,
        descriptor_targets,
        normalized_errors,
        volume_slices,
    )

    # S2 lags must stay below half the slice: 15 at N = 32.
    limits = {"s2": min(16, size // 2 - 1), "s3": 6}
    spec = DescriptorSpec(name, limit_to=limits.get(name), levels=2 if name == "s3" else 1)
    generator = torch.Generator().manual_seed(0)
    field = torch.rand((size,) * 3, generator=generator).to(device)
    targets = {
        name: [t for t in descriptor_targets([spec], torch.rand((1, size, size), generator=generator).to(device))[name]]
    }

    def step():
        variable = field.clone().requires_grad_(True)
        stack = torch.cat([volume_slices(variable, axis) for axis in range(3)])
        normalized_errors([spec], stack, targets)[name].sum().backward()
        return variable.grad

    step()  # warm-up: kernels, the VGG network on this device
    _synchronize(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_bytes()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    _synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    peak = (torch.cuda.max_memory_allocated() if device == "cuda" else _peak_rss_bytes()) - before
    return {
        "descriptor": name,
        "N": size,
        "slices": 3 * size,
        "seconds": seconds,
        "peak_memory_mb": max(peak, 0) / 2**20,
    }


def vgg_against_conv2d(size, device, repeats):
    """Achieved GFLOP/s of the VGG part, of the whole Gram descriptor and of bare conv2d calls.

    The VGG part is the network's forward pass and its backward pass from given gradients at the
    five Gram layers; the descriptor adds the Gram products (their flops counted too). The bare
    calls are one ``F.conv2d`` per layer on an input of the same shape, forward and input
    gradient. The timings alternate between the three and keep each one's fastest repeat, so
    that a neighbour's load on the machine hits all three alike.
    """
    import torch
    import torch.nn.functional as F

    from napari_dmcr.descriptors import gram_matrices
    from napari_dmcr.descriptors.gram import vgg19_features

    network = vgg19_features(device)
    generator = torch.Generator().manual_seed(0)
    batch = 3 * size
    field = torch.rand((batch, size, size), generator=generator).to(device)
    shapes, side = [], size
    for block, count in enumerate((2, 2, 4, 4, 4)):
        if block:
            side //= 2
        for _ in range(count):
            shapes.append(side)
    conv_flops = 0.0
    for conv, side in zip(network.convs, shapes):
        out_channels, in_channels = conv.weight.shape[:2]
        # forward + input gradient: 2 convolutions of 2 * 9 * C_in * C_out flops per output pixel
        conv_flops += 2 * 2 * 9 * in_channels * out_channels * side * side * batch
    gram_flops = 0.0
    for block_end in (1, 3, 7, 11, 15):
        channels, side = network.convs[block_end].weight.shape[0], shapes[block_end]
        # G = A A^T and its backward (dG + dG^T) A: 2 products of 2 * C * C * k flops
        gram_flops += 2 * 2 * channels * channels * side * side * batch

    with torch.no_grad():
        activation_grads = [torch.randn(a.shape, generator=generator).to(device) for a in network(field)]

    def vgg_part():
        variable = field.clone().requires_grad_(True)
        torch.autograd.backward(network(variable), activation_grads)

    def descriptor():
        variable = field.clone().requires_grad_(True)
        sum(g.sum() for g in gram_matrices(variable)).backward()

    def timed(function):
        _synchronize(device)
        start = time.perf_counter()
        function()
        _synchronize(device)
        return time.perf_counter() - start

    def bare():
        # One layer at a time, its input made outside the clock: all 16 inputs at once would not
        # fit beside the descriptor's activations at N = 128.
        seconds = 0.0
        for conv, side in zip(network.convs, shapes):
            shape = (batch, conv.weight.shape[1], side + 2, side + 2)
            x = torch.rand(shape, generator=generator).to(device).requires_grad_(True)
            seconds += timed(lambda conv=conv, x=x: F.conv2d(x, conv.weight, conv.bias).sum().backward())
        return seconds

    measures = {"vgg_part": lambda: timed(vgg_part), "descriptor": lambda: timed(descriptor), "conv2d": bare}
    timings = {label: float("inf") for label in measures}
    for measure_once in measures.values():
        measure_once()  # warm-up
    for _ in range(repeats):
        for label, measure_once in measures.items():
            timings[label] = min(timings[label], measure_once())
    return {
        "N": size,
        "slices": batch,
        "conv_gflop": conv_flops / 1e9,
        "gram_gflop": gram_flops / 1e9,
        "seconds": timings,
        "conv2d_gflops": conv_flops / timings["conv2d"] / 1e9,
        "vgg_part_gflops": conv_flops / timings["vgg_part"] / 1e9,
        "descriptor_gflops": (conv_flops + gram_flops) / timings["descriptor"] / 1e9,
        "efficiency": timings["conv2d"] / timings["vgg_part"],
        "descriptor_efficiency": (conv_flops + gram_flops) / timings["descriptor"] / (conv_flops / timings["conv2d"]),
    }


def _synchronize(device):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _rss_bytes():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(args):
    """Run one case in this process and print its JSON (a fresh process per CPU case)."""
    import torch

    torch.set_num_threads(args.threads)
    if args.case == "vgg":
        result = vgg_against_conv2d(args.size, args.device, args.repeats)
    else:
        result = measure(args.case, args.size, args.device, args.repeats)
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=(*DESCRIPTORS, "vgg"),
        help="rerun these cases only; the file keeps the other rows",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return _child(args)
    import torch

    sizes = args.sizes or ([32, 64, 128] if args.device == "cpu" else [32, 64, 128, 256])
    names = args.cases or DESCRIPTORS + ("vgg",)
    cases = [(name, size) for size in sizes for name in DESCRIPTORS if name in names]
    cases += [("vgg", size) for size in sizes if "vgg" in names]
    rows = {"descriptors": [], "vgg_vs_conv2d": []}
    for case, size in cases:
        command = [
            sys.executable,
            __file__,
            "--case",
            case,
            "--size",
            str(size),
            "--device",
            args.device,
            "--threads",
            str(args.threads),
            "--repeats",
            str(args.repeats),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            row = {"descriptor": case, "N": size, "error": error}
        else:
            row = json.loads(done.stdout.strip().splitlines()[-1])
        rows["vgg_vs_conv2d" if case == "vgg" else "descriptors"].append(row)
        print(json.dumps(row), flush=True)
    out = RESULTS / ("descriptors.json" if args.device == "cpu" else f"descriptors_{args.device}.json")
    if args.cases and out.exists():
        previous = json.loads(out.read_text())
        for key, fresh in rows.items():
            rerun = {(row.get("descriptor", "vgg"), row["N"]) for row in fresh}
            kept = [row for row in previous.get(key, []) if (row.get("descriptor", "vgg"), row["N"]) not in rerun]
            rows[key] = sorted(kept + fresh, key=lambda row: row["N"])
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    report = {
        "benchmark": "descriptors: forward+backward over all 3N slices of N^3",
        "device": args.device,
        "device_name": device_name,
        "threads": args.threads,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "settings": {
            "s2": "map, max_lag 16 (15 at N = 32)",
            "s3": "limit_to 6, 2 levels",
            "gram": "5 layers, periodic",
            "dtype": "float32",
            "repeats": args.repeats,
        },
        **rows,
    }
    from napari_dmcr.io.atomic import write_json

    write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
