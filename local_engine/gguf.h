#pragma once
// GGUF files (v2/v3): a memory-mapped reader that validates every offset, size, count and string
// length before use (a truncated or malicious file gives an error naming the file and byte offset,
// never a crash), and a writer (used by convert, quantize and generate-model).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/dtype.h"

namespace gw::local_engine {

enum class gguf_value_type : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};

struct gguf_tensor_info {
  std::string name;
  kernels::dtype type = kernels::dtype::F32;
  std::vector<int64_t> ne;       // ggml order: ne[0] is the contiguous (innermost) dimension
  uint64_t offset = 0;           // from the start of the data section
  const uint8_t* data = nullptr; // into the mapping; valid while the gguf_file lives
  uint64_t n_bytes = 0;
  int64_t n_elements() const;
};

// Where open() keeps the file's bytes.
enum class file_memory {
  // mmap of the file: no copy, shared with the page cache (tools, tests, conversions).
  mapped,
  // Read into anonymous memory advised for transparent huge pages (2 MiB pages). Generation
  // streams every weight byte once per token; with 4 KiB pages that is one TLB miss per 4 KiB
  // (480,000 per token for a 1.9 GB model) and the hardware prefetchers restart at every page:
  // qwen2.5-0.5b F32 decode went from 15.4-16.0 to 23.7-23.9 tok/s on the 2-core dev machine
  // (bench/RESULTS.md). Costs one read of the file at
  // load and memory that is not shared with other processes. Where the kernel's transparent huge
  // pages are off, the copy still works on 4 KiB pages (huge_page_bytes() then says 0).
  huge_pages,
};

class gguf_file {
 public:
  // Maps (or reads, see file_memory) and validates `path`. On failure: nullptr,
  // *error = "<path>: <what> (at byte N)".
  static std::unique_ptr<gguf_file> open(const std::string& path, std::string* error,
                                         file_memory memory = file_memory::mapped);
  // The same over a caller-owned buffer that must outlive the result (tests, fuzzing).
  static std::unique_ptr<gguf_file> from_memory(const uint8_t* data, size_t size, std::string* error);
  ~gguf_file();
  gguf_file(const gguf_file&) = delete;
  gguf_file& operator=(const gguf_file&) = delete;

  uint32_t version() const;
  size_t alignment() const;
  const std::string& path() const;  // "<memory>" for from_memory
  file_memory memory() const;
  // Bytes of the file held in huge pages, as the kernel reports it at open (0 when mapped).
  size_t huge_page_bytes() const;
  size_t size_bytes() const;

  // Metadata. Getters return nullopt when the key is missing or of another kind. get_int accepts
  // every integer type (and bool), get_float f32/f64 and integers.
  bool has(std::string_view key) const;
  std::vector<std::string_view> keys() const;
  std::optional<gguf_value_type> type_of(std::string_view key) const;
  std::optional<std::string_view> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  // Arrays: element type and length, and typed views/copies (nullopt if not an array of that kind).
  std::optional<gguf_value_type> array_type(std::string_view key) const;
  std::optional<size_t> array_size(std::string_view key) const;
  std::optional<std::vector<std::string_view>> get_string_array(std::string_view key) const;
  std::optional<std::vector<int64_t>> get_int_array(std::string_view key) const;
  std::optional<std::vector<float>> get_float_array(std::string_view key) const;

  const std::vector<gguf_tensor_info>& tensors() const;
  const gguf_tensor_info* find_tensor(std::string_view name) const;

 private:
  gguf_file();
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Builds a GGUF v3 file. Keys keep insertion order; tensors are written aligned (general.alignment,
// default 32) in insertion order.
class gguf_writer {
 public:
  gguf_writer();
  ~gguf_writer();
  // Setting a key again replaces its value and keeps its original position.
  void set_string(std::string key, std::string value);
  void set_bool(std::string key, bool v);
  void set_u8(std::string key, uint8_t v);
  void set_i8(std::string key, int8_t v);
  void set_u16(std::string key, uint16_t v);
  void set_i16(std::string key, int16_t v);
  void set_u32(std::string key, uint32_t v);  // "general.alignment" also sets the data alignment
  void set_i32(std::string key, int32_t v);
  void set_u64(std::string key, uint64_t v);
  void set_i64(std::string key, int64_t v);
  void set_f32(std::string key, float v);
  void set_f64(std::string key, double v);
  void set_string_array(std::string key, std::vector<std::string> values);
  void set_i32_array(std::string key, std::vector<int32_t> values);
  void set_f32_array(std::string key, std::vector<float> values);
  // An array of any fixed-size type: `count` elements in little-endian layout (a string or array
  // element type makes write() fail).
  void set_array(std::string key, gguf_value_type elem_type, const void* elements, size_t count);
  // `data` holds the tensor in `type`'s layout (row_bytes(type, ne[0]) * rows bytes).
  void add_tensor(std::string name, kernels::dtype type, std::vector<int64_t> ne,
                  std::vector<uint8_t> data);
  // The same without a copy: `data` (n_bytes) is the caller's and must stay valid until write()
  // returns (e.g. a mapped source file).
  void add_tensor_ref(std::string name, kernels::dtype type, std::vector<int64_t> ne,
                      const void* data, size_t n_bytes);
  // The same, produced while write() runs: `produce` fills the tensor's bytes (row_bytes(type,
  // ne[0]) * rows, in `type`'s layout) into `out` when the writer reaches it, so that a converter
  // or quantizer can stream a model larger than memory. A false return (with *error) aborts write().
  using tensor_producer = std::function<bool(uint8_t* out, std::string* error)>;
  void add_tensor_produced(std::string name, kernels::dtype type, std::vector<int64_t> ne,
                           tensor_producer produce);
  // Writes the file (to "<path>.tmp", then renamed), streaming the tensor data from the buffers
  // given above. Checks each tensor's shape, type and byte count and that names are unique.
  // false and *error on failure.
  bool write(const std::string& path, std::string* error) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Sets a SentencePiece ("llama") vocabulary with Llama-2's special tokens: unknown 0, BOS 1, EOS 2,
// BOS added and EOS not (the llama2.c conversion and the generated test models share it).
void set_llama_vocabulary(gguf_writer& w, std::vector<std::string> tokens, std::vector<float> scores,
                          std::vector<int32_t> types);

}  // namespace gw::local_engine
