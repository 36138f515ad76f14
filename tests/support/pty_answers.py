"""Runs a command in a pseudo-terminal and answers its questions as a person would: for each
(expected text, answer) pair, waits until the text appears on the terminal, then types the
answer and Enter. Prints everything the terminal showed; exits with the command's status.

Usage: pty_answers.py <json: {"command": [...], "dialogue": [[expect, answer], ...]}>
"""

import json
import os
import pty
import select
import sys
import time

DEADLINE_SECS = 60


def main() -> None:
    spec = json.loads(sys.argv[1])
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(spec["command"][0], spec["command"])
    shown = b""
    seen_up_to = 0

    def read_some(timeout: float) -> str:
        nonlocal shown
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return "timeout"
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return "eof"
        if not chunk:
            return "eof"
        shown += chunk
        return "data"

    for expect, answer in spec["dialogue"]:
        until = time.monotonic() + DEADLINE_SECS
        while True:
            at = shown.find(expect.encode(), seen_up_to)
            if at >= 0:
                seen_up_to = at + len(expect)
                break
            if time.monotonic() > until or read_some(0.5) == "eof":
                sys.stdout.write(shown.decode(errors="replace"))
                sys.stderr.write(f"never asked: {expect!r}\n")
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                sys.exit(99)
        os.write(fd, answer.encode() + b"\r")
    until = time.monotonic() + DEADLINE_SECS
    while read_some(0.5) != "eof" and time.monotonic() < until:
        pass
    if time.monotonic() >= until:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(shown.decode(errors="replace"))
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
