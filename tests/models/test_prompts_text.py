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


def test_text_encoder_matches_clip_encode_text(rn_clip):
    """With the context set to the embedding of 'x', the prompt is exactly the tokenised template."""
    learner = ModalityPromptLearner(rn_clip.token_embedding, 2)
    x_id = tokenize("X")[0, 1]
    with torch.no_grad():
        learner.ctx.copy_(rn_clip.token_embedding.weight[x_id].expand(2, 4, -1))
    encoder = TextEncoder(rn_clip)
    got = encoder(*learner(torch.tensor([0, 1])))
    want = rn_clip.encode_text(tokenize([DEFAULT_TEMPLATE] * 2))
    assert got.shape == (2, 32) and encoder.embed_dim == 32
    assert torch.allclose(got, want, atol=1e-5)


def test_text_encoder_is_frozen_but_passes_gradients(rn_state):
    clip_model = build_model(rn_state)
    encoder = TextEncoder(clip_model)
    assert not any(p.requires_grad for p in encoder.parameters())
    learner = ModalityPromptLearner(clip_model.token_embedding, 3)
    encoder(*learner(torch.tensor([0, 2]))).sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad[[0, 2]].abs().sum() > 0
    assert learner.ctx.grad[1].abs().sum() == 0
    assert all(p.grad is None for p in encoder.parameters())
