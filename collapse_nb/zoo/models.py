"""Small models for the zoo, with the faults the scenarios inject built in as options.

Parameters are created in a fixed order from torch's global generator, so a
seeded scenario builds the same weights every time.
"""
from __future__ import annotations

import torch
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


class MLP(nn.Module):
    """``d_in -> hidden... -> d_out``; ``net.<i>`` layers (Linear, activation, optional Dropout).

    ``hidden_bias`` sets every hidden Linear's bias to that constant (a large negative value kills the
    ReLUs behind it). ``d_out == 1`` returns a vector (regression), otherwise logits.
    """

    def __init__(self, d_in: int, hidden: list[int], d_out: int = 1, act: str = "relu", dropout: float = 0.0,
                 hidden_bias: float | None = None):
        super().__init__()
        if act not in _ACTIVATIONS:
            raise ValueError(f"act must be one of {', '.join(_ACTIVATIONS)}, got {act!r}")
        layers: list[nn.Module] = []
        d = d_in
        for h in hidden:
            lin = nn.Linear(d, h)
            if hidden_bias is not None:
                nn.init.constant_(lin.bias, hidden_bias)
            layers += [lin, _ACTIVATIONS[act]()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            d = h
        layers.append(nn.Linear(d, d_out))
        self.net = nn.Sequential(*layers)
        self.d_out = d_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y.squeeze(-1) if self.d_out == 1 else y


class DeadBranchMLP(nn.Module):
    """An MLP trunk plus a ``side`` branch whose output is multiplied by 0 before it is added back.

    The side branch's weights get a gradient of exactly 0 at every step (``x * 0.0`` has gradient 0).
    """

    def __init__(self, d_in: int, width: int = 64):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(d_in, width), nn.ReLU())
        self.side = nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, width))
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x) + self.side(x) * 0.0          # the dead branch
        return self.head(h).squeeze(-1)


class SmallCNN(nn.Module):
    """Two 3x3 convolutions, average pooling to 2x2, a linear classifier."""

    def __init__(self, k: int = 4, channels: int = 8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2))
        self.classifier = nn.Linear(8 * channels, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class Attention(nn.Module):
    """A toy attention: ``x + softmax(q * k) * v``; ``dead_key`` multiplies the key projection's output by 0."""

    def __init__(self, d: int, dead_key: bool = True):
        super().__init__()
        self.query_projection = nn.Linear(d, d)
        self.key_projection = nn.Linear(d, d)
        self.value_projection = nn.Linear(d, d)
        self.dead_key = dead_key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query_projection(x)
        k = self.key_projection(x)
        if self.dead_key:
            k = k * 0.0                                 # the dead branch
        v = self.value_projection(x)
        return x + torch.softmax(q * k, dim=-1) * v


class EncoderDecoder(nn.Module):
    """The seed report's model in miniature: encoder, attention, decoder, output ``projection``.

    ``head_init_std`` initialises the projection's weight with that std (and its bias with 0);
    ``None`` keeps PyTorch's default initialisation.
    """

    def __init__(self, d_in: int = 8, d: int = 32, dropout: float = 0.1, dead_key: bool = True,
                 head_init_std: float | None = 1e-4):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d_in, d), nn.ReLU(), nn.Dropout(dropout))
        self.attn = Attention(d, dead_key)
        self.decoder = nn.Sequential(nn.Linear(d, d), nn.ReLU())
        self.projection = nn.Linear(d, 1)
        if head_init_std is not None:
            nn.init.normal_(self.projection.weight, std=head_init_std)
            nn.init.zeros_(self.projection.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.decoder(self.attn(self.encoder(x)))).squeeze(-1)


class TinyTransformer(nn.Module):
    """A one-layer transformer encoder over a sequence of vectors, mean-pooled to one output."""

    def __init__(self, d_in: int = 4, d: int = 32, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Linear(d_in, d)
        self.encoder = nn.TransformerEncoderLayer(d, heads, dim_feedforward=2 * d, dropout=dropout,
                                                  batch_first=True)
        self.head = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(dim=1)).squeeze(-1)
