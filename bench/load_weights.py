"""Loading weights safely: audiograd's checking readers against the libraries people use.

The weights are Stable Audio Open 1.0's autoencoder (the Oobleck VAE's state dict, float32,
seeded random values of the real shapes), written once into a temporary folder as:

- a safetensors file: ours (``audiograd.models.checkpoint.load_state``: header, offsets and
  overlaps checked, every tensor copied out, NaN/inf refused) against
  ``safetensors.torch.load_file`` and ``safetensors.numpy.load_file``;
- a PyTorch zip checkpoint (``torch.save``): ours (no pickle code run, every tensor record
  validated against its storage) against ``torch.load(weights_only=True)``;
- a legacy PyTorch checkpoint (``_use_new_zipfile_serialization=False``): the same pair.

Every load returns the same arrays (checked). Files are in the page cache after the warm-up,
so the times are the readers' own work, not the disk's.

    python bench/load_weights.py [--json] [--markdown] [--quick]
"""
from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

from common import import_torch, median_times, parse_args, report, row


def sao_vae_state(seed: int = 0):
    """The SAO 1.0 autoencoder's state dict as float32 numpy arrays with seeded random values."""
    import numpy as np
    import audiograd as ag
    from audiograd.models.oobleck import OobleckVAE
    ag.manual_seed(seed)
    shapes = {k: tuple(v.shape) for k, v in OobleckVAE().state_dict().items()}
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s, dtype=np.float32) * 0.02 for k, s in shapes.items()}


def same_arrays(a, b) -> bool:
    import numpy as np
    return a.keys() == b.keys() and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def main():
    args = parse_args(__doc__.splitlines()[0])
    torch = import_torch()
    if torch is None:
        raise SystemExit("bench/load_weights.py needs PyTorch for the reference loaders")
    import numpy as np
    from safetensors.numpy import load_file as st_numpy, save_file
    from safetensors.torch import load_file as st_torch
    from audiograd.models.checkpoint import load_state

    repeat = 2 if args.quick else 5
    state = sao_vae_state()
    n_params = sum(v.size for v in state.values())
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        files = {"safetensors": d / "vae.safetensors", "zip": d / "vae.ckpt", "legacy": d / "vae_legacy.ckpt"}
        save_file(state, str(files["safetensors"]))
        tstate = {k: torch.from_numpy(v) for k, v in state.items()}
        torch.save({"state_dict": tstate}, files["zip"])
        torch.save({"state_dict": tstate}, files["legacy"], _use_new_zipfile_serialization=False)
        del tstate
        mb = {k: os.path.getsize(p) / 1e6 for k, p in files.items()}

        def torch_load(path):
            return torch.load(path, weights_only=True, map_location="cpu")["state_dict"]

        for kind, path in files.items():
            ours = load_state(path)
            refs = {"torch": (lambda p=path: st_torch(str(p))) if kind == "safetensors" else (lambda p=path: torch_load(p))}
            if kind == "safetensors":
                refs["numpy"] = lambda p=path: st_numpy(str(p))
            for name, fn in refs.items():
                got = {k: v.numpy() if hasattr(v, "numpy") else v for k, v in fn().items()}
                if not same_arrays(ours, got) or not same_arrays(ours, state):
                    raise SystemExit(f"MISMATCH: {kind} loaded by {name} differs from audiograd's load")
            del ours, got
            gc.collect()
            times = median_times({"ours": lambda p=path: load_state(p), **refs}, repeat=repeat)
            label = {"safetensors": "safetensors (vs safetensors.torch / .numpy)",
                     "zip": "PyTorch zip .ckpt (vs torch.load weights_only)",
                     "legacy": "legacy PyTorch .ckpt (vs torch.load weights_only)"}[kind]
            rows.append(row(f"SAO VAE weights, {mb[kind]:.0f} MB {label}", times["ours"], times["torch"],
                            times.get("numpy"), note=f"{mb[kind] / 1e3 / times['ours']:.2f} GB/s ours"))
            gc.collect()
    report(f"Loading checkpoints: {n_params:,} float32 parameters, every record checked", rows, args,
           {"notes": ["medians of %d loads after one warm-up, files in the page cache; every loader's "
                      "arrays compared with the saved ones" % repeat,
                      "safetensors.torch maps the file and copies nothing until a tensor is used (its time "
                      "excludes reading the data); ours and safetensors.numpy return arrays in memory"]})


if __name__ == "__main__":
    main()
