"""functions-framework's source file (the ``main.py`` it looks for):
``functions-framework --source bridge/gcp_push/main.py --target secret_rotate``."""

from bridge.gcp_push import secret_rotate

__all__ = ["secret_rotate"]
