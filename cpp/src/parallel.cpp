#include "pyqsgd/parallel.hpp"

#include <atomic>
#include <stdexcept>
#include <string>

namespace pyqsgd {
namespace {
// Process-wide setting: 0 = "use the OpenMP default" (OMP_NUM_THREADS or the core count).
// Atomic: Python threads call kernels with the GIL released while another may change it.
std::atomic<int> g_threads{0};
// This thread's override (pq.threads(n) context), -1 = none. Per thread, so overlapping
// `with pq.threads(n)` blocks in different Python threads do not see each other's count.
thread_local int t_threads = -1;
}  // namespace

int get_num_threads() {
#ifdef _OPENMP
    const int n = t_threads >= 0 ? t_threads : g_threads.load(std::memory_order_relaxed);
    return n > 0 ? n : omp_get_max_threads();
#else
    return 1;
#endif
}

void set_num_threads(int n) {
    if (n < 0) throw std::invalid_argument("set_num_threads: n must be >= 1 (or 0 for the default), got " + std::to_string(n));
    g_threads.store(n, std::memory_order_relaxed);
}

int thread_override() { return t_threads; }

void set_thread_override(int n) {
    if (n < -1) throw std::invalid_argument("threads: n must be >= 0 (or -1 to clear), got " + std::to_string(n));
    t_threads = n;
}

}  // namespace pyqsgd
