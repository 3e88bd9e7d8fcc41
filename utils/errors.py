"""A user's mistake as one line: ConfigError, the key path it happened at, and how the
entrypoints print it."""
import contextlib
import difflib
import sys


class ConfigError(Exception):
    """A user's mistake. Entrypoints print it as one line and exit with status 2."""

    def __init__(self, message, key=None, file=None):
        super().__init__(message)
        self.message, self.key, self.file = message, key, file

    def __str__(self):
        where = [str(p) for p in (self.file, self.key) if p]
        return ': '.join(where + [self.message])


@contextlib.contextmanager
def at_key(key, file=None):
    """Prefix the key path (and name the file) of any ConfigError raised inside."""
    try:
        yield
    except ConfigError as e:
        if key:
            e.key = f'{key}.{e.key}' if e.key else key
        e.file = e.file or file
        raise


def close_matches(word, choices):
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ''


class TrainingStopped(Exception):
    """Training cannot go on (a NaN loss): one line on stderr and exit status 1."""


def run_cli(main, argv=None):
    """Run an entrypoint's main: a ConfigError becomes one line on stderr and exit status 2,
    a TrainingStopped exit status 1 (the traceback only with --debug)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return main(argv)
    except (ConfigError, TrainingStopped) as e:
        if '--debug' in argv:
            raise
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2 if isinstance(e, ConfigError) else 1)
