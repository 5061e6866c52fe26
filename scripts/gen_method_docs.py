"""Write docs/methods.md from the method registry: per method its summary, objective and citation, the data it
trains on, its pinned defaults, its image-view recipe and the notes of its source file.

    .venv/bin/python scripts/gen_method_docs.py            # rewrite docs/methods.md
    .venv/bin/python scripts/gen_method_docs.py --check    # exit 1 when docs/methods.md is stale

tests/test_docs.py fails when the committed page differs from what this script renders: after changing a
method's defaults, summary or docstrings, run it and commit the page.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "methods.md"

# Objective (one line) and citation per method: what the registry does not say in a structured way.
FORMULA: dict[str, tuple[str, str]] = {
    "simclr": ("ℓ_k = −log exp(s(z_k, z_p(k))/τ) / Σ_{j≠k} exp(s(z_k, z_j)/τ) over the 2N views (NT-Xent); "
               "DCL drops the positive from the denominator, DCLW weights it by 2 − N·softmax(s/σ)",
               "Chen et al., A Simple Framework for Contrastive Learning of Visual Representations, ICML 2020; "
               "Yeh et al., Decoupled Contrastive Learning, ECCV 2022"),
    "supcon": ("L = Σ_i −1/|P(i)| Σ_{p∈P(i)} log exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ), P(i) = same label",
               "Khosla et al., Supervised Contrastive Learning, NeurIPS 2020"),
    "moco": ("L = CE([q·k₊, q·n_1, …, q·n_K]/τ, 0); key encoder θ_k ← m θ_k + (1 − m) θ_q; FIFO queue of keys",
             "He et al., Momentum Contrast, CVPR 2020; Chen et al., Improved Baselines with MoCo (v2), 2020"),
    "mochi": ("MoCo's logits plus synthetic negatives: mixes of two of the hardest queue entries (type 1) and of "
              "the query with one (type 2)",
              "Kalantidis et al., Hard Negative Mixing for Contrastive Learning, NeurIPS 2020"),
    "moco-ft": ("q̂ = λ q + (1 − λ) k, k̂ = λ k + (1 − λ) q with λ ∈ [1, 2] (extrapolated positives); negatives "
                "interpolated within the queue",
                "Zhu et al., Improving Contrastive Learning by Visualizing Feature Transformation, ICCV 2021"),
    "byol": ("L = ‖p̄(v) − z̄′(v′)‖² + ‖p̄(v′) − z̄′(v)‖² (normalised); target ξ ← τ ξ + (1 − τ) θ, τ cosine to 1",
             "Grill et al., Bootstrap Your Own Latent, NeurIPS 2020"),
    "simsiam": ("L = ½ D(p₁, sg z₂) + ½ D(p₂, sg z₁), D = −cos",
                "Chen & He, Exploring Simple Siamese Representation Learning, CVPR 2021"),
    "directpred": ("BYOL with the linear predictor W_p = U diag(√(s/max s) + ε) Uᵀ from the EMA correlation "
                   "F̂ = U diag(s) Uᵀ of the projections",
                   "Tian, Chen & Ganguli, Understanding Self-supervised Learning Dynamics without Contrastive "
                   "Pairs, ICML 2021"),
    "sogclr": ("u_i ← (1 − γ) u_i + γ mean_z exp(s_iz/τ); surrogate L = mean_i[−s_i⁺ + mean_z sg(exp(s_iz/τ)/u_i)·s_iz]",
               "Yuan et al., Provable Stochastic Optimization for Global Contrastive Learning, ICML 2022"),
    "isogclr": ("SogCLR with a temperature τ_i ∈ [τ_min, τ_max] per sample, learned by the DRO objective "
                "τ_i log E exp(h_i/τ_i) + τ_i ρ",
                "Qiu et al., Not All Semantics are Created Equal: Contrastive Self-supervised Learning with "
                "Automatic Temperature Individualization, ICML 2023"),
    "clan": ("L = α Σ d(z_i, z_j)/# + (1 − α) Σ [m − d(z_i, z̃_j)]₊/#, d = (1 − cos)/2, z̃ = augmented negatives; "
             "anomaly score −cos(f(x), c)",
             "Wilkie et al., CLAN: contrastive learning with augmented negatives for network intrusion detection "
             "(jackwilkie/CLAN)"),
    "scarf": ("NT-Xent(f(x), f(x̃)) with x̃ = x with ⌊c·M⌋ features replaced by the same column of random training "
              "rows (SimCLR's objective, SCARF's views and Adam recipe)",
              "Bahri et al., SCARF: Self-Supervised Contrastive Learning using Random Feature Corruption, ICLR 2022"),
    "csi": ("NT-Xent over the 2B instances [x; s(x)], s = CLAN's feature replacement (shifted copies are extra "
            "negatives), views = Gaussian noise; anomaly score: kNN distance in the embedding (+ raw kNN)",
            "Tack et al., CSI: Novelty Detection via Contrastive Learning on Distributionally Shifted Instances, "
            "NeurIPS 2020"),
    "scgc": ("L_NC = −(1/n) Σ_i log Σ_j A_r[i,j] exp(τ S_ij) / Σ_j exp(τ S_ij), A_r = Â^r, S = cosine "
             "similarities; + β KL(P‖Q) clustering term",
             "Kulatilleke, Portmann & Chandra, SCGC: Self-Supervised Contrastive Graph Clustering, 2022 "
             "(gayanku/SCGC)"),
    "scgc-star": ("SCGC's L_NC with the influence-augmented target A_r = Σ_{t=1..r} Â^t",
                  "Kulatilleke, Portmann & Chandra, SCGC, 2022: SCGC* (gayanku/SCGC, --influence)"),
    "grace": ("NT-Xent between the GCN embeddings of two graph views (edge dropping, feature masking), "
              "intra- and inter-view negatives",
              "Zhu et al., Deep Graph Contrastive Representation Learning, ICML GRL+ workshop 2020"),
    "clip": ("L = ½[CE(s·U Vᵀ, arange) + CE(s·V Uᵀ, arange)], s = exp(t) ≤ 100 learned",
             "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021"),
    "cleanclip": ("CLIP's loss + ½[L(a′, a″) + L(b′, b″)]: each side against an augmented view of itself",
                  "Bansal et al., CleanCLIP: Mitigating Data Poisoning Attacks in Multimodal Contrastive "
                  "Learning, ICCV 2023"),
    "sogclr_clip": ("SogCLR's per-sample moving-average normaliser, per side, on the cross-modal similarities",
                    "Yuan et al., ICML 2022 (bimodal form as in LibAUC GCLoss_v2)"),
    "isogclr_clip": ("iSogCLR's learned per-sample temperature, per side, on the cross-modal similarities",
                     "Qiu et al., ICML 2023 (bimodal form as in LibAUC GCLoss_v2)"),
    "ts2vec": ("hierarchical contrast (instance-wise + temporal) of the per-step representations of two "
               "overlapping crops, at every max-pooled time scale",
               "Yue et al., TS2Vec: Towards Universal Representation of Time Series, AAAI 2022"),
}

# The numbered sections that docstrings cite as "METHODS.md §N" (the design notes behind the code), and where
# a user finds the same material in docs/.
SECTIONS = [
    ("§0", "notation and conventions", "this page"),
    ("§1", "SimCLR / NT-Xent", "[simclr](#simclr)"), ("§2", "DCL / DCLW", "[simclr](#simclr) (`--objective`)"),
    ("§3", "MoCo v1/v2", "[moco](#moco)"), ("§4", "MoCHi", "[mochi](#mochi)"), ("§5", "SogCLR", "[sogclr](#sogclr)"),
    ("§6", "iSogCLR", "[isogclr](#isogclr)"), ("§7", "BYOL", "[byol](#byol)"), ("§8", "SimSiam", "[simsiam](#simsiam)"),
    ("§9", "DirectPred", "[directpred](#directpred)"), ("§10", "SupCon", "[supcon](#supcon)"),
    ("§12", "MoCo feature transformation", "[moco-ft](#moco-ft)"), ("§14", "CLAN", "[clan](#clan)"),
    ("§15", "SCGC / SCGC*", "[scgc](#scgc), [graphs.md](graphs.md)"),
    ("§16", "CLIP and bimodal SogCLR/iSogCLR", "[clip](#clip), [paired.md](paired.md)"),
    ("§17", "distributed negatives (gather with gradient)", "README, *Many GPUs, many machines*"),
    ("§18", "evaluation protocols (kNN, linear probe, clustering, anomaly, retrieval)", "README, index.md"),
    ("§19", "tabular views (SCARF corruption, CLAN negatives)", "[clan](#clan), `views/tabular.py`"),
    ("§20", "time-series views", "[series.md](series.md)"),
    ("§21", "representation diagnostics (collapse monitors)", "the run report, `evaluate/diagnostics.py`"),
]


def _value(v) -> str:
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(_value(x) for x in v) + ")"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from contrastkit.methods import METHODS
    from contrastkit.methods.base import method_kinds
    from contrastkit.settings import HELP

    names = METHODS.names()
    lines = ["# Methods", "",
             "<!-- generated by scripts/gen_method_docs.py from the method registry; do not edit by hand -->", "",
             "Every method registered in contrastkit: what it optimises, where it comes from, the data it trains "
             "on and the defaults it pins (saved in every run's `config.yaml`; any of them is a flag: "
             "`--name value`). `contrastkit methods` prints the same list, `contrastkit config --method NAME` "
             "every setting with its type and meaning.", "",
             "| method | what | data |", "| --- | --- | --- |"]
    for name in names:
        cls = METHODS.get(name)
        lines.append(f"| [{name}](#{name}) | {_cell(cls.summary)} | {', '.join(method_kinds(cls))} |")
    lines.append("")
    seen_modules: dict[str, str] = {}
    for name in names:
        cls = METHODS.get(name)
        lines += [f"## {name}", "", f"**{cls.summary}**", ""]
        formula, citation = FORMULA.get(name, ("", ""))
        if formula:
            lines += [f"Objective: {formula}.", ""]
        if citation:
            lines += [f"Reference: {citation}.", ""]
        lines += [f"Data: {', '.join(method_kinds(cls))}" + (" (needs labels)" if cls.needs_labels else "") + ".", ""]
        own = cls.__dict__.get("__doc__")
        if own:
            lines += [inspect.cleandoc(own), ""]
        if cls.defaults:
            lines += ["| pinned setting | value | meaning |", "| --- | --- | --- |"]
            for key, value in cls.defaults.items():
                lines.append(f"| `{key}` | `{_cell(_value(value))}` | {_cell(HELP.get(key, ('', ''))[1])} |")
            lines.append("")
        recipe = {**dict(getattr(cls, "image_recipe", {}) or {})}
        large = dict(getattr(cls, "image_recipe_large", {}) or {})
        if recipe or large:
            parts = [f"`{k}={_value(v)}`" for k, v in recipe.items()]
            parts += [f"`{k}={_value(v)}` (images ≥ 64 px)" for k, v in large.items()]
            lines += ["Image views where they differ from SimCLR's recipe: " + ", ".join(parts) + ".", ""]
        module = inspect.getmodule(cls)
        mod_name = module.__name__.rsplit(".", 1)[-1] if module else ""
        if module and module.__doc__:
            if mod_name in seen_modules:
                lines += [f"Notes: see [{seen_modules[mod_name]}](#{seen_modules[mod_name]}) "
                          f"(`methods/{mod_name}.py`).", ""]
            else:
                seen_modules[mod_name] = name
                lines += [f"Notes from `methods/{mod_name}.py`:", "", "```text",
                          inspect.cleandoc(module.__doc__), "```", ""]
    lines += ["## Section numbers cited in the source", "",
              "Docstrings cite the design notes the code was written from as \"METHODS.md §N\". Those notes are "
              "not shipped; what a user needs from each section is here or on the page named:", "",
              "| § | topic | where |", "| --- | --- | --- |"]
    lines += [f"| {s} | {topic} | {where} |" for s, topic, where in SECTIONS]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/methods.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/gen_method_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
