"""The learning side of VideoBoost: Keras generator/discriminator builders, losses, the GAN model.

Submodules are imported explicitly (``models.networks``, ``models.losses``, ``models.gan``) so
that ``import models`` stays cheap and does not pull in TensorFlow.
"""
