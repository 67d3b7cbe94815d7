"""stable-audio-tools' autoencoder discriminators with their losses, under the original names."""
from .losses import feature_matching, get_hinge_losses
from .oobleck import (MultiDiscriminator, MultiPeriodDiscriminator, MultiScaleDiscriminator, OobleckDiscriminator,
                      SharedDiscriminatorConvNet)
from .stft import DiscriminatorSTFT, EncodecDiscriminator, MultiScaleSTFTDiscriminator, NormConv2d

__all__ = ["DiscriminatorSTFT", "EncodecDiscriminator", "MultiDiscriminator", "MultiPeriodDiscriminator",
           "MultiScaleDiscriminator", "MultiScaleSTFTDiscriminator", "NormConv2d", "OobleckDiscriminator",
           "SharedDiscriminatorConvNet", "feature_matching", "get_hinge_losses"]
