"""Torch models whose values are split into same-shaped pieces (chunk/split, GLU, SwiGLU,
rotate_half, a fused qkv projection): the slices of one value have equal shapes but different
bounds, which a pass keyed on shapes alone would merge (issue 12's surviving DGE mutant)."""

from __future__ import annotations

import torch
from torch import nn

D = 8


class GLU(nn.Module):  # fc(x).chunk(2) → a * sigmoid(b)
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(D, 2 * D)
        self.head = nn.Linear(D, 4)

    def forward(self, x):
        a, b = self.fc(x).chunk(2, dim=-1)
        return self.head(a * torch.sigmoid(b))


class SwiGLU(nn.Module):  # one gate_up projection split in two: silu(g) * u
    def __init__(self):
        super().__init__()
        self.gate_up = nn.Linear(D, 2 * D, bias=False)
        self.down = nn.Linear(D, D)
        self.head = nn.Linear(D, 4)

    def forward(self, x):
        g, u = self.gate_up(x).split(D, dim=-1)
        return self.head(self.down(nn.functional.silu(g) * u))


class RotateHalf(nn.Module):  # rotary embedding: x·cos + rotate_half(x)·sin
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(D, D)
        self.head = nn.Linear(D, 4)
        angles = torch.arange(D // 2, dtype=torch.float32) * 0.3
        self.register_buffer("cos", torch.cat([angles.cos(), angles.cos()]))
        self.register_buffer("sin", torch.cat([angles.sin(), angles.sin()]))

    def forward(self, x):
        h = self.proj(x)
        x1, x2 = h.chunk(2, dim=-1)
        rotated = torch.cat([-x2, x1], dim=-1)
        return self.head(h * self.cos + rotated * self.sin)


class QKV(nn.Module):  # one fused qkv projection split in three, then attention
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D)
        self.head = nn.Linear(D, 4)

    def forward(self, x):  # x: [B, T, D]
        q, k, v = self.qkv(x).split(D, dim=-1)
        att = torch.softmax(q @ k.transpose(1, 2) / D ** 0.5, dim=-1)
        return self.head((att @ v).mean(dim=1))


MODELS = {"glu": (GLU, (6, D)), "swiglu": (SwiGLU, (6, D)), "rotate_half": (RotateHalf, (6, D)),
          "qkv": (QKV, (3, 5, D))}
# schemes that update the split projection partly (a channel ratio slices its output) or not at all
SCHEMES = {
    "glu": ["default frozen\nfc.weight: ratio 1/2\nhead.*: full\n", "default frozen\nfc.bias: full\n",
            "default frozen\nfc.weight: ratio 3/4\nfc.bias: full\n"],
    "swiglu": ["default frozen\ngate_up.weight: ratio 1/2\n", "default frozen\ngate_up.weight: ratio 1/4\ndown.*: full\n",
               "default frozen\ndown.bias: full\nhead.*: full\n"],
    "rotate_half": ["default frozen\nproj.weight: ratio 1/2\n", "default frozen\nproj.bias: full\n",
                    "default frozen\nproj.weight: ratio 3/4\nhead.weight: full\n"],
    "qkv": ["default frozen\nqkv.weight: ratio 1/2\n", "default frozen\nqkv.bias: full\n",
            "default frozen\nqkv.weight: ratio 1/3\nhead.*: full\n"],
}


def build(name: str, seed: int = 0):
    """(torch module, example input, labels)"""
    torch.manual_seed(seed)
    cls, shape = MODELS[name]
    module = cls().eval()
    x = torch.randn(*shape)
    y = torch.randint(0, 4, (shape[0],))
    return module, x, y
