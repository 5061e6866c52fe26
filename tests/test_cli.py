import subprocess
import sys

import pytest


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-c", "from contrastkit.cli import main; main()", *args],
                          capture_output=True, text=True, **kw)


def test_methods_lists_every_registered_method_with_defaults():
    from contrastkit.methods import METHODS

    out = run_cli("methods").stdout
    for name in METHODS.names():
        assert name in out
    assert "temperature" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "nosuch"], "valid methods"),
        (["--encoder", "nosuch"], "valid encoders"),
        (["--batch-size", "1"], "batch_size=1"),
        (["--temperature", "0"], "must be > 0"),
        (["--data", "/no/such/path"], "neither a built-in data set"),
    ],
)
def test_bad_input_gives_one_clear_error_before_training(args, message, tmp_path):
    proc = run_cli("pretrain", "--out", str(tmp_path / "r"), *args)
    assert proc.returncode == 2
    assert message in proc.stdout.replace("\n", " ")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "r").exists()  # nothing started


def test_pretrain_evaluate_embed_report_end_to_end(tmp_path):
    run = tmp_path / "run"
    proc = run_cli("pretrain", "--data", "digits", "--epochs", "1", "--batch-size", "64", "--out", str(run),
                   "--no-progress", "--proj-dim", "32", "--monitor-every", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "linear probe" in proc.stdout and "random init" in proc.stdout and "raw input" in proc.stdout
    proc = run_cli("evaluate", str(run), "--protocol", "knn,cluster,retrieval")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nmi" in proc.stdout and "MAP@R" in proc.stdout
    proc = run_cli("embed", str(run), "--data", "digits", "--out", str(tmp_path / "e.npy"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import numpy as np

    emb = np.load(tmp_path / "e.npy")
    assert emb.ndim == 2 and np.isfinite(emb).all()
    (run / "report.html").unlink()
    assert run_cli("report", str(run)).returncode == 0 and (run / "report.html").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr", "abc"], "--lr 'abc': expected a number"),
        (["--batch-size", "2.7"], "expected an integer"),
        (["--minutes", "nan"], "must be a finite number"),
        (["--log-every", "0"], "--log-every 0: must be >= 1"),
        (["--knn-t", "0"], "--knn-t 0.0: must be > 0"),
        (["--lr", "-1"], "--lr -1.0: must be >= 0"),
        (["--channels-last", "maybe"], "expected true or false"),
    ],
)
def test_setting_values_are_checked_by_type_before_anything_is_written(args, message, tmp_path):
    proc = run_cli("pretrain", "--data", "digits", "--out", str(tmp_path / "r"), *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stdout.replace("\n", " ")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "r").exists()


def test_values_are_plain_scalars_not_yaml_1_1():
    from contrastkit.settings import parse_scalar

    assert parse_scalar("yes") == "yes" and parse_scalar("on") == "on"  # YAML 1.1 would say True
    assert parse_scalar("5e-4") == 5e-4 and parse_scalar("3") == 3 and parse_scalar("true") is True
    assert parse_scalar("[id, ts]") == ["id", "ts"] and parse_scalar("null") is None


def test_version_and_config_listing():
    assert run_cli("--version").stdout.startswith("contrastkit ")
    out = run_cli("config", "--method", "moco").stdout
    assert "--queue-size" in out and "--batch-size" in out and "--lr" in out
