"""A tiny job: prints progress, reports the GPUs it was given, writes a JSON report."""
import argparse
import json
import os
import socket
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--report", required=True)
args = parser.parse_args()

print(f"job {os.environ['JOB_ID']} on {socket.gethostname()}, GPUs: {os.environ.get('CUDA_VISIBLE_DEVICES') or 'none'}")
for step in range(1, args.steps + 1):
    print(f"step {step}/{args.steps}")
    time.sleep(0.2)
with open(args.report, "w") as report:
    json.dump({"steps": args.steps, "job": os.environ["JOB_ID"]}, report)
print("done")
