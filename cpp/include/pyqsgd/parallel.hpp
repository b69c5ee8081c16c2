// Fixed-block parallel helpers.
//
// Work is cut into blocks whose boundaries depend only on the problem size, never on the
// thread count; per-block partial results are combined in block order. Exceptions thrown
// inside a parallel region are captured and rethrown after the join, because an exception
// escaping an OpenMP region terminates the process.
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace pyqsgd {

constexpr int64_t kBlock = 1 << 14;  // elements per block (multiple of 64: blocks align to words)

// Threads for the calling thread's kernels: its override if set, else the process setting.
int get_num_threads();
void set_num_threads(int n);  // process-wide
// The calling thread's override (pyqsgd.threads): -1 = none, 0 = the OpenMP default.
int thread_override();
void set_thread_override(int n);

inline int64_t num_blocks(int64_t n, int64_t block = kBlock) { return (n + block - 1) / block; }

// Collects the first exception raised by any iteration; rethrow() after the join.
class ExceptionBox {
   public:
    template <class F>
    void run(F&& f) noexcept {
        try {
            f();
        } catch (...) {
            std::lock_guard<std::mutex> lock(mu_);
            if (!err_) err_ = std::current_exception();
        }
    }
    void rethrow() {
        if (err_) std::rethrow_exception(err_);
    }

   private:
    std::mutex mu_;
    std::exception_ptr err_;
};

// f(i) for i in [0, n). Runs serially when already inside a parallel region (the simulator
// parallelises over workers; kernels called there must not oversubscribe) or when `work`
// (an estimate of the total operations) is too small to pay for waking the thread team.
constexpr double kMinParallelWork = 32768.0;

template <class F>
void parallel_for(int64_t n, F&& f, double work = 1e300) {
#ifdef _OPENMP
    const bool nested = omp_in_parallel();
    const int threads = nested ? 1 : std::max(1, get_num_threads());
    if (threads > 1 && n > 1 && work >= kMinParallelWork) {
        ExceptionBox box;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int64_t i = 0; i < n; ++i) box.run([&] { f(i); });
        box.rethrow();
        return;
    }
#endif
    // Serial: every iteration runs, then the first exception is rethrown, exactly as in the
    // parallel path (state a failing round leaves behind must not depend on the thread count).
    ExceptionBox box;
    for (int64_t i = 0; i < n; ++i) box.run([&] { f(i); });
    box.rethrow();
}

// f(i) for i in [0, n) on this thread, stopping at the first exception: for iterations that
// call back into Python, where user code that raised must not be called again.
template <class F>
void serial_for(int64_t n, F&& f) {
    for (int64_t i = 0; i < n; ++i) f(i);
}

// f(block_index, begin, end) over fixed blocks of [0, n); `cost` = operations per element.
template <class F>
void parallel_blocks(int64_t n, F&& f, int64_t block = kBlock, double cost = 1.0) {
    const int64_t nb = num_blocks(n, block);
    parallel_for(nb, [&](int64_t b) { f(b, b * block, std::min(n, (b + 1) * block)); }, double(n) * cost);
}

// Deterministic sum: partial(begin, end) per fixed block, added in block order.
template <class F>
double block_sum(int64_t n, F&& partial, int64_t block = kBlock, double cost = 1.0) {
    const int64_t nb = num_blocks(n, block);
    if (nb <= 1) return n > 0 ? partial(int64_t(0), n) : 0.0;
    std::vector<double> parts(static_cast<size_t>(nb));
    parallel_blocks(
        n, [&](int64_t b, int64_t lo, int64_t hi) { parts[size_t(b)] = partial(lo, hi); }, block, cost);
    double s = 0.0;
    for (double p : parts) s += p;
    return s;
}

}  // namespace pyqsgd
