"""Model evaluation and validation gates: metrics overall and per slice, policies, verdicts with evidence."""

from modelcycle.evaluation.gate import Policy, RuleResult, Verdict, check_policy
from modelcycle.evaluation.metrics import Evaluation, evaluate_model, higher_is_better

__all__ = ["Evaluation", "Policy", "RuleResult", "Verdict", "check_policy", "evaluate_model", "higher_is_better"]
