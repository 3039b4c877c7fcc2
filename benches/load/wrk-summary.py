"""Reads wrk's --latency output on stdin and prints one line:
requests/s, p50 and p99 in ms, failed responses, and "yes"/"no" for socket
errors. Used by compare.sh and catalog.sh."""
import re
import sys

out = sys.stdin.read()


def ms(percentile):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % percentile, out, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
errors = re.search(r"Socket errors:.*", out)
print(f"{rps:.0f} {ms('50'):.2f} {ms('99'):.2f} {bad.group(1) if bad else 0} {'yes' if errors else 'no'}")
