"""Run ``pre_encode`` on a local Ray in a fresh Python process and return its summary.

A Ray driver leaves threads (gRPC, the core worker's I/O, jemalloc's background thread) in its
process after ``ray.shutdown()``; in a long pytest process that later starts threads of its own
this has deadlocked a thread start. A child process per run keeps the test process free of them,
and each run also starts and stops its own local Ray as the command line does.
"""
import dataclasses
import json
import subprocess
import sys

from audiograd.preencode.pipeline import PreEncodeSummary

_CHILD = """
import dataclasses, json, sys
from audiograd.preencode import pre_encode
args = json.loads(sys.argv[1])
summary = pre_encode(args.pop("root"), args.pop("out"), progress=False, **args)
print("SUMMARY " + json.dumps(dataclasses.asdict(summary)))
"""


def pre_encode_in_child(root, out, timeout=900, **options) -> PreEncodeSummary:
    """``pre_encode(root, out, **options)`` (JSON-serializable options) in a child process."""
    args = json.dumps(dict(options, root=str(root), out=str(out)), default=str)
    done = subprocess.run([sys.executable, "-c", _CHILD, args], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert done.returncode == 0 and lines, f"pre_encode failed in its process:\n{done.stdout}\n{done.stderr[-4000:]}"
    fields = json.loads(lines[-1][len("SUMMARY "):])
    return PreEncodeSummary(**{f.name: fields[f.name] for f in dataclasses.fields(PreEncodeSummary)})
