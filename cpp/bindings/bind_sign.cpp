// Sign methods and the vote kernels behind MajorityVote / FederatedVote.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "pyqsgd/methods/sign.hpp"
#include "pyqsgd/vote.hpp"

namespace py = pybind11;
using namespace pyqsgd;

namespace {
using F64 = py::array_t<double, py::array::c_style>;
using F32 = py::array_t<float, py::array::c_style>;

std::vector<const Message*> pointers(const std::vector<Message>& msgs, uint64_t& d) {
    if (msgs.empty()) throw std::invalid_argument("sign vote: need at least one message");
    d = msgs[0].d;
    std::vector<const Message*> out;
    for (const Message& m : msgs) out.push_back(&m);
    return out;
}
}  // namespace

void bind_sign(py::module_& m) {
    py::class_<LESignSGD, Method, std::shared_ptr<LESignSGD>>(m, "LESignSGD")
        .def(py::init<uint32_t, double, uint32_t>(), py::arg("D"), py::arg("xi"), py::arg("t_bar"));
    py::class_<SignVote, Method, std::shared_ptr<SignVote>>(m, "SignVote")
        .def(py::init([](bool federated, double W, double lam, uint32_t t_in, double eps, bool per_coordinate,
                         bool oracle, double worker_momentum, bool leave_one_out, bool authors) {
                 VoteConfig c;
                 c.federated = federated;
                 c.W = W;
                 c.lambda = lam;
                 c.t_in = t_in;
                 c.eps = eps;
                 c.per_coordinate = per_coordinate;
                 c.oracle = oracle;
                 c.worker_momentum = worker_momentum;
                 c.leave_one_out = leave_one_out;
                 c.authors = authors;
                 return std::make_shared<SignVote>(c);
             }),
             py::kw_only(), py::arg("federated"), py::arg("W"), py::arg("lam"), py::arg("t_in"), py::arg("eps"),
             py::arg("per_coordinate"), py::arg("oracle"), py::arg("worker_momentum"), py::arg("leave_one_out") = false,
             py::arg("authors") = false);

    m.def(
        "sign_vote",
        [](const std::vector<Message>& msgs, const py::object& weights) {
            uint64_t d = 0;
            const auto ptrs = pointers(msgs, d);
            F32 out{py::ssize_t(d)};
            float* o = out.mutable_data();
            uint64_t ties;
            if (weights.is_none()) {
                py::gil_scoped_release release;
                ties = sign_vote(ptrs, nullptr, d, o);
            } else {
                F64 w = weights.cast<F64>();
                if (w.ndim() == 1 && size_t(w.shape(0)) == msgs.size()) {
                    const double* wp = w.data();
                    py::gil_scoped_release release;
                    ties = sign_vote(ptrs, wp, d, o);
                } else if (w.ndim() == 2 && size_t(w.shape(0)) == msgs.size() && uint64_t(w.shape(1)) == d) {
                    const double* wp = w.data();
                    py::gil_scoped_release release;
                    ties = sign_vote_per_coordinate(ptrs, wp, d, o);
                } else {
                    throw std::invalid_argument("weights must have shape (n_messages,) or (n_messages, d)");
                }
            }
            return py::make_tuple(out, ties);
        },
        py::arg("messages"), py::arg("weights") = py::none());
    m.def(
        "sign_agreement",
        [](const Message& msg, const F32& vote, bool ties_disagree) {
            if (vote.ndim() != 1 || uint64_t(vote.shape(0)) != msg.d)
                throw std::invalid_argument("vote must be 1-D with length d of the message");
            py::array_t<uint8_t> code{py::ssize_t(msg.d)};
            count_agreement(msg, vote.data(), msg.d, code.mutable_data(), ties_disagree);
            return code;  // 0 disagree, 1 agree, 2 tie (not counted; never with ties_disagree)
        },
        py::arg("message"), py::arg("vote"), py::arg("ties_disagree") = false);
}
