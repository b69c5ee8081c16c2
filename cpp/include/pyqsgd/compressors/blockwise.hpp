// Layer-wise compression: blockwise(C, blocks) compresses each block of the vector separately
// (TopK keeps k per layer, QSGD sends one norm per layer), as the reference codes of the seed
// papers do for neural networks.
#pragma once
#include <vector>

#include "pyqsgd/compressors/basic.hpp"

namespace pyqsgd {

// The key block b compresses with: a subtree of its own (child 0) under a seed derived from
// (seed, b). Blocks cannot share streams (a binary child index per block would collide with
// the other nodes of the key tree after two blocks), and the derivation is the same on both
// ends, so nothing about it goes on the wire.
inline Key block_key(const Key& key, uint32_t b) {
    Key k = key.child(0);
    k.seed = mix64(mix64(key.seed) + uint64_t(b));
    return k;
}

// Blocks are sections of x in order: block b is x[off_b, off_b + blocks[b]). Each block's
// compressor appends its own sections, so the message holds the blocks' sections in block
// order and bits = sum of the blocks' bits. Constants: U(max_b omega_b) when every block is
// unbiased (E||C(x) - x||^2 = sum_b E||C_b(x_b) - x_b||^2 <= max omega ||x||^2), B(min_b
// delta_b) when every block is contractive. A chain stage when every block is.
class Blockwise final : public Compressor, public Selector {
   public:
    // One compressor per block (the Python layer repeats a single one).
    Blockwise(std::vector<CompressorPtr> compressors, std::vector<uint64_t> blocks);
    std::string name() const override;
    uint16_t tag() const override { return kBlockwise; }
    bool needs_gil() const override { return needs_gil_; }
    void check(uint64_t d) const override;
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return unbiased_; }
    uint64_t expected_bits(uint64_t d) const override;
    const Selector* as_selector() const override { return selectors_ ? this : nullptr; }
    void select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws,
                Selection& sel) const override;
    void read_selection(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, Workspace& ws,
                        Selection& sel) const override;
    uint64_t kept(uint64_t d) const override;
    uint64_t selection_bits(uint64_t d) const override;

    const std::vector<uint64_t>& blocks() const { return blocks_; }
    uint64_t total() const { return total_; }

   private:
    // Rethrows a block compressor's parameter error with the block it concerns.
    void check_block(size_t b) const;
    // Appends one block's selection (indices shifted by the block's offset) to `sel`.
    static void append_selection(const Selection& part, uint64_t offset, uint64_t n, Selection& sel,
                                 bool keep_values);

    std::vector<CompressorPtr> cs_;
    std::vector<uint64_t> blocks_, offsets_;
    uint64_t total_ = 0;
    bool unbiased_ = true, needs_gil_ = false, selectors_ = true, same_ = true;
};

}  // namespace pyqsgd
