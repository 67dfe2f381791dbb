"""load() from local files: plain/wrapped/DDP state dicts, TorchScript archives, bad files, no network."""

import pickle
import urllib.request

import pytest
import torch
from PIL import Image

from csdn.clip import available_models, build_model, load, tiny_state_dict

OFFICIAL = {  # name -> file name; the URLs' second-to-last component is the file's SHA-256
    "RN50": "RN50.pt",
    "RN101": "RN101.pt",
    "RN50x4": "RN50x4.pt",
    "RN50x16": "RN50x16.pt",
    "RN50x64": "RN50x64.pt",
    "ViT-B/32": "ViT-B-32.pt",
    "ViT-B/16": "ViT-B-16.pt",
    "ViT-L/14": "ViT-L-14.pt",
    "ViT-L/14@336px": "ViT-L-14-336px.pt",
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a local path must never touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _features(model, seed=0):
    images = torch.randn(2, 3, *model.image_size, generator=torch.Generator().manual_seed(seed))
    tokens = torch.zeros(2, 77, dtype=torch.long)
    tokens[:, 0], tokens[0, 1:4], tokens[0, 4], tokens[1, 1] = 49406, torch.tensor([320, 1125, 539]), 49407, 49407
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def _assert_same_features(a, b):
    for x, y in zip(_features(a), _features(b), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)


def test_available_models_and_urls():
    from csdn.clip.pretrained import model_url, url_sha256

    assert available_models() == list(OFFICIAL)
    for name, file in OFFICIAL.items():
        url = model_url(name)
        assert url.startswith("https://openaipublic.azureedge.net/clip/models/") and url.endswith("/" + file)
        assert len(url_sha256(url)) == 64 and int(url_sha256(url), 16) >= 0
    assert url_sha256(model_url("RN50")) == "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"


@pytest.mark.parametrize("wrap", ["plain", "state_dict_key", "module_prefix"])
def test_plain_state_dict_files(tmp_path, wrap):
    sd = tiny_state_dict("ViT", seed=3)
    obj = {"plain": sd, "state_dict_key": {"state_dict": sd, "epoch": 3}, "module_prefix": None}[wrap]
    if wrap == "module_prefix":
        obj = {"module." + k: v for k, v in sd.items()}
    torch.save(obj, tmp_path / "ckpt.pth")
    model, preprocess = load(tmp_path / "ckpt.pth")
    _assert_same_features(model, build_model(sd))
    assert not model.training and model.dtype == torch.float32
    assert preprocess(Image.new("RGB", (100, 80))).shape == (3, 224, 224)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:.*torch.jit.*deprecated:FutureWarning")
@pytest.mark.parametrize("arch", ["RN", "ViT"])
def test_torchscript_archive_round_trip(tmp_path, arch):
    original = build_model(tiny_state_dict(arch, seed=5))
    # OpenAI's archives also carry these three scalars; they must be ignored
    for key, value in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
        original.__dict__.pop(key, None)  # plain int attributes here; tensors in OpenAI's archives
        original.register_buffer(key, torch.tensor(value))
    images, tokens = torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long)
    traced = torch.jit.trace_module(original, {"encode_image": (images,), "encode_text": (tokens,)}, check_trace=False)
    torch.jit.save(traced, tmp_path / "clip.pt")
    model, _ = load(str(tmp_path / "clip.pt"), jit=False)
    assert isinstance(model, torch.nn.Module) and not isinstance(model, torch.jit.ScriptModule)
    _assert_same_features(model, original)


def test_jit_true_is_a_clear_not_implemented_error(tmp_path):
    with pytest.raises(NotImplementedError, match="jit=True is not supported"):
        load("RN50", jit=True)


def test_resize_options_pass_through(tmp_path):
    torch.save(tiny_state_dict("RN"), tmp_path / "rn.pt")
    model, preprocess = load(tmp_path / "rn.pt", image_size=(288, 144), last_stride=1)
    assert model.visual.attnpool.grid_size == (18, 9)
    out = preprocess(Image.new("RGB", (64, 128), color=(255, 0, 0)))
    assert out.shape == (3, 288, 144)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([(1 - 0.48145466) / 0.26862954, -0.4578275 / 0.26130258,
                                                           -0.40821073 / 0.27577711]))  # fmt: skip


def test_unknown_name_and_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an available model .*RN50.* nor an existing"):
        load("RN51")
    with pytest.raises(FileNotFoundError, match="not found"):
        load(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "content, phrase",
    [
        (b"this is not a checkpoint", "could not read checkpoint"),
        (None, "could not read checkpoint"),  # a pickled module: refused by weights_only=True
        ("list", "not a state dict"),
    ],
)
def test_bad_file_error_names_the_file(tmp_path, content, phrase):
    path = tmp_path / "weird.bin"
    if content is None:
        path.write_bytes(pickle.dumps(torch.nn.Linear(2, 2), protocol=2))
    elif content == "list":
        torch.save([torch.zeros(2)], path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=phrase) as info:
        load(path)
    assert str(path) in str(info.value) and "TorchScript archive or a torch.save()-d state dict" in str(info.value)


def test_state_dict_of_another_model_is_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "linear.pt")
    with pytest.raises(ValueError, match="not an OpenAI CLIP state dict: missing keys"):
        load(tmp_path / "linear.pt")
