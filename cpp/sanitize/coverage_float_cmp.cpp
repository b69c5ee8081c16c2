// Compiled only into the sanitized build (CMake option PYQSGD_SANITIZE).
//
// GCC's -fsanitize-coverage=trace-cmp also instruments float and double comparisons, with calls
// to __sanitizer_cov_trace_cmpf / __sanitizer_cov_trace_cmpd. Neither libasan nor libFuzzer
// (the one inside atheris) defines them: without these the sanitized _core fails to load
// with "undefined symbol: __sanitizer_cov_trace_cmpd". libFuzzer takes no feedback from float
// comparisons, so no-ops lose nothing. Weak: a runtime that does define them wins.
extern "C" {
__attribute__((weak, visibility("default"))) void __sanitizer_cov_trace_cmpf(float, float) {}
__attribute__((weak, visibility("default"))) void __sanitizer_cov_trace_cmpd(double, double) {}
}
