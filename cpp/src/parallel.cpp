#include "pyqsgd/parallel.hpp"

#include <stdexcept>
#include <string>

namespace pyqsgd {
namespace {
// 0 = "use the OpenMP default" (OMP_NUM_THREADS or the core count).
int g_threads = 0;
}  // namespace

int get_num_threads() {
#ifdef _OPENMP
    return g_threads > 0 ? g_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

void set_num_threads(int n) {
    if (n < 0) throw std::invalid_argument("set_num_threads: n must be >= 1 (or 0 for the default), got " + std::to_string(n));
    g_threads = n;
}

}  // namespace pyqsgd
