"""Checkpoint files written beside training, not in its way.

A checkpoint's bytes are made at once, on the training thread (what the file holds is fixed
then), and written, fsync'd and renamed into place on a thread of their own while the next
steps run: on a slow disk or a large model that is most of a save. The file operations run
one after the other, in the order they were asked for (a hard link to a file waits for its
write), and a new write first waits for the one before it: at most one checkpoint's bytes
wait in memory. A kill at any moment still leaves each file whole or as it was.

`wait()` before reading a file this process wrote (utils.load_checkpoint does) and at the end
of a run; a write that failed (a full disk) raises its one-line error there, or at the next
save. The threads are not daemons: a normal exit, sys.exit included, finishes the writes.
"""
import threading

_last = None     # the thread of the newest operation asked for
_failed = []     # the exception of an operation that failed, until raised


def submit(operation):
    """operation() on a thread of its own, once every earlier one is done. After a failed one,
    later operations are not run: they would link or remove files of a write that failed."""
    global _last
    _raise_failure()
    previous = _last

    def run():
        if previous is not None:
            previous.join()
        if _failed:
            return
        try:
            operation()
        except BaseException as e:  # raised on the training thread, at the next save or wait
            _failed.append(e)

    _last = threading.Thread(target=run, name='runyard-writer')
    _last.start()


def wait():
    """Every operation asked for is done; the first failure among them is raised."""
    global _last
    if _last is not None:
        _last.join()
        _last = None
    _raise_failure()


def _raise_failure():
    if _failed:
        raise _failed.pop(0)
