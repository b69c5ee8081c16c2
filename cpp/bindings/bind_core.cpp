// Keys, messages, threads and raw random draws (the latter feed the NumPy reference twins).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "pyqsgd/compressors/blockwise.hpp"
#include "pyqsgd/crc32c.hpp"
#include "pyqsgd/message.hpp"
#include "pyqsgd/parallel.hpp"
#include "pyqsgd/rng.hpp"

namespace py = pybind11;
using namespace pyqsgd;

void bind_core(py::module_& m) {
    py::class_<Key>(m, "Key", R"doc(
The address of a random draw: (seed, round, worker, stream).

pyqsgd has no global random state. Draw j of a key is a pure function of
(seed, round, worker, stream, j), computed by Philox4x32-10 (Salmon et al., SC'11) with the
seed as its key and (block, stream, worker, round) as its counter, so it does not depend on
thread scheduling or on what else was drawn. An integer ``key=s`` anywhere in the API means
``Key(seed=s)``; in :func:`pyqsgd.simulate` worker i's compressor in round t uses
``Key(seed=key, round=t, worker=i)``. Read-only fields, compared by value, picklable.

Parameters
----------
seed : int in [0, 2**64)
round, worker, stream : int in [0, 2**32)

Examples
--------
>>> import pyqsgd as pq
>>> k = pq.Key(seed=3, round=10, worker=2)
>>> k.child(0) == pq.Key(seed=3, round=10, worker=2, stream=1)
True
)doc")
        .def(py::init([](uint64_t seed, uint32_t round, uint32_t worker, uint32_t stream) {
                 return Key{seed, round, worker, stream};
             }),
             py::kw_only(), py::arg("seed") = 0, py::arg("round") = 0, py::arg("worker") = 0, py::arg("stream") = 0)
        .def_readonly("seed", &Key::seed)
        .def_readonly("round", &Key::round)
        .def_readonly("worker", &Key::worker)
        .def_readonly("stream", &Key::stream)
        .def("child", &Key::child, py::arg("i"),
             "The key of sub-stream i (stream 2*stream + 1 + i): chain/induced give stage i key.child(i), "
             "so nested combinators never share a stream.")
        .def("block", &block_key, py::arg("b"),
             "The key of block b in pq.blockwise: child(0) with a seed mixed from (seed, b) by SplitMix64, "
             "so blocks draw independent streams.")
        .def("__eq__", [](const Key& a, const Key& b) {
            return a.seed == b.seed && a.round == b.round && a.worker == b.worker && a.stream == b.stream;
        })
        .def("__repr__", [](const Key& k) {
            return "Key(seed=" + std::to_string(k.seed) + ", round=" + std::to_string(k.round) +
                   ", worker=" + std::to_string(k.worker) + ", stream=" + std::to_string(k.stream) + ")";
        })
        .def(py::pickle([](const Key& k) { return py::make_tuple(k.seed, k.round, k.worker, k.stream); },
                        [](py::tuple t) {
                            return Key{t[0].cast<uint64_t>(), t[1].cast<uint32_t>(), t[2].cast<uint32_t>(),
                                       t[3].cast<uint32_t>()};
                        }));

    py::class_<Message>(m, "Message", R"doc(
An encoded compressor output: the wire format.

``bits`` is the exact payload length (what every bit counter adds up); the header (compressor
tag, parameter fingerprint, d, shared key, section lengths) is shared context and not counted.
``wire_bits`` is the full length of ``to_bytes()``: payload, header and a CRC-32C over all of
it. ``Message.from_bytes()`` checks the checksum first (any accidental corruption raises
``ValueError``, "checksum mismatch"), then validates the structure; decoding checks the rest.
)doc")
        .def_property_readonly("bits", &Message::bits)
        .def_property_readonly("wire_bits", &Message::wire_bits,
                               "Bits of to_bytes(): the payload plus framing (header, section table, CRC-32C).")
        .def_readonly("tag", &Message::tag)
        .def_readonly("d", &Message::d)
        .def_readonly("fingerprint", &Message::fingerprint)
        .def_property_readonly("key", [](const Message& msg) { return msg.key; })
        .def_property_readonly("section_bits",
                               [](const Message& msg) {
                                   std::vector<uint64_t> b;
                                   for (size_t i = 0; i < msg.size(); ++i) b.push_back(msg.section(i).bits);
                                   return b;
                               })
        .def("to_bytes", [](const Message& msg) { return py::bytes(msg.to_bytes()); })
        .def_static(
            "from_bytes",
            [](py::bytes b) {
                std::string s = b;
                py::gil_scoped_release release;
                return Message::from_bytes(s);
            },
            py::arg("data"))
        .def("__eq__", [](const Message& a, const Message& b) { return a.to_bytes() == b.to_bytes(); })
        .def("__repr__", [](const Message& msg) {
            return "<Message tag=" + std::to_string(msg.tag) + " d=" + std::to_string(msg.d) +
                   " bits=" + std::to_string(msg.bits()) + " sections=" + std::to_string(msg.size()) + ">";
        })
        .def(py::pickle([](const Message& msg) { return py::bytes(msg.to_bytes()); },
                        [](py::bytes b) { return Message::from_bytes(std::string(b)); }));

    // CRC-32C of a bytes object, read in place (hardware path, and the portable one for tests).
    auto crc_of = [](uint32_t (*fn)(const void*, size_t, uint32_t)) {
        return [fn](py::bytes b, uint32_t crc) {
            char* p = nullptr;
            Py_ssize_t n = 0;
            PyBytes_AsStringAndSize(b.ptr(), &p, &n);
            return fn(p, size_t(n), crc);
        };
    };
    m.def("crc32c", crc_of(&crc32c), py::arg("data"), py::arg("crc") = 0);
    m.def("crc32c_portable", crc_of(&crc32c_portable), py::arg("data"), py::arg("crc") = 0);
    m.def("set_num_threads", &set_num_threads, py::arg("n"));
    m.def("get_num_threads", &get_num_threads);
    m.def("thread_override", &thread_override);
    m.def("set_thread_override", &set_thread_override, py::arg("n"));

    // Raw draws of a stream, so NumPy reference implementations can consume the same numbers.
    m.def(
        "philox_u32",
        [](const Key& key, uint64_t first, uint64_t n) {
            py::array_t<uint32_t> out(n);
            auto* p = out.mutable_data();
            for (uint64_t i = 0; i < n; ++i) p[i] = draw_u32(key, first + i);
            return out;
        },
        py::arg("key"), py::arg("first"), py::arg("n"));
    m.def(
        "philox_u64",
        [](const Key& key, uint64_t first, uint64_t n) {
            py::array_t<uint64_t> out(n);
            auto* p = out.mutable_data();
            for (uint64_t i = 0; i < n; ++i) p[i] = draw_u64(key, first + i);
            return out;
        },
        py::arg("key"), py::arg("first"), py::arg("n"));
}
