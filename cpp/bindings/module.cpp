// The private extension module `pyqsgd._core`; `pyqsgd/__init__.py` re-exports what is public.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_core(py::module_& m);
void bind_compressors(py::module_& m);
void bind_problems(py::module_& m);
void bind_methods(py::module_& m);
void bind_simulator(py::module_& m);
void bind_sign(py::module_& m);
void bind_runner(py::module_& m);
void bind_tnq(py::module_& m);
void bind_threshold(py::module_& m);
void bind_python(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "pyqsgd native core (C++/OpenMP). Use the `pyqsgd` package, not this module.";
#ifdef PYQSGD_VERSION
    m.attr("__version__") = PYQSGD_VERSION;
#endif
#ifdef _OPENMP
    m.attr("has_openmp") = true;
#else
    m.attr("has_openmp") = false;
#endif
    bind_core(m);
    bind_compressors(m);
    bind_problems(m);
    bind_methods(m);
    bind_simulator(m);
    bind_sign(m);
    bind_runner(m);
    bind_tnq(m);
    bind_threshold(m);
    bind_python(m);
}
