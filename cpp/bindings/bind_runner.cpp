// A method driven one step at a time from Python: the DDP hook runs worker(rank) locally,
// exchanges messages, and runs the (replicated) server step on every rank.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <deque>

#include "pyqsgd/methods/method.hpp"

namespace py = pybind11;
using namespace pyqsgd;

namespace {
using F64 = py::array_t<double, py::array::c_style>;

class MethodRunner {
   public:
    MethodRunner(std::shared_ptr<Method> method, uint32_t m, uint64_t d, std::vector<double> weights,
                 std::vector<double> prob, std::vector<double> batch, uint64_t seed)
        : method_(std::move(method)), ws_(m) {
        RunInfo info;
        info.m = m;
        info.d = d;
        if (weights.size() != m || prob.size() != m || batch.size() != m)
            throw std::invalid_argument("MethodRunner: weights, prob and batch need one entry per worker");
        double s = 0.0;
        for (double w : weights) s += w;
        if (!(s > 0.0)) throw std::invalid_argument("MethodRunner: weights must not all be zero");
        for (double w : weights) info.weights.push_back(w / s);
        info.prob = std::move(prob);
        info.batch = std::move(batch);
        key_.seed = seed;
        x_.assign(d, 0.0);
        dec_.assign(size_t(m) * d, 0.0f);
        for (uint32_t i = 0; i < m; ++i) rows_.push_back(dec_.data() + size_t(i) * d);
        method_->reset(info, x_.data());
    }

    // Worker i's upload for round t: (status, message or None). 0 idle, 1 sent, 2 skipped.
    py::tuple worker(uint32_t i, uint32_t t, double lr, const F64& v, const py::object& step_sq) {
        check_worker(i);
        const uint64_t d = method_->info().d;
        if (v.ndim() != 1 || uint64_t(v.shape(0)) != d) throw std::invalid_argument("v must be 1-D of length d");
        if (!step_sq.is_none()) step_sq_ = step_sq.cast<std::vector<double>>();
        Round r = round(t, lr);
        Message msg;
        Upload u;
        {
            py::gil_scoped_release release;
            u = method_->worker(i, r, v.data(), msg, rows_[i], ws_[i]);
        }
        if (u == Upload::kSent) return py::make_tuple(int(u), msg);
        return py::make_tuple(int(u), py::none());
    }

    // The server step from every worker's (status, message); messages are decoded here.
    F64 server(uint32_t t, double lr, const std::vector<int>& status, const std::vector<py::object>& msgs) {
        const uint32_t m = method_->info().m;
        const uint64_t d = method_->info().d;
        if (status.size() != m || msgs.size() != m) throw std::invalid_argument("server: need one status and message per worker");
        std::vector<Upload> st(m);
        std::vector<Message> ms(m);
        for (uint32_t i = 0; i < m; ++i) {
            if (status[i] < 0 || status[i] > 2) throw std::invalid_argument("server: status must be 0, 1 or 2");
            st[i] = Upload(status[i]);
            if (st[i] == Upload::kSent) {
                if (msgs[i].is_none()) throw std::invalid_argument("server: a sent status needs a message");
                ms[i] = msgs[i].cast<Message>();
                // Both ends know worker i's key for round t: a message for another round or
                // worker (or seed) is refused, not decoded with the wrong draws.
                const Key want = key_.with(t, i);
                const Key& got = ms[i].key;
                if (got.seed != want.seed || got.round != want.round || got.worker != want.worker)
                    throw std::invalid_argument("server: worker " + std::to_string(i) + "'s message carries the key of "
                                                "round " + std::to_string(got.round) + ", worker " +
                                                std::to_string(got.worker) + "; expected round " + std::to_string(t) +
                                                ", worker " + std::to_string(i) + " (a stale or misrouted message)");
            }
        }
        F64 step{py::ssize_t(d)};
        double* sp = step.mutable_data();
        {
            py::gil_scoped_release release;
            Workspace ws;
            for (uint32_t i = 0; i < m; ++i)
                if (st[i] == Upload::kSent) method_->decode(i, ms[i], rows_[i], ws);
            Round r = round(t, lr);
            last_down_ = method_->server(r, st, rows_, ms, sp);
        }
        return step;
    }

    int64_t last_downlink_bits() const { return last_down_; }
    uint64_t skip_bits() const { return method_->skip_bits(); }
    py::dict state() const {
        py::dict out;
        for (const auto& [name, v] : method_->state()) {
            F64 a{py::ssize_t(v.size())};
            std::copy(v.begin(), v.end(), a.mutable_data());
            out[py::str(name)] = a;
        }
        return out;
    }

    // Restores arrays saved by state() (same method, m and d); size and name errors -> ValueError.
    void set_state(const py::dict& s) {
        NamedArrays arrays;
        for (const auto& kv : s) {
            const F64 a = F64::ensure(kv.second);
            if (!a || a.ndim() != 1) throw std::invalid_argument("set_state: every value must be a 1-D float array");
            arrays.push_back({kv.first.cast<std::string>(), std::vector<double>(a.data(), a.data() + a.size())});
        }
        method_->load_state(arrays);
    }

   private:
    void check_worker(uint32_t i) const {
        if (i >= method_->info().m) throw std::invalid_argument("worker index out of range");
    }
    Round round(uint32_t t, double lr) {
        Round r;
        r.t = t;
        r.lr = lr;
        r.key = key_;
        r.x = x_.data();
        r.step_sq = &step_sq_;
        return r;
    }
    std::shared_ptr<Method> method_;
    std::deque<Workspace> ws_;
    Key key_;
    std::vector<double> x_, step_sq_;
    std::vector<float> dec_;
    std::vector<float*> rows_;
    int64_t last_down_ = -1;
};
}  // namespace

void bind_runner(py::module_& m) {
    py::class_<MethodRunner>(m, "MethodRunner")
        .def(py::init<std::shared_ptr<Method>, uint32_t, uint64_t, std::vector<double>, std::vector<double>,
                      std::vector<double>, uint64_t>(),
             py::arg("method"), py::arg("m"), py::arg("d"), py::arg("weights"), py::arg("prob"), py::arg("batch"),
             py::arg("seed"))
        .def("worker", &MethodRunner::worker, py::arg("i"), py::arg("t"), py::arg("lr"), py::arg("v"),
             py::arg("step_sq") = py::none())
        .def("server", &MethodRunner::server, py::arg("t"), py::arg("lr"), py::arg("status"), py::arg("messages"))
        .def_property_readonly("last_downlink_bits", &MethodRunner::last_downlink_bits)
        .def_property_readonly("skip_bits", &MethodRunner::skip_bits)
        .def("state", &MethodRunner::state)
        .def("set_state", &MethodRunner::set_state, py::arg("state"));
}
