import pytest

from contrastkit.config import TRAINER_DEFAULTS, resolve_config
from contrastkit.errors import ContrastkitError


def test_method_defaults_override_trainer_defaults_and_flags_override_both(tmp_path):
    cfg = resolve_config({"method": "simclr"})
    assert cfg["temperature"] == 0.5 and cfg["batch_size"] == TRAINER_DEFAULTS["batch_size"]
    f = tmp_path / "c.yaml"
    f.write_text("temperature: 0.2\nbatch_size: 64\n")
    cfg = resolve_config({"batch_size": 32}, f)
    assert cfg["temperature"] == 0.2 and cfg["batch_size"] == 32


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"batch_size": 1}, "batch_size=1"),
        ({"temperature": 0.0}, "temperature=0.0 must be > 0"),
        ({"temperature": -1}, "must be > 0"),
        ({"method": "nope"}, "unknown method 'nope'; valid methods: .*simclr"),
        ({"encoder": "nope"}, "unknown encoder 'nope'; valid encoders: .*convnet"),
        ({"optimizer": "rmsprop"}, "valid optimizers"),
        ({"no_such_setting": 3}, "unknown setting"),
    ],
)
def test_bad_settings_fail_before_training(overrides, message):
    with pytest.raises(ContrastkitError, match=message):
        resolve_config(overrides)


def test_bad_yaml_file_is_named(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("a: [1, 2\n")
    with pytest.raises(ContrastkitError, match="bad.yaml"):
        resolve_config({}, f)


def test_the_default_method_for_time_series_is_ts2vec_decided_from_the_array_header(tmp_path):
    import numpy as np

    np.save(tmp_path / "series.npy", np.zeros((10, 50), np.float32))  # (N, T) float: series by the auto rule
    np.save(tmp_path / "images.npy", np.zeros((10, 28, 28), np.uint8))
    np.savez(tmp_path / "multi.npz", x_train=np.zeros((10, 3, 40)), y_train=np.zeros(10))
    np.savez(tmp_path / "square.npz", x=np.zeros((10, 8, 8), np.float32))  # square: images unless told
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    method = lambda **given: resolve_config(given)["method"]
    assert method(data="GunPoint") == "ts2vec"
    assert method(data=str(tmp_path / "series.npy")) == "ts2vec"
    assert method(data=str(tmp_path / "multi.npz")) == "ts2vec"
    assert method(data=str(tmp_path / "images.npy")) == "simclr"
    assert method(data=str(tmp_path / "square.npz")) == "simclr"
    assert method(data=str(tmp_path / "square.npz"), data_kind="series") == "ts2vec"
    assert method(data=str(tmp_path / "series.npy"), data_kind="image") == "simclr"
    assert method(data="flows.csv", series_id_column="id") == "ts2vec"
    assert method(data=str(tmp_path / "broken.npy")) == "simclr"  # unsure: the loader reports the file later
    assert method(data="GunPoint", method="simclr") == "simclr"


def test_a_pinned_step_budget_gives_way_to_epochs_the_user_asked_for(tmp_path):
    assert resolve_config({"method": "ts2vec"})["steps"] == 200  # TS2Vec's own budget
    assert resolve_config({"method": "ts2vec", "epochs": 3})["steps"] is None
    assert resolve_config({"method": "ts2vec", "epochs": 3, "steps": 7})["steps"] == 7
    assert resolve_config({"method": "simclr"})["steps"] is None
    user_file = tmp_path / "user.yaml"
    user_file.write_text("method: ts2vec\nepochs: 4\n")
    assert resolve_config({}, user_file)["steps"] is None
    saved = tmp_path / "config.yaml"  # a run's own config.yaml holds both: resuming keeps its steps ...
    saved.write_text("method: ts2vec\nepochs: 25\nsteps: 200\n")
    assert resolve_config({}, saved)["steps"] == 200
    assert resolve_config({"epochs": 30}, saved)["steps"] is None  # ... unless --epochs is given again
    with pytest.raises(ContrastkitError, match="steps=0"):
        resolve_config({"steps": 0})


def test_the_default_method_is_csi_for_table_anomaly_detection_and_simclr_otherwise():
    assert resolve_config({"data": "digits"})["method"] == "simclr"
    assert resolve_config({"data": "t.csv", "label_column": "y", "anomaly_label": 1})["method"] == "csi"
    assert resolve_config({"data": "t.csv", "label_column": "y", "normal_label": 0})["method"] == "csi"
    assert resolve_config({"data": "t.csv", "anomaly_label": 1, "method": "clan"})["method"] == "clan"
