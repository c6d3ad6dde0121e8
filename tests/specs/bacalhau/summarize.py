"""Generates synthetic sales (seeded) and writes their summary per region to OUTPUT/summary.json."""
import argparse
import json
import os
import random
import statistics

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, required=True)
parser.add_argument("--output", required=True)
args = parser.parse_args()
digits = int(os.environ.get("SUMMARY_DIGITS", "3"))
rng = random.Random(42)
sales: dict[str, list[float]] = {}
for _ in range(args.rows):
    sales.setdefault(rng.choice(["north", "south", "east", "west"]), []).append(rng.uniform(10, 500))
summary = {region: {"count": len(v), "mean": round(statistics.mean(v), digits)} for region, v in sorted(sales.items())}
os.makedirs(args.output, exist_ok=True)  # Bacalhau creates /outputs; an output folder here is made by the job
with open(os.path.join(args.output, "summary.json"), "w") as out:
    json.dump(summary, out, indent=1)
print(f"summarised {args.rows} sales in {len(summary)} regions")
