-- wrk script: GET with the token from WARDEN_TOKEN. Used by
-- benches/load/catalog.sh; see BENCHMARKS.md.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WARDEN_TOKEN") or "")
