// Allocator for large, short-lived buffers (message sections).
//
// A fresh 64 MB std::vector is first touched one 4 KiB page at a time: ~16k page faults, which
// cost more than the kernel that fills it. Like NumPy's own allocator, large blocks are aligned
// to 2 MiB and marked MADV_HUGEPAGE, so the kernel backs them with transparent huge pages where
// enabled (32 faults instead of 16k). Small blocks use plain malloc. Contents are unaffected.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace pyqsgd {

template <class T>
struct HugePageAllocator {
    using value_type = T;
    static constexpr size_t kHuge = size_t(2) << 20;       // 2 MiB: one huge page
    static constexpr size_t kThreshold = size_t(4) << 20;  // below this, plain malloc

    HugePageAllocator() = default;
    template <class U>
    HugePageAllocator(const HugePageAllocator<U>&) {}

    T* allocate(size_t n) {
        if (n > size_t(-1) / sizeof(T)) throw std::bad_alloc();
        const size_t bytes = n * sizeof(T);
        void* p = nullptr;
#ifdef __linux__
        if (bytes >= kThreshold) {
            const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
            if (posix_memalign(&p, kHuge, rounded) != 0) throw std::bad_alloc();
            madvise(p, rounded, MADV_HUGEPAGE);  // advisory: failure only costs speed
            return static_cast<T*>(p);
        }
#endif
        p = std::malloc(bytes ? bytes : 1);
        if (!p) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, size_t) noexcept { std::free(p); }

    // Default-initialise on resize(n) (no zero fill for trivial T): a section that a kernel
    // overwrites completely is not written twice. Explicit values (assign(n, 0)) still apply.
    template <class U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
    template <class U>
    struct rebind {
        using other = HugePageAllocator<U>;
    };

    template <class U>
    bool operator==(const HugePageAllocator<U>&) const { return true; }
    template <class U>
    bool operator!=(const HugePageAllocator<U>&) const { return false; }
};

}  // namespace pyqsgd
