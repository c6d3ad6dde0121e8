"""Runs a notebook cell inside a job: shipped as ``_jj_run.py`` beside ``_jj_cell.py``.

Standard library only, so it runs in any image with Python. Variables named by ``--in`` arrive
pickled in ``_jj_in.pkl``; those named by ``--out`` (``JJ_OUT``) leave pickled in
``$JOB_OUTPUTS/_jj_out.pkl``.
"""
import os
import pickle
import sys

sys.path.insert(0, os.getcwd())  # modules shipped beside the cell
namespace = {"__name__": "__main__"}
if os.path.exists("_jj_in.pkl"):
    with open("_jj_in.pkl", "rb") as handle:
        namespace.update(pickle.load(handle))
with open("_jj_cell.py", encoding="utf-8") as handle:
    code = compile(handle.read(), "<job cell>", "exec")
exec(code, namespace)
names = [n for n in os.environ.get("JJ_OUT", "").split(",") if n]
missing = [n for n in names if n not in namespace]
if missing:
    sys.exit(f"--out: the cell did not define {', '.join(missing)}")
if names:
    with open(os.path.join(os.environ["JOB_OUTPUTS"], "_jj_out.pkl"), "wb") as handle:
        pickle.dump({n: namespace[n] for n in names}, handle)
