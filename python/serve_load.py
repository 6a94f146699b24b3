#!/usr/bin/env python3
"""A bounded loopback load test for OpenAI-compatible servers (`etmlx serve`, `mlx_lm.server`, llama-server).

For each concurrency level C it runs a fixed number of streamed `/v1/chat/completions` requests from C client
threads (each client sends its next request when the previous one ends) and stops by itself: after the request
count, or at the time limit (requests not started by then are not sent). Standard library only, so every server
is measured by the same client.

Per level it reports: completed requests, wall time, requests/s, generated tokens/s (content chunks counted as
tokens, or `usage.completion_tokens` when the server sends it), TTFT (request sent → first content chunk) and
latency (request sent → `[DONE]`) at p50 / p99.

    python serve_load.py --base http://127.0.0.1:8080 --model tiny-llama --clients 1,4,16 --requests 64
"""

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from urllib.parse import urlparse


def one_request(host, port, model, content, max_tokens, api_key):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": content}],
                       "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    conn = http.client.HTTPConnection(host, port, timeout=300)
    sent = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
    resp = conn.getresponse()
    if resp.status != 200:
        text = resp.read().decode(errors="replace")
        conn.close()
        raise RuntimeError(f"HTTP {resp.status}: {text[:200]}")
    first, chunks, usage_tokens = None, 0, None
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("usage"):
            usage_tokens = chunk["usage"].get("completion_tokens")
        for choice in chunk.get("choices", []):
            if (choice.get("delta") or {}).get("content"):
                chunks += 1
                if first is None:
                    first = time.perf_counter()
    done = time.perf_counter()
    conn.close()
    tokens = usage_tokens if usage_tokens is not None else chunks
    return (first or done) - sent, done - sent, tokens


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def run_level(args, host, port, clients):
    prompts = [" ".join(f"w{(7 * i + j) % 500 + 3}" for j in range(args.prompt_words)) for i in range(64)]
    results, errors = [], []
    lock = threading.Lock()
    next_index = [0]
    deadline = time.perf_counter() + args.time_limit

    def client():
        while True:
            with lock:
                i = next_index[0]
                if i >= args.requests or time.perf_counter() >= deadline:
                    return
                next_index[0] += 1
            try:
                r = one_request(host, port, args.model, prompts[i % len(prompts)], args.max_tokens, args.api_key)
                with lock:
                    results.append(r)
            except Exception as e:  # reported, not fatal: a load test counts failures
                with lock:
                    errors.append(str(e))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ttft = [r[0] * 1e3 for r in results]
    latency = [r[1] * 1e3 for r in results]
    tokens = sum(r[2] for r in results)
    return {
        "clients": clients, "requests": len(results), "errors": len(errors), "wall_s": wall,
        "req_s": len(results) / wall, "tok_s": tokens / wall, "tokens": tokens,
        "ttft_p50_ms": percentile(ttft, 50), "ttft_p99_ms": percentile(ttft, 99),
        "latency_p50_ms": percentile(latency, 50), "latency_p99_ms": percentile(latency, 99),
        "first_error": errors[0] if errors else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="server root, e.g. http://127.0.0.1:8080")
    ap.add_argument("--model", required=True)
    ap.add_argument("--label", default="server")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--prompt-words", type=int, default=16)
    ap.add_argument("--time-limit", type=float, default=120, help="seconds per level")
    ap.add_argument("--api-key")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    url = urlparse(args.base)
    rows = []
    one_request(url.hostname, url.port, args.model, "w5 w6 w7", 2, args.api_key)  # warm-up
    for c in [int(x) for x in args.clients.split(",")]:
        row = run_level(args, url.hostname, url.port, c)
        row["label"] = args.label
        rows.append(row)
        print(f"[load] {args.label} clients={c}: {row['requests']} ok, {row['errors']} errors, "
              f"{row['req_s']:.2f} req/s, {row['tok_s']:.1f} tok/s, TTFT p50/p99 {row['ttft_p50_ms']:.1f}/"
              f"{row['ttft_p99_ms']:.1f} ms, latency p50/p99 {row['latency_p50_ms']:.1f}/"
              f"{row['latency_p99_ms']:.1f} ms" + (f", first error: {row['first_error']}" if row["errors"] else ""),
              file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows))
    else:
        print("| server | clients | requests | req/s | gen tok/s | TTFT p50 / p99 (ms) | latency p50 / p99 (ms) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['label']} | {r['clients']} | {r['requests']} | {r['req_s']:.2f} | {r['tok_s']:.1f} | "
                  f"{r['ttft_p50_ms']:.1f} / {r['ttft_p99_ms']:.1f} | "
                  f"{r['latency_p50_ms']:.1f} / {r['latency_p99_ms']:.1f} |")


if __name__ == "__main__":
    main()
