"""tap.py: TAP lines for the Python reference tests. `tap = Tap()`, then `tap(ok, name)`
prints "ok - NAME" or "not ok - NAME" (flushed, so the lines interleave with the
programs the test runs) and counts the failures; `tap.exit()` ends the script with 1 if
any check failed, else 0."""
import sys


class Tap:
    def __init__(self):
        self.failed = 0

    def __call__(self, ok, name):
        print(("ok - " if ok else "not ok - ") + name, flush=True)
        self.failed += 0 if ok else 1
        return ok

    def exit(self):
        sys.exit(1 if self.failed else 0)
