"""The segmentation network: an smp U-Net that also returns a pooled embedding.

``forward(x)`` returns ``(logits, embedding)``:
- ``logits`` (N, K, H, W): per-pixel class scores on the encoding's canvas; per-die scores
  are read back with :func:`waferdesk.core.encoding.decode` (block mean).
- ``embedding`` (N, E): the global average pool of the deepest encoder feature map (2048
  channels for ResNet-50, 512 for ResNet-18/34), L2-normalised. It summarises the whole
  wafer as the encoder sees it, so cosine distance between embeddings is what active
  learning's diversity sampling uses. The pool runs over the whole canvas, padding included:
  the padding is part of what the encoder saw, and every consumer gets the same canvas for
  the same grid (the encoding fixes it), so embeddings of equal grids are equal.

``encoder_weights`` is always None: nothing is downloaded, every weight is trained here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from waferdesk.core.encoding import CHANNELS
from waferdesk.core.taxonomy import default_taxonomy

DEFAULT_ENCODER = "resnet50"
ARCHITECTURE = "Unet"


class WaferUnet(nn.Module):
    """``smp.Unet`` (6 input channels, one output channel per taxonomy class) + embedding."""

    def __init__(self, encoder: str = DEFAULT_ENCODER, n_classes: int | None = None, in_channels: int | None = None):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.encoder_name = encoder
        self.n_classes = n_classes or len(default_taxonomy())
        self.in_channels = in_channels or len(CHANNELS)
        self.unet = smp.Unet(
            encoder_name=encoder, encoder_weights=None, in_channels=self.in_channels, classes=self.n_classes
        )
        self.embedding_dim = int(self.unet.encoder.out_channels[-1])
        self.frozen_batchnorm = False

    def train(self, mode: bool = True) -> WaferUnet:
        """As ``nn.Module.train``, but with :attr:`frozen_batchnorm` every BatchNorm stays in eval
        mode: it normalises with its running statistics (and keeps them) while the rest trains.

        Fine-tuning uses it: batches of 2-16 wafers on mixed canvases give noisy batch
        statistics, and a network recovered from an exported file should compute, in training,
        the very function it starts from. Kept on the module (not in the training loop) so every
        helper that toggles ``train()``/``eval()`` around an evaluation respects it."""
        super().train(mode)
        if mode and self.frozen_batchnorm:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.unet.encoder(x)
        logits = self.unet.segmentation_head(self.unet.decoder(features))
        emb = F.normalize(features[-1].mean(dim=(2, 3)), dim=1, eps=1e-6)
        return logits, emb

    def architecture(self) -> dict[str, Any]:
        """What a model card records so that :func:`build_from_card` can rebuild this network."""
        return {
            "name": ARCHITECTURE,
            "library": "segmentation-models-pytorch",
            "encoder": self.encoder_name,
            "encoder_weights": None,
            "in_channels": self.in_channels,
            "classes": self.n_classes,
            "decoder_channels": list(self.unet.decoder.blocks[i].conv2[0].out_channels for i in range(5)),
            "embedding": "L2-normalised global average pool of the deepest encoder features",
            "embedding_dim": self.embedding_dim,
        }


def build_model(encoder: str = DEFAULT_ENCODER) -> WaferUnet:
    return WaferUnet(encoder)


def build_from_card(card: Any, weights: str | dict | None = None) -> WaferUnet:
    """The network a model card describes (random init, or ``weights``: a state dict or a
    checkpoint / state-dict file). ``waferdesk bench`` uses it for the PyTorch-eager baseline."""
    arch = card.architecture if hasattr(card, "architecture") else dict(card["architecture"])
    if arch.get("name", ARCHITECTURE) != ARCHITECTURE:
        from waferdesk.core.errors import ModelError

        raise ModelError(f"model card: architecture {arch.get('name')!r} is not {ARCHITECTURE!r}")
    model = WaferUnet(
        str(arch.get("encoder", DEFAULT_ENCODER)),
        n_classes=int(arch.get("classes", len(default_taxonomy()))),
        in_channels=int(arch.get("in_channels", len(CHANNELS))),
    )
    if weights is not None:
        state = weights
        if not isinstance(state, dict):
            state = torch.load(str(weights), map_location="cpu", weights_only=True)
        if "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        model.load_state_dict(state)
    return model.eval()
