"""The models of the course. Importing this package registers every architecture in MODELS.

    base             the shared interface (code, reconstruct, is_vae, describe/build), eval_mode
    mlp              Autoencoder and MLPVAE: fully connected, one hidden layer each way
    conv             the convolutional VAEs of the sources and the course's ConvVAE
    linear_gaussian  probabilistic PCA: a latent-variable model solvable in closed form
"""
from companion.models.base import (IMAGE_SHAPE, MODELS, VAE, Model, build, check_images,
                                   eval_mode)
from companion.models.conv import LR, BADConvVAE, BatchNormConvVAE, ConvVAE, SimpleConvVAE
from companion.models.mlp import MLPVAE, Autoencoder

__all__ = ["IMAGE_SHAPE", "MODELS", "VAE", "Model", "build", "check_images", "eval_mode",
           "LR", "BADConvVAE", "BatchNormConvVAE", "ConvVAE", "SimpleConvVAE",
           "MLPVAE", "Autoencoder"]
