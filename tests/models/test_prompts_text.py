import pytest
import torch

from csdn.clip import build_model, tokenize
from csdn.models import DEFAULT_TEMPLATE, ModalityPromptLearner, TextEncoder


def test_prompt_layout(rn_clip):
    learner = ModalityPromptLearner(rn_clip.token_embedding, num_classes=7, generator=torch.Generator().manual_seed(0))
    # "<sot> a photo of a x x x x person . <eot>": prefix = 5 tokens, ctx at 5..8, EOT at 11
    emb = rn_clip.token_embedding(tokenize(DEFAULT_TEMPLATE))[0]
    assert torch.equal(learner.token_prefix[0], emb[:5])
    assert torch.equal(learner.token_suffix[0], emb[9:])
    assert learner.ctx.shape == (7, 4, 64)
    assert learner.ctx.std().item() == pytest.approx(0.02, rel=0.15)
    prompts = learner(torch.tensor([6, 0, 6]))
    assert prompts.embeddings.shape == (3, 77, 64)
    assert prompts.eot_index.tolist() == [11, 11, 11]
    assert torch.equal(prompts.embeddings[0, 5:9], learner.ctx[6])
    assert torch.equal(prompts.embeddings[1, :5], emb[:5]) and torch.equal(prompts.embeddings[1, 9:], emb[9:])
    assert {k for k, _ in learner.named_parameters()} == {"ctx"}


def test_prompt_learner_other_template_and_errors(rn_clip):
    learner = ModalityPromptLearner(rn_clip.token_embedding, 3, n_ctx=2, template="X X person")
    assert learner.token_prefix.shape[1] == 1 and learner(torch.tensor([1])).eot_index.item() == 4
    with pytest.raises(ValueError, match="exactly n_ctx=4 consecutive placeholder"):
        ModalityPromptLearner(rn_clip.token_embedding, 3, template="A photo of a X X person.")
    with pytest.raises(ValueError, match="labels must be a 1-D"):
        learner(torch.tensor([[1]]))


def _open_clip_text(state_dict, prompts, eot_index):
    """open_clip's text tower (built from the same OpenAI-keyed weights) on prompt embeddings ``(B, 77, D)``."""
    open_clip_model = pytest.importorskip("open_clip.model")
    ref = open_clip_model.build_model_from_openai_state_dict(dict(state_dict), cast_dtype=None).float()
    ref.load_state_dict(state_dict)  # the builder rounds to fp16: reload the exact fp32 weights
    ref.eval()
    x = ref.transformer(prompts + ref.positional_embedding, attn_mask=ref.attn_mask)
    x = ref.ln_final(x)
    return x[torch.arange(x.shape[0]), eot_index] @ ref.text_projection, ref


@torch.no_grad()
def test_text_encoder_matches_open_clip_text_tower(rn_state):
    """Independent expectation: open_clip's text tower on the same weights, for the tokenised template (context set
    to the embedding of 'x') and for random learned contexts."""
    clip_model = build_model(rn_state)
    learner = ModalityPromptLearner(clip_model.token_embedding, 3, generator=torch.Generator().manual_seed(4))
    encoder = TextEncoder(clip_model).eval()
    labels = torch.tensor([2, 0, 1])
    prompts = learner(labels)
    want, ref = _open_clip_text(rn_state, prompts.embeddings, prompts.eot_index)
    got = encoder(*prompts)
    assert got.shape == (3, 32) and encoder.embed_dim == 32 and got.abs().max() > 1e-2
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    x_id = tokenize("X")[0, 1]
    learner.ctx.copy_(clip_model.token_embedding.weight[x_id].expand(3, 4, -1))
    template = ref.encode_text(tokenize([DEFAULT_TEMPLATE] * 2))
    torch.testing.assert_close(encoder(*learner(torch.tensor([0, 1]))), template, atol=1e-5, rtol=1e-4)


def test_text_encoder_is_frozen_but_passes_gradients(rn_state):
    clip_model = build_model(rn_state)
    encoder = TextEncoder(clip_model)
    assert not any(p.requires_grad for p in encoder.parameters())
    learner = ModalityPromptLearner(clip_model.token_embedding, 3)
    encoder(*learner(torch.tensor([0, 2]))).sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad[[0, 2]].abs().sum() > 0
    assert learner.ctx.grad[1].abs().sum() == 0
    assert all(p.grad is None for p in encoder.parameters())
