"""The GAN and cycle losses of MAGAN as pure functions of tensors.

Choices where the paper is silent (each measured or argued in the docs):

- Adversarial losses are sigmoid cross-entropy on logits, the generator's in the
  non-saturating form (fakes labelled real), as in the original code.
- Manifold augmentation: each discriminator's *real* set is its domain's samples together with
  their cycle reconstructions (D1 sees x1 and G21(G12(x1)) as real), so reconstructions that
  drift off the data manifold are penalised as fakes would be. The real set and the fake set
  weigh equally, whatever their sizes.
- Cycle loss is the mean squared error per coordinate, in standardised units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["cycle_loss", "discriminator_loss", "generator_adversarial_loss"]


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def discriminator_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    augmented_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of one discriminator: real (and, if given, reconstructions) → 1, fake → 0."""
    if augmented_logits is not None:
        real_logits = torch.cat([real_logits, augmented_logits])
    return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: the discriminator should call the fakes real."""
    return _bce(fake_logits, 1.0)


def cycle_loss(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Mean squared error between a sample and its round trip through both generators."""
    return F.mse_loss(reconstruction, x)
