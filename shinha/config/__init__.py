"""The configuration language: Nagios/Shinken object files into validated, linked models."""

from shinha.config.diagnostics import Diagnostic
from shinha.config.loader import Config, LoadResult, load_cluster, load_config

__all__ = ["Config", "Diagnostic", "LoadResult", "load_cluster", "load_config"]
