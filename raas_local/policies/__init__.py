"""Cache policies: one file per kind, each a small validated dataclass (the config is the class).

``make(kind, **settings)`` (or its alias ``CachePolicy``) builds any kind by
name; ``KINDS`` maps each name to its class. Adding a kind: a file here with
its dataclass under ``@register(name)``, imported below, and its C++ rule in
native/ (docs/architecture.md).
"""

from raas_local.policies.base import BUDGET, KINDS, PAGE_SIZE, CachePolicy, Policy, make
from raas_local.policies.dense import DensePolicy
from raas_local.policies.h2o import H2OPolicy
from raas_local.policies.quest import QuestPolicy
from raas_local.policies.raas import RaasPolicy
from raas_local.policies.streaming import StreamingPolicy

__all__ = ["BUDGET", "KINDS", "PAGE_SIZE", "CachePolicy", "Policy", "make",
           "DensePolicy", "RaasPolicy", "StreamingPolicy", "H2OPolicy", "QuestPolicy"]
