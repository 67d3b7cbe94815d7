"""``audiograd parity``: compare audiograd's Oobleck model with stable-audio-tools, layer by layer.

Both models get identical weights (a checkpoint's, or seeded random ones). The reference runs in
float64. Each top-level layer of audiograd's model is fed the *reference's* input to that layer,
so a faulty layer shows up on its own instead of through compounding; the cumulative error of
audiograd run end to end is reported next to it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from ..models.oobleck import pretransform_config
from .sat_import import INSTALL_HINT, ReferenceUnavailable, load_reference

_BLOCKS = ("EncoderBlock", "DecoderBlock")


def randomize_reference(module, seed: int = 0) -> None:
    """Seeded random weights for a stable-audio-tools Oobleck module, with realistic scales.

    weight_v ~ N(0, 1); weight_g sets each normalized filter's norm so activations stay O(1)
    through the blocks (residual branches' 1x1 output convs get gain 0.2, transposed convs 0.7 of
    the variance-preserving gain); the SAO decoder's output RMS is then ~1, as audio-sized as a
    random network gets without making float32 rounding grow more than trained weights would;
    biases ~ N(0, 0.05); SnakeBeta log-scale alpha, beta ~ N(0, 0.3).
    """
    torch = load_reference().torch
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, mod in module.named_modules():
            params = dict(mod.named_parameters(recurse=False))
            if "weight_v" in params:
                v, g = params["weight_v"], params["weight_g"]
                v.copy_(torch.randn(v.shape, generator=gen, dtype=v.dtype))
                kernel = v.shape[-1]
                if type(mod).__name__ == "ConvTranspose1d":  # dim 0 is the input channel
                    c_in, c_out, stride = v.shape[0], v.shape[1], mod.stride[0]
                    gain = 0.7 * math.sqrt(c_out * stride / c_in)
                else:
                    gain = 0.2 if kernel == 1 else 1.0
                g.copy_(gain * (0.75 + 0.5 * torch.rand(g.shape, generator=gen, dtype=g.dtype)))
                if params.get("bias") is not None:
                    params["bias"].copy_(0.05 * torch.randn(params["bias"].shape, generator=gen, dtype=g.dtype))
            for pname in ("alpha", "beta"):
                if pname in params:
                    params[pname].copy_(0.3 * torch.randn(params[pname].shape, generator=gen, dtype=params[pname].dtype))


def reference_state(module) -> Dict[str, np.ndarray]:
    """A torch module's state dict as float numpy arrays (a copy)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _part_config(cfg: dict, part: str) -> dict:
    if part not in ("encoder", "decoder"):
        raise ValueError(f"part must be 'encoder' or 'decoder', not {part!r}")
    sub = cfg[part]
    if sub.get("type", "oobleck") != "oobleck":
        raise ValueError(f"{part} type {sub.get('type')!r} is not an Oobleck model")
    kw = dict(sub.get("config", {}))
    for k in ("c_mults", "strides"):  # stable-audio-tools prepends to c_mults: it needs lists
        if k in kw:
            kw[k] = list(kw[k])
    return kw


def build_reference(cfg: dict, part: str, seed: Optional[int] = 0, state: Optional[dict] = None):
    """stable-audio-tools' encoder or decoder in float64, eval mode, seeded random or given weights."""
    ref = load_reference()
    cls = ref.OobleckEncoder if part == "encoder" else ref.OobleckDecoder
    with warnings.catch_warnings():  # torch deprecates the weight_norm the original code uses
        warnings.simplefilter("ignore", FutureWarning)
        module = cls(**_part_config(cfg, part))
    if state is not None:
        module.load_state_dict({k: ref.torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    elif seed is not None:
        randomize_reference(module, seed)
    return module.double().eval()


def build_audiograd(cfg: dict, part: str, state: Dict[str, np.ndarray], dtype="float32"):
    """audiograd's encoder or decoder with ``state`` loaded strictly (no key renaming)."""
    import audiograd
    from ..models.oobleck import OobleckDecoder, OobleckEncoder
    cls = OobleckEncoder if part == "encoder" else OobleckDecoder
    module = cls(**_part_config(cfg, part))
    module.load_state_dict(state)
    return module.to(getattr(audiograd, dtype)).eval()


def make_input(cfg: dict, part: str, length: Optional[int] = None, seed: int = 0, batch: int = 1) -> np.ndarray:
    """Float64 input: latents ~ N(0, 1) for the decoder; noisy stereo tones (~0.3 RMS) for the encoder."""
    kw = _part_config(cfg, part)
    rng = np.random.default_rng(seed + 12345)
    if part == "decoder":
        return rng.standard_normal((batch, kw.get("latent_dim", 32), length or 3))
    ratio = math.prod(kw.get("strides", (2, 4, 8, 8)))
    n = length or 4 * ratio
    t = np.arange(n) / 44100.0
    chans = kw.get("in_channels", 2)
    freqs = rng.uniform(80, 4000, (batch, chans, 3, 1))
    tones = 0.25 * np.sin(2 * np.pi * freqs * t + rng.uniform(0, 6.3, freqs.shape)).sum(2)
    return tones + 0.05 * rng.standard_normal((batch, chans, n))


def _err(out: np.ndarray, ref: np.ndarray):
    if out.shape != ref.shape:
        return math.inf, math.inf
    d = float(np.max(np.abs(out - ref))) if ref.size else 0.0
    rms = float(np.sqrt(np.mean(ref * ref))) if ref.size else 0.0
    return d, d / rms if rms > 0 else (0.0 if d == 0 else math.inf)


@dataclass
class LayerRow:
    path: str
    kind: str
    shape: tuple
    max_abs: float
    rel: float
    cum_max_abs: float
    cum_rel: float


@dataclass
class ParityReport:
    part: str
    dtype: str
    threshold: float
    rows: List[LayerRow] = field(default_factory=list)
    version: str = ""

    @property
    def first_divergent(self) -> Optional[LayerRow]:
        return next((r for r in self.rows if not r.rel <= self.threshold), None)

    @property
    def output(self) -> LayerRow:
        return self.rows[-1]

    def table(self) -> str:
        lines = [f"{self.part} parity vs stable-audio-tools {self.version} (reference float64, audiograd "
                 f"{self.dtype}); per-layer error with the reference's input, cumulative error end to end",
                 f"{'layer':<22} {'module':<18} {'output shape':<18} {'max abs':>10} {'rel':>10} "
                 f"{'cum max abs':>12} {'cum rel':>10}"]
        for r in self.rows:
            flag = "  <-- diverges" if r is self.first_divergent else ""
            lines.append(f"{r.path:<22} {r.kind:<18} {str(r.shape):<18} {r.max_abs:>10.3e} {r.rel:>10.3e} "
                         f"{r.cum_max_abs:>12.3e} {r.cum_rel:>10.3e}{flag}")
        bad = self.first_divergent
        if bad is None:
            lines.append(f"no divergence: every layer within relative error {self.threshold:g} (max abs / RMS)")
        else:
            lines.append(f"first divergent layer: {bad.path} ({bad.kind}), relative error {bad.rel:.3e} > "
                         f"{self.threshold:g}")
        return "\n".join(lines)


def _walk(ref_mod, ag_mod, path: str, depth: int):
    """(path, reference layer, audiograd layer) along the `layers` Sequential, expanding blocks."""
    ref_layers, ag_layers = list(ref_mod.layers), list(ag_mod.layers)
    if len(ref_layers) != len(ag_layers):
        raise ValueError(f"{path}.layers: reference has {len(ref_layers)} layers, audiograd {len(ag_layers)}")
    for i, (r, a) in enumerate(zip(ref_layers, ag_layers)):
        p = f"{path}.layers.{i}" if path else f"layers.{i}"
        if depth > 1 and type(r).__name__ in _BLOCKS and hasattr(a, "layers"):
            yield from _walk(r, a, p, depth - 1)
        else:
            yield p, r, a


def compare_layers(ref_module, ag_module, x: np.ndarray, dtype="float32", threshold: float = 1e-4,
                   depth: int = 1, part: str = "") -> ParityReport:
    """Run both models layer by layer on ``x`` (float64 numpy) and measure each layer's error."""
    import audiograd
    torch = load_reference().torch
    agd = getattr(audiograd, dtype)
    report = ParityReport(part, dtype, threshold, version=load_reference().version)
    ref_x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    cum = audiograd.Tensor(np.asarray(x, dtype=agd.np))
    with torch.no_grad(), audiograd.no_grad():
        for path, r, a in _walk(ref_module, ag_module, "", depth):
            ref_y = r(ref_x)
            ref_np = ref_y.numpy()
            iso = a(audiograd.Tensor(ref_x.numpy().astype(agd.np))).numpy().astype(np.float64)
            cum = a(cum).realize()
            d, rel = _err(iso, ref_np)
            cd, crel = _err(cum.numpy().astype(np.float64), ref_np)
            report.rows.append(LayerRow(path, type(r).__name__, tuple(ref_np.shape), d, rel, cd, crel))
            ref_x = ref_y
    return report


def run_parity(config=None, checkpoint=None, part: str = "decoder", length: Optional[int] = None, seed: int = 0,
               dtype: str = "float32", threshold: Optional[float] = None, depth: int = 1,
               state_override: Optional[Dict[str, np.ndarray]] = None) -> ParityReport:
    """Build both models with identical weights and compare them. ``state_override`` replaces
    some of audiograd's tensors after loading (to check that a corrupted weight is caught)."""
    cfg = pretransform_config(config)
    if checkpoint is not None:
        from ..models.checkpoint import load_state
        full = load_state(checkpoint)
        prefix = next((p for p in (f"pretransform.model.{part}.", f"{part}.") if any(k.startswith(p) for k in full)),
                      None)
        if prefix is None:
            raise ValueError(f"{checkpoint}: no '{part}.' or 'pretransform.model.{part}.' keys")
        state = {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}
        ref = build_reference(cfg, part, state=state)
    else:
        ref = build_reference(cfg, part, seed=seed)
        state = reference_state(ref)
    if state_override:
        state = {**state, **state_override}
    ag = build_audiograd(cfg, part, state, dtype)
    if threshold is None:
        threshold = 1e-4 if dtype == "float32" else 1e-9
    x = make_input(cfg, part, length, seed)
    return compare_layers(ref, ag, x, dtype, threshold, depth, part)


def cmd_parity(args) -> int:
    """Entry point of ``audiograd parity``: 0 when no layer diverges, 1 when one does, 2 when the
    reference cannot be imported or the weights or config cannot be used (one line)."""
    import sys
    try:
        load_reference()
    except ReferenceUnavailable as exc:
        msg = str(exc) if INSTALL_HINT in str(exc) else f"{exc}; install with: {INSTALL_HINT}"
        print(f"audiograd parity needs PyTorch and stable-audio-tools: {msg}", file=sys.stderr)
        return 2
    from .audio_commands import fail
    try:
        report = run_parity(args.config, args.checkpoint, args.part, args.length, args.seed, args.dtype,
                            args.threshold, args.depth)
    except (ValueError, KeyError, OSError) as e:  # unreadable weights or config, shapes that do not fit
        return fail("parity", e)
    print(report.table())
    return 1 if report.first_divergent is not None else 0


def add_arguments(p) -> None:
    p.add_argument("--config", help="model_config.json or its pretransform config (default: SAO 1.0)")
    p.add_argument("--checkpoint", help="weights (.safetensors / .ckpt); default: seeded random weights")
    p.add_argument("--part", choices=["encoder", "decoder"], default="decoder")
    p.add_argument("--length", type=int, help="latent frames (decoder, default 3) or samples (encoder, "
                                               "default 4 x downsampling ratio)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="audiograd's dtype")
    p.add_argument("--threshold", type=float, help="relative error (max abs / RMS) counted as divergence "
                                                   "(default 1e-4 for float32, 1e-9 for float64)")
    p.add_argument("--depth", type=int, default=1, help="2: also compare inside encoder/decoder blocks")
