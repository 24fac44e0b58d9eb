"""Cache policies: one file per kind, each a small validated dataclass.

``CachePolicy`` is what users and the CLI pass around; it looks up the kind's
dataclass (``KINDS``) to validate the fields that kind uses and to name the
native policy the patched llama.cpp runs.
"""

from raas_local.policies.base import KINDS, CachePolicy
from raas_local.policies.dense import DensePolicy
from raas_local.policies.h2o import H2OPolicy
from raas_local.policies.quest import QuestPolicy
from raas_local.policies.raas import RaasPolicy
from raas_local.policies.streaming import StreamingPolicy

__all__ = ["CachePolicy", "DensePolicy", "RaasPolicy", "StreamingPolicy", "H2OPolicy", "QuestPolicy", "KINDS"]
