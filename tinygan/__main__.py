"""``python -m tinygan``: the ``tinygan`` command (tinygan/tools/commands.py)."""
from tinygan.tools.commands import console_main
console_main()
