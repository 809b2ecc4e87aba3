# Re-implements the krotov-mnist forward from CHECKPOINT.md alone (numpy, float64) and compares
# it, image for image, with `hebb eval --predictions`.
# Usage: python3 benches/checkpoint_forward_numpy.py CHECKPOINT MNIST_DIR PREDICTIONS_CSV
import csv, gzip, sys
import numpy as np
from safetensors.numpy import load_file

ck, mnist, pred = sys.argv[1:4]
t = load_file(ck)
with gzip.open(f"{mnist}/t10k-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float64) / 255.0
with gzip.open(f"{mnist}/t10k-labels-idx1-ubyte.gz") as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8)
W = t["layers.0.weight"].reshape(2000, 784).astype(np.float64)
Wf = t.get("layers.0.forward_weight")
Wf = np.sign(W) * np.abs(W) ** 2 if Wf is None else Wf.reshape(2000, 784).astype(np.float64)
norms = np.linalg.norm(x, axis=1, keepdims=True)
v = x / np.where(norms == 0, 1, norms)                       # unit_norm_input
h = np.maximum(v @ Wf.T, 0) ** 4.5                             # relu_pow 4.5
m, var = t["layers.0.output_bn.running_mean"], t["layers.0.output_bn.running_var"]
h = (h - m) / np.sqrt(var + 1e-5)                              # output batch norm
scores = h @ t["classifier.weight"].T.astype(np.float64) + t["classifier.bias"]
ours = scores.argmax(axis=1)
rows = list(csv.DictReader(open(pred)))
hebb = np.array([int(r["predicted"]) for r in rows])
hebb_scores = np.array([[float(r[f"score_{j}"]) for j in range(10)] for r in rows])
print(f"numpy accuracy {np.mean(ours == y):.4f}, hebb {np.mean(hebb == y):.4f}")
diff = np.nonzero(ours != hebb)[0]
top2 = np.sort(hebb_scores, axis=1)[:, -2:]
print(f"{len(diff)} of {len(y)} predictions differ; score margin at those: "
      f"{[float(top2[i,1]-top2[i,0]) for i in diff[:5]]}")
print(f"max |score difference| relative to the score scale: "
      f"{np.max(np.abs(scores - hebb_scores)) / np.max(np.abs(hebb_scores)):.2e}")
