#pragma once
// The GGUF fuzz entry point, shared by the libFuzzer target (gguf_fuzz.cpp, clang only) and the
// gtest that replays a corpus plus random mutations under g++ (tests/local_engine/gguf_test.cpp):
// parse the bytes, and when they parse, touch every value and every tensor's first and last byte
// so that an out-of-bounds view shows up under AddressSanitizer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "local_engine/gguf.h"

namespace gw::local_engine::fuzz {

// Returns whether the bytes parsed; when they do not, *error holds the reader's message.
inline bool gguf_fuzz_one(const uint8_t* data, size_t size, std::string* error) {
  auto f = gguf_file::from_memory(data, size, error);
  if (!f) return false;
  uint64_t sum = f->version() + f->alignment();
  for (std::string_view key : f->keys()) {
    sum += key.size() + (f->has(key) ? 1 : 0);
    if (auto s = f->get_string(key)) {
      for (char c : *s) sum += static_cast<unsigned char>(c);
    }
    if (auto v = f->get_int(key)) sum += static_cast<uint64_t>(*v);
    if (auto v = f->get_float(key)) sum += static_cast<uint64_t>(*v == *v ? 1 : 2);
    if (auto v = f->get_bool(key)) sum += *v ? 1 : 0;
    if (auto n = f->array_size(key)) sum += *n;
    if (auto a = f->get_string_array(key)) {
      for (std::string_view s : *a) sum += s.empty() ? 0 : static_cast<unsigned char>(s.back()) + s.size();
    }
    if (auto a = f->get_int_array(key)) {
      for (int64_t v : *a) sum += static_cast<uint64_t>(v);
    }
    if (auto a = f->get_float_array(key)) sum += a->size();
  }
  for (const gguf_tensor_info& t : f->tensors()) {
    sum += t.data[0] + t.data[t.n_bytes - 1] + static_cast<uint64_t>(t.n_elements());
    if (f->find_tensor(t.name) != &t) __builtin_trap();  // lookup must find the same entry
  }
  volatile uint64_t sink = sum;  // keeps the reads observable
  (void)sink;
  return true;
}

}  // namespace gw::local_engine::fuzz
