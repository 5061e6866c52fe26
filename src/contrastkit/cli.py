"""The `contrastkit` command: pretrain, methods, evaluate, embed, report."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import ContrastkitError
from .settings import parse_scalar

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Self-supervised contrastive representation learning for any kind of data.")
console = Console()


def _version(value: bool) -> None:
    if value:
        import torch

        console.print(f"contrastkit {__version__} (torch {torch.__version__})", markup=False)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Self-supervised contrastive representation learning for any kind of data."""


def _parse_extra(args: list[str]) -> dict[str, Any]:
    """`--proj-dim 64 --objective=dcl` → {"proj_dim": 64, "objective": "dcl"} (plain scalars, see settings.py)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ContrastkitError(f"unexpected argument {arg!r}; settings are given as --name value")
        name, _, value = arg[2:].partition("=")
        if not _:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"  # a bare flag
        out[name.replace("-", "_")] = parse_scalar(value)
        i += 1
    return out


def _import_option():
    return typer.Option(None, "--import", help="Python module to import first (repeatable): a plug-in that registers "
                        "encoders or methods; a run's own import_modules are imported too")


def _plugins(run: Optional[Path], modules: Optional[list[str]]) -> None:
    from .plugins import import_for_run

    import_for_run(run, modules)


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    if not rows:
        return
    table = Table(title=title)
    columns = list(rows[0])
    for col in columns:
        table.add_column(col, justify="left" if col == columns[0] else "right")
    for row in rows:
        table.add_row(*[_cell(c, row.get(c, "")) for c in columns])
    console.print(table)


def _cell(column: str, value: Any) -> str:
    """Scores in [0, 1] as percentages; durations (a `seconds` column) and other numbers as plain numbers."""
    if not isinstance(value, float):
        return str(value)
    if column == "seconds":
        return f"{value:.1f}"
    return f"{100 * value:.2f}%" if 0 <= value <= 1 else f"{value:.4g}"


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def pretrain(
    ctx: typer.Context,
    # None = not given: a --config file or a resumed run's config.yaml keeps its own value
    method: Optional[str] = typer.Option(None, help="method name (see `contrastkit methods`) "
                                                    "[default: simclr; ts2vec for time series; csi with --anomaly-label]"),
    data: Optional[str] = typer.Option(None, help="built-in data set name or a path [default: fashion-mnist]"),
    data_dir: Optional[str] = typer.Option(None, help="folder holding the built-in data set's files"),
    epochs: Optional[int] = typer.Option(None, help="number of epochs (default: the method's)"),
    minutes: Optional[float] = typer.Option(None, help="wall-clock training budget; overrides --steps/--epochs"),
    out: Optional[str] = typer.Option(None, help="run folder (default runs/<method>-<data>-<time>)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    config: Optional[Path] = typer.Option(None, help="YAML file of settings (flags override it)"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
    imports: Optional[list[str]] = _import_option(),
) -> None:
    """Pretrain an encoder, then print the evaluation table. Any other setting: --name value
    (`contrastkit config --method NAME` lists them all with types, defaults and meaning)."""
    from .api import pretrain as run_pretrain

    settings = {"method": method, "data": data, "data_dir": data_dir, "epochs": epochs, "minutes": minutes,
                "out": out, "import_modules": imports or None, **_parse_extra(ctx.args)}
    if resume and not out:
        raise ContrastkitError("--resume needs --out RUN_FOLDER (the run to continue)")
    result = run_pretrain(config, resume=resume, progress=not no_progress, **settings)
    if not result.is_main:
        return
    console.print(f"trained {result.steps} steps in {result.train_seconds:.0f} s → {result.run_dir}")
    layer = result.method.cfg.get("layer", "backbone")
    print_table(result.eval_rows, f"{result.splits.info.name} test split (last epoch, layer: {layer})")


@app.command("config")
def show_config(
    method: str = typer.Option("simclr", help="method whose settings to list"),
    data: Optional[str] = typer.Option(None, help="(accepted for symmetry with pretrain; settings do not depend on it)"),
    imports: Optional[list[str]] = _import_option(),
) -> None:
    """List every setting of `pretrain` for a method: group, type, resolved default and meaning."""
    _plugins(None, imports)
    from .config import TRAINER_DEFAULTS, VIEW_SETTINGS
    from .methods import method_defaults
    from .settings import describe

    pinned = method_defaults(method)
    defaults = {**TRAINER_DEFAULTS, **pinned, "method": method, **{k: None for k in VIEW_SETTINGS if k not in pinned}}
    if data:
        defaults["data"] = data
    table = Table(title=f"contrastkit pretrain settings (--method {method}); give any as --name value or in --config")
    for col in ("group", "setting", "type", "default", "meaning"):
        table.add_column(col)
    for row in describe(defaults, set(pinned)):
        table.add_row(row["group"], row["setting"], row["type"], row["value"] or "(data's default)", row["meaning"])
    console.print(table)


@app.command()
def methods(imports: Optional[list[str]] = _import_option()) -> None:
    """List every registered method with its pinned defaults."""
    _plugins(None, imports)
    from .methods import METHODS

    table = Table(title="contrastkit methods")
    table.add_column("method")
    table.add_column("what")
    table.add_column("pinned defaults")
    table.add_column("image views (≥ 64 px) where not SimCLR's")
    for name in METHODS.names():
        cls = METHODS.get(name)
        views = {**cls.image_recipe, **cls.image_recipe_large}
        table.add_row(name, cls.summary, ", ".join(f"{k}={v}" for k, v in cls.defaults.items()),
                      ", ".join(f"{k}={v}" for k, v in views.items()))
    console.print(table)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="run folder"),
    protocol: str = typer.Option("knn,linear", help="comma list of knn, linear, cluster, anomaly, retrieval"),
    data: Optional[str] = typer.Option(None, help="evaluate on other data (default: the run's)"),
    layer: Optional[str] = typer.Option(None, help="backbone or projection (default: the run's --layer)"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress lines"),
    imports: Optional[list[str]] = _import_option(),
) -> None:
    """Evaluate a finished run's encoder."""
    _plugins(run, imports)
    from .evaluate.run_eval import evaluate_run

    rows = evaluate_run(run, [p.strip() for p in protocol.split(",") if p.strip()], data,
                        progress=False if no_progress else None, layer=layer)
    print_table(rows, f"{run.name}")
    from .core.checkpoint import write_text_atomic

    write_text_atomic(run / "evaluate.json", json.dumps(rows, indent=2))  # replaces a symlink, never follows it


@app.command()
def embed(
    run: Path = typer.Argument(..., help="run folder"),
    data: str = typer.Option(..., help="data to embed: an image folder, .npy/.npz, .csv/.parquet, or a data set name"),
    out: Path = typer.Option(..., help="output: .npz (embeddings, ids, labels), .csv/.parquet (id, label, e0..), "
                                       ".npy (+ .ids.csv beside it)"),
    split: str = typer.Option("test", help="for built-in names and series/graph/paired data: train or test"),
    id_column: Optional[str] = typer.Option(None, help="tables: the column that identifies a row"),
    layer: str = typer.Option("backbone", help="backbone (encoder output) or projection (after the head)"),
    imports: Optional[list[str]] = _import_option(),
) -> None:
    """Embed data with a run's encoder: every row, in input order, with ids (file names, row numbers)."""
    _plugins(run, imports)
    from .evaluate.run_eval import embed_to_file

    n = embed_to_file(run, data, out, split, id_column, layer)
    console.print(f"wrote {n} embeddings → {out}", markup=False)


@app.command()
def report(run: Path = typer.Argument(..., help="run folder"),
           imports: Optional[list[str]] = _import_option()) -> None:
    """Regenerate report.html of a run."""
    _plugins(run, imports)
    from .evaluate.run_eval import regenerate_report

    console.print(f"wrote {regenerate_report(run)}")


@app.command()
def export(
    run: Path = typer.Argument(..., help="run folder"),
    fmt: str = typer.Option("torchscript", "--format", help="torchscript, pt2 (torch.export), onnx (needs onnx) or "
                            "safetensors (needs safetensors): pip install 'contrastkit[export]'"),
    out: Optional[Path] = typer.Option(None, help="file to write (default RUN/model.pt, .pt2, .onnx or .safetensors)"),
    imports: Optional[list[str]] = _import_option(),
) -> None:
    """Export a run's encoder with its preprocessing bundled: the model takes raw input (images: uint8 as
    stored; tables: the run's standardised feature vector) and loads without contrastkit. A JSON sidecar
    (FILE.json) describes the input."""
    from .export import export_run

    _plugins(run, imports)
    path = export_run(run, fmt, out)
    console.print(f"wrote {path} (+ {path.name}.json, the input description)", markup=False)


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="two or more run folders"),
    out: Path = typer.Option(Path("compare.png"), help="comparison plot (PNG): loss curves and final metrics"),
) -> None:
    """Compare runs: one table of the settings that differ, one of the final metrics, and a plot."""
    from .compare import compare_runs, plot_comparison

    found, settings_rows, metric_rows = compare_runs(runs)
    if settings_rows:
        print_table(settings_rows, "settings that differ")
    else:
        console.print("the runs have the same settings", markup=False)
    if metric_rows:
        print_table(metric_rows, "final metrics of the trained encoders")
    console.print(f"wrote {plot_comparison(found, out)}", markup=False)


def _torchrun_worker() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def main() -> None:
    """Console entry point: bad input ends with one clear line and exit status 2, not a traceback.

    The message is printed verbatim (no Rich markup: a message may contain ``[/x]``) on one line (no wrapping).
    Ctrl-C ends with one line saying how to continue the run, and exit status 130 (128 + SIGINT).
    """
    from rich.text import Text

    def interrupted() -> None:
        argv = sys.argv[1:]
        out = next((a.split("=", 1)[1] for a in argv if a.startswith("--out=")), None)
        if out is None and "--out" in argv and argv.index("--out") + 1 < len(argv):
            out = argv[argv.index("--out") + 1]
        hint = ""
        if "pretrain" in argv:
            hint = (f"; continue the run with: contrastkit pretrain --out {out} --resume" if out else
                    "; continue the run with: contrastkit pretrain --out RUN --resume (RUN: its run folder)")
        console.print(Text(f"interrupted (Ctrl-C){hint}"), soft_wrap=True, markup=False, highlight=False)
        sys.exit(130)

    try:
        app()
    except ContrastkitError as e:
        console.print(Text.assemble(("error:", "bold red"), " ", str(e)), soft_wrap=True, markup=False,
                      highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        interrupted()
    except OSError as e:  # a full disk or a read-only folder met outside the atomic writers (metrics.csv ...)
        where = f" ({e.filename})" if e.filename else ""
        console.print(Text.assemble(("error:", "bold red"), " ", f"{e.strerror or e}{where}; free space or choose "
                                    "a writable --out, then continue with --resume"), soft_wrap=True,
                      markup=False, highlight=False)
        sys.exit(2)
    except SystemExit as e:
        if e.code in (0, None) and _torchrun_worker():
            # a torchrun worker that finished its work ends here, without C++ static destructors: gloo's
            # threads can abort the process there ("terminate called without an active exception"), which
            # torchrun would report as a failed job
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        # typer turns Ctrl-C into a silent exit 130 (SystemExit ← typer.Exit ← KeyboardInterrupt)
        if e.code == 130 and isinstance(getattr(e.__context__, "__cause__", None), KeyboardInterrupt):
            interrupted()
        raise
