"""A leader-elected scheduler: run it on several machines; one of them schedules, the others
stand by and take over within a session TTL when it dies.

usage: python scheduler.py ENDPOINTS NAME
"""

import sys
import time

import accord


def main() -> None:
    endpoints, name = sys.argv[1], sys.argv[2]
    client = accord.connect(endpoints)
    with client.session(ttl=5) as session:
        election = session.election("scheduler")
        print(f"{name}: campaigning")
        with election.campaign(name) as leadership:
            print(f"{name}: leading with token {leadership.token}")
            while leadership.is_leader():
                # Tag the work with the token: a deposed scheduler's writes are refused.
                client.kv.txn(
                    [("scheduler", "leader_token", leadership.token)],
                    success=[("schedule/last-run", f"{name} {time.time():.0f}")],
                )
                time.sleep(1)
        print(f"{name}: no longer leading")


if __name__ == "__main__":
    main()
