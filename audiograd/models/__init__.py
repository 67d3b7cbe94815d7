"""Models built from audiograd layers: the Stable Audio Open autoencoder (Oobleck)."""
