// TNQSGD compressors (ALGORITHMS.md §4.4) and their closed forms. Compress/decompress/properties
// come from the Compressor base bound in bind_compressors.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "pyqsgd/compressors/tnq.hpp"

namespace py = pybind11;
using namespace pyqsgd;

namespace {

using F32 = py::array_t<float, py::array::c_style>;

F32 to_array(const std::vector<float>& v) {
    F32 out(py::ssize_t(v.size()));
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
}

GammaRule gamma_rule(const std::string& g) {
    if (g == "mean") return GammaRule::kMean;
    if (g == "median") return GammaRule::kMedian;
    throw std::invalid_argument("gamma must be 'mean' or 'median', got '" + g + "'");
}

uint32_t intervals(uint32_t bits) {
    if (bits < 1 || bits > 16) throw std::invalid_argument("bits must be in [1, 16], got " + std::to_string(bits));
    return (uint32_t(1) << bits) - 1;
}

}  // namespace

void bind_tnq(py::module_& m) {
    m.attr("TNQ_K_STAR") = kKStar;
    m.def("lambert_w0", &lambert_w0, py::arg("x"));
    m.def(
        "tnq_threshold",
        [](uint32_t bits, double gamma, bool uniform) {
            const uint32_t s = intervals(bits);
            return uniform ? uniform_threshold(s, gamma) : laplace_threshold(s, gamma);
        },
        py::arg("bits"), py::arg("gamma"), py::arg("uniform"));
    m.def(
        "tnq_levels",
        [](uint32_t bits, double alpha, double gamma, bool uniform) {
            std::vector<float> lv;
            if (uniform) uniform_levels(intervals(bits), alpha, lv);
            else laplace_levels(intervals(bits), alpha, gamma, lv);
            return to_array(lv);
        },
        py::arg("bits"), py::arg("alpha"), py::arg("gamma"), py::arg("uniform"));

    py::class_<Truncate, Compressor, std::shared_ptr<Truncate>>(m, "Truncate")
        .def(py::init([](const std::string& rule, double threshold, uint32_t bits, const std::string& gamma) {
                 Truncate::Rule r;
                 if (rule == "fixed") r = Truncate::Rule::kFixed;
                 else if (rule == "laplace") r = Truncate::Rule::kLaplace;
                 else if (rule == "laplace_uniform") r = Truncate::Rule::kLaplaceUniform;
                 else throw std::invalid_argument("Truncate: unknown threshold rule '" + rule + "'");
                 return std::make_shared<Truncate>(r, threshold, bits, gamma_rule(gamma));
             }),
             py::arg("rule"), py::arg("threshold"), py::arg("bits"), py::arg("gamma"))
        .def(
            "threshold_for",
            [](const Truncate& t, const F32& x) {
                if (x.ndim() != 1 || x.shape(0) == 0) throw std::invalid_argument("x must be 1-D and non-empty");
                const float* p = x.data();
                const uint64_t d = uint64_t(x.shape(0));
                py::gil_scoped_release release;
                check_finite(p, d, "x");
                Workspace ws;
                return t.threshold_for(p, d, ws);
            },
            py::arg("x"));

    py::class_<NonUniformQuantizer, Compressor, std::shared_ptr<NonUniformQuantizer>>(m, "NonUniformQuantizer")
        .def(py::init([](uint32_t bits, const std::string& density, std::vector<double> levels,
                         const std::string& gamma) {
                 NonUniformQuantizer::Density dn;
                 if (density == "table") dn = NonUniformQuantizer::Density::kTable;
                 else if (density == "uniform") dn = NonUniformQuantizer::Density::kUniform;
                 else if (density == "laplace") dn = NonUniformQuantizer::Density::kLaplace;
                 else throw std::invalid_argument("NonUniformQuantizer: unknown density '" + density + "'");
                 return std::make_shared<NonUniformQuantizer>(bits, dn, std::move(levels), gamma_rule(gamma));
             }),
             py::arg("bits"), py::arg("density"), py::arg("levels"), py::arg("gamma"))
        .def("codebook", [](const NonUniformQuantizer& c, const Message& msg) { return to_array(c.codebook(msg)); },
             py::arg("msg"));

    py::class_<TruncatedQuantizer, Compressor, std::shared_ptr<TruncatedQuantizer>>(m, "TruncatedQuantizer")
        .def(py::init([](uint32_t bits, const std::string& shape, const std::string& gamma) {
                 TruncatedQuantizer::Shape sh;
                 if (shape == "laplace") sh = TruncatedQuantizer::Shape::kLaplace;
                 else if (shape == "uniform") sh = TruncatedQuantizer::Shape::kUniform;
                 else throw std::invalid_argument("TruncatedQuantizer: unknown shape '" + shape + "'");
                 return std::make_shared<TruncatedQuantizer>(bits, sh, gamma_rule(gamma));
             }),
             py::arg("bits"), py::arg("shape"), py::arg("gamma"))
        .def("codebook", [](const TruncatedQuantizer& c, const Message& msg) { return to_array(c.codebook(msg)); },
             py::arg("msg"))
        .def(
            "levels_for_gamma",
            [](const TruncatedQuantizer& c, float gamma) {
                std::vector<float> lv;
                c.levels(gamma, lv);
                return to_array(lv);
            },
            py::arg("gamma"));
}
