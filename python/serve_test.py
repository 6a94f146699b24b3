"""`etmlx serve` end to end with the official `openai` Python client, on the official tiny random Llama export
(tests/fixtures/tiny_llama_default) with a word-level tokenizer written here (token `wN` = id N, `<s>` = id 1)
and a one-line chat template, so a chat turn with the text "w17 w42 ..." becomes exactly the fixture's prompt ids.

Expected answers: HF transformers' greedy ids (the fixture's greedy.json) and `etmlx generate`'s output for the
same messages. Checks: non-streamed and streamed chat and completions, 8 concurrent streaming clients on 2 slots,
prefix reuse across turns, every bad-input case of the issue (the server keeps serving), the API key, a full
queue (429), the idle and total timeouts (408, 504), a client that disconnects mid-stream (its slot is freed),
1 vs 8 slots' memory (one copy of the weights), memory over 1,000 requests, and SIGTERM / SIGINT shutdown.

    python serve_test.py --etmlx target/debug/etmlx      (tools/test-serve.sh sets up the venv and runs this)

Every server it starts is stopped on exit, and the whole run is bounded by --time-limit.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_llama_default"
MODEL_NAME = "tiny-llama"
TEMPLATE = "{{ bos_token }}{% for m in messages %} {{ m['content'] }}{% endfor %}"

SERVERS = []


def log(msg):
    print(f"[serve-test] {msg}", flush=True)


def word(i):
    return "<s>" if i == 1 else f"w{i}"


def write_tokenizer(folder: Path):
    vocab = {word(i): i for i in range(512)}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 1, "content": "<s>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None,
        "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "add_bos_token": False, "chat_template": TEMPLATE}))


class Server:
    def __init__(self, etmlx, tokenizer, *extra, model=FIXTURE / "model.pte"):
        self.proc = subprocess.Popen(
            [etmlx, "serve", str(model), "--tokenizer", str(tokenizer), "--port", "0",
             "--model-name", MODEL_NAME, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        SERVERS.append(self)
        line = self.proc.stdout.readline()
        if "listening on http://" not in line:
            self.stop()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.base = line.split("listening on ")[1].split()[0]  # http://127.0.0.1:PORT/v1
        self.host, port = self.base.split("//")[1].split("/")[0].split(":")
        self.port = int(port)

    def client(self, api_key="none", **kw):
        return openai.OpenAI(base_url=self.base, api_key=api_key, max_retries=0, timeout=30, **kw)

    def raw(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {"Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
        return resp.status, text, dict(resp.getheaders())

    def metric(self, name):
        _, text, _ = self.raw("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def rss_kb(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self, sig=signal.SIGTERM, wait=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def etmlx_generate(etmlx, tokenizer, prompt, max_new_tokens, raw=False):
    args = [etmlx, "generate", str(FIXTURE / "model.pte"), "--tokenizer", str(tokenizer), "--prompt", prompt,
            "--json", "--temperature", "0", "--max-new-tokens", str(max_new_tokens)] + (["--raw"] if raw else [])
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    check(out.returncode == 0, f"etmlx generate failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def chat(client, content, max_tokens, **kw):
    messages = content if isinstance(content, list) else [{"role": "user", "content": content}]
    return client.chat.completions.create(model=MODEL_NAME, messages=messages, temperature=0,
                                          max_tokens=max_tokens, **kw)


def stream_text(client, content, max_tokens, **kw):
    stream = chat(client, content, max_tokens, stream=True, **kw)
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    return text, finish, usage


def expect_error(fn, status, param=None, code=None):
    try:
        fn()
    except openai.APIStatusError as e:
        check(e.status_code == status, f"status {e.status_code} != {status}: {e.body}")
        err = e.body if isinstance(e.body, dict) else {}
        for key in ("message", "type", "param", "code"):
            check(key in err, f"error JSON lacks {key}: {e.body}")
        if param is not None:
            check(err["param"] == param, f"param {err['param']!r} != {param!r}")
        if code is not None:
            check(err["code"] == code, f"code {err['code']!r} != {code!r}")
        return
    raise AssertionError(f"expected HTTP {status}")


def raw_error(server, status, method, path, body=None, headers=None, param=None):
    got, text, resp_headers = server.raw(method, path, body, headers)
    check(got == status, f"{method} {path}: {got} != {status}: {text[:200]}")
    err = json.loads(text)["error"]
    check(set(err) == {"message", "type", "param", "code"}, f"error keys {err}")
    if param is not None:
        check(err["param"] == param, f"param {err['param']!r} != {param!r}")
    return err, resp_headers


def test_answers(server, etmlx, tokenizer, prompt_ids, hf_ids):
    client = server.client()
    user_text = " ".join(word(i) for i in prompt_ids[1:])
    n = len(hf_ids)
    reference = etmlx_generate(etmlx, tokenizer, user_text, n)
    check(reference["token_ids"] == hf_ids, "etmlx generate reproduces HF's greedy ids")
    hf_words = [word(i) for i in hf_ids]

    r = chat(client, user_text, n)
    text = r.choices[0].message.content
    check(text == reference["text"], f"non-streamed {text!r} != etmlx generate {reference['text']!r}")
    check(text.split() == hf_words, "non-streamed words = HF greedy ids")
    check(r.choices[0].finish_reason == "length", r.choices[0].finish_reason)
    check(r.usage.prompt_tokens == len(prompt_ids) and r.usage.completion_tokens == n, str(r.usage))
    check(r.model == MODEL_NAME and r.object == "chat.completion", r.model)

    text, finish, usage = stream_text(client, user_text, n, stream_options={"include_usage": True})
    check(text == reference["text"], f"streamed {text!r} != {reference['text']!r}")
    check(finish == "length", finish)
    check(usage is not None and usage.completion_tokens == n and usage.prompt_tokens == len(prompt_ids),
          f"usage chunk {usage}")
    # max_completion_tokens is the newer name of max_tokens.
    r = client.chat.completions.create(model=MODEL_NAME, temperature=0, max_completion_tokens=5,
                                       messages=[{"role": "user", "content": user_text}])
    check(r.choices[0].message.content.split() == hf_words[:5], "max_completion_tokens")

    raw_prompt = " ".join(word(i) for i in prompt_ids)
    r = client.completions.create(model=MODEL_NAME, prompt=raw_prompt, temperature=0, max_tokens=n)
    check(r.choices[0].text.split() == hf_words, f"completion {r.choices[0].text!r}")
    check(r.choices[0].finish_reason == "length", "completion finish")
    pieces = [c.choices[0].text for c in client.completions.create(
        model=MODEL_NAME, prompt=raw_prompt, temperature=0, max_tokens=n, stream=True) if c.choices]
    check("".join(pieces) == r.choices[0].text, "streamed completion")

    # A stop string ends the answer before it and reports "stop".
    stop_word = hf_words[3]
    r = chat(client, user_text, n, stop=[stop_word])
    check(r.choices[0].finish_reason == "stop", "stop string finish")
    check(stop_word not in r.choices[0].message.content.split(), "stop string not in the text")
    check(r.choices[0].message.content.split() == hf_words[:3], r.choices[0].message.content)

    models = client.models.list()
    check([m.id for m in models.data] == [MODEL_NAME], "models list")
    log("answers: non-streamed, streamed, completions, stop strings = etmlx generate = HF greedy ids")
    return user_text, reference


def test_prefix_reuse(server, etmlx, tokenizer, user_text, reference):
    client = server.client()
    first = chat(client, user_text, 12)
    follow = [{"role": "user", "content": user_text},
              {"role": "assistant", "content": first.choices[0].message.content},
              {"role": "user", "content": "w5 w6 w7"}]
    r = chat(client, follow, 8)
    cached = r.usage.prompt_tokens_details.cached_tokens
    # The follow-up repeats the first prompt (8 ids) and the answer: all but the last answer token were fed.
    check(cached >= 8 + 11, f"the follow-up reused {cached} cached tokens")
    raw = " ".join(["<s>", user_text, first.choices[0].message.content, "w5 w6 w7"])
    alone = etmlx_generate(etmlx, tokenizer, raw, 8, raw=True)
    check(r.choices[0].message.content == alone["text"], "a reused prefix gives the fresh answer")
    log(f"prefix reuse: follow-up reused {cached} of {r.usage.prompt_tokens} prompt tokens, same answer")


def test_concurrent(server, user_text):
    client = server.client()
    prompts = [user_text, "w3 w4 w5", "w100 w200 w300 w400", "w9 w8 w7 w6 w5 w4"]
    alone = {p: stream_text(client, p, 16)[0] for p in prompts}
    jobs = [prompts[i % len(prompts)] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda p: stream_text(server.client(), p, 16)[0], jobs))
    for p, got in zip(jobs, results):
        check(got == alone[p], f"concurrent answer for {p!r}: {got!r} != {alone[p]!r}")
    log("8 concurrent streaming clients on 2 slots: every answer equals its answer alone")


def test_bad_input(server, user_text):
    client = server.client()
    long_prompt = " ".join(["w7"] * 70)
    cases = [
        ("unknown model", lambda: client.chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "w1"}]), 404, "model", "model_not_found"),
        ("empty messages", lambda: client.chat.completions.create(model=MODEL_NAME, messages=[]),
         400, "messages", None),
        ("prompt beyond context", lambda: chat(client, long_prompt, 4), 400, None, "context_length_exceeded"),
        ("max_tokens beyond context", lambda: chat(client, user_text, 1000), 400, "max_tokens",
         "context_length_exceeded"),
        ("n > 1", lambda: chat(client, user_text, 4, n=2), 400, "n", None),
        ("temperature out of range", lambda: client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": "w1"}], temperature=5), 400, "temperature", None),
        ("wrong field type", lambda: client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": "w1"}], extra_body={"max_tokens": "many"}),
         400, "max_tokens", None),
        ("unknown role", lambda: client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "wizard", "content": "w1"}]), 400, "messages[0].role", None),
    ]
    for name, fn, status, param, code in cases:
        try:
            expect_error(fn, status, param, code)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None
    raw_error(server, 400, "POST", "/v1/chat/completions", b"{not json")
    raw_error(server, 400, "POST", "/v1/chat/completions", b"[1, 2]")
    raw_error(server, 400, "POST", "/v1/chat/completions", {"model": MODEL_NAME}, param="messages")
    raw_error(server, 400, "POST", "/v1/chat/completions",
              {"messages": "hello"}, param="messages")
    raw_error(server, 400, "POST", "/v1/completions", {"prompt": [1, 99999]}, param="prompt")
    raw_error(server, 404, "GET", "/v1/nothing-here")
    big = json.dumps({"model": MODEL_NAME, "messages": [{"role": "user", "content": "w1 " * 40000}]}).encode()
    raw_error(server, 413, "POST", "/v1/chat/completions", big)
    check(server.raw("GET", "/health")[0] == 200, "health after bad requests")
    r = chat(client, user_text, 3)
    check(r.choices[0].finish_reason == "length", "a good request after the bad ones")
    log(f"bad input: {len(cases) + 7} cases got OpenAI error JSON with the right status; still serving")


def test_api_key(etmlx, tokenizer):
    server = Server(etmlx, tokenizer, "--api-key", "sekrit")
    try:
        expect_error(lambda: server.client(api_key="wrong").models.list(), 401, code="invalid_api_key")
        raw_error(server, 401, "GET", "/v1/models", headers={})
        check([m.id for m in server.client(api_key="sekrit").models.list().data] == [MODEL_NAME], "keyed")
        check(server.raw("GET", "/health")[0] == 200, "health needs no key")
    finally:
        check(server.stop() == 0, "exit code 0 on SIGTERM")
    log("api key: missing or wrong key -> 401 JSON, right key works")


def stream_then_disconnect(server, user_text):
    """Starts a long stream, reads its first chunk, and closes the connection."""
    sock = socket.create_connection((server.host, server.port), timeout=30)
    body = json.dumps({"model": MODEL_NAME, "messages": [{"role": "user", "content": user_text}],
                       "max_tokens": 50, "temperature": 0, "stream": True}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    while b"data:" not in got:
        got += sock.recv(4096)
    sock.close()


def test_disconnect(etmlx, tokenizer, user_text):
    server = Server(etmlx, tokenizer, "--slots", "1")
    try:
        cancelled = 0
        for _ in range(5):
            stream_then_disconnect(server, user_text)
            time.sleep(0.5)
            cancelled = server.metric("etmlx_generations_cancelled_total")
            if cancelled > 0:
                break
        check(cancelled > 0, "a disconnect cancels the generation")
        check(server.metric("etmlx_slots_busy") == 0, "the slot is free again")
        started = time.time()
        r = chat(server.client(), user_text, 4)
        check(r.choices[0].finish_reason == "length" and time.time() - started < 10, "the freed slot serves")
    finally:
        check(server.stop() == 0, "exit 0")
    log("disconnect mid-stream: generation cancelled, slot freed and serving")


def test_queue_full(etmlx, tokenizer, user_text):
    server = Server(etmlx, tokenizer, "--slots", "1", "--max-queue", "1")
    try:
        body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": user_text}], "max_tokens": 50,
                "temperature": 0}
        statuses = []
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(server.raw, "POST", "/v1/chat/completions", body) for _ in range(8)]
            statuses = [f.result() for f in futures]
        busy = [(st, h) for st, _, h in statuses if st == 429]
        check(busy, f"8 requests on 1 slot + 1 queue place: some get 429 ({[st for st, _, _ in statuses]})")
        check(all(st in (200, 429) for st, _, _ in statuses), "only 200 or 429")
        check(all("retry-after" in {k.lower() for k in h} for _, h in busy), "429 carries Retry-After")
        err = json.loads([t for st, t, _ in statuses if st == 429][0])["error"]
        check(err["code"] == "queue_full", err)
        check(chat(server.client(), user_text, 3).choices[0].finish_reason == "length", "serving after 429s")
    finally:
        check(server.stop() == 0, "exit 0")
    log(f"queue full: {len(busy)} of 8 requests got 429 + Retry-After, the rest were served")


def test_timeouts(etmlx, tokenizer, user_text):
    server = Server(etmlx, tokenizer, "--slots", "1", "--timeout", "1", "--idle-timeout", "1")
    try:
        # A body that stops arriving: 408 after the idle timeout.
        sock = socket.create_connection((server.host, server.port), timeout=30)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200\r\n\r\n{\"model\": ")
        started = time.time()
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            part = sock.recv(4096)
            if not part:
                break
            reply += part
        sock.close()
        check(reply.startswith(b"HTTP/1.1 408"), f"stalled body: {reply[:80]!r}")
        check(time.time() - started < 10, "answered after the idle timeout")
        err = json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]
        check("idle" in err["message"], err)
        # Requests queued behind each other on one slot past the 1 s total limit: 504, the others answer.
        # 64 requests of 55 tokens take a few seconds on one slot even in a release build.
        body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": user_text}], "max_tokens": 55,
                "temperature": 0}
        with ThreadPoolExecutor(64) as pool:
            replies = list(pool.map(lambda _: server.raw("POST", "/v1/chat/completions", body), range(64)))
        statuses = [st for st, _, _ in replies]
        check(set(statuses) <= {200, 504} and 504 in statuses and 200 in statuses, f"statuses {statuses}")
        err = json.loads([t for st, t, _ in replies if st == 504][0])["error"]
        check(err["type"] == "timeout", err)
        check(chat(server.client(), user_text, 2).choices[0].finish_reason == "length", "serving after timeouts")
    finally:
        check(server.stop() == 0, "exit 0")
    log(f"timeouts: stalled body -> 408; {statuses.count(504)} of 64 queued requests -> 504, the rest answered")


def test_raw_sse(server, user_text):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", headers={"Content-Type": "application/json"}, body=json.dumps(
        {"model": MODEL_NAME, "messages": [{"role": "user", "content": user_text}], "max_tokens": 4,
         "temperature": 0, "stream": True}))
    resp = conn.getresponse()
    check(resp.getheader("content-type", "").startswith("text/event-stream"), "SSE content type")
    lines = [l for l in resp.read().decode().splitlines() if l.strip()]
    conn.close()
    check(all(l.startswith("data: ") for l in lines), f"only data lines: {lines}")
    check(lines[-1] == "data: [DONE]", f"ends with [DONE]: {lines[-1]}")
    chunks = [json.loads(l[6:]) for l in lines[:-1]]
    check(all(c["object"] == "chat.completion.chunk" for c in chunks), "chunk objects")
    check(chunks[0]["choices"][0]["delta"]["role"] == "assistant", "first chunk carries the role")
    check(chunks[-1]["choices"][0]["finish_reason"] == "length", "last chunk carries the finish reason")


def test_slot_memory(etmlx, tokenizer):
    """8 slots hold one copy of the weights: MLX active memory grows by exactly 7 KV caches over 1 slot."""
    meta = json.loads((FIXTURE / "meta.json").read_text())
    cfg = meta["hf_config"]
    cache = 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * meta["max_ctx_len"] * cfg["head_dim"] * 4
    active = {}
    for slots in (1, 8):
        server = Server(etmlx, tokenizer, "--slots", str(slots))
        try:
            active[slots] = server.metric("etmlx_mlx_active_memory_bytes")
        finally:
            check(server.stop() == 0, "exit 0")
    added = active[8] - active[1]
    check(added == 7 * cache, f"7 more slots added {added} B; 7 KV caches are {7 * cache} B")
    log(f"slots: MLX active memory {active[1]:.0f} B with 1 slot, {active[8]:.0f} B with 8 (+{added:.0f} B = 7 caches)")


def test_memory(server, requests):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    body = json.dumps({"model": MODEL_NAME, "messages": [{"role": "user", "content": "w17 w42 w99"}],
                       "max_tokens": 2, "temperature": 0})

    def one(i):
        # Alternate prompts so the slots keep rewriting their caches.
        b = body if i % 2 else body.replace("w99", f"w{100 + i % 300}")
        conn.request("POST", "/v1/chat/completions", body=b, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        check(resp.status == 200, f"request {i}: {resp.status}")

    for i in range(100):
        one(i)
    active_before = server.metric("etmlx_mlx_active_memory_bytes")
    before = server.rss_kb()
    started = time.time()
    for i in range(requests):
        one(i)
    after = server.rss_kb()
    conn.close()
    active_after = server.metric("etmlx_mlx_active_memory_bytes")
    # Between requests MLX holds exactly the weights and the slots' caches.
    check(active_after == active_before, f"MLX active memory {active_before:.0f} -> {active_after:.0f} B")
    growth = after - before
    log(f"memory: RSS {before} kB after 100 requests, {after} kB after {requests} more "
        f"({growth:+d} kB; {requests / (time.time() - started):.0f} req/s); MLX active memory unchanged "
        f"at {active_after:.0f} B")
    # Flat: a per-request leak of even 2 kB would add 2 MB here.
    check(growth < 2048, f"RSS grew by {growth} kB over {requests} requests")


def test_shutdown(etmlx, tokenizer, user_text):
    # A signal right after the server says it is ready is handled too (not the default action).
    for sig in (signal.SIGTERM, signal.SIGINT):
        check(Server(etmlx, tokenizer).stop(sig) == 0, f"{sig.name} right after start: exit 0")
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = Server(etmlx, tokenizer, "--slots", "1")
        client = server.client()
        results = []

        def streaming():
            try:
                results.append(stream_text(client, user_text, 50))
            except Exception as e:  # the stream may end with an error event: that is fine here
                results.append(e)

        t = threading.Thread(target=streaming)
        t.start()
        time.sleep(0.2)
        started = time.time()
        code = server.stop(sig)
        took = time.time() - started
        t.join(10)
        check(code == 0, f"{sig.name}: exit code {code}")
        check(took < 5, f"{sig.name}: took {took:.1f} s")
        check(not t.is_alive(), "the client's stream ended")
    log("shutdown: SIGTERM and SIGINT with a stream in flight exit 0 within 5 s")


def smollm2_pte():
    path = os.environ.get("ETMLX_SMOLLM2_PTE")
    default = Path.home() / ".cache" / "etmlx" / "models" / "smollm2" / "pte" / "smollm2-fp32.pte"
    return Path(path) if path else default


def test_smollm2(etmlx):
    """A real model (conditional: see crates/etmlx-llm/tests/conditional_tests.txt): every chat case of HF's greedy
    reference, non-streamed and streamed, on 2 slots; and 1 vs 8 slots' memory."""
    pte = smollm2_pte()
    if not pte.exists():
        log(f"NOTICE: smollm2 checks skipped: needs the SmolLM2-135M-Instruct fp32 export at {pte} "
            "(tools/demo.sh, or set ETMLX_SMOLLM2_PTE)")
        return
    tokenizer = ROOT / "tests" / "fixtures" / "tokenizers" / "smollm2"
    reference = json.loads((tokenizer / "greedy_reference.json").read_text())
    server = Server(etmlx, tokenizer, "--slots", "2", model=pte)
    try:
        client = server.client()
        cases = [c for c in reference["cases"] if "messages" in c]
        for case in cases:
            expected = case["generated_text"].removesuffix("<|im_end|>")
            finish = "stop" if case["stop_reason"] == "eos" else "length"
            r = chat(client, case["messages"], reference["max_new_tokens"])
            check(r.choices[0].message.content == expected, f"{case['name']}: {r.choices[0].message.content!r}")
            check(r.choices[0].finish_reason == finish, f"{case['name']}: {r.choices[0].finish_reason}")
            check(r.usage.prompt_tokens == len(case["prompt_ids"]), f"{case['name']}: prompt tokens")
            check(r.usage.completion_tokens == len(case["generated_ids"]), f"{case['name']}: completion tokens")
            if case is cases[0]:  # one streamed case: the stream path is the tiny model's job; this is for time
                text, streamed_finish, _ = stream_text(client, case["messages"], reference["max_new_tokens"])
                check(text == expected and streamed_finish == finish, f"{case['name']} streamed: {text!r}")
    finally:
        check(server.stop() == 0, "exit 0")
    active = {}
    for slots in (1, 8):
        server = Server(etmlx, tokenizer, "--slots", str(slots), model=pte)
        try:
            active[slots] = server.metric("etmlx_mlx_active_memory_bytes")
        finally:
            check(server.stop() == 0, "exit 0")
    added = active[8] - active[1]
    # A copy of the weights per slot would add 7 × (weights + cache); together the 7 caches are less than one copy.
    check(added < pte.stat().st_size, f"8 slots added {added} B: the weights are not copied per slot")
    # With the HF config and the export command beside the .pte (tools/demo.sh's layout), the exact cache size.
    config, stamp = pte.parent.parent / "hf" / "config.json", Path(str(pte) + ".stamp")
    if config.exists() and stamp.exists() and "--max-ctx-len" in stamp.read_text():
        cfg = json.loads(config.read_text())
        ctx = int(stamp.read_text().split("--max-ctx-len")[1].split()[0])
        head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        cache = 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * ctx * head_dim * 4
        check(added == 7 * cache, f"7 more slots added {added} B; 7 fp32 KV caches are {7 * cache} B")
    log(f"smollm2: {len(cases)} chat cases = HF greedy text, streamed and not; MLX active memory "
        f"{active[1] / 2**20:.1f} MiB with 1 slot, {active[8] / 2**20:.1f} MiB with 8 "
        f"(+{(active[8] - active[1]) / 2**20:.1f} MiB for 7 more KV caches)")


def test_synthetic_weights(etmlx, tokenizer, user_text):
    """A weight-stripped export (python/strip_weights.py) serves only with --synthetic-weights, which says so."""
    stripped = ROOT / "tests" / "fixtures" / "tiny_llama_custom_stripped" / "model.pte"
    refused = subprocess.run([etmlx, "serve", str(stripped), "--tokenizer", str(tokenizer), "--port", "0"],
                             capture_output=True, text=True, timeout=60)
    check(refused.returncode != 0 and "missing from the program's named data" in refused.stderr,
          f"a stripped export without --synthetic-weights is refused: {refused.stderr[-300:]}")
    server = Server(etmlx, tokenizer, "--synthetic-weights", model=stripped)
    try:
        r = server.client().chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": user_text}], max_tokens=4, temperature=0)
        check(r.usage.completion_tokens >= 1, "a stripped export with synthetic weights answers")
    finally:
        check(server.stop() == 0, "exit code 0 on SIGTERM")
        notice = server.proc.stderr.read() if server.proc.stderr else ""
    check("SYNTHETIC WEIGHTS" in notice, f"the server announces synthetic weights: {notice[-300:]}")
    log("synthetic weights: a stripped export is refused without the flag, served (and announced) with it")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--etmlx", required=True)
    ap.add_argument("--time-limit", type=float, default=240)
    ap.add_argument("--memory-requests", type=int, default=1000)
    args = ap.parse_args()

    def on_timeout(*_):
        raise TimeoutError(f"serve test exceeded {args.time_limit} s")

    signal.signal(signal.SIGALRM, on_timeout)
    signal.alarm(int(args.time_limit))
    meta = json.loads((FIXTURE / "meta.json").read_text())
    hf_ids = json.loads((FIXTURE / "greedy.json").read_text())["new_token_ids"]
    started = time.time()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer = Path(tmp) / "tokenizer"
            write_tokenizer(tokenizer)
            server = Server(args.etmlx, tokenizer, "--slots", "2", "--max-body-bytes", "65536")
            user_text, reference = test_answers(server, args.etmlx, tokenizer, meta["prompt_ids"], hf_ids)
            test_raw_sse(server, user_text)
            test_prefix_reuse(server, args.etmlx, tokenizer, user_text, reference)
            test_concurrent(server, user_text)
            test_bad_input(server, user_text)
            test_memory(server, args.memory_requests)
            check(server.stop() == 0, "exit 0")
            test_api_key(args.etmlx, tokenizer)
            test_synthetic_weights(args.etmlx, tokenizer, user_text)
            test_slot_memory(args.etmlx, tokenizer)
            test_disconnect(args.etmlx, tokenizer, user_text)
            test_queue_full(args.etmlx, tokenizer, user_text)
            test_timeouts(args.etmlx, tokenizer, user_text)
            test_shutdown(args.etmlx, tokenizer, user_text)
            test_smollm2(args.etmlx)
    finally:
        for s in SERVERS:
            s.stop(signal.SIGKILL if s.proc.poll() is None else signal.SIGTERM, wait=2)
    log(f"all passed in {time.time() - started:.1f} s")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, TimeoutError, openai.OpenAIError) as e:
        print(f"[serve-test] FAILED: {e!r}", file=sys.stderr)
        sys.exit(1)
