"""Ctrl-C and SIGTERM, the same way in every command and script.

The first SIGINT (Ctrl-C) or SIGTERM becomes a flag, ``DeferredInterrupt.requested``, that the
work checks between units it can finish (a training step, an epoch, a run of a lab): the work
stops there, keeps what is finished, prints one line and the command exits 0. A second signal
raises KeyboardInterrupt at once; :func:`run_main` turns it into one line and exit status 130.

    with DeferredInterrupt() as interrupt:
        for step in ...:
            if interrupt.requested:
                break
            ...
    sys.exit(run_main(main, "toy_1d.py"))       # in a script's ``if __name__ == "__main__"``
"""

import signal
import sys
import threading

SECOND_INTERRUPT = 130        # the shell's status for a process ended by SIGINT
_stopping = False             # a DeferredInterrupt was asked to stop: the process is ending


class DeferredInterrupt:
    """Turns the first SIGINT (Ctrl-C) or SIGTERM into a flag checked between steps;
    a second one interrupts at once (KeyboardInterrupt). Outside the main thread it installs
    nothing (signals are delivered to the main thread only) and ``requested`` stays False."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.requested = False
        self.signal_name = None
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def _handler(self, signum, frame):
        global _stopping
        if self.requested:
            raise KeyboardInterrupt
        self.requested = _stopping = True
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        return False


_terminated = False           # _terminate ran: a signal asked this process to stop at once


def _terminate(signum, frame):
    global _terminated
    _terminated = True            # kept: Python drops an exception raised inside a finalizer
    raise KeyboardInterrupt


def run_main(main, prog, argv=None, exiting=True):
    """``main(argv)``'s exit status. Outside the work's DeferredInterrupt (loading, drawing, a
    command with nothing partial to keep) SIGTERM stops at once like Ctrl-C; a
    KeyboardInterrupt that escapes ``main`` (that, or a second signal) is one line on stderr
    and status 130. ``exiting`` (the process ends when ``main`` returns: a script's or the
    console command's entry point): after a signal further ones are ignored, so none arrives
    on the way out; ``exiting=False`` (called in-process) restores the handlers instead."""
    global _stopping, _terminated
    _stopping = _terminated = False
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, _terminate)
    stopped = False
    try:
        status = main(argv) or 0
        if _terminated:           # the KeyboardInterrupt was swallowed (a __del__ it hit): stop
            raise KeyboardInterrupt
        return status
    except KeyboardInterrupt:
        stopped = exiting
        if exiting:
            _ignore_signals(old)
        print(f"{prog}: stopped at once (interrupted); what was finished before is kept",
              file=sys.stderr, flush=True)
        return SECOND_INTERRUPT
    finally:
        if exiting and _stopping and not stopped:    # stopped by a first signal: ending
            _ignore_signals(old)
        elif old is not None and not stopped:
            signal.signal(signal.SIGTERM, old)


def _ignore_signals(installed):
    """A process that is ending after a signal ignores further ones (no second message, no
    death by the default SIGTERM on the way out)."""
    if installed is not None:
        for s in DeferredInterrupt.SIGNALS:
            signal.signal(s, signal.SIG_IGN)
