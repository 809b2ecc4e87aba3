# Runs an ONNX model from `hebb export --onnx` in onnxruntime (CPU) on the test images that a
# `hebb eval --predictions` CSV lists, and compares the predicted classes image by image.
# Exits 1 when a prediction differs where hebb's two best scores are not tied (their gap above
# 1e-5 of the largest |score|), or when a score differs by more than 1e-3 of that scale.
# Usage: python3 benches/onnx_predictions.py MODEL.onnx DATA_DIR PREDICTIONS.csv
#   DATA_DIR: an MNIST folder (t10k-images-idx3-ubyte.gz) or CIFAR-10's cifar-10-batches-bin.
# Needs numpy and onnxruntime (pip install numpy onnxruntime).
import csv
import gzip
import os
import sys

import numpy as np
import onnxruntime as ort

model, data, predictions = sys.argv[1:4]
if os.path.exists(os.path.join(data, "test_batch.bin")):
    raw = np.fromfile(os.path.join(data, "test_batch.bin"), np.uint8).reshape(-1, 3073)
    images = raw[:, 1:].reshape(-1, 3, 32, 32)
else:
    with gzip.open(os.path.join(data, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
rows = list(csv.DictReader(open(predictions)))
index = np.array([int(r["index"]) for r in rows])
label = np.array([int(r["label"]) for r in rows])
hebb = np.array([int(r["predicted"]) for r in rows])
hebb_scores = np.array([[float(r[k]) for k in r if k.startswith("score_")] for r in rows])
x = images[index].astype(np.float32) / 255.0  # the loaders' scaling

session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
scores = np.concatenate(
    [session.run(["scores"], {"images": x[i : i + 256]})[0] for i in range(0, len(x), 256)]
)
ours = scores.argmax(axis=1)
scale = np.max(np.abs(hebb_scores))
top2 = np.sort(hebb_scores, axis=1)[:, -2:]
tied = (top2[:, 1] - top2[:, 0]) <= 1e-5 * scale
differ = ours != hebb
score_err = np.max(np.abs(scores - hebb_scores)) / scale
print(
    f"{os.path.basename(model)}: {len(rows)} images, accuracy onnxruntime {np.mean(ours == label):.4f} "
    f"hebb {np.mean(hebb == label):.4f}; {int(differ.sum())} predictions differ "
    f"({int((differ & tied).sum())} of them at tied scores); max |score difference| {score_err:.2e} "
    f"of the score scale"
)
sys.exit(1 if (differ & ~tied).any() or score_err > 1e-3 else 0)
