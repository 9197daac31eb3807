// GGUF v2/v3 reader (memory-mapped or over a caller's buffer; every count, length and offset is
// checked against the bytes that remain before it is used) and a streaming v3 writer.
#include "local_engine/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_map>

namespace gw::local_engine {
namespace {

constexpr uint32_t k_magic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr size_t k_default_alignment = 32;
constexpr uint32_t k_max_dims = 4;
// Smallest possible encodings, used to reject counts the remaining bytes cannot hold before any
// allocation: a key/value is a key (u64 length + at least 1 byte), a u32 type and a 1-byte value; a
// tensor info is a name (u64 + 1), a u32 n_dims, one i64 dim, a u32 type and a u64 offset.
constexpr uint64_t k_min_kv_bytes = 8 + 1 + 4 + 1;
constexpr uint64_t k_min_tensor_info_bytes = 8 + 1 + 4 + 8 + 4 + 8;
constexpr uint64_t k_max_reserve = 1 << 16;

// Bytes of one element of a fixed-size type; 0 for string/array/unknown.
size_t scalar_size(uint32_t t) {
  switch (static_cast<gguf_value_type>(t)) {
    case gguf_value_type::u8: case gguf_value_type::i8: case gguf_value_type::boolean: return 1;
    case gguf_value_type::u16: case gguf_value_type::i16: return 2;
    case gguf_value_type::u32: case gguf_value_type::i32: case gguf_value_type::f32: return 4;
    case gguf_value_type::u64: case gguf_value_type::i64: case gguf_value_type::f64: return 8;
    case gguf_value_type::string: case gguf_value_type::array: return 0;
  }
  return 0;
}

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(gguf_value_type::f64); }

bool is_integer_type(gguf_value_type t) {
  switch (t) {
    case gguf_value_type::u8: case gguf_value_type::i8: case gguf_value_type::u16:
    case gguf_value_type::i16: case gguf_value_type::u32: case gguf_value_type::i32:
    case gguf_value_type::u64: case gguf_value_type::i64: case gguf_value_type::boolean:
      return true;
    default:
      return false;
  }
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// An integer-typed value at p as int64; nullopt for a u64 above INT64_MAX.
std::optional<int64_t> load_int(gguf_value_type t, const uint8_t* p) {
  switch (t) {
    case gguf_value_type::u8: return load<uint8_t>(p);
    case gguf_value_type::i8: return load<int8_t>(p);
    case gguf_value_type::u16: return load<uint16_t>(p);
    case gguf_value_type::i16: return load<int16_t>(p);
    case gguf_value_type::u32: return load<uint32_t>(p);
    case gguf_value_type::i32: return load<int32_t>(p);
    case gguf_value_type::i64: return load<int64_t>(p);
    case gguf_value_type::boolean: return load<uint8_t>(p) != 0 ? 1 : 0;
    case gguf_value_type::u64: {
      const uint64_t v = load<uint64_t>(p);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(v);
    }
    default: return std::nullopt;
  }
}

std::optional<double> load_float(gguf_value_type t, const uint8_t* p) {
  if (t == gguf_value_type::f32) return load<float>(p);
  if (t == gguf_value_type::f64) return load<double>(p);
  if (is_integer_type(t)) {
    if (t == gguf_value_type::u64) return static_cast<double>(load<uint64_t>(p));
    if (auto v = load_int(t, p)) return static_cast<double>(*v);
  }
  return std::nullopt;
}

// Bounds-checked sequential reads over the file bytes; the first failure records the message.
class cursor {
 public:
  cursor(const uint8_t* data, size_t size, const std::string& path, std::string* error)
      : data_(data), size_(size), path_(path), error_(error) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  bool fail(const std::string& what, size_t at) {
    if (error_) *error_ = path_ + ": " + what + " (at byte " + std::to_string(at) + ")";
    return false;
  }

  bool need(size_t n, const char* what) {
    if (n > remaining()) {
      return fail(std::string("file truncated: ") + what + " needs " + std::to_string(n) +
                      " bytes, " + std::to_string(remaining()) + " left",
                  pos_);
    }
    return true;
  }

  bool u32(uint32_t& v, const char* what) {
    if (!need(4, what)) return false;
    v = load<uint32_t>(data_ + pos_);
    pos_ += 4;
    return true;
  }
  bool u64(uint64_t& v, const char* what) {
    if (!need(8, what)) return false;
    v = load<uint64_t>(data_ + pos_);
    pos_ += 8;
    return true;
  }
  bool i64(int64_t& v, const char* what) {
    if (!need(8, what)) return false;
    v = load<int64_t>(data_ + pos_);
    pos_ += 8;
    return true;
  }
  bool skip(size_t n, const char* what) {
    if (!need(n, what)) return false;
    pos_ += n;
    return true;
  }
  // A u64 length then that many bytes, as a view into the buffer.
  bool str(std::string_view& out, const char* what) {
    const size_t at = pos_;
    uint64_t len = 0;
    if (!u64(len, what)) return false;
    if (len > remaining()) {
      const size_t left = remaining();
      pos_ = at;
      return fail(std::string(what) + " length " + std::to_string(len) + " exceeds the " +
                      std::to_string(left) + " bytes left",
                  at);
    }
    out = std::string_view(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
  std::string* error_;
};

// One metadata entry; `pos` is where its value starts in the buffer (for arrays: the first element;
// for strings: the first character, `count` = length).
struct kv_entry {
  std::string_view key;
  gguf_value_type type = gguf_value_type::u8;
  gguf_value_type elem_type = gguf_value_type::u8;
  uint64_t count = 0;
  size_t pos = 0;
};

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

int64_t gguf_tensor_info::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

struct gguf_file::impl {
  std::string path;
  const uint8_t* data = nullptr;
  size_t size = 0;
  void* mapping = nullptr;  // non-null when open() mapped or read the file
  size_t mapping_size = 0;
  file_memory memory = file_memory::mapped;
  size_t huge_page_bytes = 0;
  uint32_t version = 0;
  size_t alignment = k_default_alignment;
  std::vector<kv_entry> kvs;
  std::unordered_map<std::string_view, size_t> kv_index;
  std::vector<gguf_tensor_info> tensors;
  std::unordered_map<std::string_view, size_t> tensor_index;

  const kv_entry* find(std::string_view key) const {
    auto it = kv_index.find(key);
    return it == kv_index.end() ? nullptr : &kvs[it->second];
  }

  bool parse(std::string* error);
  bool parse_value(cursor& c, kv_entry& e);
};

bool gguf_file::impl::parse_value(cursor& c, kv_entry& e) {
  const size_t at = c.pos();
  uint32_t type = 0;
  if (!c.u32(type, "value type")) return false;
  if (!valid_value_type(type)) {
    return c.fail("key '" + std::string(e.key) + "' has unknown value type " + std::to_string(type),
                  at);
  }
  e.type = static_cast<gguf_value_type>(type);
  if (e.type == gguf_value_type::string) {
    std::string_view s;
    if (!c.str(s, "string value")) return false;
    e.pos = c.pos() - s.size();
    e.count = s.size();
    return true;
  }
  if (e.type != gguf_value_type::array) {
    e.pos = c.pos();
    return c.skip(scalar_size(type), "value");
  }
  const size_t elem_at = c.pos();
  uint32_t elem = 0;
  if (!c.u32(elem, "array element type")) return false;
  if (!valid_value_type(elem)) {
    return c.fail("key '" + std::string(e.key) + "' is an array of unknown type " +
                      std::to_string(elem),
                  elem_at);
  }
  if (static_cast<gguf_value_type>(elem) == gguf_value_type::array) {
    return c.fail("key '" + std::string(e.key) + "' is a nested array (not supported)", elem_at);
  }
  e.elem_type = static_cast<gguf_value_type>(elem);
  const size_t count_at = c.pos();
  if (!c.u64(e.count, "array length")) return false;
  const uint64_t min_elem = e.elem_type == gguf_value_type::string ? 8 : scalar_size(elem);
  if (e.count > c.remaining() / min_elem) {
    return c.fail("key '" + std::string(e.key) + "': array length " + std::to_string(e.count) +
                      " exceeds the bytes left in the file",
                  count_at);
  }
  e.pos = c.pos();
  if (e.elem_type != gguf_value_type::string) {
    return c.skip(static_cast<size_t>(e.count) * min_elem, "array");
  }
  for (uint64_t i = 0; i < e.count; ++i) {
    std::string_view s;
    if (!c.str(s, "array string")) return false;
  }
  return true;
}

bool gguf_file::impl::parse(std::string* error) {
  cursor c(data, size, path, error);
  uint32_t magic = 0;
  if (!c.u32(magic, "magic")) return false;
  if (magic != k_magic) return c.fail("not a GGUF file (bad magic)", 0);
  if (!c.u32(version, "version")) return false;
  if (version != 2 && version != 3) {
    return c.fail("unsupported GGUF version " + std::to_string(version) + " (want 2 or 3)", 4);
  }
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  if (!c.u64(n_tensors, "tensor count")) return false;
  if (!c.u64(n_kv, "metadata count")) return false;
  if (n_kv > c.remaining() / k_min_kv_bytes) {
    return c.fail("metadata count " + std::to_string(n_kv) + " exceeds what the file can hold", 16);
  }
  if (n_tensors > (c.remaining() - n_kv * k_min_kv_bytes) / k_min_tensor_info_bytes) {
    return c.fail("tensor count " + std::to_string(n_tensors) + " exceeds what the file can hold", 8);
  }

  // Reserve only up to a modest bound: beyond it, memory grows with entries actually read.
  kvs.reserve(static_cast<size_t>(std::min<uint64_t>(n_kv, k_max_reserve)));
  kv_index.reserve(static_cast<size_t>(std::min<uint64_t>(n_kv, k_max_reserve)));
  for (uint64_t i = 0; i < n_kv; ++i) {
    const size_t at = c.pos();
    kv_entry e;
    if (!c.str(e.key, "key")) return false;
    if (e.key.empty()) return c.fail("empty metadata key", at);
    if (!parse_value(c, e)) return false;
    if (!kv_index.emplace(e.key, kvs.size()).second) {
      return c.fail("duplicate key '" + std::string(e.key) + "'", at);
    }
    kvs.push_back(e);
  }

  if (const kv_entry* a = find("general.alignment")) {
    std::optional<int64_t> v;
    if (is_integer_type(a->type) && a->type != gguf_value_type::boolean) v = load_int(a->type, data + a->pos);
    if (!v || *v <= 0 || !is_power_of_two(static_cast<uint64_t>(*v)) || *v > (int64_t{1} << 30)) {
      return c.fail("general.alignment must be a power of two integer up to 2^30", a->pos);
    }
    alignment = static_cast<size_t>(*v);
  }

  tensors.reserve(static_cast<size_t>(std::min<uint64_t>(n_tensors, k_max_reserve)));
  tensor_index.reserve(static_cast<size_t>(std::min<uint64_t>(n_tensors, k_max_reserve)));
  std::vector<size_t> info_pos;
  info_pos.reserve(static_cast<size_t>(std::min<uint64_t>(n_tensors, k_max_reserve)));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const size_t at = c.pos();
    info_pos.push_back(at);
    std::string_view name;
    if (!c.str(name, "tensor name")) return false;
    if (name.empty()) return c.fail("empty tensor name", at);
    if (!tensor_index.emplace(name, tensors.size()).second) {
      return c.fail("duplicate tensor '" + std::string(name) + "'", at);
    }
    const std::string where = "tensor '" + std::string(name) + "'";
    const size_t dims_at = c.pos();
    uint32_t n_dims = 0;
    if (!c.u32(n_dims, "tensor n_dims")) return false;
    if (n_dims < 1 || n_dims > k_max_dims) {
      return c.fail(where + " has " + std::to_string(n_dims) + " dimensions (want 1..4)", dims_at);
    }
    gguf_tensor_info t;
    t.name = std::string(name);
    t.ne.resize(n_dims);
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const size_t ne_at = c.pos();
      if (!c.i64(t.ne[d], "tensor dimension")) return false;
      if (t.ne[d] <= 0) {
        return c.fail(where + " has dimension " + std::to_string(d) + " = " + std::to_string(t.ne[d]),
                      ne_at);
      }
      if (__builtin_mul_overflow(n_elements, t.ne[d], &n_elements)) {
        return c.fail(where + " element count overflows", ne_at);
      }
    }
    const size_t type_at = c.pos();
    uint32_t type = 0;
    if (!c.u32(type, "tensor type")) return false;
    if (!kernels::dtype_supported(type) || static_cast<kernels::dtype>(type) == kernels::dtype::Q8_K) {
      return c.fail(where + " has unsupported type " + std::to_string(type), type_at);
    }
    t.type = static_cast<kernels::dtype>(type);
    const int64_t block = kernels::block_elems(t.type);
    if (t.ne[0] % block != 0) {
      return c.fail(where + ": ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of " +
                        std::to_string(block) + " (" + std::string(kernels::dtype_name(t.type)) + ")",
                    dims_at);
    }
    uint64_t row = 0;
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(t.ne[0] / block),
                               static_cast<uint64_t>(kernels::block_bytes(t.type)), &row) ||
        __builtin_mul_overflow(row, static_cast<uint64_t>(n_elements / t.ne[0]), &bytes)) {
      return c.fail(where + " byte size overflows", dims_at);
    }
    t.n_bytes = bytes;
    const size_t offset_at = c.pos();
    if (!c.u64(t.offset, "tensor offset")) return false;
    if (t.offset % alignment != 0) {
      return c.fail(where + " offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                        std::to_string(alignment),
                    offset_at);
    }
    tensors.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment; a file without tensors may end
  // before it.
  const size_t header_end = c.pos();
  const uint64_t data_start = (static_cast<uint64_t>(header_end) + alignment - 1) / alignment * alignment;
  if (n_tensors > 0 && data_start > size) {
    return c.fail("file truncated before the tensor data section", header_end);
  }
  const uint64_t data_size = data_start <= size ? size - data_start : 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    gguf_tensor_info& t = tensors[i];
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      return c.fail("tensor '" + t.name + "' data [" + std::to_string(t.offset) + ", +" +
                        std::to_string(t.n_bytes) + ") lies outside the " + std::to_string(data_size) +
                        "-byte data section (file truncated?)",
                    info_pos[i]);
    }
    t.data = data + data_start + t.offset;
  }
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const gguf_tensor_info& prev = tensors[order[k - 1]];
    const gguf_tensor_info& cur = tensors[order[k]];
    if (prev.offset + prev.n_bytes > cur.offset) {
      return c.fail("tensor '" + cur.name + "' overlaps tensor '" + prev.name + "'", info_pos[order[k]]);
    }
  }
  return true;
}

namespace {

// AnonHugePages of the mapping that starts at `start`, from /proc/self/smaps (0 when unknown).
size_t huge_pages_of(const void* start) {
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return 0;
  char line[512];
  bool in_region = false;
  size_t kb = 0;
  const auto want = reinterpret_cast<uintptr_t>(start);
  while (std::fgets(line, sizeof line, f)) {
    unsigned long lo = 0, hi = 0;
    // A region header: "lo-hi perms offset dev inode [path]".
    if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
      in_region = lo == want;
      continue;
    }
    if (in_region && std::sscanf(line, "AnonHugePages: %zu kB", &kb) == 1) break;
  }
  std::fclose(f);
  return kb * 1024;
}

// Reads the whole file into fresh anonymous memory advised for transparent huge pages, then makes
// it read-only. MAP_FAILED and *error on failure.
void* read_into_huge_pages(int fd, size_t size, size_t* map_size, size_t* huge_bytes, std::string* error) {
  constexpr size_t huge = size_t{2} << 20;
  const size_t rounded = (size + huge - 1) / huge * huge;
  // Over-allocate by one huge page so the start can be aligned to 2 MiB (THP needs aligned ranges).
  void* raw = mmap(nullptr, rounded + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    *error = std::string("cannot allocate memory for the weights: ") + std::strerror(errno);
    return MAP_FAILED;
  }
  auto* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + huge - 1) / huge * huge);
  const size_t head = static_cast<size_t>(base - static_cast<uint8_t*>(raw));
  if (head) munmap(raw, head);
  const size_t tail = huge - head;
  if (tail) munmap(base + rounded, tail);
#ifdef MADV_HUGEPAGE
  madvise(base, rounded, MADV_HUGEPAGE);  // advice only: without THP the copy uses 4 KiB pages
#endif
  size_t done = 0;
  while (done < size) {
    const size_t want = std::min<size_t>(size - done, size_t{64} << 20);
    const ssize_t n = ::pread(fd, base + done, want, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = n < 0 ? "cannot read: " + std::string(std::strerror(errno)) + " (at byte " + std::to_string(done) + ")"
                     : "file shrank while being read (at byte " + std::to_string(done) + ")";
      munmap(base, rounded);
      return MAP_FAILED;
    }
    done += static_cast<size_t>(n);
  }
  mprotect(base, rounded, PROT_READ);
  *map_size = rounded;
  *huge_bytes = std::min(size, huge_pages_of(base));
  return base;
}

}  // namespace

gguf_file::gguf_file() : impl_(std::make_unique<impl>()) {}

gguf_file::~gguf_file() {
  if (impl_ && impl_->mapping) munmap(impl_->mapping, impl_->mapping_size);
}

std::unique_ptr<gguf_file> gguf_file::open(const std::string& path, std::string* error, file_memory memory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (error) *error = path + ": cannot open: " + std::strerror(errno);
    return nullptr;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (error) *error = path + ": not a regular file";
    ::close(fd);
    return nullptr;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    if (error) *error = path + ": file is empty (at byte 0)";
    return nullptr;
  }
  size_t map_size = size;
  size_t huge_bytes = 0;
  std::string map_error;
  void* map = memory == file_memory::huge_pages ? read_into_huge_pages(fd, size, &map_size, &huge_bytes, &map_error)
                                                : mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED && map_error.empty()) map_error = std::string("cannot map: ") + std::strerror(errno);
  ::close(fd);
  if (map == MAP_FAILED) {
    if (error) *error = path + ": " + map_error;
    return nullptr;
  }
  std::unique_ptr<gguf_file> f(new gguf_file());
  f->impl_->path = path;
  f->impl_->mapping = map;
  f->impl_->mapping_size = map_size;
  f->impl_->memory = memory;
  f->impl_->huge_page_bytes = huge_bytes;
  f->impl_->data = static_cast<const uint8_t*>(map);
  f->impl_->size = size;
  if (!f->impl_->parse(error)) return nullptr;
  return f;
}

std::unique_ptr<gguf_file> gguf_file::from_memory(const uint8_t* data, size_t size, std::string* error) {
  std::unique_ptr<gguf_file> f(new gguf_file());
  f->impl_->path = "<memory>";
  f->impl_->data = data;
  f->impl_->size = data ? size : 0;
  if (!f->impl_->parse(error)) return nullptr;
  return f;
}

uint32_t gguf_file::version() const { return impl_->version; }
size_t gguf_file::alignment() const { return impl_->alignment; }
const std::string& gguf_file::path() const { return impl_->path; }
file_memory gguf_file::memory() const { return impl_->memory; }
size_t gguf_file::huge_page_bytes() const { return impl_->huge_page_bytes; }
size_t gguf_file::size_bytes() const { return impl_->size; }

bool gguf_file::has(std::string_view key) const { return impl_->find(key) != nullptr; }

std::vector<std::string_view> gguf_file::keys() const {
  std::vector<std::string_view> out;
  out.reserve(impl_->kvs.size());
  for (const kv_entry& e : impl_->kvs) out.push_back(e.key);
  return out;
}

std::optional<gguf_value_type> gguf_file::type_of(std::string_view key) const {
  const kv_entry* e = impl_->find(key);
  if (!e) return std::nullopt;
  return e->type;
}

std::optional<std::string_view> gguf_file::get_string(std::string_view key) const {
  const kv_entry* e = impl_->find(key);
  if (!e || e->type != gguf_value_type::string) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(impl_->data + e->pos), static_cast<size_t>(e->count));
}

std::optional<int64_t> gguf_file::get_int(std::string_view key) const {
  const kv_entry* e = impl_->find(key);
  if (!e || !is_integer_type(e->type)) return std::nullopt;
  return load_int(e->type, impl_->data + e->pos);
}

std::optional<double> gguf_file::get_float(std::string_view key) const {
  const kv_entry* e = impl_->find(key);
  if (!e) return std::nullopt;
  return load_float(e->type, impl_->data + e->pos);
}

std::optional<bool> gguf_file::get_bool(std::string_view key) const {
  const kv_entry* e = impl_->find(key);
  if (!e || e->type != gguf_value_type::boolean) return std::nullopt;
  return impl_->data[e->pos] != 0;
}

std::optional<gguf_value_type> gguf_file::array_type(std::string_view key) const {
  const kv_entry* e = impl_->find(key);
  if (!e || e->type != gguf_value_type::array) return std::nullopt;
  return e->elem_type;
}

std::optional<size_t> gguf_file::array_size(std::string_view key) const {
  const kv_entry* e = impl_->find(key);
  if (!e || e->type != gguf_value_type::array) return std::nullopt;
  return static_cast<size_t>(e->count);
}

std::optional<std::vector<std::string_view>> gguf_file::get_string_array(std::string_view key) const {
  const kv_entry* e = impl_->find(key);
  if (!e || e->type != gguf_value_type::array || e->elem_type != gguf_value_type::string) {
    return std::nullopt;
  }
  std::vector<std::string_view> out;
  out.reserve(static_cast<size_t>(e->count));
  size_t pos = e->pos;  // validated by parse(): every length fits
  for (uint64_t i = 0; i < e->count; ++i) {
    const size_t len = static_cast<size_t>(load<uint64_t>(impl_->data + pos));
    out.emplace_back(reinterpret_cast<const char*>(impl_->data + pos + 8), len);
    pos += 8 + len;
  }
  return out;
}

std::optional<std::vector<int64_t>> gguf_file::get_int_array(std::string_view key) const {
  const kv_entry* e = impl_->find(key);
  if (!e || e->type != gguf_value_type::array || !is_integer_type(e->elem_type)) return std::nullopt;
  const size_t step = scalar_size(static_cast<uint32_t>(e->elem_type));
  std::vector<int64_t> out(static_cast<size_t>(e->count));
  for (size_t i = 0; i < out.size(); ++i) {
    auto v = load_int(e->elem_type, impl_->data + e->pos + i * step);
    if (!v) return std::nullopt;
    out[i] = *v;
  }
  return out;
}

std::optional<std::vector<float>> gguf_file::get_float_array(std::string_view key) const {
  const kv_entry* e = impl_->find(key);
  if (!e || e->type != gguf_value_type::array) return std::nullopt;
  const gguf_value_type t = e->elem_type;
  if (t != gguf_value_type::f32 && t != gguf_value_type::f64 && !is_integer_type(t)) return std::nullopt;
  const size_t step = scalar_size(static_cast<uint32_t>(t));
  std::vector<float> out(static_cast<size_t>(e->count));
  if (t == gguf_value_type::f32) {
    if (!out.empty()) std::memcpy(out.data(), impl_->data + e->pos, out.size() * sizeof(float));
    return out;
  }
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<float>(*load_float(t, impl_->data + e->pos + i * step));
  }
  return out;
}

const std::vector<gguf_tensor_info>& gguf_file::tensors() const { return impl_->tensors; }

const gguf_tensor_info* gguf_file::find_tensor(std::string_view name) const {
  auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

// ---- writer ----

namespace {

void put_bytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}
template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  put_bytes(out, &v, sizeof(T));
}
void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  put_bytes(out, s.data(), s.size());
}

}  // namespace

struct gguf_writer::impl {
  // A metadata entry: its value already encoded as it appears after the key (type id, then value).
  struct kv {
    std::string key;
    std::vector<uint8_t> encoded;
  };
  struct tensor {
    std::string name;
    kernels::dtype type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> owned;
    const uint8_t* data;  // owned.data() or the caller's buffer; null when produced during write()
    size_t n_bytes;       // of `data` (for produced tensors: what the shape needs, set by write())
    tensor_producer produce;
  };
  std::vector<kv> kvs;
  std::unordered_map<std::string, size_t> kv_index;
  std::vector<tensor> tensors;
  size_t alignment = k_default_alignment;
  std::string invalid;  // the first misuse of a setter, reported by write()

  // Returns the (empty) encoding buffer for `key`: a new entry, or the existing one, reset.
  std::vector<uint8_t>& slot(std::string key, gguf_value_type type) {
    auto it = kv_index.find(key);
    std::vector<uint8_t>* out;
    if (it != kv_index.end()) {
      out = &kvs[it->second].encoded;
      out->clear();
    } else {
      kv_index.emplace(key, kvs.size());
      kvs.push_back({std::move(key), {}});
      out = &kvs.back().encoded;
    }
    put<uint32_t>(*out, static_cast<uint32_t>(type));
    return *out;
  }
};

gguf_writer::gguf_writer() : impl_(std::make_unique<impl>()) {}
gguf_writer::~gguf_writer() = default;

void gguf_writer::set_string(std::string key, std::string value) {
  put_string(impl_->slot(std::move(key), gguf_value_type::string), value);
}
void gguf_writer::set_bool(std::string key, bool v) {
  put<uint8_t>(impl_->slot(std::move(key), gguf_value_type::boolean), v ? 1 : 0);
}
void gguf_writer::set_u8(std::string key, uint8_t v) { put(impl_->slot(std::move(key), gguf_value_type::u8), v); }
void gguf_writer::set_i8(std::string key, int8_t v) { put(impl_->slot(std::move(key), gguf_value_type::i8), v); }
void gguf_writer::set_u16(std::string key, uint16_t v) {
  put(impl_->slot(std::move(key), gguf_value_type::u16), v);
}
void gguf_writer::set_i16(std::string key, int16_t v) {
  put(impl_->slot(std::move(key), gguf_value_type::i16), v);
}
void gguf_writer::set_u32(std::string key, uint32_t v) {
  if (key == "general.alignment") impl_->alignment = v;
  put(impl_->slot(std::move(key), gguf_value_type::u32), v);
}
void gguf_writer::set_i32(std::string key, int32_t v) {
  put(impl_->slot(std::move(key), gguf_value_type::i32), v);
}
void gguf_writer::set_u64(std::string key, uint64_t v) {
  put(impl_->slot(std::move(key), gguf_value_type::u64), v);
}
void gguf_writer::set_i64(std::string key, int64_t v) {
  put(impl_->slot(std::move(key), gguf_value_type::i64), v);
}
void gguf_writer::set_f32(std::string key, float v) {
  put(impl_->slot(std::move(key), gguf_value_type::f32), v);
}
void gguf_writer::set_f64(std::string key, double v) {
  put(impl_->slot(std::move(key), gguf_value_type::f64), v);
}

void gguf_writer::set_string_array(std::string key, std::vector<std::string> values) {
  std::vector<uint8_t>& out = impl_->slot(std::move(key), gguf_value_type::array);
  put<uint32_t>(out, static_cast<uint32_t>(gguf_value_type::string));
  put<uint64_t>(out, values.size());
  for (const std::string& s : values) put_string(out, s);
}

void gguf_writer::set_i32_array(std::string key, std::vector<int32_t> values) {
  std::vector<uint8_t>& out = impl_->slot(std::move(key), gguf_value_type::array);
  put<uint32_t>(out, static_cast<uint32_t>(gguf_value_type::i32));
  put<uint64_t>(out, values.size());
  put_bytes(out, values.data(), values.size() * sizeof(int32_t));
}

void gguf_writer::set_f32_array(std::string key, std::vector<float> values) {
  std::vector<uint8_t>& out = impl_->slot(std::move(key), gguf_value_type::array);
  put<uint32_t>(out, static_cast<uint32_t>(gguf_value_type::f32));
  put<uint64_t>(out, values.size());
  put_bytes(out, values.data(), values.size() * sizeof(float));
}

void gguf_writer::set_array(std::string key, gguf_value_type elem_type, const void* elements, size_t count) {
  const size_t elem_size = scalar_size(static_cast<uint32_t>(elem_type));
  if (elem_size == 0 && impl_->invalid.empty()) {
    impl_->invalid = "set_array('" + key + "'): element type " + std::to_string(static_cast<uint32_t>(elem_type)) +
                     " is not a fixed-size type";
  }
  std::vector<uint8_t>& out = impl_->slot(std::move(key), gguf_value_type::array);
  put<uint32_t>(out, static_cast<uint32_t>(elem_type));
  put<uint64_t>(out, count);
  put_bytes(out, elements, count * elem_size);
}

void gguf_writer::add_tensor(std::string name, kernels::dtype type, std::vector<int64_t> ne,
                             std::vector<uint8_t> data) {
  const size_t n = data.size();
  impl_->tensors.push_back({std::move(name), type, std::move(ne), std::move(data), nullptr, n, {}});
  impl_->tensors.back().data = impl_->tensors.back().owned.data();
}

void gguf_writer::add_tensor_ref(std::string name, kernels::dtype type, std::vector<int64_t> ne,
                                 const void* data, size_t n_bytes) {
  impl_->tensors.push_back(
      {std::move(name), type, std::move(ne), {}, static_cast<const uint8_t*>(data), n_bytes, {}});
}

void gguf_writer::add_tensor_produced(std::string name, kernels::dtype type, std::vector<int64_t> ne,
                                      tensor_producer produce) {
  impl_->tensors.push_back({std::move(name), type, std::move(ne), {}, nullptr, 0, std::move(produce)});
}

bool gguf_writer::write(const std::string& path, std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = path + ": " + what;
    return false;
  };
  if (!impl_->invalid.empty()) return fail(impl_->invalid);
  const size_t align = impl_->alignment;
  if (!is_power_of_two(align)) return fail("general.alignment " + std::to_string(align) + " is not a power of two");

  // Validate the tensors and lay out the data section.
  std::vector<uint64_t> offsets(impl_->tensors.size());
  std::vector<uint64_t> sizes(impl_->tensors.size());
  uint64_t data_size = 0;
  {
    std::unordered_map<std::string_view, size_t> names;
    for (size_t i = 0; i < impl_->tensors.size(); ++i) {
      const impl::tensor& t = impl_->tensors[i];
      if (t.name.empty() || !names.emplace(t.name, i).second) {
        return fail("tensor name '" + t.name + "' is empty or used twice");
      }
      if (t.ne.empty() || t.ne.size() > k_max_dims) return fail("tensor '" + t.name + "' needs 1..4 dimensions");
      int64_t n = 1;
      for (int64_t d : t.ne) {
        if (d <= 0 || __builtin_mul_overflow(n, d, &n)) return fail("tensor '" + t.name + "' has a bad shape");
      }
      if (!kernels::dtype_supported(static_cast<uint32_t>(t.type)) || t.ne[0] % kernels::block_elems(t.type) != 0) {
        return fail("tensor '" + t.name + "': ne[0] does not fit type " + std::string(kernels::dtype_name(t.type)));
      }
      uint64_t expect = 0;
      if (__builtin_mul_overflow(static_cast<uint64_t>(kernels::row_bytes(t.type, t.ne[0])),
                                 static_cast<uint64_t>(n / t.ne[0]), &expect)) {
        return fail("tensor '" + t.name + "' has a bad shape");
      }
      if (!t.produce && expect != t.n_bytes) {
        return fail("tensor '" + t.name + "' has " + std::to_string(t.n_bytes) + " bytes of data, its shape needs " +
                    std::to_string(expect));
      }
      sizes[i] = expect;
      offsets[i] = data_size;
      data_size += (expect + align - 1) / align * align;
    }
  }

  // Header, metadata and tensor infos (small), then the tensor data streamed from its buffers.
  std::vector<uint8_t> head;
  put<uint32_t>(head, k_magic);
  put<uint32_t>(head, 3);
  put<uint64_t>(head, impl_->tensors.size());
  put<uint64_t>(head, impl_->kvs.size());
  for (const impl::kv& e : impl_->kvs) {
    put_string(head, e.key);
    put_bytes(head, e.encoded.data(), e.encoded.size());
  }
  for (size_t i = 0; i < impl_->tensors.size(); ++i) {
    const impl::tensor& t = impl_->tensors[i];
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put<int64_t>(head, d);
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offsets[i]);
  }
  head.resize((head.size() + align - 1) / align * align, 0);

  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return fail("cannot create " + tmp + ": " + std::strerror(errno));
  std::vector<char> buffer(1 << 20);
  std::setvbuf(f, buffer.data(), _IOFBF, buffer.size());
  const std::vector<uint8_t> zeros(align, 0);
  std::vector<uint8_t> produced;  // reused by every produced tensor
  std::string produce_error;
  errno = 0;
  bool ok = std::fwrite(head.data(), 1, head.size(), f) == head.size();
  for (size_t i = 0; ok && i < impl_->tensors.size(); ++i) {
    const impl::tensor& t = impl_->tensors[i];
    const size_t n = static_cast<size_t>(sizes[i]);
    const uint8_t* bytes = t.data;
    if (t.produce) {
      produced.resize(n);
      if (!t.produce(produced.data(), &produce_error)) {
        produce_error = "tensor '" + t.name + "': " + produce_error;
        ok = false;
        break;
      }
      bytes = produced.data();
    }
    const size_t pad = (n + align - 1) / align * align - n;
    ok = std::fwrite(bytes, 1, n, f) == n && (pad == 0 || std::fwrite(zeros.data(), 1, pad, f) == pad);
  }
  const int write_errno = errno;
  ok = (std::fflush(f) == 0) && ok;
  ok = ok && fsync(fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    if (!produce_error.empty()) return fail(produce_error);
    return fail("write failed: " + std::string(std::strerror(write_errno ? write_errno : errno)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return fail("cannot rename " + tmp + ": " + std::strerror(e));
  }
  return true;
}

void set_llama_vocabulary(gguf_writer& w, std::vector<std::string> tokens, std::vector<float> scores,
                          std::vector<int32_t> types) {
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", std::move(tokens));
  w.set_f32_array("tokenizer.ggml.scores", std::move(scores));
  w.set_i32_array("tokenizer.ggml.token_type", std::move(types));
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
}

}  // namespace gw::local_engine
