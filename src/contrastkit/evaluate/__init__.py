"""Evaluation of learned embeddings: kNN, linear probe, clustering, anomaly detection, retrieval,
collapse diagnostics, embedding helper and the HTML run report (METHODS.md §14, §18, §21).

Every metric function takes embeddings as torch tensors or numpy arrays and works in bounded memory
(query rows are processed in chunks), so 100k × 100k evaluations run on a laptop.
"""

from .anomaly import anomaly_score_values, anomaly_scores, per_class_auroc
from .cluster import cluster_scores, clustering_accuracy, hungarian_map, kmeans_labels
from .diagnostics import alignment, collapse_warning, diagnostics, effective_rank, normalized_std, uniformity
from .embed import embed
from .knn import knn_accuracies, knn_accuracy, knn_predict
from .linear import LinearProbe, fit_linear_probe, linear_probe
from .report import write_report
from .retrieval import label_retrieval_scores, map_at_r, retrieval_recall

__all__ = [
    "alignment",
    "anomaly_score_values",
    "anomaly_scores",
    "cluster_scores",
    "clustering_accuracy",
    "collapse_warning",
    "diagnostics",
    "effective_rank",
    "embed",
    "fit_linear_probe",
    "hungarian_map",
    "kmeans_labels",
    "knn_accuracies",
    "knn_accuracy",
    "knn_predict",
    "label_retrieval_scores",
    "linear_probe",
    "LinearProbe",
    "map_at_r",
    "normalized_std",
    "per_class_auroc",
    "retrieval_recall",
    "uniformity",
    "write_report",
]
