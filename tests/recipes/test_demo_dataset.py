"""The demo's built-in dataset never overwrites data it did not write."""

import json
import os

import pytest

from cfsam_keras import data


def _snapshot(folder):
    return {
        os.path.relpath(os.path.join(root, name), folder): os.path.getmtime(
            os.path.join(root, name)
        )
        for root, _, names in os.walk(folder)
        for name in names
    }


def test_a_folder_of_other_data_is_refused_and_left_as_it_was(tmp_path):
    import common

    folder = tmp_path / "mine"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "photo.jpg").write_bytes(b"my photo")
    (folder / "instances_train.json").write_text(json.dumps({"images": []}))
    before = _snapshot(folder)
    with pytest.raises(ValueError, match="--data-dir: .*holds no built-in dataset"):
        common.builtin_dataset(str(folder), 4, 2, 64, 0)
    assert _snapshot(folder) == before


def test_a_made_dataset_is_reused_and_other_settings_refused(tmp_path):
    import common

    folder = str(tmp_path / "shapes")
    data.write_builtin_dataset(folder, train=4, val=2, seed=0, image_size=64)  # make-dataset
    before = _snapshot(folder)
    train, val = common.builtin_dataset(folder, 4, 2, 64, 0)
    assert (len(train), len(val)) == (4, 2)
    assert _snapshot(folder) == before  # reused, not regenerated
    with pytest.raises(ValueError, match="holds a built-in dataset of other settings"):
        common.builtin_dataset(folder, 8, 2, 64, 0)
    assert _snapshot(folder) == before


def test_the_demos_own_dataset_is_rewritten_for_new_settings(tmp_path):
    import common

    folder = str(tmp_path / "shapes")
    common.builtin_dataset(folder, 4, 2, 64, 0)
    train, _ = common.builtin_dataset(folder, 6, 2, 64, 0)
    assert len(train) == 6 and len(os.listdir(os.path.join(folder, "train"))) == 6


def test_rewriting_its_own_dataset_leaves_no_stale_image(tmp_path):
    folder = str(tmp_path / "shapes")
    data.write_builtin_dataset(folder, train=4, val=2, seed=0, image_size=64)
    data.write_builtin_dataset(folder, train=2, val=1, seed=1, image_size=64)
    assert len(os.listdir(os.path.join(folder, "train"))) == 2
    assert data.builtin_manifest(folder)["seed"] == 1


def test_an_interrupted_write_is_written_again(tmp_path):
    import common

    folder = str(tmp_path / "shapes")
    data.write_builtin_dataset(folder, train=4, val=2, seed=0, image_size=64)
    manifest = os.path.join(folder, data.builtin.MANIFEST)
    with open(manifest) as f:
        record = json.load(f)
    record["complete"] = False  # as a kill during the write leaves it
    with open(manifest, "w") as f:
        json.dump(record, f)
    assert data.builtin_manifest(folder) is None
    train, _ = common.builtin_dataset(folder, 4, 2, 64, 0)
    assert len(train) == 4 and data.builtin_manifest(folder)["train"] == 4


def test_a_dataset_of_an_earlier_version_is_reused(tmp_path):
    import common

    folder = str(tmp_path / "shapes")
    data.write_builtin_dataset(folder, train=4, val=2, seed=0, image_size=64)
    os.remove(os.path.join(folder, data.builtin.MANIFEST))
    with open(os.path.join(folder, "demo-dataset.json"), "w") as f:
        json.dump({"train": 4, "val": 2, "image_size": 64, "seed": 0}, f)  # its own record
    before = _snapshot(folder)
    train, _ = common.builtin_dataset(folder, 4, 2, 64, 0)
    assert len(train) == 4 and _snapshot(folder) == before
