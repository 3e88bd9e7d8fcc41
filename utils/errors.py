"""A user's mistake as one line: ConfigError, the key path it happened at, and how the
entrypoints print it."""
import contextlib
import difflib
import gc
import sys

from . import writer


class ConfigError(Exception):
    """A user's mistake. Entrypoints print it as one line and exit with status 2."""

    def __init__(self, message, key=None, file=None):
        super().__init__(message)
        self.message, self.key, self.file = message, key, file

    def __str__(self):
        where = [str(p) for p in (self.file, self.key) if p]
        return ': '.join(where + [self.message])


class ConfigErrors(ConfigError):
    """Several mistakes of one config, found together (Mistakes): one line each."""

    LIMIT = 10

    def __init__(self, errors):
        super().__init__(errors[0].message, errors[0].key, errors[0].file)
        self.errors = errors[:self.LIMIT]

    def __str__(self):
        return '\n'.join(str(e) for e in self.errors)

    def lines(self):
        return [str(e) for e in self.errors]


def each(error):
    """The single mistakes in a ConfigError (ConfigErrors holds several)."""
    return error.errors if isinstance(error, ConfigErrors) else [error]


@contextlib.contextmanager
def at_key(key, file=None):
    """Prefix the key path (and name the file) of any ConfigError raised inside."""
    try:
        yield
    except ConfigError as e:
        for one in each(e):
            if key:
                one.key = f'{key}.{one.key}' if one.key else key
            one.file = one.file or file
        raise


class Mistakes:
    """The mistakes of independent parts of a config, reported together rather than one per
    try: `with mistakes.part(): ...` for each part, then `mistakes.raise_them()`. A part that
    failed returns nothing, so what needs it is skipped (`if task is not None`)."""

    def __init__(self):
        self.found = []

    @contextlib.contextmanager
    def part(self):
        try:
            yield
        except ConfigError as e:
            self.found.extend(each(e))

    def raise_them(self):
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise ConfigErrors(self.found)


def listing(names, label='known', width=150, short=False):
    """' (known: a, b, c)', cut to about `width` characters, so that an error stays one short
    line. `short`: beside a 'did you mean' hint, a list longer than 100 characters is only
    counted."""
    names = [str(n) for n in names]
    if short and len(', '.join(names)) > 100:
        return f' ({len(names)} {label})'
    shown = []
    for name in names:
        if sum(len(n) + 2 for n in shown) + len(name) > width:
            return f" ({label}: {', '.join(shown)}, ... {len(names) - len(shown)} more)"
        shown.append(name)
    return f" ({label}: {', '.join(shown)})"


def short(value, width=80):
    """repr(value), cut to `width` characters."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + '...'


def first_line(error):
    """An exception's message as one line: its first, or its type's name when it has none."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def close_matches(word, choices):
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ''


class TrainingStopped(Exception):
    """Training cannot go on (a NaN loss): one line on stderr and exit status 1."""


def run_entrypoint(main):
    """What an entrypoint's `if __name__ == '__main__':` does: run_cli on the command line,
    then leave without the interpreter's garbage collections at exit. Those walk every object
    torch, torch._dynamo and Lightning made, 0.9-2.9 s after the last line of an error, a
    --check or a run on 2 CPU cores (benchmarks/RESULTS.md); gc.freeze() takes them out of it.
    atexit handlers still run (tensorboardX closes its writers in one), and runyard's own files,
    loggers and threads are closed by then; an object in a reference cycle is not finalized, so
    a callback closes its files in `teardown`, not in `__del__`."""
    try:
        run_cli(main, sys.argv[1:])
    finally:
        gc.freeze()


def run_cli(main, argv=None):
    """Run an entrypoint's main: a ConfigError becomes one line on stderr and exit status 2,
    a TrainingStopped exit status 1 (the traceback only with --debug); either way, once the
    checkpoint writes on utils/writer.py's thread are done."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        try:
            return main(argv)
        finally:
            writer.wait()  # the checkpoints a run saved are on disk before its last line
    except (ConfigError, TrainingStopped) as e:
        if '--debug' in argv:
            raise
        for one in each(e) if isinstance(e, ConfigError) else [e]:
            print(f'error: {one}', file=sys.stderr)
        sys.exit(2 if isinstance(e, ConfigError) else 1)
