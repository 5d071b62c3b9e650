"""The four training workloads of the benchmark (issue 5) and their sparse schemes.

Each builder returns (torch module in eval mode — BatchNorm statistics frozen —, example
inputs, labels, loss). The schemes are written in pockengine's scheme language; the same
decisions (Scheme.resolve) drive PyTorch's "same scheme" run (requires_grad and gradient
masks for channel ratios).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "frontends"))


def w1():
    """MobileNetV2-w0.35, 3×128×128, batch 8."""
    from models import MobileNetV2, _randomize_bn

    torch.manual_seed(0)
    m = _randomize_bn(MobileNetV2(width=0.35, num_classes=1000), 1)
    x = torch.randn(8, 3, 128, 128)
    return m, (x,), torch.randint(0, 1000, (8,)), "cross_entropy"


def w2():
    """ResNet-18, 3×64×64, batch 8."""
    from models import ResNet18, _randomize_bn

    torch.manual_seed(0)
    m = _randomize_bn(ResNet18(num_classes=1000), 2)
    x = torch.randn(8, 3, 64, 64)
    return m, (x,), torch.randint(0, 1000, (8,)), "cross_entropy"


def w3():
    """BERT-mini: 4 layers, hidden 256, 4 heads, FFN 1024, seq 128, batch 8, 2 classes."""
    from models import returning
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                     num_labels=2)
    m = returning(BertForSequenceClassification(cfg).eval(), "logits")
    ids = torch.randint(0, cfg.vocab_size, (8, 128))
    mask = torch.ones(8, 128, dtype=torch.long)
    return m, (ids, mask), torch.randint(0, 2, (8,)), "cross_entropy"


def w4():
    """Llama-tiny: 4 layers, hidden 256, 4 heads, SwiGLU 688, RMSNorm, RoPE, seq 128, batch 4, vocab 8000."""
    from models import returning
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=8000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, use_cache=False)
    m = returning(LlamaForCausalLM(cfg).eval(), "logits")
    ids = torch.randint(0, cfg.vocab_size, (4, 128))
    return m, (ids,), ids.clone(), "next_token"


def w6():
    """GPT-2-style (issue 19): 4 layers, hidden 256, 4 heads, vocab 8000, seq 128, batch 4 (AdamW: OPTIMIZERS)."""
    from models import returning
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=8000, n_positions=128, n_embd=256, n_layer=4, n_head=4, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, use_cache=False)
    m = returning(GPT2LMHeadModel(cfg).eval(), "logits")
    ids = torch.randint(0, cfg.vocab_size, (4, 128))
    return m, (ids,), ids.clone(), "next_token"


# W1: BN biases of convs 26–51 of 52, full expansion 1×1 convs (+BN affine) of the last three
# inverted-residual blocks, classifier. W2: BN biases of convs 10–19 (layer3 on), full
# layer4.1.conv1/conv2 (+BN affine), fc. W3: all biases of encoder layers 2–3, full FFN of
# layer 3, pooler, classifier. W4: RMSNorm gains of layers 2–3 and the final norm, full SwiGLU
# MLP of layer 3, lm_head. `{full}` is "full" or, in the ratio variant, "ratio 1/4".
SCHEMES = {
    "W1": "default frozen; conv layers 26..51: bias; features.15.conv.0, features.16.conv.0, "
          "features.17.conv.0: {full}; classifier.*: full",
    "W2": "default frozen; conv layers 10..19: bias; layer4.1.conv1, layer4.1.bn1, layer4.1.conv2, "
          "layer4.1.bn2: {full}; fc.*: full",
    "W3": "default frozen; bert.encoder.layer.2.*, bert.encoder.layer.3.*: bias; "
          "bert.encoder.layer.3.intermediate.*, bert.encoder.layer.3.output.dense.*: {full}; "
          "bert.pooler.*: full; classifier.*: full",
    "W4": "default frozen; model.layers.2.*norm*, model.layers.3.*norm*, model.norm.*: full; "
          "model.layers.3.mlp.*: {full}; lm_head.*: full",
    # W6 in the style of W4: LayerNorms of blocks 2–3 and the final one, full MLP of block 3, lm_head
    # (tied to the token embedding in GPT-2: training it trains wte)
    "W6": "default frozen; transformer.h.2.ln_*, transformer.h.3.ln_*, transformer.ln_f.*: full; "
          "transformer.h.3.mlp.*: {full}; lm_head.*: full",
}
# the optimizer of each workload's steps (pockengine name, hyper-parameters; torch.optim the same)
OPTIMIZERS = {"W6": ("adamw", {"lr": 1e-3, "weight_decay": 0.01})}
WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W6": w6}
NAMES = {"W1": "MobileNetV2-w0.35 128² b8", "W2": "ResNet-18 64² b8", "W3": "BERT-mini s128 b8",
         "W4": "Llama-tiny s128 b4", "W6": "GPT-2-style s128 b4 AdamW"}


def scheme(workload: str, ratio: bool = False) -> str:
    return SCHEMES[workload].replace("{full}", "ratio 1/4" if ratio else "full")
