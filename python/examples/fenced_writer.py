"""A fenced file writer: several processes append to one file under a lock; the file (the
protected resource) refuses writes whose fencing token is older than the last one it saw,
so a process that lost the lock during a pause cannot corrupt it.

usage: python fenced_writer.py ENDPOINTS FILE TEXT
"""

import os
import sys

import accord


def highest_token(path: str) -> int:
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        lines = f.read().splitlines()
    return int(lines[-1].split()[0]) if lines else 0


def main() -> None:
    endpoints, path, text = sys.argv[1], sys.argv[2], sys.argv[3]
    client = accord.connect(endpoints)
    with client.session(ttl=5) as session:
        with session.lock("file:" + path, timeout=30) as lock:
            if lock.is_held() and lock.token >= highest_token(path):
                with open(path, "a") as f:
                    f.write(f"{lock.token} {text}\n")
                print(f"wrote with token {lock.token}")
            else:
                print(f"refused: token {lock.token} is stale")


if __name__ == "__main__":
    main()
