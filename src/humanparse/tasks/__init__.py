"""LightningModules: losses, steps, metric updates and logging (models stay free of training logic)."""

from humanparse.tasks.parsing import BaseTask, SemanticParsingTask

__all__ = ["BaseTask", "SemanticParsingTask"]
