"""Resident-memory readings shared by the benchmarks (Linux /proc, else getrusage)."""
import resource


def rss_kb(field):
    """VmRSS (current) or VmHWM (peak) of this process in KiB, from /proc/self/status; elsewhere
    the peak from getrusage (ru_maxrss, KiB on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak():
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
