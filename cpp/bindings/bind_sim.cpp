// Methods and the simulator. run() and step_external() release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "pyqsgd/methods/basic.hpp"
#include "pyqsgd/simulator.hpp"

namespace py = pybind11;
using namespace pyqsgd;

namespace {
using F64 = py::array_t<double, py::array::c_style>;

py::dict state_dict(const Method& meth) {
    py::dict out;
    const uint64_t m = meth.info().m, d = meth.info().d;
    for (const auto& [name, v] : meth.state()) {
        F64 a(py::ssize_t(v.size()));
        std::copy(v.begin(), v.end(), a.mutable_data());
        if (m > 0 && d > 0 && v.size() == m * d && m > 1)
            out[py::str(name)] = a.reshape({py::ssize_t(m), py::ssize_t(d)});
        else
            out[py::str(name)] = a;
    }
    return out;
}

// A NumPy array that owns `v` (moved in): the state of a finished run reaches Python without a
// copy, which at many workers is the largest allocation of the run.
template <class T>
py::array owning_array(std::vector<T>&& v) {
    auto* heap = new std::vector<T>(std::move(v));
    py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>(py::ssize_t(heap->size()), heap->data(), owner);
}

py::dict take_state_dict(Simulator& s) {
    const uint64_t m = s.workers(), d = s.dim();
    std::vector<OwnedArray> arrays;
    {
        py::gil_scoped_release release;
        arrays = s.take_method_state();
    }
    py::dict out;
    for (auto& a : arrays) {
        const size_t n = a.f32 ? a.f32_data.size() : a.f64.size();
        py::array arr = a.f32 ? owning_array(std::move(a.f32_data)) : owning_array(std::move(a.f64));
        if (d > 0 && m > 1 && n == m * d) arr = arr.reshape({py::ssize_t(m), py::ssize_t(d)});
        out[py::str(a.name)] = arr;
    }
    return out;
}
}  // namespace

void bind_methods(py::module_& m) {
    py::class_<Method, std::shared_ptr<Method>>(m, "Method")
        .def_property_readonly("name", &Method::name)
        .def_readwrite("momentum", &Method::momentum)
        .def_readwrite("downlink", &Method::downlink)
        .def_readwrite("combiner", &Method::combiner)
        .def_property_readonly("needs_gil", &Method::needs_gil)
        .def("state", &state_dict);
    py::class_<DCGD, Method, std::shared_ptr<DCGD>>(m, "DCGD").def(py::init<std::vector<CompressorPtr>>(), py::arg("compressors"));
    py::class_<EF, Method, std::shared_ptr<EF>>(m, "EF").def(py::init<std::vector<CompressorPtr>>(), py::arg("compressors"));
    py::class_<EF21, Method, std::shared_ptr<EF21>>(m, "EF21")
        .def(py::init<std::vector<CompressorPtr>, bool>(), py::arg("compressors"), py::arg("exact_init"));
    py::class_<DIANA, Method, std::shared_ptr<DIANA>>(m, "DIANA")
        .def(py::init<std::vector<CompressorPtr>, double>(), py::arg("compressors"), py::arg("alpha"));
}

void bind_simulator(py::module_& m) {
    py::class_<SimConfig>(m, "SimConfig")
        .def(py::init<>())
        .def_readwrite("m", &SimConfig::m)
        .def_readwrite("rounds", &SimConfig::rounds)
        .def_readwrite("lr", &SimConfig::lr)
        .def_readwrite("key", &SimConfig::key)
        .def_readwrite("parts", &SimConfig::parts)
        .def_readwrite("batch", &SimConfig::batch)
        .def_readwrite("prob", &SimConfig::prob)
        .def_readwrite("tau", &SimConfig::tau)
        .def_readwrite("local_steps", &SimConfig::local_steps)
        .def_readwrite("local_lr", &SimConfig::local_lr)
        .def_readwrite("log_every", &SimConfig::log_every)
        .def_readwrite("weights", &SimConfig::weights)
        .def_readwrite("state_f32", &SimConfig::state_f32)
        .def_readwrite("streaming", &SimConfig::streaming);

    py::class_<Simulator>(m, "Simulator")
        .def(py::init([](std::shared_ptr<Problem> p, std::shared_ptr<Method> meth, SimConfig cfg, const F64& x0) {
                 std::vector<double> x(x0.data(), x0.data() + x0.size());
                 py::gil_scoped_release release;
                 return std::make_unique<Simulator>(p, meth, std::move(cfg), std::move(x));
             }),
             py::arg("problem"), py::arg("method"), py::arg("config"), py::arg("x0"))
        .def("run", &Simulator::run, py::arg("n"), py::call_guard<py::gil_scoped_release>())
        .def("participation",
             [](const Simulator& s, uint64_t t) {
                 const auto a = s.participation(t);
                 py::array_t<bool> out(py::ssize_t(a.size()));
                 for (size_t i = 0; i < a.size(); ++i) out.mutable_data()[i] = a[i] != 0;
                 return out;
             })
        .def("batch",
             [](const Simulator& s, uint64_t t, uint32_t i, uint32_t h) {
                 const auto b = s.batch(t, i, h);
                 py::array_t<int64_t> out(py::ssize_t(b.size()));
                 std::copy(b.begin(), b.end(), out.mutable_data());
                 return out;
             })
        .def("step_external",
             [](Simulator& s, const F64& V) {
                 if (V.ndim() != 2 || uint64_t(V.shape(1)) != s.dim() || uint64_t(V.shape(0)) != s.workers())
                     throw std::invalid_argument("local vectors must be an (n_workers, d) float64 array");
                 const double* p = V.data();
                 py::gil_scoped_release release;
                 return s.step_external(p);
             })
        .def("step_external_rows",
             [](Simulator& s, py::function rows, uint32_t per_call) {
                 // rows(w0, n) -> (n, d) float64 array; the last one is kept alive until the
                 // simulator asks for the next window (or the round ends).
                 py::object keep;
                 const uint64_t d = s.dim();
                 Simulator::RowSource src = [&](uint32_t w0, uint32_t n) -> const double* {
                     py::gil_scoped_acquire gil;
                     F64 a = F64::ensure(rows(w0, n));
                     if (!a || a.ndim() != 2 || uint64_t(a.shape(0)) != n || uint64_t(a.shape(1)) != d)
                         throw std::invalid_argument("local vectors of workers " + std::to_string(w0) + ".." +
                                                     std::to_string(w0 + n - 1) + " must be an (" +
                                                     std::to_string(n) + ", d) float64 array");
                     keep = a;
                     return a.data();
                 };
                 py::gil_scoped_release release;
                 return s.step_external_rows(src, per_call);
             },
             py::arg("rows"), py::arg("per_call"))
        .def("log_external", &Simulator::log_external)
        .def_property_readonly("due_for_log", &Simulator::due_for_log)
        .def_property_readonly("round", &Simulator::round)
        .def_property_readonly("x",
                               [](const Simulator& s) {
                                   F64 out(py::ssize_t(s.x().size()));
                                   std::copy(s.x().begin(), s.x().end(), out.mutable_data());
                                   return out;
                               })
        .def("log_arrays",
             [](const Simulator& s) {
                 const auto& log = s.log();
                 const py::ssize_t n = py::ssize_t(log.size());
                 py::array_t<int64_t> round(n), bu(n), bd(n), up(n), sk(n);
                 F64 loss(n), gns(n);
                 for (py::ssize_t k = 0; k < n; ++k) {
                     const LogRow& r = log[size_t(k)];
                     round.mutable_data()[k] = int64_t(r.round);
                     loss.mutable_data()[k] = r.loss;
                     gns.mutable_data()[k] = r.grad_norm_sq;
                     bu.mutable_data()[k] = int64_t(r.bits_up);
                     bd.mutable_data()[k] = int64_t(r.bits_down);
                     up.mutable_data()[k] = int64_t(r.uploads);
                     sk.mutable_data()[k] = int64_t(r.skipped);
                 }
                 py::dict out;
                 out["round"] = round;
                 out["loss"] = loss;
                 out["grad_norm_sq"] = gns;
                 out["bits_up"] = bu;
                 out["bits_down"] = bd;
                 out["uploads"] = up;
                 out["skipped"] = sk;
                 const auto& wb = s.worker_bits();
                 const py::ssize_t m = wb.empty() ? 0 : py::ssize_t(wb[0].size());
                 py::array_t<int64_t> wba({n, m});
                 for (py::ssize_t k = 0; k < n; ++k)
                     for (py::ssize_t i = 0; i < m; ++i) wba.mutable_data()[k * m + i] = int64_t(wb[size_t(k)][size_t(i)]);
                 out["worker_bits_up"] = wba;
                 const auto& vw = s.vote_weights();
                 if (!vw.empty()) {
                     const py::ssize_t mv = py::ssize_t(vw[0].size());
                     F64 v({py::ssize_t(vw.size()), mv});
                     for (size_t k = 0; k < vw.size(); ++k)
                         for (py::ssize_t i = 0; i < mv; ++i) v.mutable_data()[py::ssize_t(k) * mv + i] = vw[k][size_t(i)];
                     out["vote_weights"] = v;
                 }
                 return out;
             })
        .def_property_readonly("streaming", &Simulator::streaming)
        .def("method_state", [](const Simulator& s) { return state_dict(s.method()); })
        .def("take_method_state", &take_state_dict,
             "The method's state, moved out without a copy; the simulator cannot continue afterwards.");
}
