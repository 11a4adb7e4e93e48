# Reads /proc/PID/task/TID/schedstat (ns on a CPU, ns runnable but waiting on a run queue,
# time slices) of every thread of a running cafshm-bench and of its hand-off peers
# (--role peer) every 50 ms until the bench ends, and prints per thread the last reading minus
# the first: how long each thread waited for a CPU per time slice.
# Usage: python3 schedstat_sampler.py BENCH_PID
import os
import sys
import time

bench = int(sys.argv[1])
first, last, label = {}, {}, {}


def processes():
    yield bench, "bench (driving side)"
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            a = open(f"/proc/{p}/cmdline", "rb").read().decode().split("\0")
        except OSError:
            continue
        if "--role" in a and "peer" in a and "--spin-us" in a:
            i = a.index("--polling")
            yield int(p), "peer " + " ".join(a[i:i + 4])


while os.path.exists(f"/proc/{bench}"):
    for pid, what in list(processes()):
        label[pid] = what
        try:
            for t in os.listdir(f"/proc/{pid}/task"):
                run, wait, slices = map(int, open(f"/proc/{pid}/task/{t}/schedstat").read().split())
                comm = open(f"/proc/{pid}/task/{t}/comm").read().strip()
                v = (comm, run, wait, slices, time.time())
                first.setdefault((pid, int(t)), v)
                last[(pid, int(t))] = v
        except OSError:
            pass
    time.sleep(0.05)

for key in sorted(first):
    f, l = first[key], last[key]
    slices = l[3] - f[3]
    if slices < 1000:
        continue
    wait_ms = (l[2] - f[2]) / 1e6
    print(f"{label[key[0]]:<40} tid {key[1]:>6} {l[0]:<16} run {((l[1] - f[1]) / 1e6):8.1f} ms  "
          f"waiting {wait_ms:8.1f} ms  slices {slices:6d}  wait/slice {1000 * wait_ms / slices:6.1f} µs  "
          f"over {l[4] - f[4]:5.1f} s")
