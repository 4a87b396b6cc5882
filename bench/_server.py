"""The sandbox, in a process of its own: ``python -m bench._server``.

Serves every installed provider's emulator plus the fake provider with
`paygate.sandbox.running`, prints the URL on the first line of stdout and serves until
stdin closes. A separate process keeps the server's work off the client's GIL, so the
client side is measured alone (the machine needs a core for each).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Serve until the parent closes stdin."""
    from paygate.sandbox import discover_emulators, running

    from ._fake import fake_classes

    found, _skipped = discover_emulators(None)
    emulators = list(found.values())
    fake = fake_classes()
    if fake is not None:
        emulators.append(fake[1])
    with running(emulators=emulators) as sandbox:
        print(sandbox.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
