"""Small Oobleck configurations shared by the model and command-line tests (same shapes, so
their compiled kernels are shared too)."""

TINY = {
    "encoder": {"type": "oobleck", "config": {"in_channels": 2, "channels": 8, "c_mults": [1, 2],
                                              "strides": [2, 4], "latent_dim": 16, "use_snake": True}},
    "decoder": {"type": "oobleck", "config": {"out_channels": 2, "channels": 8, "c_mults": [1, 2],
                                              "strides": [2, 4], "latent_dim": 8, "use_snake": True,
                                              "final_tanh": False}},
    "bottleneck": {"type": "vae"}, "latent_dim": 8, "downsampling_ratio": 8, "io_channels": 2,
    "sample_rate": 44100,
}
