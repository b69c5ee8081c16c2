// The private extension module `pyqsgd._core`; `pyqsgd/__init__.py` re-exports what is public.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_core(py::module_& m);
void bind_compressors(py::module_& m);
void bind_tnq(py::module_& m);

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
    bind_tnq(m);
}
