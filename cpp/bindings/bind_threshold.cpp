// Hard-threshold compressor (DAGC-A, ALGORITHMS.md §4.5). Compress/decompress/properties come
// from the Compressor base bound in bind_compressors.cpp.
#include <pybind11/pybind11.h>

#include "pyqsgd/compressors/threshold.hpp"

namespace py = pybind11;
using namespace pyqsgd;

void bind_threshold(py::module_& m) {
    py::class_<Threshold, Compressor, std::shared_ptr<Threshold>>(m, "Threshold")
        .def(py::init<double>(), py::arg("tau"))
        .def_property_readonly("tau", &Threshold::tau);
}
