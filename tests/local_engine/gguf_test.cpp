// GGUF reader/writer: write->read round trips of every value and tensor type, the shared reference
// files, truncation at every byte, hand-made corrupt files (each error names the right byte), and a
// deterministic replay of the fuzz entry point over random mutations.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "kernels/dtype.h"
#include "local_engine/fuzz/gguf_fuzz.h"
#include "local_engine/gguf.h"
#include "tests/support/test_env.h"

namespace gw::local_engine {
namespace {

namespace fs = std::filesystem;
using kernels::dtype;

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

// Raw GGUF bytes, written field by field, so that tests can build files the writer never would.
struct raw_gguf {
  std::vector<uint8_t> b;

  template <typename T>
  raw_gguf& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  raw_gguf& str(std::string_view s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  raw_gguf& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return put<uint32_t>(0x46554747).put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
  }
  raw_gguf& kv_u32(std::string_view key, uint32_t v) { return str(key).put<uint32_t>(4).put<uint32_t>(v); }
  raw_gguf& kv_string(std::string_view key, std::string_view v) { return str(key).put<uint32_t>(8).str(v); }
  raw_gguf& tensor(std::string_view name, std::vector<int64_t> ne, dtype t, uint64_t offset) {
    str(name).put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (int64_t d : ne) put<int64_t>(d);
    return put<uint32_t>(static_cast<uint32_t>(t)).put<uint64_t>(offset);
  }
  raw_gguf& pad(size_t align = 32) {
    b.resize((b.size() + align - 1) / align * align, 0);
    return *this;
  }
  raw_gguf& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
  size_t size() const { return b.size(); }
};

// Parses `bytes`; expects failure and returns the message.
std::string parse_error(const std::vector<uint8_t>& bytes) {
  std::string error;
  auto f = gguf_file::from_memory(bytes.data(), bytes.size(), &error);
  EXPECT_EQ(f, nullptr) << "parsed unexpectedly";
  EXPECT_FALSE(error.empty());
  return error;
}

std::string at_byte(size_t n) { return "(at byte " + std::to_string(n) + ")"; }

// A small file with keys of several kinds and two tensors whose data ends exactly at the end of
// the file (no trailing padding), so that every proper prefix is invalid.
std::vector<uint8_t> small_file(const fs::path& dir) {
  gguf_writer w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xe2\x96\x81the"});
  w.set_f32_array("tokenizer.ggml.scores", {0.f, 0.f, 0.f, -1.5f});
  w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1});
  w.add_tensor("a", dtype::F16, {16, 3}, random_bytes(96, 1));
  w.add_tensor("b", dtype::Q8_0, {32, 2}, random_bytes(68, 2));
  w.add_tensor("c", dtype::F32, {8}, random_bytes(32, 3));
  std::string error;
  const fs::path p = dir / "small.gguf";
  EXPECT_TRUE(w.write(p.string(), &error)) << error;
  return read_bytes(p);
}

TEST(GgufTest, RoundTripsEveryValueTypeAndTensorType) {
  gw::test::temp_dir dir("gguf");
  gguf_writer w;
  w.set_u8("v.u8", 200);
  w.set_i8("v.i8", -100);
  w.set_u16("v.u16", 60000);
  w.set_i16("v.i16", -30000);
  w.set_u32("v.u32", 4000000000u);
  w.set_i32("v.i32", -2000000000);
  w.set_f32("v.f32", 0.25f);
  w.set_bool("v.bool", true);
  w.set_string("v.string", "h\xc3\xa9llo");
  w.set_u64("v.u64", 1ull << 40);
  w.set_i64("v.i64", -(1ll << 40));
  w.set_f64("v.f64", -1e300);
  w.set_string_array("a.string", {"", "x", "\xe2\x96\x81y"});
  w.set_i32_array("a.i32", {-1, 2, 3});
  w.set_f32_array("a.f32", {1.5f, -2.f});
  const uint16_t u16s[] = {1, 65535};
  w.set_array("a.u16", gguf_value_type::u16, u16s, 2);
  const double f64s[] = {0.5, -0.25, 1e-10};
  w.set_array("a.f64", gguf_value_type::f64, f64s, 3);
  const uint8_t bools[] = {1, 0};
  w.set_array("a.bool", gguf_value_type::boolean, bools, 2);
  w.set_u32("v.u32", 7);  // replaced, keeps its place

  struct spec { std::string name; dtype type; std::vector<int64_t> ne; };
  const std::vector<spec> specs = {
      {"t.f32", dtype::F32, {5, 3}},      {"t.f16", dtype::F16, {7, 2, 2}}, {"t.bf16", dtype::BF16, {3}},
      {"t.q4_0", dtype::Q4_0, {64, 3}},   {"t.q8_0", dtype::Q8_0, {32, 1, 1, 2}},
      {"t.q4_k", dtype::Q4_K, {256, 2}},  {"t.q6_k", dtype::Q6_K, {512, 1}},
  };
  std::vector<std::vector<uint8_t>> payloads;
  for (size_t i = 0; i < specs.size(); ++i) {
    int64_t rows = 1;
    for (size_t d = 1; d < specs[i].ne.size(); ++d) rows *= specs[i].ne[d];
    payloads.push_back(random_bytes(kernels::row_bytes(specs[i].type, specs[i].ne[0]) * rows,
                                    static_cast<uint32_t>(10 + i)));
    if (i % 2 == 0) {
      w.add_tensor(specs[i].name, specs[i].type, specs[i].ne, payloads.back());
    } else {
      w.add_tensor_ref(specs[i].name, specs[i].type, specs[i].ne, payloads.back().data(), payloads.back().size());
    }
  }
  const fs::path path = dir.path / "all.gguf";
  std::string error;
  ASSERT_TRUE(w.write(path.string(), &error)) << error;
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));

  auto f = gguf_file::open(path.string(), &error);
  ASSERT_NE(f, nullptr) << error;
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->path(), path.string());
  const std::vector<std::string_view> want_keys = {
      "v.u8", "v.i8", "v.u16", "v.i16", "v.u32", "v.i32", "v.f32", "v.bool", "v.string", "v.u64",
      "v.i64", "v.f64", "a.string", "a.i32", "a.f32", "a.u16", "a.f64", "a.bool"};
  EXPECT_EQ(f->keys(), want_keys);

  EXPECT_EQ(f->type_of("v.u8"), gguf_value_type::u8);
  EXPECT_EQ(f->get_int("v.u8"), 200);
  EXPECT_EQ(f->type_of("v.i8"), gguf_value_type::i8);
  EXPECT_EQ(f->get_int("v.i8"), -100);
  EXPECT_EQ(f->get_int("v.u16"), 60000);
  EXPECT_EQ(f->get_int("v.i16"), -30000);
  EXPECT_EQ(f->type_of("v.u32"), gguf_value_type::u32);
  EXPECT_EQ(f->get_int("v.u32"), 7);
  EXPECT_EQ(f->get_int("v.i32"), -2000000000);
  EXPECT_EQ(f->get_float("v.f32"), 0.25);
  EXPECT_EQ(f->get_int("v.f32"), std::nullopt);
  EXPECT_EQ(f->get_bool("v.bool"), true);
  EXPECT_EQ(f->get_int("v.bool"), 1);
  EXPECT_EQ(f->get_string("v.string"), "h\xc3\xa9llo");
  EXPECT_EQ(f->get_int("v.string"), std::nullopt);
  EXPECT_EQ(f->get_int("v.u64"), int64_t{1} << 40);
  EXPECT_EQ(f->get_int("v.i64"), -(int64_t{1} << 40));
  EXPECT_EQ(f->get_float("v.f64"), -1e300);
  EXPECT_EQ(f->get_float("v.i32"), -2000000000.0);
  EXPECT_EQ(f->get_string("v.bool"), std::nullopt);
  EXPECT_FALSE(f->has("missing"));
  EXPECT_EQ(f->get_int("missing"), std::nullopt);

  EXPECT_EQ(f->type_of("a.string"), gguf_value_type::array);
  EXPECT_EQ(f->array_type("a.string"), gguf_value_type::string);
  EXPECT_EQ(f->array_size("a.string"), 3u);
  const std::vector<std::string_view> strs = {"", "x", "\xe2\x96\x81y"};
  EXPECT_EQ(f->get_string_array("a.string"), strs);
  EXPECT_EQ(f->get_int_array("a.string"), std::nullopt);
  EXPECT_EQ(f->get_int_array("a.i32"), (std::vector<int64_t>{-1, 2, 3}));
  EXPECT_EQ(f->get_float_array("a.f32"), (std::vector<float>{1.5f, -2.f}));
  EXPECT_EQ(f->get_int_array("a.f32"), std::nullopt);
  EXPECT_EQ(f->get_int_array("a.u16"), (std::vector<int64_t>{1, 65535}));
  EXPECT_EQ(f->get_float_array("a.f64"), (std::vector<float>{0.5f, -0.25f, 1e-10f}));
  EXPECT_EQ(f->get_int_array("a.bool"), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(f->array_size("v.u8"), std::nullopt);

  ASSERT_EQ(f->tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const gguf_tensor_info& t = f->tensors()[i];
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.type, specs[i].type);
    EXPECT_EQ(t.ne, specs[i].ne);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 32, 0u) << t.name;
    ASSERT_EQ(t.n_bytes, payloads[i].size());
    EXPECT_EQ(std::memcmp(t.data, payloads[i].data(), t.n_bytes), 0) << t.name;
    EXPECT_EQ(f->find_tensor(specs[i].name), &t);
  }
  EXPECT_EQ(f->find_tensor("t.f32")->n_elements(), 15);
  EXPECT_EQ(f->find_tensor("nope"), nullptr);
}

// Weights read into huge pages (how the engine serves) are the same bytes as the mapped file:
// every key and tensor, 32-byte aligned data; a truncated file is the same error; and where the
// kernel's transparent huge pages are on, a file of several MiB really sits in huge pages.
TEST(GgufTest, HugePageCopyEqualsTheMappedFile) {
  gw::test::temp_dir dir("gguf");
  gguf_writer w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 1);
  const std::vector<uint8_t> big = random_bytes(size_t{6} << 20, 7);  // 6 MiB of F32
  w.add_tensor("big", dtype::F32, {static_cast<int64_t>(big.size() / 4 / 1024), 1024}, big);
  w.add_tensor("small", dtype::Q8_0, {32, 3}, random_bytes(102, 8));
  const fs::path path = dir.path / "big.gguf";
  std::string error;
  ASSERT_TRUE(w.write(path.string(), &error)) << error;

  auto mapped = gguf_file::open(path.string(), &error);
  ASSERT_NE(mapped, nullptr) << error;
  auto copied = gguf_file::open(path.string(), &error, file_memory::huge_pages);
  ASSERT_NE(copied, nullptr) << error;
  EXPECT_EQ(mapped->memory(), file_memory::mapped);
  EXPECT_EQ(copied->memory(), file_memory::huge_pages);
  EXPECT_EQ(mapped->huge_page_bytes(), 0u);
  EXPECT_EQ(copied->size_bytes(), fs::file_size(path));
  EXPECT_LE(copied->huge_page_bytes(), copied->size_bytes());
  EXPECT_EQ(copied->keys(), mapped->keys());
  EXPECT_EQ(copied->get_int("llama.block_count"), 1);
  ASSERT_EQ(copied->tensors().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& a = mapped->tensors()[i];
    const auto& b = copied->tensors()[i];
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(b.ne, a.ne);
    ASSERT_EQ(b.n_bytes, a.n_bytes);
    EXPECT_NE(b.data, a.data);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 32, 0u);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.n_bytes), 0) << a.name;
  }
  EXPECT_EQ(std::memcmp(copied->find_tensor("big")->data, big.data(), big.size()), 0);

  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
  if (!modes.empty() && modes.find("[never]") == std::string::npos) {
    EXPECT_GE(copied->huge_page_bytes(), size_t{2} << 20) << "THP modes: " << modes;
  }

  // A truncated copy of the file: the same validation error either way, never a crash.
  const std::vector<uint8_t> bytes = read_bytes(path);
  const fs::path cut = dir.path / "cut.gguf";
  {
    std::ofstream o(cut, std::ios::binary);
    o.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size() - 100));
  }
  std::string e1, e2;
  EXPECT_EQ(gguf_file::open(cut.string(), &e1), nullptr);
  EXPECT_EQ(gguf_file::open(cut.string(), &e2, file_memory::huge_pages), nullptr);
  EXPECT_FALSE(e1.empty());
  EXPECT_EQ(e1, e2);
  EXPECT_EQ(gguf_file::open((dir.path / "missing.gguf").string(), &e2, file_memory::huge_pages), nullptr);
  EXPECT_NE(e2.find("missing.gguf: cannot open"), std::string::npos) << e2;
}

TEST(GgufTest, WriterHonoursAlignmentAndRejectsBadTensors) {
  gw::test::temp_dir dir("gguf");
  std::string error;
  {
    gguf_writer w;
    w.set_u32("general.alignment", 64);
    w.add_tensor("x", dtype::F32, {3}, random_bytes(12, 1));
    w.add_tensor("y", dtype::F32, {5}, random_bytes(20, 2));
    const std::string p = (dir.path / "a64.gguf").string();
    ASSERT_TRUE(w.write(p, &error)) << error;
    auto f = gguf_file::open(p, &error);
    ASSERT_NE(f, nullptr) << error;
    EXPECT_EQ(f->alignment(), 64u);
    EXPECT_EQ(f->find_tensor("y")->offset, 64u);
  }
  {
    gguf_writer w;
    w.add_tensor("x", dtype::F32, {4}, random_bytes(12, 1));  // 16 bytes needed
    EXPECT_FALSE(w.write((dir.path / "bad1.gguf").string(), &error));
    EXPECT_NE(error.find("tensor 'x' has 12 bytes of data, its shape needs 16"), std::string::npos) << error;
  }
  {
    gguf_writer w;
    w.add_tensor("x", dtype::F32, {1}, random_bytes(4, 1));
    w.add_tensor("x", dtype::F32, {1}, random_bytes(4, 1));
    EXPECT_FALSE(w.write((dir.path / "bad2.gguf").string(), &error));
    EXPECT_NE(error.find("used twice"), std::string::npos) << error;
  }
  {
    gguf_writer w;
    w.add_tensor("q", dtype::Q4_0, {16}, random_bytes(9, 1));
    EXPECT_FALSE(w.write((dir.path / "bad3.gguf").string(), &error));
    EXPECT_NE(error.find("does not fit type Q4_0"), std::string::npos) << error;
  }
  EXPECT_FALSE(fs::exists(dir.path / "bad1.gguf"));
  EXPECT_FALSE(fs::exists(dir.path / "bad1.gguf.tmp"));
  {
    gguf_writer w;
    w.set_array("nested", gguf_value_type::array, nullptr, 0);
    EXPECT_FALSE(w.write((dir.path / "bad4.gguf").string(), &error));
    EXPECT_NE(error.find("set_array('nested'): element type 9 is not a fixed-size type"), std::string::npos) << error;
  }
  gguf_writer w;
  EXPECT_FALSE(w.write((dir.path / "no-such-dir" / "x.gguf").string(), &error));
  EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
}

TEST(GgufTest, WriterStreamsProducedTensors) {
  gw::test::temp_dir dir("gguf");
  const std::vector<uint8_t> q = random_bytes(2 * 34, 4);
  std::vector<std::string> calls;
  gguf_writer w;
  w.add_tensor("first", dtype::F32, {3}, random_bytes(12, 1));
  w.add_tensor_produced("q", dtype::Q8_0, {32, 2}, [&](uint8_t* out, std::string*) {
    calls.push_back("q");
    std::memcpy(out, q.data(), q.size());
    return true;
  });
  w.add_tensor_produced("h", dtype::F16, {5}, [&](uint8_t* out, std::string*) {
    calls.push_back("h");
    for (int i = 0; i < 10; ++i) out[i] = static_cast<uint8_t>(i);
    return true;
  });
  std::string error;
  const std::string path = (dir.path / "produced.gguf").string();
  ASSERT_TRUE(w.write(path, &error)) << error;
  EXPECT_EQ(calls, (std::vector<std::string>{"q", "h"}));
  auto f = gguf_file::open(path, &error);
  ASSERT_NE(f, nullptr) << error;
  ASSERT_EQ(f->find_tensor("q")->n_bytes, q.size());
  EXPECT_EQ(std::memcmp(f->find_tensor("q")->data, q.data(), q.size()), 0);
  EXPECT_EQ(f->find_tensor("h")->n_bytes, 10u);
  EXPECT_EQ(f->find_tensor("h")->data[9], 9);

  gguf_writer failing;
  failing.add_tensor_produced("bad", dtype::F32, {4}, [](uint8_t*, std::string* e) {
    *e = "source went away";
    return false;
  });
  const std::string bad = (dir.path / "bad.gguf").string();
  EXPECT_FALSE(failing.write(bad, &error));
  EXPECT_EQ(error, bad + ": tensor 'bad': source went away");
  EXPECT_FALSE(fs::exists(bad));
  EXPECT_FALSE(fs::exists(bad + ".tmp"));
}

TEST(GgufTest, OpenReportsMissingEmptyAndNonRegularFiles) {
  gw::test::temp_dir dir("gguf");
  std::string error;
  EXPECT_EQ(gguf_file::open((dir.path / "missing.gguf").string(), &error), nullptr);
  EXPECT_NE(error.find("missing.gguf: cannot open"), std::string::npos) << error;
  std::ofstream((dir.path / "empty.gguf").string()).close();
  EXPECT_EQ(gguf_file::open((dir.path / "empty.gguf").string(), &error), nullptr);
  EXPECT_NE(error.find("empty.gguf: file is empty (at byte 0)"), std::string::npos) << error;
  EXPECT_EQ(gguf_file::open(dir.path.string(), &error), nullptr);
  EXPECT_NE(error.find("not a regular file"), std::string::npos) << error;
  EXPECT_EQ(gguf_file::from_memory(nullptr, 0, &error), nullptr);
}

TEST(GgufTest, EveryTruncationIsAnErrorNeverACrash) {
  gw::test::temp_dir dir("gguf");
  const std::vector<uint8_t> full = small_file(dir.path);
  ASSERT_GT(full.size(), 200u);
  std::string error;
  ASSERT_NE(gguf_file::from_memory(full.data(), full.size(), &error), nullptr) << error;
  for (size_t n = 0; n < full.size(); ++n) {
    // An exact-size copy, so that a read past the end is a heap overflow (visible under ASan).
    std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    error.clear();
    EXPECT_EQ(gguf_file::from_memory(prefix.data(), prefix.size(), &error), nullptr) << "prefix " << n;
    EXPECT_NE(error.find("<memory>: "), std::string::npos) << error;
    EXPECT_NE(error.find("(at byte "), std::string::npos) << error;
  }
}

TEST(GgufTest, HeaderErrorsNameTheByte) {
  {
    raw_gguf r;
    r.put<uint32_t>(0x46554746).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(0);
    EXPECT_EQ(parse_error(r.b), "<memory>: not a GGUF file (bad magic) (at byte 0)");
  }
  {
    raw_gguf r;
    r.header(0, 0, 1);
    EXPECT_EQ(parse_error(r.b), "<memory>: unsupported GGUF version 1 (want 2 or 3) (at byte 4)");
  }
  {
    raw_gguf r;
    r.header(0, uint64_t{1} << 60).kv_u32("k", 1);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("metadata count 1152921504606846976 exceeds"), std::string::npos) << e;
    EXPECT_NE(e.find(at_byte(16)), std::string::npos) << e;
  }
  {
    raw_gguf r;
    r.header(uint64_t{1} << 60, 1).kv_u32("k", 1);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("tensor count 1152921504606846976 exceeds"), std::string::npos) << e;
    EXPECT_NE(e.find(at_byte(8)), std::string::npos) << e;
  }
  {
    raw_gguf r;  // version 2 files with no content are fine
    r.header(0, 1, 2).kv_string("general.name", "v2");
    std::string error;
    auto f = gguf_file::from_memory(r.b.data(), r.size(), &error);
    ASSERT_NE(f, nullptr) << error;
    EXPECT_EQ(f->version(), 2u);
    EXPECT_EQ(f->get_string("general.name"), "v2");
    EXPECT_TRUE(f->tensors().empty());
  }
}

TEST(GgufTest, MetadataErrorsNameTheByte) {
  {
    raw_gguf r;
    r.header(0, 1).put<uint64_t>(uint64_t{1} << 62).put<uint32_t>(4).put<uint32_t>(0);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("key length 4611686018427387904 exceeds"), std::string::npos) << e;
    EXPECT_NE(e.find(at_byte(24)), std::string::npos) << e;
  }
  {
    raw_gguf r;
    r.header(0, 1).str("k").put<uint32_t>(8).put<uint64_t>(1000).zeros(8);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("string value length 1000 exceeds"), std::string::npos) << e;
    EXPECT_NE(e.find(at_byte(24 + 9 + 4)), std::string::npos) << e;
  }
  {
    raw_gguf r;
    r.header(0, 1).str("k").put<uint32_t>(13).put<uint32_t>(0);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("key 'k' has unknown value type 13"), std::string::npos) << e;
    EXPECT_NE(e.find(at_byte(33)), std::string::npos) << e;
  }
  {
    raw_gguf r;
    r.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(1).put<uint32_t>(4).put<uint64_t>(0);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("key 'k' is a nested array (not supported)"), std::string::npos) << e;
    EXPECT_NE(e.find(at_byte(37)), std::string::npos) << e;
  }
  {
    raw_gguf r;
    r.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(99).put<uint64_t>(1).put<uint32_t>(4);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("key 'k' is an array of unknown type 99"), std::string::npos) << e;
  }
  {
    raw_gguf r;  // 2^60 u32 elements
    r.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(uint64_t{1} << 60).zeros(64);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("key 'k': array length 1152921504606846976 exceeds"), std::string::npos) << e;
    EXPECT_NE(e.find(at_byte(41)), std::string::npos) << e;
  }
  {
    raw_gguf r;  // a string array whose second string runs past the end
    r.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(2).str("ab").put<uint64_t>(50).zeros(10);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("array string length 50 exceeds"), std::string::npos) << e;
    EXPECT_NE(e.find(at_byte(49 + 10)), std::string::npos) << e;
  }
  {
    raw_gguf r;
    r.header(0, 2).kv_u32("dup", 1).kv_u32("dup", 2);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("duplicate key 'dup'"), std::string::npos) << e;
    EXPECT_NE(e.find(at_byte(24 + 19)), std::string::npos) << e;
  }
  {
    raw_gguf r;
    r.header(0, 1).kv_u32("", 1);
    EXPECT_NE(parse_error(r.b).find("empty metadata key (at byte 24)"), std::string::npos);
  }
  for (uint32_t bad : {0u, 3u, 48u}) {
    raw_gguf r;
    r.header(0, 1).kv_u32("general.alignment", bad);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("general.alignment must be a power of two"), std::string::npos) << e;
    EXPECT_NE(e.find(at_byte(24 + 8 + 17 + 4)), std::string::npos) << e;
  }
  {
    raw_gguf r;
    r.header(0, 1).kv_string("general.alignment", "32");
    EXPECT_NE(parse_error(r.b).find("general.alignment must be"), std::string::npos);
  }
}

TEST(GgufTest, TensorInfoErrorsNameTheByte) {
  const size_t info = 24;  // no metadata: the first tensor info starts right after the header
  auto one_tensor = [](std::vector<int64_t> ne, dtype t, uint64_t offset, size_t data_bytes) {
    raw_gguf r;
    r.header(1, 0).tensor("w", std::move(ne), t, offset).pad().zeros(data_bytes);
    return r.b;
  };
  {
    std::vector<uint8_t> b = one_tensor({4}, dtype::F32, 0, 16);
    std::string error;
    ASSERT_NE(gguf_file::from_memory(b.data(), b.size(), &error), nullptr) << error;
  }
  {
    raw_gguf r;
    r.header(1, 0).str("w").put<uint32_t>(0).put<uint32_t>(0).put<uint64_t>(0).pad();
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("tensor 'w' has 0 dimensions (want 1..4) " + at_byte(info + 9)), std::string::npos) << e;
  }
  {
    raw_gguf r;
    r.header(1, 0).tensor("w", {1, 1, 1, 1, 1}, dtype::F32, 0).pad().zeros(4);
    EXPECT_NE(parse_error(r.b).find("has 5 dimensions"), std::string::npos);
  }
  {
    const std::string e = parse_error(one_tensor({4, 0}, dtype::F32, 0, 16));
    EXPECT_NE(e.find("tensor 'w' has dimension 1 = 0 " + at_byte(info + 13 + 8)), std::string::npos) << e;
  }
  EXPECT_NE(parse_error(one_tensor({-4}, dtype::F32, 0, 16)).find("dimension 0 = -4"), std::string::npos);
  {
    const int64_t big = int64_t{1} << 32;
    const std::string e = parse_error(one_tensor({big, big}, dtype::F32, 0, 16));
    EXPECT_NE(e.find("tensor 'w' element count overflows " + at_byte(info + 13 + 8)), std::string::npos) << e;
  }
  {
    const std::string e = parse_error(one_tensor({int64_t{1} << 62}, dtype::F32, 0, 16));
    EXPECT_NE(e.find("byte size overflows"), std::string::npos) << e;
  }
  {
    raw_gguf r;  // type 3 (Q4_1) is not supported
    r.header(1, 0).str("w").put<uint32_t>(1).put<int64_t>(32).put<uint32_t>(3).put<uint64_t>(0).pad().zeros(20);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("tensor 'w' has unsupported type 3 " + at_byte(info + 9 + 4 + 8)), std::string::npos) << e;
  }
  EXPECT_NE(parse_error(one_tensor({256}, dtype::Q8_K, 0, 292)).find("unsupported type 15"), std::string::npos);
  {
    const std::string e = parse_error(one_tensor({48}, dtype::Q4_K, 0, 144));
    EXPECT_NE(e.find("ne[0] = 48 is not a multiple of 256 (Q4_K)"), std::string::npos) << e;
  }
  {
    const std::string e = parse_error(one_tensor({4}, dtype::F32, 16, 64));
    EXPECT_NE(e.find("offset 16 is not a multiple of the alignment 32 " + at_byte(info + 9 + 4 + 8 + 4)),
              std::string::npos)
        << e;
  }
  {
    const std::string e = parse_error(one_tensor({4}, dtype::F32, 32, 40));
    EXPECT_NE(e.find("tensor 'w' data [32, +16) lies outside the 40-byte data section (file truncated?) " +
                     at_byte(info)),
              std::string::npos)
        << e;
  }
  {
    raw_gguf r;
    r.header(1, 0).tensor("w", {4}, dtype::F32, uint64_t{1} << 63).pad().zeros(16);
    EXPECT_NE(parse_error(r.b).find("lies outside"), std::string::npos);
  }
  {
    raw_gguf r;
    r.header(2, 0).tensor("w", {4}, dtype::F32, 0).tensor("w", {4}, dtype::F32, 32).pad().zeros(64);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("duplicate tensor 'w' " + at_byte(info + 33)), std::string::npos) << e;
  }
  {
    raw_gguf r;
    r.header(2, 0).tensor("w", {16}, dtype::F32, 0).tensor("v", {4}, dtype::F32, 32).pad().zeros(64);
    const std::string e = parse_error(r.b);
    EXPECT_NE(e.find("tensor 'v' overlaps tensor 'w' " + at_byte(info + 33)), std::string::npos) << e;
  }
  {
    raw_gguf r;  // alignment 64 from metadata applies to offsets
    r.header(1, 1).kv_u32("general.alignment", 64).tensor("w", {4}, dtype::F32, 32).pad(64).zeros(128);
    EXPECT_NE(parse_error(r.b).find("not a multiple of the alignment 64"), std::string::npos);
  }
}

// Every shared reference GGUF loads; a few known facts about them hold.
TEST(GgufTest, OpensEverySharedReferenceFile) {
  TOLLGATE_SHARED_DIR_OR_SKIP(shared);
  const fs::path engine = shared / "data" / "engine";
  const nlohmann::json manifest = nlohmann::json::parse(std::ifstream(engine / "models" / "manifest.json"));
  size_t n_files = 0;
  for (const char* sub : {"models", "vocab"}) {
    for (const auto& entry : fs::directory_iterator(engine / sub)) {
      if (entry.path().extension() != ".gguf") continue;
      ++n_files;
      std::string error;
      auto f = gguf_file::open(entry.path().string(), &error);
      ASSERT_NE(f, nullptr) << error;
      EXPECT_EQ(f->version(), 3u) << entry.path();
      EXPECT_TRUE(f->get_string("tokenizer.ggml.model").has_value()) << entry.path();
      const auto n_tokens = f->array_size("tokenizer.ggml.tokens");
      ASSERT_TRUE(n_tokens.has_value()) << entry.path();
      EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens")->size(), *n_tokens);
      if (std::string_view(sub) == "vocab") {
        EXPECT_TRUE(f->tensors().empty()) << entry.path();
        continue;
      }
      const std::string name = entry.path().filename().string();
      const auto m = std::find_if(manifest["models"].begin(), manifest["models"].end(),
                                  [&](const nlohmann::json& j) { return j["file"] == name; });
      ASSERT_NE(m, manifest["models"].end()) << name;
      EXPECT_EQ(f->get_string("general.architecture"), (*m)["arch"].get<std::string>());
      EXPECT_EQ(*n_tokens, (*m)["n_vocab"].get<size_t>()) << name;
      EXPECT_EQ(f->tensors().size(), (*m)["tensor_types"].size()) << name;
      for (const auto& [tname, ttype] : (*m)["tensor_types"].items()) {
        const gguf_tensor_info* t = f->find_tensor(tname);
        ASSERT_NE(t, nullptr) << name << " " << tname;
        EXPECT_EQ(kernels::dtype_name(t->type), ttype.get<std::string>()) << name << " " << tname;
      }
      const std::string arch(*f->get_string("general.architecture"));
      EXPECT_EQ(f->get_int(arch + ".block_count"), 2) << name;
      EXPECT_EQ(f->get_int(arch + ".embedding_length"), 256) << name;
      const gguf_tensor_info* emb = f->find_tensor("token_embd.weight");
      ASSERT_NE(emb, nullptr);
      EXPECT_EQ(emb->ne, (std::vector<int64_t>{256, static_cast<int64_t>(*n_tokens)})) << name;
      if (name.rfind("tiny-llama3.", 0) == 0) {
        const gguf_tensor_info* rf = f->find_tensor("rope_freqs.weight");
        ASSERT_NE(rf, nullptr) << name;
        EXPECT_EQ(rf->type, dtype::F32);
        ASSERT_EQ(rf->ne, std::vector<int64_t>{16});
        float first = 0, last = 0;
        std::memcpy(&first, rf->data, 4);
        std::memcpy(&last, rf->data + 60, 4);
        EXPECT_EQ(first, 1.0f);
        EXPECT_EQ(last, 8.0f);
        EXPECT_EQ(f->find_tensor("output.weight"), nullptr);
        EXPECT_EQ(f->get_int("tokenizer.ggml.bos_token_id"), 512);
      }
      if (name.rfind("tiny-qwen2.", 0) == 0) {
        EXPECT_NEAR(*f->get_float("qwen2.attention.layer_norm_rms_epsilon"), 1e-6, 1e-12);
        EXPECT_NE(f->find_tensor("blk.0.attn_q.bias"), nullptr);
      }
    }
  }
  EXPECT_EQ(n_files, 21u + 7u);
}

// The fuzz entry point over the corpus (the shared reference files, when present, and two synthetic
// files covering every value and tensor type) and 20,000 deterministic random mutations of the
// synthetic ones: parsing never crashes, every failure explains itself, and some mutants still parse
// (the mutations are not all trivially fatal).
TEST(GgufTest, FuzzEntryPointSurvivesCorpusAndRandomMutations) {
  gw::test::temp_dir dir("gguf");
  std::string error;
  const fs::path shared = gw::test::shared_dir();
  if (!shared.empty()) {
    for (const char* sub : {"models", "vocab"}) {
      for (const auto& entry : fs::directory_iterator(shared / "data" / "engine" / sub)) {
        if (entry.path().extension() != ".gguf") continue;
        const std::vector<uint8_t> bytes = read_bytes(entry.path());
        EXPECT_TRUE(fuzz::gguf_fuzz_one(bytes.data(), bytes.size(), &error)) << error;
      }
    }
  }
  std::vector<std::vector<uint8_t>> seeds;
  seeds.push_back(small_file(dir.path));
  {
    gguf_writer w;
    w.set_u32("general.alignment", 64);
    w.set_string("general.architecture", "qwen2");
    w.set_array("a.u8", gguf_value_type::u8, "\x01\x02\x03", 3);
    w.set_f64("f", 0.5);
    w.set_i64("i", -5);
    w.add_tensor("q4", dtype::Q4_0, {32, 2}, random_bytes(36, 5));
    w.add_tensor("q4k", dtype::Q4_K, {256}, random_bytes(144, 6));
    w.add_tensor("q6k", dtype::Q6_K, {256}, random_bytes(210, 7));
    w.add_tensor("bf", dtype::BF16, {3, 1, 2}, random_bytes(12, 8));
    ASSERT_TRUE(w.write((dir.path / "seed2.gguf").string(), &error)) << error;
    seeds.push_back(read_bytes(dir.path / "seed2.gguf"));
  }
  for (const auto& s : seeds) ASSERT_TRUE(fuzz::gguf_fuzz_one(s.data(), s.size(), &error)) << error;

  std::mt19937_64 rng(20240611);
  const uint64_t interesting[] = {0, 1, 2, 3, 4, 8, 9, 13, 31, 32, 255, 256, 0x7fffffff, 0xffffffff,
                                  uint64_t{1} << 32, uint64_t{1} << 60, ~uint64_t{0}, uint64_t{1} << 63};
  size_t n_parsed = 0;
  constexpr int k_iterations = 20000;
  for (int it = 0; it < k_iterations; ++it) {
    std::vector<uint8_t> m = seeds[rng() % seeds.size()];
    const int n_mut = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < n_mut && !m.empty(); ++k) {
      const size_t pos = rng() % m.size();
      switch (rng() % 6) {
        case 0: m[pos] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 1: m[pos] = static_cast<uint8_t>(rng()); break;
        case 2: {  // an interesting 32- or 64-bit value
          const uint64_t v = interesting[rng() % std::size(interesting)];
          const size_t w = (rng() % 2) ? 8 : 4;
          if (pos + w <= m.size()) std::memcpy(&m[pos], &v, w);
          break;
        }
        case 3: m.resize(pos); break;
        case 4: m.insert(m.begin() + static_cast<std::ptrdiff_t>(pos), static_cast<uint8_t>(rng())); break;
        case 5: m.erase(m.begin() + static_cast<std::ptrdiff_t>(pos)); break;
      }
    }
    m.shrink_to_fit();  // exact size, so a read past the end is visible under ASan
    error.clear();
    const bool parsed = fuzz::gguf_fuzz_one(m.data(), m.size(), &error);
    if (!parsed) {
      EXPECT_NE(error.find("<memory>: "), std::string::npos) << "iteration " << it;
    }
    n_parsed += parsed ? 1 : 0;
  }
  EXPECT_GT(n_parsed, 100u);
  EXPECT_LT(n_parsed, static_cast<size_t>(k_iterations) / 2);
}

}  // namespace
}  // namespace gw::local_engine
