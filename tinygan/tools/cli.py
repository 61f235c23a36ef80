"""Command-line helpers shared by the commands and the examples: one-line usage errors, checked
numbers, printable paths, and the --download / --no-download flags of every data-reading command.

argparse's own error prints the usage and the message on two lines; :class:`Parser` prints
one line (and exits with status 2), as every tinygan command does for bad usage.
"""

import argparse
import math
import re
import sys
import warnings


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, unless its help names it already ("default: ...") or it is
    None (a flag whose default depends on others says so in its help) or the flag is a switch
    (off unless given)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is argparse.SUPPRESS
                or (action.nargs == 0 and action.default is False)):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line, exit status 2, and shows every default."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def format_help(self):
        """argparse's help, with the docstrings' reStructuredText roles (``:func:`main```) and
        double backquotes made plain text: a help screen is read, not rendered."""
        return plain_text(super().format_help())

    def parse_args(self, args=None, namespace=None):
        """argparse's, and from then on a warning prints as one line, ``prog: warning: ...``
        (not Python's file, line and source line): :func:`one_line_warnings`."""
        one_line_warnings(self.prog)
        return super().parse_args(args, namespace)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def plain_text(text):
    """``text`` without reStructuredText markup: ``:func:`main``` -> ``main``, double
    backquotes -> none."""
    text = re.sub(r":(?:func|class|meth|mod|attr|data|obj|exc):`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _number(text, kind, convert, ok):
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
    return value


def positive_int(text):
    return _number(text, "a positive integer", int, lambda v: v >= 1)


def non_negative_int(text):
    return _number(text, "a non-negative integer", int, lambda v: v >= 0)


def positive_float(text):
    return _number(text, "a positive number", float, lambda v: v > 0 and math.isfinite(v))


def unit_float(text):
    return _number(text, "a number in (0, 1]", float, lambda v: 0 < v <= 1)


def printable(text, stream=None):
    """``text`` as ``stream`` (default stderr) can print it whatever its encoding and error
    handler: what it cannot encode (a path's undecodable bytes, kept by Python as surrogates)
    becomes a backslash escape."""
    encoding = getattr(stream or sys.stderr, "encoding", None) or "utf-8"
    return str(text).encode(encoding, "backslashreplace").decode(encoding, "replace")


def one_line_warnings(prog):
    """Print every warning of this process as ``prog: warning: <message on one line>`` on
    stderr (a checkpoint that fell back to its previous copy, a cut-off metrics line)."""
    def show(message, category, filename, lineno, file=None, line=None):
        stream = file or sys.stderr
        try:
            print(printable(f"{prog}: warning: {' '.join(str(message).split())}", stream),
                  file=stream, flush=True)
        except (OSError, ValueError):
            pass                    # stderr closed: nothing to tell
    warnings.showwarning = show


def report_error(prog, exc):
    """Print ``prog: error: <message on one line>`` to stderr; return exit status 1."""
    print(printable(f"{prog}: error: {' '.join(str(exc).split())}"), file=sys.stderr)
    return 1


def add_download_flags(p):
    """--download / --no-download, the same in every command that reads a data set."""
    dl = p.add_mutually_exclusive_group()
    dl.add_argument("--download", action="store_true",
                    help="download missing data files into the cache, even with --data-dir")
    dl.add_argument("--no-download", action="store_true",
                    help="never download (as TINYGAN_OFFLINE=1): a missing file is an error")


def download_setting(args):
    """load_mnist / load_cifar10's ``download``: True, False or None (automatic)."""
    return True if args.download else (False if args.no_download else None)
