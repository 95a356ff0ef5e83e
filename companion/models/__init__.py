"""The models of the course. Importing this package registers every architecture in MODELS.

    base             the shared contract (loss, describe/build), LatentModel (encode, decode,
                     code, reconstruct, nll), VAE, GaussianHead, eval_mode
    mlp              Autoencoder and MLPVAE: fully connected, one hidden layer each way
    tcvae            TCVAE: beta-TCVAE with the stratified estimate of the total correlation
    learned_prior    PriorVAE: the MLP VAE with a learned prior (a mixture, a VampPrior)
    iwae             IWAE: the MLP VAE trained on the importance-weighted bound
    flows            FlowVAE: the MLP VAE with planar flows on its posterior; PlanarFlow
    hierarchical     HierarchicalVAE: two stochastic layers, inferred bottom-up
    conv             the convolutional VAEs of the sources and the course's ConvVAE
    gaussian         GaussianConvVAE: the ConvVAE with a Gaussian decoder that learns sigma
    vq               VQVAE: a codebook, the nearest code, the straight-through gradient
    linear_gaussian  probabilistic PCA: a latent-variable model solvable in closed form
    autoregressive   AutoregressiveVAE: an MLP encoder and a MADE decoder that sees z
    conditional      ConditionalVAE: encoder and decoder both see the one-hot label
    semisupervised   SemiSupervisedVAE: M2, the ConditionalVAE with a classifier q(y|x) that
                     also learns from unlabelled images (label UNLABELLED = -1)
    classifier       DigitClassifier: a small conv net that judges generated images
"""
from companion.models.base import (IMAGE_SHAPE, MODELS, VAE, GaussianHead, LatentModel, Model,
                                   build, check_images, eval_mode)
from companion.models.autoregressive import AutoregressiveVAE
from companion.models.classifier import DigitClassifier
from companion.models.conditional import ConditionalVAE
from companion.models.conv import BADConvVAE, BatchNormConvVAE, ConvVAE, SimpleConvVAE
from companion.models.flows import FlowVAE, PlanarFlow
from companion.models.gaussian import GaussianConvVAE
from companion.models.hierarchical import HierarchicalVAE
from companion.models.iwae import IWAE
from companion.models.learned_prior import PriorVAE
from companion.models.mlp import MLPVAE, Autoencoder
from companion.models.semisupervised import UNLABELLED, SemiSupervisedVAE, paper_alpha
from companion.models.tcvae import TCVAE
from companion.models.vq import VQVAE

__all__ = ["IMAGE_SHAPE", "MODELS", "VAE", "GaussianHead", "LatentModel", "Model", "build",
           "check_images", "eval_mode", "BADConvVAE", "BatchNormConvVAE", "ConvVAE",
           "SimpleConvVAE",
           "MLPVAE", "Autoencoder", "TCVAE", "PriorVAE", "IWAE", "FlowVAE",
           "PlanarFlow", "HierarchicalVAE", "AutoregressiveVAE", "GaussianConvVAE", "VQVAE",
           "ConditionalVAE", "SemiSupervisedVAE", "UNLABELLED", "paper_alpha",
           "DigitClassifier"]
