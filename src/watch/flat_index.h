// FlatIndex: a set of pointers found by a key derived from what they point to,
// in one flat array (open addressing, linear probing, deletion by backward
// shift, so no tombstones). About 11-16 bytes per entry, against ~40 for a
// std::unordered_map node and its bucket: InotifyWatcher keeps two of these
// per watched directory. It does not own the pointees.
//
// Traits: static size_t hash(const T*); static size_t hashKey(const Key&);
// static bool matches(const T*, const Key&); hash(e) must equal hashKey of
// e's key. An entry's key must not change while it is in the index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rnotify {

// A 64-bit finalizer (splitmix64): the low bits of the result are well mixed,
// as the table's power-of-two size needs.
inline size_t mixHash(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return static_cast<size_t>(x);
}

template <class T, class Traits>
class FlatIndex {
 public:
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  template <class Key>
  T* find(const Key& key) const {
    if (size_ == 0) return nullptr;
    const size_t mask = slots_.size() - 1;
    for (size_t i = Traits::hashKey(key) & mask;; i = (i + 1) & mask) {
      T* entry = slots_[i];
      if (entry == nullptr) return nullptr;
      if (Traits::matches(entry, key)) return entry;
    }
  }

  // The entry's key must not be in the index yet.
  void insert(T* entry) {
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    place(entry);
    ++size_;
  }

  // By identity; false if it was not there.
  bool erase(const T* entry) {
    if (size_ == 0) return false;
    const size_t mask = slots_.size() - 1;
    size_t hole = Traits::hash(entry) & mask;
    while (slots_[hole] != entry) {
      if (slots_[hole] == nullptr) return false;
      hole = (hole + 1) & mask;
    }
    // Pull back every later entry of the run that may sit in the hole (its
    // home is not between the hole and where it is).
    for (size_t j = (hole + 1) & mask; slots_[j] != nullptr; j = (j + 1) & mask) {
      const size_t home = Traits::hash(slots_[j]) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = nullptr;
    --size_;
    return true;
  }

  template <class F>
  void forEach(F&& f) const {
    for (T* entry : slots_) {
      if (entry != nullptr) f(entry);
    }
  }

  void clear() {
    slots_.clear();
    slots_.shrink_to_fit();
    size_ = 0;
  }

 private:
  void place(T* entry) {
    const size_t mask = slots_.size() - 1;
    size_t i = Traits::hash(entry) & mask;
    while (slots_[i] != nullptr) i = (i + 1) & mask;
    slots_[i] = entry;
  }
  void grow() {
    std::vector<T*> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, nullptr);
    for (T* entry : old) {
      if (entry != nullptr) place(entry);
    }
  }

  std::vector<T*> slots_;  // size 0 or a power of two
  size_t size_ = 0;
};

}  // namespace rnotify
