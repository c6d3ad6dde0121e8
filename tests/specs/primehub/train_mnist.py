"""A stand-in for train_mnist.py: a few epochs of a nearest-centroid classifier on synthetic digits."""
import argparse
import random

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()
rng = random.Random(0)
samples = [(d, [d + rng.gauss(0, 0.3) for _ in range(4)]) for d in range(10) for _ in range(20)]
centroids = {d: [0.0] * 4 for d in range(10)}
for epoch in range(1, args.epochs + 1):
    for digit, features in samples:
        centroids[digit] = [c + (f - c) / epoch for c, f in zip(centroids[digit], features)]
    right = sum(min(centroids, key=lambda d: sum((c - f) ** 2 for c, f in zip(centroids[d], x))) == y
                for y, x in samples)
    print(f"epoch {epoch}: accuracy {right / len(samples):.2f}")
