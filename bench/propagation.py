#!/usr/bin/env python3
"""Propagation benchmark client (standard library only), driven by bench/propagation.sh.

Signs in on node A, creates N tokens there through the REST API, then for each token:
waits until node B verifies it, disables it on A, and polls B's POST /v1/verify as fast
as one keep-alive connection allows until B refuses it. The delay is measured from the
2xx answer of the disable on A (the change acknowledged) to the first refusal on B; the
delay from sending the disable is reported too. Tokens are worked through by a few
threads, each with its own connections. Prints p50/p99/max and one summary line.

    propagation.py A_URL B_URL EMAIL PASSWORD_FILE N THREADS
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

PER_TOKEN_TIMEOUT = 5.0  # seconds B may take before a token counts as lost
OVERALL_TIMEOUT = 900.0  # the whole run stops by itself after this


class Node:
    """One keep-alive connection to a node."""

    def __init__(self, base, session=None, csrf=None):
        parsed = urllib.parse.urlsplit(base)
        self.host, self.port = parsed.hostname, parsed.port
        self.session, self.csrf = session, csrf
        self.connection = None

    def request(self, method, path, body=None):
        headers = {"content-type": "application/json"}
        if self.session:
            headers["cookie"] = "tessera_session=" + self.session
            headers["x-csrf-token"] = self.csrf
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                payload = response.read()
                return response.status, response.getheader("set-cookie"), payload
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")

    def json(self, method, path, body=None, expect=(200,)):
        status, _, payload = self.request(method, path, body)
        if status not in expect:
            raise RuntimeError(f"{method} {path}: {status} {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def verify(self, token):
        return self.json("POST", "/v1/verify", {"token": token})


def login(base, email, password):
    node = Node(base)
    status, cookie, payload = node.request(
        "POST", "/v1/auth/login", {"email": email, "password": password}
    )
    if status != 200 or not cookie:
        raise RuntimeError(f"login failed: {status} {payload[:300]!r}")
    session = cookie.split("tessera_session=", 1)[1].split(";", 1)[0]
    return session, json.loads(payload)["csrf_token"]


def percentile(sorted_values, fraction):
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def main():
    a_url, b_url, email, password_file, n, threads = sys.argv[1:7]
    n, threads = int(n), int(threads)
    with open(password_file) as f:
        password = f.read().strip()
    session, csrf = login(a_url, email, password)
    deadline = time.monotonic() + OVERALL_TIMEOUT

    # 1. Create the tokens on A (in parallel).
    tokens = [None] * n
    errors = []

    def create(worker):
        a = Node(a_url, session, csrf)
        for i in range(worker, n, threads):
            try:
                created = a.json(
                    "POST",
                    "/v1/tokens",
                    {"name": f"bench-{i}", "type": "read-only", "lifespan": "30d"},
                    expect=(201,),
                )
                tokens[i] = (created["id"], created["token"])
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(f"create {i}: {error}")
                return

    run_threads(create, threads)
    if errors:
        sys.exit("\n".join(errors[:5]))
    print(f"created {n} tokens on A", file=sys.stderr)

    # 2. For each: valid on B → disable on A → poll B until refused.
    from_ack, from_send, lost = [], [], []
    lock = threading.Lock()

    def measure(worker):
        a, b = Node(a_url, session, csrf), Node(b_url)
        for i in range(worker, n, threads):
            if time.monotonic() > deadline:
                with lock:
                    errors.append("overall timeout")
                return
            token_id, secret = tokens[i]
            try:
                wait_for(lambda: b.verify(secret)["valid"] is True, "valid on B")
                sent = time.monotonic()
                a.json("POST", f"/v1/tokens/{token_id}/disable")
                acknowledged = time.monotonic()
                limit = acknowledged + PER_TOKEN_TIMEOUT
                refused_at = None
                while refused_at is None:
                    answer = b.verify(secret)
                    now = time.monotonic()
                    if answer.get("valid") is False:
                        if answer.get("code") != "disabled":
                            raise RuntimeError(f"unexpected answer {answer}")
                        refused_at = now
                    elif now > limit:
                        break
                with lock:
                    if refused_at is None:
                        lost.append(token_id)
                    else:
                        from_ack.append((refused_at - acknowledged) * 1000)
                        from_send.append((refused_at - sent) * 1000)
            except Exception as error:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(f"token {i}: {error}")
                return

    started = time.monotonic()
    run_threads(measure, threads)
    elapsed = time.monotonic() - started
    if errors:
        sys.exit("\n".join(errors[:5]))

    from_ack.sort()
    from_send.sort()

    def figures(values):
        return (
            f"p50={percentile(values, 0.50):.2f}ms "
            f"p99={percentile(values, 0.99):.2f}ms max={values[-1]:.2f}ms"
        )

    print(f"changes measured: {len(from_ack)} of {n} in {elapsed:.1f}s; lost (> {PER_TOKEN_TIMEOUT}s): {len(lost)}", file=sys.stderr)
    print(f"from the disable's 2xx on A to the refusal on B: {figures(from_ack)}", file=sys.stderr)
    print(f"from sending the disable to the refusal on B:    {figures(from_send)}", file=sys.stderr)
    # The summary for the shell script, on stdout.
    print(
        f"changes={len(from_ack)}/{n} threads={threads} lost={len(lost)} "
        f"ack->refused: {figures(from_ack)}; send->refused: {figures(from_send)}"
    )
    if lost:
        sys.exit(1)


def wait_for(condition, what, timeout=PER_TOKEN_TIMEOUT):
    limit = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > limit:
            raise RuntimeError(f"not {what} within {timeout}s")
        time.sleep(0.001)


def run_threads(target, count):
    workers = [threading.Thread(target=target, args=(w,), daemon=True) for w in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
