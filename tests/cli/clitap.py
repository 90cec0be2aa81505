"""What the Python tests of tests/cli share: TAP lines ("ok - ..." or
"not ok - ..."), a bounded wait, and the exit status."""
import sys
import time

fails = 0


def ok(cond, what):
    """One TAP line; a failure is counted for done()."""
    global fails
    print(("ok - " if cond else "not ok - ") + what)
    if not cond:
        fails += 1


def wait_for(pred, what, seconds=10):
    """Until pred() is true: a deadline, not a timing assertion."""
    for _ in range(int(seconds * 50)):
        if pred():
            return True
        time.sleep(0.02)
    ok(False, "waited %d s for %s" % (seconds, what))
    return False


def done():
    """Exits 1 when a check failed, else 0."""
    sys.exit(1 if fails else 0)
