"""Checks the sanitizer stage is wired so that a report fails it, before trusting a green run.

1. The installed pyqsgd._core is the sanitized build: libasan and libubsan are mapped after
   importing it (a stale optimised _core would pass every test and prove nothing).
2. A C++ exception still becomes a ValueError (ASan intercepts __cxa_throw; without libstdc++
   preloaded the interceptor aborts on the first throw).
3. A heap over-read in a child process (through the ASan-intercepted memmove) kills that
   child with a nonzero status and an AddressSanitizer report, under this environment's
   ASAN_OPTIONS: so a report inside the test run cannot end in exit status 0.
"""
import subprocess
import sys

import pyqsgd  # loads _core and the runtimes it links

maps = open("/proc/self/maps").read()
for lib in ("libasan", "libubsan"):
    if lib not in maps:
        sys.exit(f"sanitize canary: {lib} is not loaded: pyqsgd._core is not the sanitized build")

try:
    pyqsgd.Message.from_bytes(b"not a message")
    sys.exit("sanitize canary: from_bytes accepted garbage")
except ValueError:
    pass

OVERREAD = """
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
p = libc.malloc(8)
dst = ctypes.create_string_buffer(16)
ctypes.memmove(dst, p, 16)   # reads 8 bytes past the 8-byte block
"""
child = subprocess.run([sys.executable, "-c", OVERREAD], capture_output=True, text=True)
if child.returncode == 0 or "AddressSanitizer" not in child.stderr:
    sys.exit(f"sanitize canary: a heap over-read was not fatal (status {child.returncode}):\n{child.stderr[-2000:]}")
print(f"sanitize canary: sanitized _core loaded, C++ exceptions work, an over-read aborts (status {child.returncode})")
