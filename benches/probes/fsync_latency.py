"""Machine probe for docs/BENCHMARKS.md: latency of write(1000 B) + fdatasync, 2000 times,
on the file system holding the given directory (default: the system temp dir)."""
import os
import sys
import tempfile
import time

directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
path = os.path.join(directory, "strata-fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
try:
    samples = []
    for _ in range(2000):
        start = time.perf_counter()
        os.write(fd, b"x" * 1000)
        os.fdatasync(fd)
        samples.append((time.perf_counter() - start) * 1000)
finally:
    os.close(fd)
    os.unlink(path)
samples.sort()
n = len(samples)
print("write+fdatasync of 1000 B: p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms"
      % (samples[n // 2], samples[int(n * 0.99)], samples[int(n * 0.999)], samples[-1]))
