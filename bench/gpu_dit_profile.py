"""Where a captured DiT step spends its time on the GPU: each launch timed on its own (the device
synchronized after each), summed by kernel kind. Not a benchmark of the whole step (the
synchronizations add their own cost); see bench/generate.py for that.

    python bench/gpu_dit_profile.py [--preset sao-1.0] [--frames 1024] [--precision tf32]
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import io
import re
import sys


from common import REPO_ROOT  # noqa: F401  (puts the checkout on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="sao-1.0")
    ap.add_argument("--frames", type=int, default=1024)
    ap.add_argument("--precision", default="tf32")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    import generate_sides as sides
    import audiograd as ag
    from audiograd.models.dit import DiffusionTransformer
    from audiograd.models.random_init import seeded_state
    ag.config.cuda_matmul_precision = args.precision
    model = DiffusionTransformer(**sides._dit_kwargs(args.preset))
    model.load_state_dict(seeded_state({k: p.shape for k, p in model.named_parameters()}), strict=False)
    model = model.to(args.device)
    x, t, cross, glob, cfg_scale = sides._step_inputs(args.preset, args.frames, 2)
    inputs = [ag.tensor(a, device=args.device) for a in (x, t, cross, glob)]
    step = ag.jit(lambda x, t, c, g: model(x, t, cross_attn_cond=c, global_embed=g, cfg_scale=cfg_scale))
    step(*inputs).numpy()
    step(*inputs).numpy()
    prog = step.programs[next(iter(step.programs))]
    prog.graph = None  # launch one by one, so each can be timed
    err = io.StringIO()
    ag.config.debug = 1
    with contextlib.redirect_stderr(err):
        step(*inputs).numpy()
    ag.config.debug = 0
    total, count = collections.Counter(), collections.Counter()
    for line in err.getvalue().splitlines():
        m = re.match(r"\[audiograd\] (.*): ([\d.]+) ms", line)
        if m:
            kind = re.sub(r"\d+", "N", re.sub(r"_[0-9a-f]{6,}", "", m.group(1)))
            total[kind] += float(m.group(2))
            count[kind] += 1
    print(f"{args.preset} DiT step, {args.frames} latents, batch 2, {args.precision}: "
          f"{sum(total.values()):.1f} ms in {sum(count.values())} launches (each synchronized)")
    for kind, ms in total.most_common(30):
        print(f"{ms:9.2f} ms {count[kind]:5d}  {kind[:120]}")


if __name__ == "__main__":
    sys.exit(main())
