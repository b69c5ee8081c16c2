// Python-defined stages (python_stages.hpp) and the contexts their method hooks receive.
//
// The Python side (pyqsgd/python_stages.py, pyqsgd/methods/python.py) validates what user code
// returns and raises TypeError/ValueError naming the class, the method and the fix; the checks
// here only guarantee that nothing malformed can reach native memory.
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>

#include "python_stages.hpp"

namespace py = pybind11;

namespace pyqsgd {
namespace {
using F32 = py::array_t<float, py::array::c_style>;
using F64 = py::array_t<double, py::array::c_style>;

py::handle g_nonfinite, g_overflow;

F32 copy_f32(const float* p, uint64_t n) {
    F32 a{py::ssize_t(n)};
    if (n) std::memcpy(a.mutable_data(), p, n * sizeof(float));
    return a;
}

F64 copy_f64(const double* p, uint64_t n) {
    F64 a{py::ssize_t(n)};
    if (n) std::memcpy(a.mutable_data(), p, n * sizeof(double));
    return a;
}

F64 f32_as_f64(const float* p, uint64_t n) {
    F64 a{py::ssize_t(n)};
    double* o = a.mutable_data();
    for (uint64_t j = 0; j < n; ++j) o[j] = double(p[j]);
    return a;
}

// Copies a Python-validated float array of exactly n entries into out.
template <class T>
void take_array(const py::object& o, uint64_t n, T* out, const std::string& who) {
    auto a = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(o);
    if (!a || a.ndim() != 1 || uint64_t(a.shape(0)) != n)
        throw std::invalid_argument(who + " must return a 1-D array of " + std::to_string(n) + " values");
    if (n) std::memcpy(out, a.data(), n * sizeof(T));
}

py::bytes section_bytes(const Section& s, const std::string& who) {
    if (s.bits % 8 != 0)
        throw std::invalid_argument(who + ".decompress: a Python compressor's section must be whole bytes, got " +
                                    std::to_string(s.bits) + " bits (malformed message)");
    return py::bytes(reinterpret_cast<const char*>(s.words.data()), py::ssize_t(s.bits / 8));
}

void append_bytes(const py::object& data, Message& msg, const std::string& who) {
    char* buf = nullptr;
    Py_ssize_t len = 0;
    if (!PyBytes_Check(data.ptr()) || PyBytes_AsStringAndSize(data.ptr(), &buf, &len) != 0)
        throw py::type_error(who + ".encode must return bytes");
    Section& s = msg.add_for_overwrite(uint64_t(len) * 8);
    // Words are little-endian on the wire (to_bytes), so the bytes keep their order.
    if (len) std::memcpy(s.words.data(), buf, size_t(len));
}

py::tuple key_args(const Key& k) { return py::make_tuple(k.seed, k.round, k.worker, k.stream); }

// Sorted kept coordinates from Python (validated there) into the selection.
void take_indices(const py::object& idx, uint64_t d, Selection& sel, const std::string& who) {
    if (idx.is_none()) {
        sel.dense = true;
        sel.indices.clear();
        return;
    }
    auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(idx);
    if (!a || a.ndim() != 1) throw std::invalid_argument(who + ": kept indices must be a 1-D integer array");
    sel.dense = false;
    sel.indices.resize(size_t(a.shape(0)));
    const int64_t* p = a.data();
    for (py::ssize_t k = 0; k < a.shape(0); ++k) {
        if (p[k] < 0 || uint64_t(p[k]) >= d || (k > 0 && p[k] <= p[k - 1]))
            throw std::invalid_argument(who + ": kept indices must be strictly increasing and in [0, d)");
        sel.indices[size_t(k)] = uint32_t(p[k]);
    }
}

// Runs a Python hook; maps the simulator's "diverged" errors back to their C++ types.
template <class F>
auto call_python(F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (py::error_already_set& e) {
        rethrow_python_error(e);
    }
}

// ---- method hook contexts -------------------------------------------------------------------

// What a worker hook sees: valid only during the call (methods raise afterwards).
struct WorkerContext {
    const PyMethod* method = nullptr;
    uint32_t i = 0;
    const Round* r = nullptr;
    Message* msg = nullptr;
    float* decoded = nullptr;
    Workspace* ws = nullptr;
    bool sent = false;

    const PyMethod& live() const {
        if (!method) throw std::invalid_argument("this worker context belongs to a finished hook call; use it only "
                                                 "inside worker()");
        return *method;
    }
    F64 compress(const F64& v) {
        const PyMethod& m = live();
        const uint64_t d = m.info().d;
        if (v.ndim() != 1 || uint64_t(v.shape(0)) != d)
            throw std::invalid_argument(m.name() + ".worker: ctx.compress needs a 1-D vector of length d=" +
                                        std::to_string(d));
        if (sent) throw std::invalid_argument(m.name() + ".worker: a worker sends at most one message per round");
        {
            py::gil_scoped_release release;  // native stages run GIL-free; Python ones take it back
            m.compress_vector(i, *r, v.data(), *msg, decoded, *ws);
        }
        sent = true;
        return f32_as_f64(decoded, d);
    }
};

struct ServerContext {
    const PyMethod* method = nullptr;
    const Round* r = nullptr;
    const std::vector<Upload>* status = nullptr;
    const std::vector<float*>* decoded = nullptr;
    const std::vector<Message>* msgs = nullptr;

    const PyMethod& live() const {
        if (!method) throw std::invalid_argument("this server context belongs to a finished hook call; use it only "
                                                 "inside server()");
        return *method;
    }
    uint32_t sender(uint32_t i) const {
        const PyMethod& m = live();
        if (i >= m.info().m) throw py::index_error("worker index " + std::to_string(i) + " out of range");
        if ((*status)[i] != Upload::kSent)
            throw std::invalid_argument(m.name() + ".server: worker " + std::to_string(i) +
                                        " sent nothing this round (see ctx.sent)");
        return i;
    }
    F64 aggregate(const F64& coef, bool plain) const {
        const PyMethod& m = live();
        const uint32_t nw = m.info().m;
        if (coef.ndim() != 1 || uint64_t(coef.shape(0)) != nw)
            throw std::invalid_argument(m.name() + ".server: ctx.aggregate needs one coefficient per worker (" +
                                        std::to_string(nw) + ")");
        std::vector<double> c(coef.data(), coef.data() + nw);
        F64 out{py::ssize_t(m.info().d)};
        if (plain)
            m.weighted_sum(*status, *decoded, [&](uint32_t i) { return c[i]; }, out.mutable_data());
        else
            m.weighted(*status, *decoded, *msgs, c, out.mutable_data());
        return out;
    }
};

F64 as_array(const std::vector<double>& v) { return copy_f64(v.data(), v.size()); }

// Ends a context's validity when the hook call returns or throws.
template <class Ctx>
struct Expire {
    std::shared_ptr<Ctx>& ctx;
    ~Expire() { ctx->method = nullptr; }
};

}  // namespace

py::handle nonfinite_error_type() { return g_nonfinite; }
py::handle float32_overflow_type() { return g_overflow; }

void rethrow_python_error(py::error_already_set& e) {
    if (g_nonfinite && e.matches(g_nonfinite)) throw NonFiniteError(e.what());
    if (g_overflow && e.matches(g_overflow)) throw Float32Overflow(e.what());
    throw;
}

GilObject::~GilObject() {
    if (!obj_ || !Py_IsInitialized()) {
        obj_.release();  // interpreter gone: nothing left to decrement
        return;
    }
    py::gil_scoped_acquire gil;
    obj_ = py::object();
}

// ---- PyCompressor ---------------------------------------------------------------------------

PyCompressor::PyCompressor(py::object compressor, std::string name, bool unbiased, bool selector,
                           std::string decode_attr)
    : obj_(std::move(compressor)),
      name_(std::move(name)),
      decode_attr_(std::move(decode_attr)),
      unbiased_(unbiased),
      selector_(selector) {}

void PyCompressor::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace&) const {
    py::gil_scoped_acquire gil;
    call_python([&] {
        py::object data = target().attr("_pyqsgd_encode")(copy_f32(x, d), *key_args(key));
        append_bytes(data, msg, name_);
    });
}

void PyCompressor::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace&) const {
    const Section& s = cur.next(name_.c_str());
    py::gil_scoped_acquire gil;
    call_python([&] {
        const py::object& self = target();
        py::object y = self.attr(decode_attr_.c_str())(section_bytes(s, name_), d);
        // Fast path: a contiguous float32 vector of length d with finite values, checked here.
        // Anything else goes to Python, which raises the error that names the fix.
        if (F32::check_(y)) {
            auto a = py::reinterpret_borrow<F32>(y);
            if (a.ndim() == 1 && uint64_t(a.shape(0)) == d && !copy_checked(out, a.data(), d)) return;
        }
        take_array<float>(self.attr("_pyqsgd_check_decoded")(y, d), d, out, name_ + ".decode");
        check_decoded_finite(out, d, (name_ + ".decode").c_str());  // whatever Python accepted
    });
}

Properties PyCompressor::properties(uint64_t d) const {
    py::gil_scoped_acquire gil;
    return call_python([&] {
        py::tuple t = target().attr("_pyqsgd_properties")(d);
        Properties p;
        p.unbiased = t[0].cast<bool>();
        if (!t[1].is_none()) p.omega = t[1].cast<double>();
        if (!t[2].is_none()) p.delta = t[2].cast<double>();
        return p;
    });
}

void PyCompressor::select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace&,
                          Selection& sel) const {
    py::gil_scoped_acquire gil;
    call_python([&] {
        py::tuple t = target().attr("_pyqsgd_select")(copy_f32(x, d), *key_args(key));
        append_bytes(t[0], msg, name_);
        take_indices(t[1], d, sel, name_ + ".select");
        const uint64_t n = sel.dense ? d : sel.indices.size();
        sel.values.resize(n);
        take_array<float>(t[2], n, sel.values.data(), name_ + ".select");
        check_decoded_finite(sel.values.data(), n, (name_ + ".select").c_str());
    });
}

void PyCompressor::read_selection(const Message&, SectionCursor& cur, uint64_t d, const Key&, Workspace&,
                                  Selection& sel) const {
    const Section& s = cur.next(name_.c_str());
    py::gil_scoped_acquire gil;
    call_python([&] {
        py::object idx = target().attr("_pyqsgd_selection")(section_bytes(s, name_), d);
        take_indices(idx, d, sel, name_ + ".selection");
    });
}

// ---- PyCombiner -----------------------------------------------------------------------------

void PyCombiner::combine(const std::vector<uint32_t>& senders, const std::vector<float*>& decoded,
                         const std::vector<Message>& msgs, const std::vector<double>& coef, uint64_t d,
                         double* out) const {
    py::gil_scoped_acquire gil;
    call_python([&] {
        const py::ssize_t k = py::ssize_t(senders.size());
        F32 vectors({k, py::ssize_t(d)});
        py::array_t<int64_t> workers(k);
        for (py::ssize_t r = 0; r < k; ++r) {
            std::memcpy(vectors.mutable_data(r, 0), decoded[senders[size_t(r)]], d * sizeof(float));
            workers.mutable_data()[r] = senders[size_t(r)];
        }
        py::object messages = py::none();
        if (wants_messages_) {
            py::list l;
            for (uint32_t i : senders) l.append(py::cast(msgs[i]));
            messages = l;
        }
        py::object y = obj_.get().attr("_pyqsgd_combine")(vectors, as_array(coef), workers, messages);
        take_array<double>(y, d, out, name_ + ".combine");
        for (uint64_t j = 0; j < d; ++j)
            if (!std::isfinite(out[j])) throw std::invalid_argument(name_ + ".combine returned NaN or Inf");
    });
}

// ---- PyMethod -------------------------------------------------------------------------------

PyMethod::PyMethod(py::object method, std::vector<CompressorPtr> comps, std::string name, uint64_t skip_bits,
                   size_t history)
    : obj_(std::move(method)), name_(std::move(name)), skip_bits_(skip_bits), history_(history) {
    comps_ = std::move(comps);
}

void PyMethod::reset(const RunInfo& info, const double* x0) {
    Method::reset(info, x0);
    py::gil_scoped_acquire gil;
    call_python([&] {
        py::object st = obj_.get().attr("_pyqsgd_init")(info.m, info.d, as_array(info.weights), as_array(info.prob),
                                                         as_array(info.batch), copy_f64(x0, info.d));
        state_.reset(std::move(st));
    });
}

Upload PyMethod::worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) {
    py::gil_scoped_acquire gil;
    // Shared with Python: a context the hook keeps beyond the call stays a valid object whose
    // methods raise (method = nullptr), never a dangling pointer.
    auto ctx = std::make_shared<WorkerContext>(WorkerContext{this, i, &r, &msg, decoded, &ws, false});
    Expire<WorkerContext> expire{ctx};
    call_python([&] { obj_.get().attr("_pyqsgd_worker")(state_.get(), i, copy_f64(v, info_.d), py::cast(ctx)); });
    return ctx->sent ? Upload::kSent : Upload::kSkipped;
}

int64_t PyMethod::server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                         const std::vector<Message>& msgs, double* step) {
    py::gil_scoped_acquire gil;
    auto ctx = std::make_shared<ServerContext>(ServerContext{this, &r, &status, &decoded, &msgs});
    Expire<ServerContext> expire{ctx};
    call_python([&] {
        py::object s = obj_.get().attr("_pyqsgd_server")(state_.get(), py::cast(ctx));
        take_array<double>(s, info_.d, step, name_ + ".server");
    });
    return -1;
}

NamedArrays PyMethod::state() const {
    py::gil_scoped_acquire gil;
    NamedArrays out;
    if (!state_.get()) return out;
    call_python([&] {
        py::dict arrays = obj_.get().attr("_pyqsgd_state")(state_.get());
        for (const auto& kv : arrays) {
            auto a = F64::ensure(kv.second);
            if (!a) throw std::invalid_argument(name_ + ": state arrays must be float arrays");
            out.push_back({kv.first.cast<std::string>(), std::vector<double>(a.data(), a.data() + a.size())});
        }
    });
    return out;
}

void PyMethod::load_state(const NamedArrays& s) {
    py::gil_scoped_acquire gil;
    call_python([&] {
        py::dict arrays;
        for (const auto& [name, v] : s) arrays[py::str(name)] = as_array(v);
        obj_.get().attr("_pyqsgd_load_state")(state_.get(), arrays);
    });
}

}  // namespace pyqsgd

using namespace pyqsgd;

void bind_python(py::module_& m) {
    g_nonfinite = py::register_exception<NonFiniteError>(m, "NonFiniteError", PyExc_RuntimeError).ptr();
    g_overflow = py::register_exception<Float32Overflow>(m, "Float32Overflow", PyExc_ValueError).ptr();

    py::class_<PyCompressor, Compressor, std::shared_ptr<PyCompressor>>(m, "PythonCompressor")
        .def(py::init<py::object, std::string, bool, bool, std::string>(), py::arg("compressor"), py::arg("name"),
             py::arg("unbiased"), py::arg("selector"), py::arg("decode_attr"));
    py::class_<Combiner, std::shared_ptr<Combiner>>(m, "Combiner").def_property_readonly("name", &Combiner::name);
    py::class_<PyCombiner, Combiner, std::shared_ptr<PyCombiner>>(m, "PythonCombiner")
        .def(py::init<py::object, std::string, bool>(), py::arg("aggregator"), py::arg("name"),
             py::arg("wants_messages"));
    py::class_<PyMethod, Method, std::shared_ptr<PyMethod>>(m, "PythonMethod")
        .def(py::init<py::object, std::vector<CompressorPtr>, std::string, uint64_t, size_t>(), py::arg("method"),
             py::arg("compressors"), py::arg("name"), py::arg("skip_bits"), py::arg("history"));

    py::class_<WorkerContext, std::shared_ptr<WorkerContext>> worker_ctx(m, "WorkerContext", R"doc(
What a PythonMethod's ``worker`` hook sees for one worker in one round (valid during the call).
)doc");
    worker_ctx.def("compress", &WorkerContext::compress, py::arg("v"), R"doc(
Compresses ``v`` (float64, length d; sent as float32) with this worker's compressor and key,
records it as this worker's upload, and returns its decoding (float64, exactly what the server
decodes). At most once per round; a worker that never calls it skips the round.
)doc")
        .def_property_readonly("worker", [](const WorkerContext& c) { return (c.live(), c.i); })
        .def_property_readonly("t", [](const WorkerContext& c) { return (c.live(), c.r->t); })
        .def_property_readonly("lr", [](const WorkerContext& c) { return (c.live(), c.r->lr); })
        .def_property_readonly("key", [](const WorkerContext& c) { return (c.live(), c.r->key.with(c.r->t, c.i)); })
        .def_property_readonly("x", [](const WorkerContext& c) {
            const uint64_t d = c.live().info().d;  // first: r may belong to a finished round
            return copy_f64(c.r->x, d);
        })
        .def_property_readonly("step_sq", [](const WorkerContext& c) { return (c.live(), as_array(*c.r->step_sq)); })
        .def_property_readonly("sent", [](const WorkerContext& c) { return (c.live(), c.sent); })
        .def_property_readonly("message", [](const WorkerContext& c) -> py::object {
            c.live();
            if (!c.sent) return py::none();
            return py::cast(*c.msg);
        });

    auto run_facts = [](auto& cls) {
        using C = typename std::remove_reference_t<decltype(cls)>::type;
        cls.def_property_readonly("m", [](const C& c) { return c.live().info().m; })
            .def_property_readonly("d", [](const C& c) { return c.live().info().d; })
            .def_property_readonly("weights", [](const C& c) { return as_array(c.live().info().weights); })
            .def_property_readonly("prob", [](const C& c) { return as_array(c.live().info().prob); })
            .def_property_readonly("batch", [](const C& c) { return as_array(c.live().info().batch); });
    };
    py::class_<ServerContext, std::shared_ptr<ServerContext>> server_ctx(m, "ServerContext", R"doc(
What a PythonMethod's ``server`` hook sees in one round (valid during the call).
)doc");
    server_ctx.def("aggregate", [](const ServerContext& c, const F64& coef) { return c.aggregate(coef, false); },
             py::arg("coef"), R"doc(
The method's aggregator over the workers that sent: sum in worker order of coef[i] * decoded_i
for Mean/WeightedMean (bit for bit as the native methods form it), or a Python Aggregator's
combine() with these coefficients. ``coef`` has one entry per worker.
)doc")
        .def("weighted_sum", [](const ServerContext& c, const F64& coef) { return c.aggregate(coef, true); },
             py::arg("coef"), R"doc(
sum in worker order of coef[i] * decoded_i over the workers that sent, whatever the aggregator
(for tracked means that must stay exact, like DIANA's shift).
)doc")
        .def("decoded", [](const ServerContext& c, uint32_t i) {
            const uint32_t s = c.sender(i);
            return f32_as_f64((*c.decoded)[s], c.method->info().d);
        }, py::arg("i"))
        .def("message", [](const ServerContext& c, uint32_t i) { return (*c.msgs)[c.sender(i)]; }, py::arg("i"))
        .def_property_readonly("t", [](const ServerContext& c) { return (c.live(), c.r->t); })
        .def_property_readonly("lr", [](const ServerContext& c) { return (c.live(), c.r->lr); })
        .def_property_readonly("x", [](const ServerContext& c) {
            const uint64_t d = c.live().info().d;
            return copy_f64(c.r->x, d);
        })
        .def_property_readonly("step_sq", [](const ServerContext& c) { return (c.live(), as_array(*c.r->step_sq)); })
        .def_property_readonly("status", [](const ServerContext& c) {
            c.live();
            py::array_t<uint8_t> a{py::ssize_t(c.status->size())};
            for (size_t i = 0; i < c.status->size(); ++i) a.mutable_data()[i] = uint8_t((*c.status)[i]);
            return a;
        })
        .def_property_readonly("sent", [](const ServerContext& c) {
            c.live();
            std::vector<int64_t> s;
            for (size_t i = 0; i < c.status->size(); ++i)
                if ((*c.status)[i] == Upload::kSent) s.push_back(int64_t(i));
            return py::array_t<int64_t>(py::ssize_t(s.size()), s.data());
        });
    run_facts(worker_ctx);
    run_facts(server_ctx);
}
