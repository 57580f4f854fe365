"""``python -m odesolve``: the ``odesolve`` command."""
from .workflow.cli import entry_point

if __name__ == "__main__":
    entry_point()
