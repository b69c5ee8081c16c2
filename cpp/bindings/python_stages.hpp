// Compressors, aggregators and methods written in Python, seen by the native core as ordinary
// Compressor / Combiner / Method objects, so they run everywhere a built-in does (chain,
// induced, every method, the simulator, the DDP runner).
//
// Every callback takes the GIL (py::gil_scoped_acquire is re-entrant) and is made from one
// thread at a time: needs_gil() makes the simulator run such a pipeline's worker loop
// serially, on the thread that called it. A Python exception travels back to the caller as
// py::error_already_set (the original exception with its traceback), except the two errors
// the simulator treats as "the run diverged", which are mapped back to their C++ types.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "pyqsgd/compressors/basic.hpp"
#include "pyqsgd/methods/method.hpp"

namespace pyqsgd {
namespace pyb = pybind11;

// The Python classes of NonFiniteError and Float32Overflow (registered in bind_python.cpp).
pyb::handle nonfinite_error_type();
pyb::handle float32_overflow_type();
// Rethrows `e` as the C++ error it stands for (NonFiniteError, Float32Overflow) when it is one
// of those, else rethrows it unchanged.
[[noreturn]] void rethrow_python_error(pyb::error_already_set& e);

// A Python object owned from C++: its reference is dropped with the GIL held, whichever thread
// destroys the owner.
class GilObject {
   public:
    GilObject() = default;
    explicit GilObject(pyb::object o) : obj_(std::move(o)) {}
    GilObject(const GilObject&) = delete;
    GilObject& operator=(const GilObject&) = delete;
    ~GilObject();
    const pyb::object& get() const { return obj_; }
    void reset(pyb::object o) { obj_ = std::move(o); }  // GIL held

   private:
    pyb::object obj_;
};

// A pq.Compressor subclass that implements encode/decode/properties in Python. Holds a strong
// reference, so whoever holds the adapter (a chain, a method, the DDP runner) keeps the
// compressor alive. The Python object never caches its adapter (it builds one per use), so
// there is no reference cycle for the garbage collector to miss.
class PyCompressor final : public Compressor, public Selector {
   public:
    PyCompressor(pyb::object compressor, std::string name, bool unbiased, bool selector, std::string decode_attr);
    std::string name() const override { return name_; }
    uint16_t tag() const override { return kPython; }
    bool needs_gil() const override { return true; }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return unbiased_; }
    const Selector* as_selector() const override { return selector_ ? this : nullptr; }

    // Selector (only when the Python class implements select/selection).
    void select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws,
                Selection& sel) const override;
    void read_selection(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, Workspace& ws,
                        Selection& sel) const override;
    uint64_t kept(uint64_t) const override { return 0; }  // data-dependent

   private:
    const pyb::object& target() const { return obj_.get(); }  // the Python compressor (GIL held)
    GilObject obj_;
    std::string name_, decode_attr_;  // decode_attr_: the Python method that decodes
    bool unbiased_, selector_;
};

// A pq.Aggregator subclass whose combine() is written in Python.
class PyCombiner final : public Combiner {
   public:
    PyCombiner(pyb::object aggregator, std::string name, bool wants_messages)
        : obj_(std::move(aggregator)), name_(std::move(name)), wants_messages_(wants_messages) {}
    std::string name() const override { return name_; }
    bool needs_gil() const override { return true; }
    void combine(const std::vector<uint32_t>& senders, const std::vector<float*>& decoded,
                 const std::vector<Message>& msgs, const std::vector<double>& coef, uint64_t d,
                 double* out) const override;

   private:
    GilObject obj_;
    std::string name_;
    bool wants_messages_;
};

// A pq.methods.PythonMethod subclass: worker and server hooks in Python, state in Python.
class PyMethod final : public Method {
   public:
    PyMethod(pyb::object method, std::vector<CompressorPtr> comps, std::string name, uint64_t skip_bits,
             size_t history);
    std::string name() const override { return name_; }
    void reset(const RunInfo& info, const double* x0) override;
    Upload worker(uint32_t i, const Round& r, const double* v, Message& msg, float* decoded, Workspace& ws) override;
    int64_t server(const Round& r, const std::vector<Upload>& status, const std::vector<float*>& decoded,
                   const std::vector<Message>& msgs, double* step) override;
    size_t history_needed() const override { return history_; }
    uint64_t skip_bits() const override { return skip_bits_; }
    bool needs_gil() const override { return true; }
    NamedArrays state() const override;
    void load_state(const NamedArrays& s) override;

    // What the server context's aggregate() calls.
    void weighted(const std::vector<Upload>& status, const std::vector<float*>& decoded,
                  const std::vector<Message>& msgs, const std::vector<double>& coef, double* out) const {
        aggregate(status, decoded, msgs, [&](uint32_t i) { return coef[i]; }, 1.0, out);
    }

   private:
    GilObject obj_, state_;
    std::string name_;
    uint64_t skip_bits_;
    size_t history_;
};

}  // namespace pyqsgd
