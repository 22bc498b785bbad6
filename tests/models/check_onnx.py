#!/usr/bin/env python3
"""Checks an ONNX model exported by Prelude against an independent runtime.

  check_onnx.py MODEL.onnx PREDICTIONS.jsonl IMAGES.idx[.gz] N

The model must pass onnx's checker (full check, with shape inference), declare
opset >= 13, and, run by OpenCV's DNN module on the first N images (pixels scaled
to [0, 1]), give logits equal to Prelude's (`prelude-worker predict` lines) within
1e-4 relative to the largest logit. Exit 0 when all holds, 1 otherwise.
"""
import gzip
import json
import struct
import sys

import cv2
import numpy as np
import onnx


def read_idx_images(path, n):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051, f"{path}: not an IDX image file"
        n = min(n, count)
        data = np.frombuffer(f.read(n * rows * cols), dtype=np.uint8)
    return data.reshape(n, 1, rows, cols).astype(np.float32) / 255.0


def main():
    model_path, predictions_path, images_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 13, f"opset {opset} < 13"
    ops = sorted({node.op_type for node in model.graph.node})
    meta = {p.key: p.value for p in model.metadata_props}

    net = cv2.dnn.readNetFromONNX(model_path)
    images = read_idx_images(images_path, n)
    ours = []
    with open(predictions_path) as f:
        for line in f:
            ours.append(json.loads(line)["logits"])
    ours = np.array(ours[:n], dtype=np.float64)
    assert ours.shape[0] == images.shape[0], f"{ours.shape[0]} predictions for {images.shape[0]} images"
    theirs = []
    for i in range(0, len(images), 25):  # OpenCV takes any batch; keep it small
        net.setInput(images[i:i + 25])
        theirs.append(net.forward())
    theirs = np.concatenate(theirs).astype(np.float64)
    scale = np.abs(ours).max()
    worst = np.abs(theirs - ours).max() / scale
    agree = float((theirs.argmax(1) == ours.argmax(1)).mean())
    print(json.dumps({"ops": ops, "opset": opset, "images": len(images), "max_rel_diff": worst,
                      "argmax_agreement": agree, "mean": meta.get("mean"), "std": meta.get("std")}))
    if not worst <= 1e-4:
        print(f"FAIL: OpenCV's logits differ from Prelude's by {worst:.3g} of the largest logit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
