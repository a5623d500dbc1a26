"""Verifiers (PRMs, judges, rules, oracle) registered by name; model-based ones import lazily."""

from ttscale.verifiers.base import VERIFIERS, Verifier, build_verifier

__all__ = ["VERIFIERS", "Verifier", "build_verifier"]
