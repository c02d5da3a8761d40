"""The stack supervisor: the pipeline's parts started, watched and stopped as one.

:class:`Stack` runs the broker (embedded, in this process, or an existing one), the
topics, and the backend and consumer as child processes
(:class:`ComponentProcess`). ``recipe-pipeline up`` runs it headless.
"""

from pipeline_core.stack.process import (
    ComponentError,
    ComponentProcess,
    ComponentState,
    component_argv,
)
from pipeline_core.stack.stack import Stack, StackConfig, StackError

__all__ = [
    "ComponentError",
    "ComponentProcess",
    "ComponentState",
    "Stack",
    "StackConfig",
    "StackError",
    "component_argv",
]
