"""CPU inference latency: the ONNX export in onnxruntime against the same checkpoint in PyTorch, in one process.

    python benchmarks/onnx_vs_pytorch.py outputs/pretrain-wikipedia-30min               # feature-extraction
    python benchmarks/onnx_vs_pytorch.py CKPT --task text-classification --shapes 1x128,32x128

Exports with `scratchbert.export.export_onnx` (checked in onnxruntime to 1e-4) into a temporary folder, then
times both on the same padded batches, alternating over rounds, and prints the median milliseconds per batch
and the ratio as JSON. PyTorch runs fp32 eager under `torch.inference_mode()` on the padded path, with as
many threads as onnxruntime (both default to the machine's cores).
"""

import argparse
import json
import platform
import statistics
import tempfile
import time

import onnxruntime
import torch

from scratchbert.export import INPUT_NAMES, OnnxInterface, export_onnx, load_for_export, padded_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--task", default="feature-extraction")
    parser.add_argument("--shapes", default="1x128,32x128", help="batch x sequence, comma-separated")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    model, task, output_names = load_for_export(args.checkpoint, args.task)
    interface = OnnxInterface(model, output_names)
    report = {"checkpoint": args.checkpoint, "task": task, "cpu": platform.processor() or platform.machine(),
              "torch_threads": torch.get_num_threads(), "onnxruntime": onnxruntime.__version__, "shapes": {}}
    with tempfile.TemporaryDirectory() as folder:
        report["export"] = export_onnx(args.checkpoint, folder, task=task)
        session = onnxruntime.InferenceSession(f"{folder}/model.onnx", providers=["CPUExecutionProvider"])
        for shape in args.shapes.split(","):
            batch_size, seq_len = (int(n) for n in shape.split("x"))
            batch = padded_batch(model.config, batch_size, seq_len)
            feeds = {n: batch[n].numpy() for n in INPUT_NAMES}
            timings = {"pytorch": [], "onnxruntime": []}
            with torch.inference_mode():
                for _ in range(3):  # warm-up
                    interface(*(batch[n] for n in INPUT_NAMES)), session.run(None, feeds)
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    interface(*(batch[n] for n in INPUT_NAMES))
                    timings["pytorch"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    session.run(None, feeds)
                    timings["onnxruntime"].append(time.perf_counter() - start)
            ms = {k: 1000 * statistics.median(v) for k, v in timings.items()}
            report["shapes"][shape] = {"pytorch_ms": round(ms["pytorch"], 2), "onnxruntime_ms": round(ms["onnxruntime"], 2),
                                       "onnxruntime_speedup": round(ms["pytorch"] / ms["onnxruntime"], 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
