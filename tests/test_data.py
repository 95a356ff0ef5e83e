"""The data layer: checksums, every bad-input path, the offline sources, batching."""
import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch

from companion import data, settings
from companion.data import Batches, DataError, binarize, load, train_val_split, verify
from companion.data.__main__ import main as data_cli
from companion.data.files import FILES, SIZES, problems, raw_dir, spec
from companion.data.sources import DEBIAN_FASHION, _idx, from_debian, mnist_from_pickle
from conftest import require


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """An empty data directory, offline: nothing here may touch the real data/ folder."""
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    return tmp_path


def copy_mnist(into):
    real = settings.REPO_ROOT / "data" / "MNIST" / "raw"
    target = into / "MNIST" / "raw"
    target.mkdir(parents=True)
    for f in FILES:
        shutil.copy(real / f, target / f)
    return target


def test_staged_datasets_are_verified():
    assert verify("mnist") == []
    assert all(p.kind == "missing" for p in verify("fashion-mnist"))  # optional: may be absent
    assert data_cli(["verify", "mnist", "fashion-mnist"]) == 0


def test_load_gives_pixels_in_unit_interval():
    train = load("mnist", "train", device="cpu")
    assert train.images.shape == (60_000, 1, 28, 28) and train.images.dtype == torch.float32
    assert train.images.min() == 0 and train.images.max() == 1
    assert set(train.labels.unique().tolist()) == set(range(10))
    assert train.tag == "mnist/train" and train.subset(100).tag == "mnist/train[:100]"


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(DataError, match="Unknown dataset 'cifar10'.*mnist, fashion-mnist, kmnist"):
        load("cifar10")
    assert spec("FashionMNIST").name == "fashion-mnist"
    assert data_cli(["verify", "cifar10"]) == 2


def test_unknown_split_is_refused():
    with pytest.raises(DataError, match="split must be 'train' or 'test'"):
        load("mnist", "validation")


def test_truncated_file_is_refused_and_kept(scratch):
    folder = copy_mnist(scratch)
    path = folder / FILES[1]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="truncated.*nothing was loaded|nothing was loaded(.|\n)*truncated"):
        load("mnist")
    assert path.stat().st_size == 1000  # not overwritten: the user decides
    [problem] = verify("mnist")
    assert (problem.file, problem.kind) == (FILES[1], "damaged") and "truncated" in str(problem)


def test_corrupted_file_fails_its_checksum(scratch):
    folder = copy_mnist(scratch)
    raw = bytearray((folder / FILES[0]).read_bytes())
    raw[5000] ^= 0xFF
    (folder / FILES[0]).write_bytes(bytes(raw))
    with pytest.raises(DataError, match="md5 .* expected 6bbc9ace898e44ae57da46a324031adb"):
        load("mnist")
    assert data_cli(["verify", "mnist"]) == 1


def test_kmnist_without_a_source_says_what_to_do(scratch):
    with pytest.raises(DataError) as err:
        load("kmnist")
    message = str(err.value)
    assert "torchvision download: skipped: offline" in message
    assert "no offline source" in message
    assert "<data>/KMNIST/raw" in message and FILES[0] in message
    assert str(scratch) not in message          # no path of this machine in a message
    assert data_cli(["fetch", "kmnist"]) == 1    # named on the command line: it must come


def test_kmnist_from_local_gz_files(scratch):
    folder = raw_dir(spec("kmnist"))
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, size in zip(FILES, SIZES):
        n = 60_000 if name.startswith("train") else 10_000
        shape = (n, 28, 28) if "images" in name else (n,)
        blob = _idx(rng.integers(0, 10 if "labels" in name else 256, shape, dtype=np.uint8))
        assert len(blob) == size
        (folder / f"{name}.gz").write_bytes(gzip.compress(blob, compresslevel=1))
    test = load("kmnist", "test", device="cpu")
    assert test.images.shape == (10_000, 1, 28, 28)
    assert "local .gz" in data.source_of("kmnist")


def test_fashion_mnist_from_the_debian_package(scratch):
    require(DEBIAN_FASHION.exists(), "Debian's package dataset-fashion-mnist is not installed")
    from_debian(spec("fashion-mnist"))
    assert problems(spec("fashion-mnist")) == []
    assert data.source_of("fashion-mnist") == "Debian package dataset-fashion-mnist"


def test_mnist_pickle_becomes_canonical_idx_bytes():
    rng = np.random.default_rng(1)
    u8 = [rng.integers(0, 256, (n, 784), dtype=np.uint8) for n in (3, 2, 4)]
    labels = [rng.integers(0, 10, len(x)).astype(np.int64) for x in u8]
    splits = tuple((x.astype(np.float32) / 256, y) for x, y in zip(u8, labels))
    files = mnist_from_pickle(gzip.compress(pickle.dumps(splits, protocol=4)))
    train = np.frombuffer(files[FILES[0]], np.uint8, offset=16).reshape(-1, 784)
    assert np.array_equal(train, np.concatenate(u8[:2]))
    assert np.array_equal(np.frombuffer(files[FILES[3]], np.uint8, offset=8), labels[2])


def test_restricted_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        mnist_from_pickle(gzip.compress(pickle.dumps(Evil())))


def small_set(n=10):
    images = torch.rand(n, 1, 28, 28)
    return data.ImageSet(images, torch.arange(n), tuple("0123456789"), "random")


def test_batches_are_seeded_and_cover_every_example_once():
    ds = small_set(10)
    first = [y.tolist() for _, y in Batches(ds, 4, seed=3)]
    again = [y.tolist() for _, y in Batches(ds, 4, seed=3)]
    assert first == again
    assert sorted(sum(first, [])) == list(range(10)) and [len(b) for b in first] == [4, 4, 2]
    batches = Batches(ds, 4, seed=3)
    epoch1, epoch2 = [[y.tolist() for _, y in batches] for _ in range(2)]
    assert epoch1 != epoch2  # a new permutation each pass
    assert len(Batches(ds, 4, drop_last=True)) == 2


def test_dynamic_binarization_keeps_the_mean():
    x = torch.full((200, 1, 28, 28), 0.3)
    b = binarize(x, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) == {0.0, 1.0}
    assert abs(b.mean().item() - 0.3) < 0.01


def test_train_val_split_is_disjoint():
    train, val = train_val_split(small_set(10), 3, seed=0)
    assert len(train) == 7 and len(val) == 3
    assert not set(train.labels.tolist()) & set(val.labels.tolist())
    assert train.tag != val.tag


def test_fingerprint_follows_the_tensors_not_the_tag(monkeypatch):
    ds = small_set(10)
    key = ds.fingerprint()
    copy = data.ImageSet(ds.images.clone(), ds.labels.clone(), ds.classes, "another tag")
    assert copy.fingerprint() == key and len(key) == 16
    pixel = ds.images.clone()
    pixel[3, 0, 27, 0] += 1e-3
    label = ds.labels.clone()
    label[4] = 9
    changed = {
        "pixel": data.ImageSet(pixel, ds.labels, ds.classes, ds.tag),
        "label": data.ImageSet(ds.images, label, ds.classes, ds.tag),
        "dtype": data.ImageSet(ds.images.double(), ds.labels, ds.classes, ds.tag),
        "subset": data.ImageSet(ds.images[1:], ds.labels[1:], ds.classes, ds.tag),
        "order": data.ImageSet(ds.images.flip(0), ds.labels, ds.classes, ds.tag),
    }
    prints = {name: d.fingerprint() for name, d in changed.items()}
    assert key not in prints.values() and len(set(prints.values())) == len(prints), prints
    # a large set hashes a strided sample of its pixels, and the sum of all of them
    monkeypatch.setattr("companion.data.imageset.SAMPLED", 100)
    between = ds.images.clone()
    between[0, 0, 0, 1] += 0.25                         # not one of the sampled pixels
    assert (data.ImageSet(between, ds.labels, ds.classes, ds.tag).fingerprint()
            != ds.fingerprint())


def test_fingerprint_follows_the_shape_of_the_images():
    ds = small_set(10)
    for shape in ((10, 784), (10, 1, 14, 56)):
        assert data.ImageSet(ds.images.view(shape), ds.labels, ds.classes,
                             ds.tag).fingerprint() != ds.fingerprint(), shape


@pytest.mark.parametrize("n", [0, -1, 2.5])
def test_subset_refuses_a_size_that_is_not_a_whole_number_of_examples(n):
    with pytest.raises(ValueError, match="whole number of examples >= 1"):
        small_set(10).subset(n)
