"""Publishing: export exactly what a Hub repository needs, write its model card, upload it."""

from .card import build_model_card
from .export import EXPORT_WHITELIST, export_for_hub
from .upload import push_folder

__all__ = ["EXPORT_WHITELIST", "build_model_card", "export_for_hub", "push_folder"]
