"""shinha: a high-availability monitoring cluster in the line of Shinken and Pandora FMS."""

__version__ = "0.1.0"
