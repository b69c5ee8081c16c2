#include <algorithm>
#include <cmath>

#include "pyqsgd/compressors/blockwise.hpp"

namespace pyqsgd {

Blockwise::Blockwise(std::vector<CompressorPtr> compressors, std::vector<uint64_t> blocks)
    : cs_(std::move(compressors)), blocks_(std::move(blocks)) {
    if (blocks_.empty()) fail("blockwise: blocks must list at least one block size");
    if (cs_.size() != blocks_.size())
        fail("blockwise: one compressor per block is required, got " + std::to_string(cs_.size()) +
             " compressors for " + std::to_string(blocks_.size()) + " blocks");
    offsets_.reserve(blocks_.size());
    for (size_t b = 0; b < blocks_.size(); ++b) {
        if (!cs_[b]) fail("blockwise: compressor " + std::to_string(b) + " is missing");
        if (blocks_[b] == 0) fail("blockwise: blocks must be positive, got 0 at position " + std::to_string(b));
        offsets_.push_back(total_);
        total_ += blocks_[b];
        if (total_ >= (uint64_t(1) << 32)) fail("blockwise: blocks sum to more than 2^32 - 1 entries");
        unbiased_ = unbiased_ && cs_[b]->unbiased();
        needs_gil_ = needs_gil_ || cs_[b]->needs_gil();
        selectors_ = selectors_ && cs_[b]->as_selector() != nullptr;
        same_ = same_ && cs_[b] == cs_[0];
    }
    check(total_);  // a block its compressor cannot take fails at construction, naming the block
}

std::string Blockwise::name() const {
    std::string s = "blockwise(";
    if (same_) {
        s += cs_[0]->name();
    } else {
        s += "[";
        for (size_t b = 0; b < cs_.size(); ++b) s += (b ? ", " : "") + cs_[b]->name();
        s += "]";
    }
    s += ", blocks=[";
    for (size_t b = 0; b < blocks_.size(); ++b) s += (b ? ", " : "") + std::to_string(blocks_[b]);
    return s + "])";
}

void Blockwise::check_block(size_t b) const {
    try {
        cs_[b]->check(blocks_[b]);
    } catch (const std::invalid_argument& e) {
        fail("blockwise: block " + std::to_string(b) + " (size " + std::to_string(blocks_[b]) + "): " + e.what());
    }
}

void Blockwise::check(uint64_t d) const {
    if (d != total_)
        fail("blockwise: the blocks sum to " + std::to_string(total_) + " but x has d=" + std::to_string(d) +
             "; pass blocks that sum to the vector's length");
    // A shared compressor is checked once per distinct block size.
    for (size_t b = 0; b < blocks_.size(); ++b) {
        if (same_ && b > 0 && std::find(blocks_.begin(), blocks_.begin() + b, blocks_[b]) != blocks_.begin() + b)
            continue;
        check_block(b);
    }
}

void Blockwise::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const {
    // Blocks run one after another: a block's compressor parallelises inside itself, and the
    // message's sections must come out in block order.
    for (size_t b = 0; b < blocks_.size(); ++b)
        cs_[b]->encode(x + offsets_[b], blocks_[b], block_key(key, uint32_t(b)), msg, ws.child(0));
}

void Blockwise::decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                       Workspace& ws) const {
    for (size_t b = 0; b < blocks_.size(); ++b)
        cs_[b]->decode(msg, cur, blocks_[b], block_key(key, uint32_t(b)), out + offsets_[b], ws.child(0));
}

Properties Blockwise::properties(uint64_t d) const {
    Properties p;
    p.unbiased = unbiased_;
    double omega = 0.0, delta = 1.0;
    bool have_omega = true, have_delta = true;
    for (size_t b = 0; b < blocks_.size(); ++b) {
        const Properties q = cs_[b]->properties(blocks_[b]);
        if (std::isnan(q.omega)) have_omega = false; else omega = std::max(omega, q.omega);
        if (std::isnan(q.delta)) have_delta = false; else delta = std::min(delta, q.delta);
    }
    if (unbiased_ && have_omega) p.omega = omega;
    if (!unbiased_ && have_delta) p.delta = delta;
    return p;
}

uint64_t Blockwise::expected_bits(uint64_t d) const {
    if (d != total_) return kUnknownBits;
    uint64_t bits = 0;
    for (size_t b = 0; b < blocks_.size(); ++b) bits = add_bits(bits, cs_[b]->expected_bits(blocks_[b]));
    return bits;
}

void Blockwise::append_selection(const Selection& part, uint64_t offset, uint64_t n, Selection& sel,
                                 bool keep_values) {
    if (part.dense) {
        for (uint64_t j = 0; j < n; ++j) sel.indices.push_back(uint32_t(offset + j));
    } else {
        for (uint32_t j : part.indices) sel.indices.push_back(uint32_t(offset + j));
    }
    if (keep_values) sel.values.insert(sel.values.end(), part.values.begin(), part.values.end());
}

void Blockwise::select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws,
                       Selection& sel) const {
    // The blocks' kept values, concatenated in block order, are what the next stage
    // compresses: chain(blockwise(TopK(ratio=.01), blocks), QSGD()) keeps 1% per layer and
    // quantizes all kept values with one norm.
    Selection& part = ws.child(1).sel;
    sel.indices.clear();
    sel.values.clear();
    bool dense = true;
    for (size_t b = 0; b < blocks_.size(); ++b) {
        cs_[b]->as_selector()->select(x + offsets_[b], blocks_[b], block_key(key, uint32_t(b)), msg, ws.child(0),
                                      part);
        dense = dense && part.dense;
        append_selection(part, offsets_[b], blocks_[b], sel, true);
    }
    sel.dense = dense;
    if (dense) sel.indices.clear();
}

void Blockwise::read_selection(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, Workspace& ws,
                               Selection& sel) const {
    Selection& part = ws.child(1).sel;
    sel.indices.clear();
    bool dense = true;
    for (size_t b = 0; b < blocks_.size(); ++b) {
        cs_[b]->as_selector()->read_selection(msg, cur, blocks_[b], block_key(key, uint32_t(b)), ws.child(0), part);
        dense = dense && part.dense;
        append_selection(part, offsets_[b], blocks_[b], sel, false);
    }
    sel.dense = dense;
    if (dense) sel.indices.clear();
}

uint64_t Blockwise::kept(uint64_t d) const {
    uint64_t n = 0;
    for (size_t b = 0; b < blocks_.size(); ++b) {
        const uint64_t k = cs_[b]->as_selector()->kept(blocks_[b]);
        if (k == 0) return 0;  // some block's kept size depends on the data
        n += k;
    }
    return n;
}

uint64_t Blockwise::selection_bits(uint64_t d) const {
    uint64_t bits = 0;
    for (size_t b = 0; b < blocks_.size(); ++b)
        bits = add_bits(bits, cs_[b]->as_selector()->selection_bits(blocks_[b]));
    return bits;
}

}  // namespace pyqsgd
