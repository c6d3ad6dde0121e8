"""Fits a one-feature linear model by gradient descent and writes it with its metrics."""
import argparse
import json
import logging
import os

parser = argparse.ArgumentParser()
for name in ("params", "features", "validate", "labels", "normalizer", "model", "metrics"):
    parser.add_argument(f"--{name}", required=True)
parser.add_argument("--epochs", type=int, required=True)
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
assert os.path.exists("misc/logging.yaml"), "inputs keep their relative paths"

params = json.load(open(args.params))
scale = float(open(args.normalizer).read())
rows = [line.split("\t") for line in open(args.features).read().split("\n")[1:] if line]
xs, ys = [float(r[0]) / scale for r in rows], [float(r[1]) for r in rows]
labels = open(args.labels).read().split()
w = 0.0
for epoch in range(args.epochs):
    grad = sum((w * x - y) * x for x, y in zip(xs, ys)) / len(xs)
    w -= params["learning_rate"] * grad
    logging.info("epoch %d w=%.4f", epoch + 1, w)
validation = json.load(open(args.validate))
error = sum(abs(w * x / scale - y) for x, y in validation["pairs"]) / len(validation["pairs"])

os.makedirs(os.path.dirname(args.model) or ".", exist_ok=True)  # data/ (outputs' parents: issue 12)
with open(args.model, "w") as out:
    json.dump({"w": w, "labels": labels}, out)
with open(args.metrics, "w") as out:
    out.write(f"epochs={args.epochs} mae={error:.3f}\n")
print(f"run {os.environ['DS_RUN_TAG']} on {os.environ['DEVICE_COUNT']} device(s): w={w:.3f} mae={error:.3f}")
