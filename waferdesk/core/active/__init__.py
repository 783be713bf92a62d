"""Active learning: uncertainty scores, diversity sampling and query strategies (numpy only)."""

from .diversity import k_center_greedy, min_distance_to
from .scores import dihedral, dihedral_inverse, entropy, tta_disagreement, uncertainty_scores
from .strategies import STRATEGIES, QueryResult, select

__all__ = [
    "STRATEGIES",
    "QueryResult",
    "dihedral",
    "dihedral_inverse",
    "entropy",
    "k_center_greedy",
    "min_distance_to",
    "select",
    "tta_disagreement",
    "uncertainty_scores",
]
