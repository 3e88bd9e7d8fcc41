"""Checkpoint files written beside training, not in its way.

A checkpoint's bytes are made at once, on the training thread (what the file holds is fixed
then), and written, fsync'd and renamed into place on a thread of their own while the next
steps run: on a slow disk or a large model that is most of a save. The file operations run
one after the other, in the order they were asked for (a hard link to a file waits for its
write), on one long-lived thread (starting a thread for each took 0.3 ms of the training
thread's time, a tenth of a small model's epoch end); a new write first waits for the one
before it: at most one checkpoint's bytes wait in memory. A kill at any moment still leaves
each file whole or as it was.

`wait()` before reading a file this process wrote (utils.load_checkpoint does) and at the end
of a run; a write that failed (a full disk) raises its one-line error there, or at the next
save. The thread is concurrent.futures', which the interpreter's exit waits for: a normal
exit, sys.exit included, finishes the writes.
"""
import os
from concurrent.futures import ThreadPoolExecutor

_pool = None     # the one thread's executor, made at the first write
_last = None     # the future of the newest operation asked for
_failed = []     # the exception of an operation that failed, until raised


def submit(operation):
    """operation() on the writer's thread, once every earlier one is done. After a failed one,
    later operations are not run: they would link or remove files of a write that failed."""
    global _pool, _last
    _raise_failure()
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='runyard-writer')

    def run():
        if _failed:
            return
        try:
            operation()
        except BaseException as e:  # raised on the training thread, at the next save or wait
            _failed.append(e)

    _last = _pool.submit(run)


def wait():
    """Every operation asked for is done; the first failure among them is raised."""
    global _last
    if _last is not None:
        _last.result()  # one thread, in order: the newest done is every one done
        _last = None
    _raise_failure()


def settle():
    """Every operation asked for is done; a failure among them is left for wait() to raise
    (for a caller already on its way out with an error of its own)."""
    if _last is not None:
        _last.result()


def _raise_failure():
    if _failed:
        raise _failed.pop(0)


def _forget_in_child():
    """A forked process (a DataLoader worker) has no writer's thread: it would make its own."""
    global _pool, _last
    _pool, _last = None, None
    _failed.clear()


os.register_at_fork(after_in_child=_forget_in_child)
