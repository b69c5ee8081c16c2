// Compressors. Inputs must already be contiguous float32 (the Python layer converts once,
// visibly); heavy work runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>

#include "pyqsgd/compressors/basic.hpp"
#include "pyqsgd/compressors/blockwise.hpp"
#include "pyqsgd/compressors/combine.hpp"
#include "pyqsgd/compressors/quant.hpp"
#include "pyqsgd/compressors/sparse.hpp"

namespace py = pybind11;
using namespace pyqsgd;

using F32 = py::array_t<float, py::array::c_style>;

namespace {

py::object opt(double v) { return std::isnan(v) ? py::none() : py::object(py::float_(v)); }

Message compress(const Compressor& c, const F32& x, const Key& key) {
    if (x.ndim() != 1) throw std::invalid_argument("x must be 1-D");
    const float* p = x.data();
    const uint64_t d = uint64_t(x.shape(0));
    Message msg;
    py::gil_scoped_release release;
    Workspace ws;
    c.compress(p, d, key, msg, ws);
    return msg;
}

void check_dimension(const Compressor& c, const Message& msg, const py::object& d) {
    if (d.is_none()) return;
    const int64_t want = d.cast<int64_t>();
    if (want < 1) throw std::invalid_argument("decompress: d must be >= 1, got " + std::to_string(want));
    if (msg.d != uint64_t(want))
        throw std::invalid_argument(c.name() + ".decompress: the message has d=" + std::to_string(msg.d) +
                                    ", the receiver expects d=" + std::to_string(want));
}

F32 decompress(const Compressor& c, const Message& msg, const py::object& d) {
    check_dimension(c, msg, d);
    // Header checks (tag, fingerprint, d, total payload bits) come before allocating d floats:
    // a forged d cannot make the receiver allocate memory its payload does not justify.
    c.check_message(msg);
    // Sparse messages whose indices are regenerated from the shared key (RandK with k given)
    // carry 32k bits whatever d is, so the payload cannot vouch for d. Allocate at most
    // max(2^27 floats, 64 per payload bit); larger outputs need a caller buffer (out=).
    constexpr uint64_t kAllocCap = uint64_t(1) << 27;
    if (msg.d > kAllocCap && msg.d / 64 > msg.bits())
        throw std::invalid_argument("decompress: message claims d=" + std::to_string(msg.d) + " from a " +
                                    std::to_string(msg.bits()) +
                                    "-bit payload; refusing to allocate that much for it (pass out= to decode "
                                    "into a buffer of your own)");
    F32 out(py::ssize_t(msg.d));
    float* p = out.mutable_data();
    {
        py::gil_scoped_release release;
        Workspace ws;
        c.decompress(msg, p, ws);
    }
    return out;
}

// Decodes into a caller-owned buffer (reused across rounds: no allocation, no page faults).
void decompress_into(const Compressor& c, const Message& msg, py::array out, const py::object& d) {
    check_dimension(c, msg, d);
    c.check_message(msg);
    if (!py::isinstance<F32>(out) || out.ndim() != 1 || !(out.flags() & py::array::c_style) || !out.writeable())
        throw py::type_error("out must be a writeable, contiguous 1-D float32 array");
    if (uint64_t(out.shape(0)) != msg.d)
        throw std::invalid_argument("out has length " + std::to_string(out.shape(0)) + ", the message has d=" +
                                    std::to_string(msg.d));
    float* p = static_cast<float*>(out.mutable_data());
    py::gil_scoped_release release;
    Workspace ws;
    c.decompress(msg, p, ws);
}

SparsityParam sparsity(uint64_t k, double ratio, const std::string& rounding) {
    SparsityParam p;
    p.k = k;
    p.ratio = ratio;
    if ((k > 0) == (ratio > 0.0)) throw std::invalid_argument("give exactly one of k and ratio");
    if (ratio < 0.0 || ratio > 1.0) throw std::invalid_argument("ratio must be in (0, 1]");
    if (rounding != "round" && rounding != "floor")
        throw std::invalid_argument("rounding must be 'round' or 'floor', got '" + rounding + "'");
    if (rounding == "floor" && k > 0) throw std::invalid_argument("rounding applies to ratio only, not to k");
    p.floor = rounding == "floor";
    return p;
}

}  // namespace

void bind_compressors(py::module_& m) {
    py::class_<Compressor, std::shared_ptr<Compressor>>(m, "Compressor")
        .def_property_readonly("name", &Compressor::name)
        .def_property_readonly("tag", &Compressor::tag)
        .def_property_readonly("fingerprint", &Compressor::fingerprint)
        .def_property_readonly("is_unbiased", &Compressor::unbiased)
        .def_property_readonly("needs_gil", &Compressor::needs_gil)
        .def("check", &Compressor::check, py::arg("d"))
        .def("compress", &compress, py::arg("x"), py::arg("key"))
        .def("decompress", &decompress, py::arg("msg"), py::arg("d") = py::none())
        .def("decompress_into", &decompress_into, py::arg("msg"), py::arg("out"), py::arg("d") = py::none())
        .def(
            "properties",
            [](const Compressor& c, uint64_t d) {
                c.check(d);
                const Properties p = c.properties(d);
                return py::make_tuple(p.unbiased, opt(p.omega), opt(p.delta));
            },
            py::arg("d"));

    py::class_<Identity, Compressor, std::shared_ptr<Identity>>(m, "Identity").def(py::init<>());
    py::class_<Sign, Compressor, std::shared_ptr<Sign>>(m, "Sign").def(py::init<>());
    py::class_<ScaledSign, Compressor, std::shared_ptr<ScaledSign>>(m, "ScaledSign").def(py::init<>());
    py::class_<TernarySign, Compressor, std::shared_ptr<TernarySign>>(m, "TernarySign").def(py::init<>());
    py::class_<TopK, Compressor, std::shared_ptr<TopK>>(m, "TopK")
        .def(py::init([](uint64_t k, double ratio, const std::string& rounding) {
                 return std::make_shared<TopK>(sparsity(k, ratio, rounding));
             }),
             py::arg("k"), py::arg("ratio"), py::arg("rounding") = "round");
    py::class_<RandK, Compressor, std::shared_ptr<RandK>>(m, "RandK")
        .def(py::init([](uint64_t k, double ratio, bool shared_seed, const std::string& rounding) {
                 return std::make_shared<RandK>(sparsity(k, ratio, rounding), shared_seed);
             }),
             py::arg("k"), py::arg("ratio"), py::arg("shared_seed"), py::arg("rounding") = "round");
    py::class_<QSGD, Compressor, std::shared_ptr<QSGD>>(m, "QSGD").def(py::init<uint32_t>(), py::arg("levels"));
    py::class_<TernGrad, Compressor, std::shared_ptr<TernGrad>>(m, "TernGrad").def(py::init<>());
    py::class_<Natural, Compressor, std::shared_ptr<Natural>>(m, "Natural").def(py::init<>());
    py::class_<Chain, Compressor, std::shared_ptr<Chain>>(m, "Chain")
        .def(py::init<CompressorPtr, CompressorPtr>(), py::arg("a"), py::arg("b"));
    py::class_<Induced, Compressor, std::shared_ptr<Induced>>(m, "Induced")
        .def(py::init<CompressorPtr, CompressorPtr>(), py::arg("c1"), py::arg("c2"));
    py::class_<Blockwise, Compressor, std::shared_ptr<Blockwise>>(m, "Blockwise")
        .def(py::init<std::vector<CompressorPtr>, std::vector<uint64_t>>(), py::arg("compressors"), py::arg("blocks"))
        .def_property_readonly("blocks", &Blockwise::blocks);
}
