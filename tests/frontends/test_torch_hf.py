"""Hugging Face model families imported as users hold them: default (SDPA) attention, the
default cache, tied weights. Tiny random configurations built locally (no hub download)."""

import warnings

import numpy as np
import pytest
import torch
import transformers as tf
from pockengine import Program
from pockengine.frontends import from_torch
from pockengine.passes import run_pipeline
from torch_check import check, op_counts


def gpt2():
    cfg = tf.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=32, n_positions=16, bos_token_id=0,
                        eos_token_id=0)
    return tf.GPT2LMHeadModel(cfg), (torch.randint(0, 32, (2, 6)),)


def distilbert():
    cfg = tf.DistilBertConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                              max_position_embeddings=16)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])  # a padded row: the mask reaches attention
    return tf.DistilBertForSequenceClassification(cfg), (torch.randint(0, 32, (2, 6)), mask)


def vit():
    cfg = tf.ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, num_labels=3)
    return tf.ViTForImageClassification(cfg), (torch.randn(2, 3, 8, 8),)


def qwen2():  # grouped-query attention: 4 query heads over 2 key/value heads
    cfg = tf.Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16)
    return tf.Qwen2ForCausalLM(cfg), (torch.randint(0, 32, (2, 6)),)


def mistral():  # sliding-window causal mask
    cfg = tf.MistralConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                           sliding_window=3)
    return tf.MistralForCausalLM(cfg), (torch.randint(0, 32, (2, 6)),)


def t5_encoder():  # relative position buckets; `shared` tied to `encoder.embed_tokens`
    cfg = tf.T5Config(vocab_size=32, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    return tf.T5EncoderModel(cfg), (torch.randint(0, 32, (2, 6)),)


def whisper_encoder():  # conv1d front end over mel frames
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = tf.WhisperConfig(num_mel_bins=4, d_model=16, encoder_layers=1, encoder_attention_heads=2,
                           encoder_ffn_dim=32, max_source_positions=4, vocab_size=32)
    return WhisperEncoder(cfg), (torch.randn(2, 4, 8),)


FAMILIES = {"gpt2": gpt2, "distilbert": distilbert, "vit": vit, "qwen2": qwen2, "mistral": mistral,
            "t5_encoder": t5_encoder, "whisper_encoder": whisper_encoder}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_imports_with_default_attention_and_matches(family):
    torch.manual_seed(0)
    model, args = FAMILIES[family]()
    model.eval()
    assert model.config._attn_implementation == "sdpa"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped-cache note, tested below
        program = check(model, args)
    assert op_counts(program)["train.softmax"] == model.config.num_hidden_layers  # one attention per layer


def test_dynamic_cache_is_dropped_with_a_note():
    torch.manual_seed(0)
    model, args = gpt2()
    with pytest.warns(UserWarning, match=r"dropped output .*cache.*DynamicCache.*use_cache=False"):
        program = from_torch(model.eval(), args)
    assert len(program.functions()["forward"].function_type.outputs) == 1  # the logits only


def _state_dict(program: Program) -> dict[str, torch.Tensor]:
    """What a checkpoint of the program gives PyTorch: every param, and every alias with its
    param's value (Program.aliases)."""
    names = {p.sym_name.data for p in program.params() if p.role.data != "optimizer_state"}
    sd = {n: torch.from_numpy(program.weights[n].copy()) for n in names}
    sd |= {a: sd[p] for a, p in program.aliases().items()}
    return sd


def test_tied_weights_are_one_parameter_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model, (ids,) = gpt2()
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = from_torch(model, (ids,))
    wte = program.param("transformer.wte.weight")
    assert wte.alias_names == ("lm_head.weight",) and "lm_head.weight" not in program.weights
    assert program.aliases() == {"lm_head.weight": "transformer.wte.weight"}
    # the scheme accepts either name: lm_head.* selects the shared table
    run_pipeline(program, "autodiff{loss=next_token optimizer=sgd lr=0.5}")
    from pockengine.passes.scheme import Scheme

    chosen = Scheme.parse("default frozen\nlm_head.*: full\n").resolve(program)
    assert [p for p, u in chosen.items() if u.mode == "full"] == ["transformer.wte.weight"]
    before = program.weights["transformer.wte.weight"].copy()
    program.run("train_step", ids.numpy(), ids.numpy())
    assert not np.allclose(program.weights["transformer.wte.weight"], before)  # both uses trained it
    program.save(tmp_path / "p")
    loaded = Program.load(tmp_path / "p")
    assert loaded.aliases() == program.aliases()
    model.load_state_dict(_state_dict(loaded), strict=True)
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied
    with torch.no_grad():
        ref = model(ids).logits.numpy()
    np.testing.assert_allclose(loaded.run("forward", ids.numpy()), ref, rtol=1e-4, atol=1e-5)


def test_gpt2_three_sgd_steps_match_torch():
    """The tied table gets the sum of its embedding and lm_head gradients, as in PyTorch."""
    torch.manual_seed(0)
    model, (ids,) = gpt2()
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = from_torch(model, (ids,))
    run_pipeline(program, "autodiff{loss=next_token optimizer=sgd lr=0.1}")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        got = float(program.run("train_step", ids.numpy(), ids.numpy()))
        opt.zero_grad()
        loss = model(ids, labels=ids).loss
        loss.backward()
        opt.step()
        assert got == pytest.approx(loss.item(), rel=1e-4)
    np.testing.assert_allclose(program.weights["transformer.wte.weight"], model.lm_head.weight.detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_gpt2_through_core_aten_keeps_attention_whole(monkeypatch):
    """The decomposed path too: SDPA stays out of torch's decomposition (whose view of GPT-2's
    attention output fails: "Cannot view a tensor with shape ... strides ...")."""
    from pockengine.frontends import torch_import

    monkeypatch.setattr(torch_import, "DIRECT", False)
    torch.manual_seed(0)
    model, args = gpt2()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = check(model.eval(), args)
    assert program.import_phases["decompositions"] > 0
