"""Pre-encode audio datasets to autoencoder latents on Ray, in stable-audio-tools' format.

``pre_encode(IN, OUT, checkpoint=..., config=...)`` (and ``audiograd pre-encode``) lists the
audio files under IN, prepares each in a CPU task, encodes them in a pool of actors and
writes ``.npy`` latents with ``.json`` metadata that stable-audio-tools' pre-encoded dataset
loader reads. Reruns skip the items already complete. Ray is an optional dependency
(``pip install 'audiograd[ray]'``), imported only when a run starts.
"""
from .pipeline import PreEncodeSummary, pre_encode
from .settings import PreEncodeError, PreEncodeSettings

__all__ = ["pre_encode", "PreEncodeError", "PreEncodeSettings", "PreEncodeSummary"]
