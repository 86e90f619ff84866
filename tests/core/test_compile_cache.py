"""The per-machine compile cache: key, round trip, corrupt and foreign files, settings.

torch's own save/load of compiled artifacts is replaced by fakes where it would need a compile:
what is tested is this package's part (which file, what it holds, what is ignored and said).
"""

from __future__ import annotations

import pytest
import torch

from napari_labelfree.core.predict import compile_cache as cc
from napari_labelfree.core.unet import UNet3D, build_network


@pytest.fixture(autouse=True)
def artifact_calls(monkeypatch):
    """torch before 2.7 (the floor) has no artifact calls: stand-ins there, which tests replace."""
    for name in ("save_cache_artifacts", "load_cache_artifacts"):
        if not hasattr(torch.compiler, name):
            monkeypatch.setattr(torch.compiler, name, lambda *a: None, raising=False)


def _key(**change):
    base = dict(
        torch_version="2.99",
        device="NVIDIA H100 80GB HBM3",
        model="abc",
        tile_shape=(1, 1, 64, 272, 272),
        dtype=torch.bfloat16,
    )
    return cc.cache_key(**{**base, **change})


def _tiny(seed: int) -> UNet3D:
    from napari_labelfree.core.config import Architecture

    torch.manual_seed(seed)
    return build_network(Architecture(depth=2, width=8))


def test_every_part_of_the_key_makes_another_file(tmp_path):
    base = cc.key_file(_key(), tmp_path)
    assert base == cc.key_file(_key(), tmp_path)  # stable across calls
    for change in (
        {"torch_version": "2.98"},
        {"device": "NVIDIA A100"},
        {"model": "abd"},
        {"tile_shape": (1, 1, 64, 256, 272)},
        {"dtype": torch.float16},
    ):
        assert cc.key_file(_key(**change), tmp_path) != base, change


def test_model_hash_follows_the_weights():
    a, b = _tiny(0), _tiny(1)
    assert cc.model_hash(a) == cc.model_hash(_tiny(0))
    assert cc.model_hash(a) != cc.model_hash(b)
    with torch.no_grad():
        next(a.parameters()).add_(1e-3)
    assert cc.model_hash(a) != cc.model_hash(_tiny(0))


def test_round_trip_hands_torch_the_saved_bytes(tmp_path, monkeypatch):
    payload = b"\x00compiled kernels\xff" * 100
    monkeypatch.setattr(cc, "_USER_INDUCTOR_DIR", None)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "recorded")  # put back as it was afterwards
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    loaded: list[bytes] = []
    monkeypatch.setattr(
        torch.compiler, "save_cache_artifacts", lambda: (payload, object()), raising=False
    )
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", loaded.append, raising=False)
    said: list[str] = []
    first = cc.CompileCache(_key(), tmp_path, say=said.append)
    assert not first.load()  # nothing there yet, and nothing to say about it
    assert first.save()
    assert first.path.is_file() and first.path.parent == tmp_path
    second = cc.CompileCache(_key(), tmp_path, say=said.append)
    assert second.load() and second.loaded
    assert loaded == [payload]
    assert said == []
    # inductor's own cache goes to the same folder unless the user chose one
    assert cc.os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")


def test_corrupt_truncated_or_foreign_files_are_ignored_with_one_line(tmp_path, monkeypatch):
    loaded: list[bytes] = []
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", loaded.append, raising=False)
    key = _key()
    path = cc.key_file(key, tmp_path)
    cc.write_artifacts(path, key, b"good payload")
    good = path.read_bytes()
    bad_files = {
        "corrupt": good[:-3] + b"xyz",
        "truncated": good[:-5],
        "damaged header": cc.MAGIC + b"{not json\n" + b"good payload",
        "not ours": b"PK\x03\x04 some zip",
        "empty": b"",
    }
    for why, data in bad_files.items():
        path.write_bytes(data)
        said: list[str] = []
        assert not cc.CompileCache(key, tmp_path, say=said.append).load(), why
        assert len(said) == 1 and "\n" not in said[0] and "compiling afresh" in said[0], why
    # a file written for another key (copied from another machine under this key's name)
    cc.write_artifacts(path, _key(device="NVIDIA A100"), b"good payload")
    said = []
    assert not cc.CompileCache(key, tmp_path, say=said.append).load()
    assert len(said) == 1 and "another setting" in said[0]
    assert loaded == []  # torch never saw a bad file


def test_torch_refusing_a_file_costs_a_compile_not_the_run(tmp_path, monkeypatch):
    def refuse(_payload):
        raise RuntimeError("pickle data was truncated")

    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", refuse, raising=False)
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: None, raising=False)
    key = _key()
    cc.write_artifacts(cc.key_file(key, tmp_path), key, b"bytes torch rejects")
    said: list[str] = []
    cache = cc.CompileCache(key, tmp_path, say=said.append)
    assert not cache.load()
    assert len(said) == 1 and "pickle data was truncated" in said[0]
    assert not cache.save()  # nothing compiled: nothing written, nothing said
    assert len(said) == 1


def test_an_unwritable_cache_folder_is_said_once(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (b"x", None), raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    said: list[str] = []
    assert not cc.CompileCache(_key(), blocker / "compile", say=said.append).save()
    assert len(said) == 1 and "not written" in said[0]


def test_settings_from_the_environment(monkeypatch, tmp_path):
    for name in ("COMPILE", "COMPILE_CACHE", "CUDA_GRAPHS", "COMPILE_BACKEND", "CUDNN_BENCHMARK",
                 "TRAIN_COMPILE"):  # fmt: skip
        monkeypatch.delenv(f"LABELFREE_{name}", raising=False)
    assert cc.Acceleration.from_env() == cc.Acceleration()
    monkeypatch.setenv("LABELFREE_COMPILE", "1")
    monkeypatch.setenv("LABELFREE_COMPILE_CACHE", "off")
    monkeypatch.setenv("LABELFREE_CUDA_GRAPHS", "yes")
    assert cc.Acceleration.from_env() == cc.Acceleration(
        compile=True, compile_cache=False, cuda_graphs=True
    )
    monkeypatch.setenv("LABELFREE_TRAIN_COMPILE", "1")
    monkeypatch.setenv("LABELFREE_CUDNN_BENCHMARK", "0")
    got = cc.Acceleration.from_env()
    assert got.train_compile and not got.cudnn_benchmark and got.compile_backend == "inductor"
    monkeypatch.setenv("LABELFREE_CACHE_DIR", str(tmp_path))
    assert cc.cache_folder() == tmp_path / "compile"
    monkeypatch.delenv("LABELFREE_CACHE_DIR")
    assert cc.cache_folder().name == "compile"


def test_a_torch_without_artifact_calls_says_once_that_the_cache_is_off(tmp_path, monkeypatch):
    monkeypatch.delattr(torch.compiler, "save_cache_artifacts")
    monkeypatch.delattr(torch.compiler, "load_cache_artifacts")
    monkeypatch.setattr(cc.CompileCache, "said_too_old", False)
    said: list[str] = []
    for tile in ((1, 1, 64, 272, 272), (1, 1, 32, 128, 128)):  # once, not per tile shape
        cache = cc.CompileCache(_key(tile_shape=tile), tmp_path, say=said.append)
        assert not cache.load() and not cache.save()
    assert len(said) == 1 and "needs torch 2.7 or newer" in said[0]
    assert not list(tmp_path.glob("*.bin"))
