"""Print the GPUs this job sees, as CUDA and nvidia-smi see them."""
import os
import shutil
import subprocess

print("CUDA_VISIBLE_DEVICES =", repr(os.environ.get("CUDA_VISIBLE_DEVICES")))
print("JOB_GPUS (host indices) =", repr(os.environ.get("JOB_GPUS", os.environ.get("CUDA_VISIBLE_DEVICES"))))
if shutil.which("nvidia-smi"):
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    query = ["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"]
    if visible and os.environ.get("NVIDIA_VISIBLE_DEVICES") != "all":
        query += ["-i", visible]
    print(subprocess.run(query, capture_output=True, text=True).stdout.strip())
try:
    import torch

    print("torch sees", torch.cuda.device_count(), "GPU(s)")
except ImportError:
    print("torch is not installed; nvidia-smi above shows the assignment")
