// Datasets and built-in problems. Data are copied once into the native Dataset (float32) and
// then shared by every worker by index.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "pyqsgd/problems/problem.hpp"

namespace py = pybind11;
using namespace pyqsgd;

namespace {
using F32 = py::array_t<float, py::array::c_style>;
using F64 = py::array_t<double, py::array::c_style>;
using I64 = py::array_t<int64_t, py::array::c_style>;
using I32 = py::array_t<int32_t, py::array::c_style>;

const double* vec_in(const Problem& p, const F64& x) {
    if (x.ndim() != 1 || uint64_t(x.shape(0)) != p.dim())
        throw std::invalid_argument("x must be a 1-D array of length " + std::to_string(p.dim()));
    return x.data();
}

std::pair<const int64_t*, uint64_t> idx_in(const Problem& p, const py::object& idx) {
    if (idx.is_none()) return {nullptr, p.n()};
    I64 a = idx.cast<I64>();
    if (a.ndim() != 1 || a.shape(0) == 0) throw std::invalid_argument("indices must be a non-empty 1-D int64 array");
    for (py::ssize_t k = 0; k < a.shape(0); ++k)
        if (a.data()[k] < 0 || uint64_t(a.data()[k]) >= p.n()) throw std::invalid_argument("indices out of range");
    return {a.data(), uint64_t(a.shape(0))};
}
}  // namespace

void bind_problems(py::module_& m) {
    py::class_<Dataset>(m, "Dataset")
        .def_static(
            "dense",
            [](const F32& a) {
                if (a.ndim() != 2) throw std::invalid_argument("A must be 2-D");
                return Dataset::dense(a.data(), uint64_t(a.shape(0)), uint64_t(a.shape(1)));
            },
            py::arg("A"))
        .def_static(
            "csr",
            [](const I64& indptr, const I32& indices, const F32& data, uint64_t n, uint64_t d) {
                if (uint64_t(indptr.shape(0)) != n + 1) throw std::invalid_argument("A: indptr must have n + 1 entries");
                const int64_t nnz = indptr.data()[n];
                if (nnz < 0 || indices.shape(0) < nnz || data.shape(0) < nnz)
                    throw std::invalid_argument("A: CSR arrays are shorter than indptr says");
                return Dataset::csr(indptr.data(), indices.data(), data.data(), n, d);
            },
            py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n"), py::arg("d"))
        .def_property_readonly("n", &Dataset::n)
        .def_property_readonly("d", &Dataset::d)
        .def_property_readonly("sparse", &Dataset::sparse);

    py::class_<Problem, std::shared_ptr<Problem>>(m, "Problem")
        .def_property_readonly("name", &Problem::name)
        .def_property_readonly("dim", &Problem::dim)
        .def_property_readonly("n", &Problem::n)
        .def_property_readonly("l2", &Problem::l2)
        .def(
            "loss",
            [](const Problem& p, const F64& x, const py::object& idx) {
                const double* xp = vec_in(p, x);
                auto [ip, n] = idx_in(p, idx);
                py::gil_scoped_release release;
                return p.loss(xp, ip, n);
            },
            py::arg("x"), py::arg("indices") = py::none())
        .def(
            "grad",
            [](const Problem& p, const F64& x, const py::object& idx) {
                const double* xp = vec_in(p, x);
                auto [ip, n] = idx_in(p, idx);
                F64 g(py::ssize_t(p.dim()));
                double* gp = g.mutable_data();
                {
                    py::gil_scoped_release release;
                    p.grad(xp, ip, n, gp);
                }
                return g;
            },
            py::arg("x"), py::arg("indices") = py::none())
        .def(
            "smoothness",
            [](const Problem& p, const py::object& idx) {
                auto [ip, n] = idx_in(p, idx);
                py::gil_scoped_release release;
                return p.smoothness(ip, n);
            },
            py::arg("indices") = py::none());

    py::class_<LeastSquares, Problem, std::shared_ptr<LeastSquares>>(m, "LeastSquares")
        .def(py::init([](const Dataset& data, const F32& b, double l2) {
                 return std::make_shared<LeastSquares>(data, std::vector<float>(b.data(), b.data() + b.size()), l2);
             }),
             py::arg("data"), py::arg("b"), py::arg("l2"));
    py::class_<LogisticRegression, Problem, std::shared_ptr<LogisticRegression>>(m, "LogisticRegression")
        .def(py::init([](const Dataset& data, const F32& y, double l2) {
                 return std::make_shared<LogisticRegression>(data, std::vector<float>(y.data(), y.data() + y.size()), l2);
             }),
             py::arg("data"), py::arg("y"), py::arg("l2"));
    py::class_<SoftmaxRegression, Problem, std::shared_ptr<SoftmaxRegression>>(m, "SoftmaxRegression")
        .def(py::init([](const Dataset& data, const I64& y, uint32_t classes, double l2) {
                 return std::make_shared<SoftmaxRegression>(data, std::vector<int64_t>(y.data(), y.data() + y.size()),
                                                            classes, l2);
             }),
             py::arg("data"), py::arg("y"), py::arg("n_classes"), py::arg("l2"));
}
