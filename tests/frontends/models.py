"""Model factories shared by the frontend tests (torch and ONNX).

Each factory returns `(module, example_args)` with the module in eval mode and seeded
weights, so both frontends import the same networks. torchvision is not a dependency:
MobileNetV2 and ResNet-18 are written out here (the standard architectures).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn


def _divisible(v: float, d: int = 8) -> int:
    """torchvision's _make_divisible: round channels to a multiple of d, never below 90%."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand, k=3):
        super().__init__()
        hidden = round(cin * expand)
        self.use_res = stride == 1 and cin == cout
        layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, k, stride, groups=hidden), conv_bn(hidden, cout, 1, act=None)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    # (expand t, channels c, repeats n, stride s), torchvision's table
    SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1))

    def __init__(self, width=1.0, num_classes=1000):
        super().__init__()
        cin = _divisible(32 * width)
        self.last = _divisible(1280 * max(1.0, width))
        feats = [conv_bn(3, cin, stride=2)]
        for t, c, n, s in self.SETTING:
            cout = _divisible(c * width)
            for i in range(n):
                feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        feats.append(conv_bn(cin, self.last, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + idt)


class ResNet18(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, layers = 64, []
        for i, c in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, c, stride), BasicBlock(c, c, 1)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class MCUNetLike(nn.Module):
    """An MCUNet-style backbone: inverted residuals with mixed kernels (3/5/7) and expand ratios."""

    BLOCKS = ((1, 8, 1, 3), (3, 16, 2, 5), (4, 16, 1, 3), (3, 24, 2, 7), (6, 24, 1, 5), (4, 40, 2, 3),
              (5, 40, 1, 7), (6, 48, 1, 5), (4, 96, 2, 3))  # (expand, channels, stride, kernel)

    def __init__(self, num_classes=10):
        super().__init__()
        cin = 16
        feats = [conv_bn(3, cin, stride=2)]
        for t, c, s, k in self.BLOCKS:
            feats.append(InvertedResidual(cin, c, s, t, k))
            cin = c
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def _randomize_bn(module: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BN statistics and affine terms, so a wrong BN import cannot pass."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return module.eval()


def mobilenet_v2(batch=1, size=96):
    torch.manual_seed(0)
    m = _randomize_bn(MobileNetV2(width=0.35, num_classes=1000), 1)
    return m, (torch.randn(batch, 3, size, size),)


def resnet18(batch=1, size=64):
    torch.manual_seed(0)
    m = _randomize_bn(ResNet18(num_classes=1000), 2)
    return m, (torch.randn(batch, 3, size, size),)


def mcunet(batch=2, size=64):
    torch.manual_seed(0)
    m = _randomize_bn(MCUNetLike(num_classes=10), 3)
    return m, (torch.randn(batch, 3, size, size),)


def bert_tiny(batch=2, seq=16):
    """HF BertForSequenceClassification, hidden 128, 2 layers; the last tokens of row 1 are padding."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=256, max_position_embeddings=64, num_labels=3)
    m = returning(BertForSequenceClassification(cfg).eval(), "logits")
    ids = torch.randint(0, cfg.vocab_size, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq // 2:] = 0
    return m, (ids, mask)


def llama_tiny(batch=2, seq=16):
    """HF LlamaForCausalLM, hidden 128, 2 layers, 4 query heads sharing 2 key/value heads (GQA)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=1000, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      use_cache=False)
    m = returning(LlamaForCausalLM(cfg).eval(), "logits")
    ids = torch.randint(0, cfg.vocab_size, (batch, seq))
    return m, (ids,)


def returning(model: nn.Module, field: str) -> nn.Module:
    """The HF model itself (parameter names unchanged: `bert.encoder.layer.0...`), but its forward
    returns one tensor of its ModelOutput, which exporters and tests compare directly."""

    class Returning(type(model)):
        def forward(self, *args, **kwargs):
            return getattr(super().forward(*args, **kwargs), field)

    Returning.__name__ = Returning.__qualname__ = type(model).__name__
    model.__class__ = Returning
    return model


def mean_pooled(model: nn.Module) -> nn.Module:
    """A BertModel whose forward returns the sentence embedding as sentence-transformers computes
    it (mean of the last hidden state over the attention mask); parameter names unchanged."""

    class MeanPooled(type(model)):
        def forward(self, input_ids, attention_mask):
            h = super().forward(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    MeanPooled.__name__ = MeanPooled.__qualname__ = type(model).__name__
    model.__class__ = MeanPooled
    return model


@lru_cache(maxsize=1)
def minilm_dir() -> Path:
    """The pretrained all-MiniLM-L6-v2 bundled by the `all_minilm_l6_v2` package, extracted once
    per process into a temp dir (never the home cache)."""
    import all_minilm_l6_v2

    out = Path(tempfile.mkdtemp(prefix="minilm-")) / "all-MiniLM-L6-v2"
    with zipfile.ZipFile(Path(all_minilm_l6_v2.__file__).parent / "model.zip") as zf:
        zf.extractall(out)
    return out


SENTENCES = ["PockEngine compiles the training graph ahead of time.", "Tiny devices can fine-tune models."]


def minilm(sentences=SENTENCES):
    """Pretrained all-MiniLM-L6-v2 (BertModel, hidden 384, 6 layers) on real tokenized sentences,
    returning mean-pooled sentence embeddings; parameter names are the checkpoint's."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    d = minilm_dir()
    tok = AutoTokenizer.from_pretrained(str(d))
    m = AutoModel.from_pretrained(str(d)).eval()
    enc = tok(list(sentences), padding=True, return_tensors="pt")
    return mean_pooled(m), (enc["input_ids"], enc["attention_mask"])


FACTORIES = {"mobilenet_v2": mobilenet_v2, "resnet18": resnet18, "mcunet": mcunet,
             "bert_tiny": bert_tiny, "llama_tiny": llama_tiny, "minilm": minilm}
