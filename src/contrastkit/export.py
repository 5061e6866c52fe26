"""`contrastkit export RUN --format torchscript|pt2|onnx|safetensors`: a run's encoder as a file that plain PyTorch
(or any ONNX runtime) loads without contrastkit, with the evaluation preprocessing bundled in front of it.

What the exported model takes (the same input `contrastkit embed` reads, before any preprocessing):

* images — uint8 (N, C, H, W) at the run's size and channel count, as the run stores them; the bundled
  preprocessing divides by 255 and normalises with the TRAINING statistics (`views.ImagePreprocess`).
* tables — float32 (N, F): the run's feature vector, i.e. numeric columns already standardised (or
  quantile-scaled) with the training statistics and categorical columns as their integer codes. Turning raw
  CSV values into that vector needs the column schema (names, vocabularies, scaler), which a tensor model
  cannot hold: the JSON sidecar carries it (`info.extra`), and `contrastkit embed RUN --data new.csv` applies it.
* time series — float32 (N, C, T) as the run stores them (per-channel standardised when the run used the
  default `series_scaling: channel`; NaN marks padding); graphs of node features — float32 (N, F).

The output is the representation `h` (N, D), float32, the one `contrastkit embed` writes.

Beside every exported file a JSON sidecar (its name + `.json`: model.pt → model.pt.json) records the input
description, the DataInfo, the run's config and the versions. TorchScript also
stores it inside the file (`_extra_files={"contrastkit.json": ...}`), and so does pt2.

Formats: `torchscript` (torch.jit.trace; `torch.jit.load`), `pt2` (torch.export with a dynamic batch
dimension, PyTorch's successor to TorchScript; `torch.export.load(path).module()`), `onnx` (needs the onnx
package; checked with onnxruntime when that is installed), `safetensors` (weights + the sidecar; needs the
safetensors package).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ContrastkitError

FORMATS = ("torchscript", "pt2", "onnx", "safetensors")
SUFFIX = {"torchscript": ".pt", "pt2": ".pt2", "onnx": ".onnx", "safetensors": ".safetensors"}


class ExportedEncoder(nn.Module):
    """preprocess → encoder → flatten to (N, D) float32: raw input in, embeddings out."""

    def __init__(self, preprocess: nn.Module, encoder: nn.Module):
        super().__init__()
        self.preprocess = preprocess
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.preprocess(x)).flatten(1).float()


def _check_exportable(info, cfg: dict[str, Any]) -> None:
    if info.kind == "paired":
        raise ContrastkitError("export: paired runs have two towers (one per side); export is for one-input "
                               "encoders (images, tables, series, graph node features) — use `contrastkit embed`")
    if str(cfg.get("encoder")) == "gcn":
        raise ContrastkitError("export: the gcn encoder looks its graph up at run time (node ids in, not features); "
                               "it cannot be exported as a standalone model — use `contrastkit embed`")


def example_input(info, n: int = 2) -> torch.Tensor:
    """A batch shaped and typed like the exported model's input (random, so tracing sees no constant)."""
    g = torch.Generator().manual_seed(0)
    shape = (n, *tuple(int(s) for s in info.shape))
    if info.kind == "image":
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return torch.randn(shape, generator=g)  # table encoders clamp categorical codes, so any float is valid


def input_description(info) -> dict[str, Any]:
    shape = [None, *[int(s) for s in info.shape]]
    if info.kind == "image":
        return {"kind": "image", "dtype": "uint8", "shape": shape,
                "note": "raw pixels as stored (N, C, H, W); normalisation with the training mean/std is bundled",
                "mean": list(info.mean) if info.mean else None, "std": list(info.std) if info.std else None}
    if info.kind == "table":
        extra = info.extra or {}
        return {"kind": "table", "dtype": "float32", "shape": shape,
                "note": "the run's feature vector: numeric columns standardised with the training statistics "
                        "(info.extra mean/std or quantiles), then categorical columns as integer codes; raw CSV "
                        "values must be transformed first (contrastkit embed does it)",
                "numeric_columns": list(extra.get("numeric_columns") or []),
                "categorical_columns": list(extra.get("categorical_columns") or [])}
    if info.kind == "series":
        return {"kind": "series", "dtype": "float32", "shape": shape,
                "note": "(N, C, T) as the run stores series (channel-standardised by default; NaN = padding)"}
    return {"kind": info.kind, "dtype": "float32", "shape": shape, "note": "as the run stores samples"}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def sidecar(info, cfg: dict[str, Any], fmt: str, out_dim: int) -> dict[str, Any]:
    from dataclasses import asdict

    from . import __version__

    return {"format": fmt, "input": input_description(info), "output": {"dtype": "float32", "shape": [None, out_dim]},
            "encoder": cfg.get("encoder"), "encoder_kwargs": _plain(cfg.get("encoder_kwargs") or {}),
            "info": _plain(asdict(info)), "config": _plain(cfg),
            "versions": {"contrastkit": __version__, "torch": torch.__version__}}


def sidecar_path(out: Path) -> Path:
    """model.pt → model.pt.json (one per exported file: three formats of one run never overwrite each other)."""
    return out.with_name(out.name + ".json")


def export_run(run: Path, fmt: str, out: Path | None = None) -> Path:
    """Export the encoder of `run` (with its preprocessing) as `fmt`; returns the written file."""
    from .run import load_encoder
    from .views import create_preprocess

    if fmt not in FORMATS:
        raise ContrastkitError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    run = Path(run)
    encoder, info, cfg = load_encoder(run)
    _check_exportable(info, cfg)
    out = Path(out) if out is not None else run / f"model{SUFFIX[fmt]}"
    if out.suffix == ".json":
        raise ContrastkitError(f"--out {out}: .json is the sidecar's name; use e.g. model{SUFFIX[fmt]}")
    if out.is_dir():
        raise ContrastkitError(f"--out {out} is a folder; give a file name such as {out / ('model' + SUFFIX[fmt])}")
    out.parent.mkdir(parents=True, exist_ok=True)
    model = ExportedEncoder(create_preprocess(info), encoder.cpu().float()).eval()
    example = example_input(info)
    with torch.no_grad():
        expected = model(example)
    meta = sidecar(info, cfg, fmt, int(expected.shape[1]))
    if fmt == "torchscript":
        _torchscript(model, example, expected, out, meta)
    elif fmt == "pt2":
        _pt2(model, example, expected, out, meta)
    elif fmt == "onnx":
        _onnx(model, example, expected, out)
    else:
        _safetensors(model, out, meta)
    sidecar_path(out).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _torchscript(model: nn.Module, example: torch.Tensor, expected: torch.Tensor, out: Path,
                 meta: dict[str, Any]) -> None:
    with torch.no_grad():
        try:
            traced = torch.jit.trace(model, (example,), check_trace=False)
        except Exception as e:  # an encoder with data-dependent Python control flow
            raise ContrastkitError(f"export: torch.jit.trace failed for encoder {meta['encoder']!r} ({e}); try "
                                   "--format safetensors (weights + JSON) instead") from None
        got = traced(example)
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise ContrastkitError(f"export: the traced encoder {meta['encoder']!r} does not reproduce the eager one "
                               "(data-dependent control flow?); try --format safetensors instead")
    torch.jit.save(traced, str(out), _extra_files={"contrastkit.json": json.dumps(meta)})


def _pt2(model: nn.Module, example: torch.Tensor, expected: torch.Tensor, out: Path, meta: dict[str, Any]) -> None:
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    except Exception as e:  # data-dependent control flow torch.export cannot capture
        raise ContrastkitError(f"export: torch.export failed for encoder {meta['encoder']!r} ({type(e).__name__}: "
                               f"{str(e)[:300]}); try --format torchscript or safetensors") from None
    with torch.no_grad():
        got = program.module()(example)
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise ContrastkitError(f"export: the exported program of {meta['encoder']!r} does not reproduce the eager "
                               "encoder; try --format torchscript or safetensors")
    torch.export.save(program, str(out), extra_files={"contrastkit.json": json.dumps(meta)})


def _onnx(model: nn.Module, example: torch.Tensor, expected: torch.Tensor, out: Path) -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ContrastkitError("--format onnx needs the onnx package: pip install 'contrastkit[export]' "
                               "(or pip install onnx)") from None
    try:
        with torch.no_grad():
            torch.onnx.export(model, (example,), str(out), input_names=["x"], output_names=["embedding"],
                              dynamic_axes={"x": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=17,
                              dynamo=False)
    except Exception as e:
        raise ContrastkitError(f"export: torch.onnx.export failed ({e}); --format torchscript or safetensors "
                               "need no converter") from None
    try:  # check with onnxruntime when it is there (optional)
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": example.numpy()})[0]
    if not np.allclose(got, expected.numpy(), rtol=1e-3, atol=1e-4):
        raise ContrastkitError("export: onnxruntime's output differs from the PyTorch encoder's; use --format "
                               "torchscript instead")


def _safetensors(model: ExportedEncoder, out: Path, meta: dict[str, Any]) -> None:
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise ContrastkitError("--format safetensors needs the safetensors package: pip install "
                               "'contrastkit[export]' (or pip install safetensors)") from None
    # the encoder's weights (keys as in encoder.state_dict()) and the preprocessing constants
    tensors = {k: v.detach().contiguous().clone() for k, v in model.encoder.state_dict().items()}
    for name, buf in model.preprocess.named_buffers():
        tensors[f"preprocess.{name}"] = buf.detach().contiguous().clone()
    save_file(tensors, str(out), metadata={"contrastkit": json.dumps(meta)})
