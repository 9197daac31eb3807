#pragma once
// Paged KV cache: a fixed memory budget cut into pages of `page_tokens` token slots, each page
// holding F32 K and V of those tokens for every layer. A sequence owns a page table; pages are
// allocated as it grows (reserve) and released when it ends.
//
// Prefix caching: a page whose slots are all written is published under a hash of the whole token
// prefix up to its end (chained page by page; the page's own tokens and its parent's hash are kept
// and compared on lookup). A new sequence adopts the published pages that match the start of its
// prompt (shared by reference count) instead of recomputing them. Published pages nobody uses any
// more stay cached in an LRU list and are reused, oldest first, only when no free page is left.
// Shared pages are full and never written again, so no copy-on-write is ever needed: writes only go
// to positions >= length(seq), which always lie in pages private to that sequence.
//
// Not thread-safe: one owner (the scheduler thread) calls it; the forward pass writes K/V rows
// through the pointers it hands out.
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace gw::local_engine {

class kv_cache {
 public:
  using seq_id = int64_t;

  // What one token slot holds: n_layer x (K, V) x n_head_kv x head_dim floats.
  struct layout {
    int64_t n_layer = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;
    int64_t kv_dim() const { return n_head_kv * head_dim; }
    bool operator==(const layout&) const = default;
  };

  // As many pages as fit in `budget_bytes` (memory is committed as pages are first written).
  // nullptr and *error when the layout is invalid or not even one page fits.
  static std::unique_ptr<kv_cache> create(const layout& l, size_t budget_bytes, std::string* error,
                                          int64_t page_tokens = 16);
  ~kv_cache();
  kv_cache(const kv_cache&) = delete;
  kv_cache& operator=(const kv_cache&) = delete;

  const layout& shape() const { return layout_; }
  int64_t page_tokens() const { return page_tokens_; }
  size_t page_bytes() const { return page_floats_ * sizeof(float); }
  int64_t pages_for(int64_t tokens) const { return (tokens + page_tokens_ - 1) / page_tokens_; }

  // Page accounting: total = free + cached + in use.
  int64_t total_pages() const { return static_cast<int64_t>(pages_.size()); }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  int64_t cached_pages() const { return static_cast<int64_t>(lru_.size()); }  // reusable, kept for prefixes
  int64_t available_pages() const { return free_pages() + cached_pages(); }
  int64_t used_pages() const { return total_pages() - available_pages(); }

  // ---- sequences ----
  seq_id create_sequence();
  // Releases the sequence's pages (published ones go to the LRU cache). Unknown ids are ignored.
  void free_sequence(seq_id seq);
  bool has_sequence(seq_id seq) const;
  // Tokens whose K/V are stored (positions [0, length)); 0 for an unknown id.
  int64_t length(seq_id seq) const;
  // Token slots its pages cover.
  int64_t capacity(seq_id seq) const;
  // Makes capacity(seq) >= total_tokens. false (nothing allocated) when not enough pages are
  // available: the caller queues or rejects the request.
  bool reserve(seq_id seq, int64_t total_tokens);

  // For a sequence of length 0: adopts the published pages matching the start of `prompt` and
  // returns how many prompt tokens they hold (a multiple of page_tokens, at most prompt.size() - 1,
  // so the last prompt token is always computed and yields logits). The sequence's length becomes
  // that count. Returns 0 for a sequence that already holds tokens.
  int64_t adopt_prefix(seq_id seq, std::span<const int32_t> prompt);

  // After the forward pass wrote K/V of `tokens` at positions [length, length + n) (within
  // capacity): the length grows by n and the pages that became full are published (or, when an
  // identical page is already published, swapped for it).
  void append(seq_id seq, std::span<const int32_t> tokens);

  // ---- rows (preconditions: seq exists, layer < n_layer, pos < capacity(seq)) ----
  // The K (or V) of all kv heads of one token at one layer: kv_dim contiguous floats.
  float* k_row(seq_id seq, int64_t layer, int64_t pos);
  float* v_row(seq_id seq, int64_t layer, int64_t pos);
  // k[i], v[i] = the head_dim floats of kv head `head` at position i, for i < n.
  void gather_rows(seq_id seq, int64_t layer, int64_t head, int64_t n, const float** k, const float** v) const;

  // ---- inspection (tests, metrics) ----
  // The sequence's page table (page indices), empty for an unknown id; valid until the sequence
  // next changes.
  std::span<const int32_t> page_table(seq_id seq) const;
  // How many sequences reference `page`.
  int32_t page_refs(int32_t page) const { return pages_[static_cast<size_t>(page)].refs; }
  bool page_published(int32_t page) const { return pages_[static_cast<size_t>(page)].published; }

 private:
  struct page_info {
    int32_t refs = 0;
    bool published = false;
    uint64_t hash = 0;         // of the token prefix through this page (when published)
    uint64_t parent_hash = 0;  // of the prefix before it
    std::vector<int32_t> tokens;              // this page's tokens (when published)
    std::list<int32_t>::iterator lru_pos;     // valid when published and refs == 0
  };
  struct sequence {
    std::vector<int32_t> pages;
    int64_t length = 0;
    uint64_t prefix_hash = 0;          // hash through the last full page
    std::vector<int32_t> tail_tokens;  // tokens of the partly written page
  };

  kv_cache(const layout& l, int64_t page_tokens, int64_t n_pages);
  sequence* find(seq_id seq);
  const sequence* find(seq_id seq) const;
  // A page with refs 1: from the free list, else the least recently released cached page; -1 if none.
  int32_t take_page();
  void retain(int32_t page);
  void release(int32_t page);
  void unpublish(int32_t page);
  // The published page holding `tokens` after the prefix `parent_hash`, or -1.
  int32_t lookup(uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens) const;
  float* slot(int32_t page, int64_t layer, int which, int64_t offset) const;

  layout layout_;
  int64_t page_tokens_ = 0;
  size_t page_floats_ = 0;
  std::unique_ptr<float[]> storage_;
  std::vector<page_info> pages_;
  std::vector<int32_t> free_;
  std::list<int32_t> lru_;  // cached pages, least recently released first
  std::unordered_map<uint64_t, int32_t> published_;  // prefix hash -> page
  std::unordered_map<seq_id, sequence> seqs_;
  seq_id next_seq_ = 1;
};

}  // namespace gw::local_engine
