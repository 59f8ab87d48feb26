"""``python -m miso_runtime``: patch for gevent first, then run the command line."""

from gevent import monkey

monkey.patch_all()

from miso_runtime.cli import main  # noqa: E402 - must come after patching

raise SystemExit(main())
