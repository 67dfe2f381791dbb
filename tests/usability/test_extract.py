import copy

import numpy as np
import PIL.Image
import pytest
import torch

from csdn.data.images import list_images
from csdn.inference import FeatureExtractor

H, W = 64, 32


def _reference(array: np.ndarray, height: int = H, width: int = W) -> torch.Tensor:
    """The documented test preprocessing, written out: antialiased (Lanczos) resize, [0, 1], ImageNet norm."""
    image = PIL.Image.fromarray(array).convert("RGB").resize((width, height), PIL.Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (x - mean) / std


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(50 + 3 * i, 20 + i, 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def arrays():
    return _images(5)


@pytest.fixture(scope="module")
def expected(tiny_model, arrays):
    """Reference embeddings: the documented preprocessing, then encode_image in eval mode."""
    batch = torch.stack([_reference(a) for a in arrays])
    with torch.no_grad():
        return {m: tiny_model.encode_image(batch, m) for m in ("visible", "infrared")}, batch


def test_paths_pil_arrays_and_uint8_tensors_give_the_same_features(tiny_model, arrays, expected, tmp_path):
    refs, _ = expected
    paths = []
    for i, a in enumerate(arrays):
        paths.append(tmp_path / f"{i}.png")
        PIL.Image.fromarray(a).save(paths[-1])
    extractor = FeatureExtractor(tiny_model, modality="infrared", batch_size=2, image_size=(H, W), flip=False)
    forms = {
        "paths": [str(p) for p in paths],
        "pathlib": paths,
        "pil": [PIL.Image.fromarray(a) for a in arrays],
        "arrays": arrays,
        "float arrays": [a.astype(np.float64) / 255.0 for a in arrays],
        "uint8 tensors": [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in arrays],
    }
    for name, inputs in forms.items():
        out = extractor(inputs)
        assert out.shape == (5, tiny_model.embed_dim) and out.dtype == torch.float32, name
        torch.testing.assert_close(out, refs["infrared"], atol=1e-5, rtol=1e-5, msg=name)


def test_batch_array_grey_image_and_preprocessed_tensors(tiny_model, arrays, expected):
    refs, batch = expected
    extractor = FeatureExtractor(tiny_model, image_size=(H, W), batch_size=3, flip=False)
    torch.testing.assert_close(extractor(batch), refs["visible"], atol=1e-5, rtol=1e-5)  # (N, 3, H, W) float
    torch.testing.assert_close(extractor(batch[1]), refs["visible"][1:2], atol=1e-5, rtol=1e-5)  # one (3, H, W)
    same = [np.resize(a, (40, 24, 3)) for a in arrays[:2]]
    torch.testing.assert_close(extractor(np.stack(same)), extractor(same))  # NxHxWxC batch == list of HxWxC
    grey = arrays[0][:, :, 0]
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    torch.testing.assert_close(extractor(grey), extractor(rgb))  # single-channel thermal-like images


def test_modality_selects_the_stem_and_can_be_overridden_per_call(tiny_model, arrays, expected):
    refs, _ = expected
    extractor = FeatureExtractor(tiny_model, modality="visible", image_size=(H, W), flip=False)
    torch.testing.assert_close(extractor(arrays), refs["visible"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(extractor(arrays, modality="INFRARED"), refs["infrared"], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(refs["visible"], refs["infrared"])


def test_flip_concatenates_the_flipped_embedding(tiny_model, arrays, expected):
    refs, batch = expected
    with torch.no_grad():
        flipped = tiny_model.encode_image(torch.flip(batch, dims=[3]), "infrared")
    out = FeatureExtractor(tiny_model, modality="infrared", image_size=(H, W), flip=True)(arrays)
    torch.testing.assert_close(out, torch.cat([refs["infrared"], flipped], dim=1), atol=1e-5, rtol=1e-5)
    assert out.shape[1] == 2 * tiny_model.embed_dim
    summed = FeatureExtractor(tiny_model, modality="infrared", image_size=(H, W), flip=True, flip_mode="sum")(arrays)
    torch.testing.assert_close(summed, refs["infrared"] + flipped, atol=1e-5, rtol=1e-5)


def test_train_mode_is_restored_and_eval_mode_used(tiny_model, arrays, expected):
    refs, _ = expected
    tiny_model.train()
    try:
        out = FeatureExtractor(tiny_model, image_size=(H, W), batch_size=1, flip=False)(arrays)
        assert tiny_model.training
    finally:
        tiny_model.eval()
    torch.testing.assert_close(out, refs["visible"], atol=1e-5, rtol=1e-5)


def test_checkpoint_path_uses_the_training_image_size(tiny_checkpoint, arrays):
    path, model = tiny_checkpoint
    extractor = FeatureExtractor(path, modality="infrared", flip=False)
    assert extractor.image_size == (48, 32) and extractor.device == torch.device("cpu")
    x = torch.stack([_reference(a, 48, 32) for a in arrays])
    with torch.no_grad():
        torch.testing.assert_close(extractor(arrays), model.encode_image(x, "infrared"), atol=1e-5, rtol=1e-5)


def test_list_images_sorted_recursive(tmp_path):
    for rel in ["b/2.jpg", "a/1.PNG", "a/0.txt", "c.jpeg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert list_images(tmp_path) == [str(tmp_path / r) for r in ["a/1.PNG", "b/2.jpg", "c.jpeg"]]
    assert list_images(tmp_path, recursive=False) == [str(tmp_path / "c.jpeg")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image file"):
        list_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist or is not a folder"):
        list_images(tmp_path / "missing")


@pytest.mark.parametrize(
    ("inputs", "error", "phrase"),
    [
        ([], ValueError, "inputs is empty"),
        (42, ValueError, "inputs must be a path, PIL image"),
        ([object()], ValueError, "expected a path, PIL image, array or tensor"),
        (torch.zeros(3, 10, 10), ValueError, "preprocessed model inputs of shape \\(3, 64, 32\\)"),
        (np.zeros((4, 4, 2), np.uint8), ValueError, "numpy images must be HxW"),
        (np.zeros((4, 4, 3), np.int32), ValueError, "must be uint8 \\(0-255\\) or float"),
        (torch.zeros(2, 4, 4, dtype=torch.uint8), ValueError, "uint8 tensor images must be \\(C, H, W\\)"),
        (["/no/such/image.jpg"], FileNotFoundError, "not found"),
    ],
)
def test_bad_inputs_are_reported(tiny_model, inputs, error, phrase):
    with pytest.raises(error, match=phrase):
        FeatureExtractor(tiny_model, image_size=(H, W))(inputs)


def test_folder_input_and_bad_arguments(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="is a folder; pass csdn.data.images.list_images"):
        FeatureExtractor(tiny_model, image_size=(H, W))([tmp_path])
    with pytest.raises(ValueError, match="Valid values are|valid values"):
        FeatureExtractor(tiny_model, modality="uv")
    with pytest.raises(ValueError, match="Unknown value 'mean' for argument flip_mode"):
        FeatureExtractor(tiny_model, flip=True, flip_mode="mean")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        FeatureExtractor(tiny_model, batch_size=0)
    with pytest.raises(ValueError, match="image_size must be a positive int or \\(height, width\\)"):
        FeatureExtractor(tiny_model, image_size=(64, 0))
    with pytest.raises(ValueError, match="without an encode_image"):
        FeatureExtractor(torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FeatureExtractor(tmp_path / "missing.pt")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_extraction_matches_cpu_and_autocast_is_close(tiny_model, arrays, expected):
    refs, _ = expected
    model = copy.deepcopy(tiny_model)
    extractor = FeatureExtractor(model, device="cuda", image_size=(H, W))
    assert extractor.device.type == "cuda"
    out = extractor(arrays)
    assert out.device.type == "cpu" and out.dtype == torch.float32
    torch.testing.assert_close(out, refs["visible"], atol=1e-4, rtol=1e-4)
    half = FeatureExtractor(model, device="cuda", image_size=(H, W), autocast_dtype=torch.bfloat16)(arrays)
    assert half.dtype == torch.float32 and torch.nn.functional.cosine_similarity(half, refs["visible"]).min() > 0.99


def _to_official_names(state: dict) -> dict:
    """Our state dict written in the official code's naming (the table in csdn/models/official.py's docstring)."""
    stem = ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3"]
    literal = [(f"image_encoder.stems.visible.{n}.", f"image_encoder1.{i}.") for i, n in enumerate(stem)]
    literal += [(f"image_encoder.stems.infrared.{n}.", f"image_encoder2.{i}.") for i, n in enumerate(stem)]
    literal += [(f"image_encoder.layer{i + 1}.", f"image_encoder.{i}.") for i in range(4)]
    literal += [
        ("image_encoder.attnpool.", "attnpool."),
        ("image_encoder.gem.p", "classifier.GEM.p"),
        ("head_global.bn.", "classifier.BN."),
        ("head_global.classifier.", "classifier.classifier."),
        ("head_proj.bn.", "classifier2.BN."),
        ("head_proj.classifier.", "classifier2.classifier."),
        ("prompt_learners.visible.ctx", "prompt_learner1.cls_ctx"),
        ("prompt_learners.visible.", "prompt_learner1."),
        ("prompt_learners.infrared.ctx", "prompt_learner2.cls_ctx"),
        ("prompt_learners.infrared.", "prompt_learner2."),
        ("text_encoder.", "text_encoder."),
        ("integrator.q_proj.0.", "attention_fusion.embedding_q.0."),
        ("integrator.k_proj.0.", "attention_fusion.embedding_k.0."),
        ("integrator.v_proj.0.", "attention_fusion.embedding_v.0."),
        ("integrator.out_proj.", "attention_fusion.embedding_common.0."),
    ]
    out = {}
    for key, value in state.items():
        if key.startswith("hse."):
            continue  # official checkpoints have no HSE text bank
        old, new = next((o, n) for o, n in literal if key.startswith(o))
        out["module." + new + key[len(old) :]] = value  # saved from nn.DataParallel
    return out


def test_official_checkpoints_load_too(tiny_model, arrays, expected, tmp_path):
    refs, _ = expected
    path = tmp_path / "model_119.pth"
    torch.save(_to_official_names(tiny_model.state_dict()), path)
    extractor = FeatureExtractor(path, modality="infrared", image_size=(H, W), flip=False)
    torch.testing.assert_close(extractor(arrays), refs["infrared"], atol=1e-5, rtol=1e-5)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="neither a csdn training checkpoint nor an official CSDN checkpoint"):
        FeatureExtractor(tmp_path / "other.pt")
