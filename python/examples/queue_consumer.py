"""Work-queue consumers: run several; each item is processed by one of them and acknowledged
once; items held by a consumer that dies are handed to another.

usage: python queue_consumer.py ENDPOINTS QUEUE [--produce N]
"""

import sys

import accord


def main() -> None:
    endpoints, queue = sys.argv[1], sys.argv[2]
    client = accord.connect(endpoints)
    if len(sys.argv) == 5 and sys.argv[3] == "--produce":
        for n in range(int(sys.argv[4])):
            client.enqueue(queue, f"job-{n}")
        return
    with client.session(ttl=5) as session:
        done = 0
        for claim in session.queue(queue).claims(idle_timeout=2):
            print(f"processing {claim.payload.decode()} (item {claim.item})")
            claim.ack()
            done += 1
        print(f"processed {done}")


if __name__ == "__main__":
    main()
