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


def test_the_default_method_is_csi_for_table_anomaly_detection_and_simclr_otherwise():
    assert resolve_config({"data": "digits"})["method"] == "simclr"
    assert resolve_config({"data": "t.csv", "label_column": "y", "anomaly_label": 1})["method"] == "csi"
    assert resolve_config({"data": "t.csv", "label_column": "y", "normal_label": 0})["method"] == "csi"
    assert resolve_config({"data": "t.csv", "anomaly_label": 1, "method": "clan"})["method"] == "clan"
