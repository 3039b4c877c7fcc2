-- wrk script: POST an invocation with the token from WARDEN_TOKEN (and the
-- body from WARDEN_BODY). Used by benches/load/invoke.sh; see BENCHMARKS.md.
-- wrk prints "Non-2xx or 3xx responses" if any request failed.
wrk.method = "POST"
wrk.body = os.getenv("WARDEN_BODY") or '{"args": "world"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WARDEN_TOKEN") or "")
