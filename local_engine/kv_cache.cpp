// Paged KV cache with prefix sharing (see kv_cache.h). Page memory layout, per page:
// [layer][K, V][slot][kv_dim] floats, so one token's K for all kv heads is contiguous (one copy
// from the projection output) and a head's rows are found by pointer arithmetic.
#include "local_engine/kv_cache.h"

#include <algorithm>
#include <limits>
#include <new>

namespace gw::local_engine {
namespace {

constexpr uint64_t k_root_hash = 0x6a09e667f3bcc908ull;

uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

uint64_t page_hash(uint64_t parent, std::span<const int32_t> tokens) {
  uint64_t h = mix(parent + 0x9e3779b97f4a7c15ull);
  for (int32_t t : tokens) h = mix(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(t)) + 0x9e3779b97f4a7c15ull));
  return h;
}

}  // namespace

std::unique_ptr<kv_cache> kv_cache::create(const layout& l, size_t budget_bytes, std::string* error,
                                           int64_t page_tokens) {
  auto fail = [&](const std::string& msg) -> std::unique_ptr<kv_cache> {
    if (error) *error = "kv cache: " + msg;
    return nullptr;
  };
  constexpr int64_t k_max = int64_t{1} << 24;
  if (l.n_layer < 1 || l.n_head_kv < 1 || l.head_dim < 1 || l.n_layer > k_max || l.n_head_kv > k_max ||
      l.head_dim > k_max || page_tokens < 1 || page_tokens > k_max) {
    return fail("invalid layout (layers " + std::to_string(l.n_layer) + ", kv heads " +
                std::to_string(l.n_head_kv) + ", head dim " + std::to_string(l.head_dim) + ", page tokens " +
                std::to_string(page_tokens) + ")");
  }
  const double page_bytes = 2.0 * static_cast<double>(l.n_layer) * static_cast<double>(l.kv_dim()) *
                            static_cast<double>(page_tokens) * sizeof(float);
  if (page_bytes > static_cast<double>(budget_bytes)) {
    return fail("budget of " + std::to_string(budget_bytes) + " bytes is smaller than one page (" +
                std::to_string(static_cast<uint64_t>(page_bytes)) + " bytes)");
  }
  const auto n_pages = static_cast<int64_t>(
      std::min<double>(static_cast<double>(budget_bytes) / page_bytes, std::numeric_limits<int32_t>::max()));
  std::unique_ptr<kv_cache> c(new kv_cache(l, page_tokens, n_pages));
  c->storage_.reset(new (std::nothrow) float[c->page_floats_ * static_cast<size_t>(n_pages)]);
  if (!c->storage_) return fail("cannot allocate " + std::to_string(budget_bytes) + " bytes");
  return c;
}

kv_cache::kv_cache(const layout& l, int64_t page_tokens, int64_t n_pages)
    : layout_(l),
      page_tokens_(page_tokens),
      page_floats_(2 * static_cast<size_t>(l.n_layer) * static_cast<size_t>(l.kv_dim()) *
                   static_cast<size_t>(page_tokens)),
      pages_(static_cast<size_t>(n_pages)) {
  free_.reserve(static_cast<size_t>(n_pages));
  // Popped from the back: page 0 is handed out first.
  for (int64_t p = n_pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
}

kv_cache::~kv_cache() = default;

kv_cache::sequence* kv_cache::find(seq_id seq) {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? nullptr : &it->second;
}

const kv_cache::sequence* kv_cache::find(seq_id seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? nullptr : &it->second;
}

kv_cache::seq_id kv_cache::create_sequence() {
  const seq_id id = next_seq_++;
  sequence& s = seqs_[id];
  s.prefix_hash = k_root_hash;
  s.tail_tokens.reserve(static_cast<size_t>(page_tokens_));
  return id;
}

void kv_cache::free_sequence(seq_id seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  // Released last page first: the LRU then evicts a prefix's tail before its head, and the head
  // (e.g. a shared system prompt) stays reusable longest.
  const auto& pages = it->second.pages;
  for (auto p = pages.rbegin(); p != pages.rend(); ++p) release(*p);
  seqs_.erase(it);
}

bool kv_cache::has_sequence(seq_id seq) const { return find(seq) != nullptr; }

int64_t kv_cache::length(seq_id seq) const {
  const sequence* s = find(seq);
  return s ? s->length : 0;
}

int64_t kv_cache::capacity(seq_id seq) const {
  const sequence* s = find(seq);
  return s ? static_cast<int64_t>(s->pages.size()) * page_tokens_ : 0;
}

std::span<const int32_t> kv_cache::page_table(seq_id seq) const {
  const sequence* s = find(seq);
  if (!s) return {};
  return s->pages;
}

bool kv_cache::reserve(seq_id seq, int64_t total_tokens) {
  sequence* s = find(seq);
  if (!s || total_tokens < 0) return false;
  const int64_t need = pages_for(total_tokens) - static_cast<int64_t>(s->pages.size());
  if (need <= 0) return true;
  if (need > available_pages()) return false;
  for (int64_t i = 0; i < need; ++i) s->pages.push_back(take_page());
  return true;
}

int32_t kv_cache::take_page() {
  int32_t p = -1;
  if (!free_.empty()) {
    p = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    p = lru_.front();
    lru_.pop_front();
    unpublish(p);
  } else {
    return -1;
  }
  pages_[static_cast<size_t>(p)].refs = 1;
  return p;
}

void kv_cache::retain(int32_t page) {
  page_info& pi = pages_[static_cast<size_t>(page)];
  if (pi.refs == 0) lru_.erase(pi.lru_pos);  // only published pages sit unreferenced outside free_
  ++pi.refs;
}

void kv_cache::release(int32_t page) {
  page_info& pi = pages_[static_cast<size_t>(page)];
  if (--pi.refs > 0) return;
  if (pi.published) {
    pi.lru_pos = lru_.insert(lru_.end(), page);
  } else {
    free_.push_back(page);
  }
}

void kv_cache::unpublish(int32_t page) {
  page_info& pi = pages_[static_cast<size_t>(page)];
  if (!pi.published) return;
  auto it = published_.find(pi.hash);
  if (it != published_.end() && it->second == page) published_.erase(it);
  pi.published = false;
  pi.tokens.clear();
}

int32_t kv_cache::lookup(uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens) const {
  auto it = published_.find(hash);
  if (it == published_.end()) return -1;
  const page_info& pi = pages_[static_cast<size_t>(it->second)];
  if (pi.parent_hash != parent_hash || !std::equal(pi.tokens.begin(), pi.tokens.end(), tokens.begin(), tokens.end()))
    return -1;
  return it->second;
}

int64_t kv_cache::adopt_prefix(seq_id seq, std::span<const int32_t> prompt) {
  sequence* s = find(seq);
  if (!s || s->length != 0 || prompt.empty()) return 0;
  const int64_t max_pages = (static_cast<int64_t>(prompt.size()) - 1) / page_tokens_;
  std::vector<int32_t> adopted;
  uint64_t parent = k_root_hash;
  for (int64_t p = 0; p < max_pages; ++p) {
    auto tokens = prompt.subspan(static_cast<size_t>(p * page_tokens_), static_cast<size_t>(page_tokens_));
    const uint64_t h = page_hash(parent, tokens);
    const int32_t page = lookup(h, parent, tokens);
    if (page < 0) break;
    retain(page);
    adopted.push_back(page);
    parent = h;
  }
  if (adopted.empty()) return 0;
  // Pages reserved earlier (empty, private) are replaced by the adopted ones.
  for (auto p = s->pages.rbegin(); p != s->pages.rend(); ++p) release(*p);
  s->pages = std::move(adopted);
  s->length = static_cast<int64_t>(s->pages.size()) * page_tokens_;
  s->prefix_hash = parent;
  s->tail_tokens.clear();
  return s->length;
}

void kv_cache::append(seq_id seq, std::span<const int32_t> tokens) {
  sequence* s = find(seq);
  if (!s) return;
  for (int32_t t : tokens) {
    s->tail_tokens.push_back(t);
    ++s->length;
    if (static_cast<int64_t>(s->tail_tokens.size()) < page_tokens_) continue;
    // The page holding positions [length - page_tokens, length) is full: publish it.
    int32_t& page = s->pages[static_cast<size_t>((s->length - 1) / page_tokens_)];
    const uint64_t h = page_hash(s->prefix_hash, s->tail_tokens);
    const int32_t existing = lookup(h, s->prefix_hash, s->tail_tokens);
    if (existing >= 0 && existing != page) {
      // Computed concurrently by another sequence (or cached): share that one, drop ours.
      retain(existing);
      release(page);
      page = existing;
    } else if (existing < 0 && !published_.count(h)) {
      page_info& pi = pages_[static_cast<size_t>(page)];
      pi.published = true;
      pi.hash = h;
      pi.parent_hash = s->prefix_hash;
      pi.tokens = s->tail_tokens;
      published_.emplace(h, page);
    }
    // (A different page under the same hash is a 64-bit collision: the page stays private.)
    s->prefix_hash = h;
    s->tail_tokens.clear();
  }
}

float* kv_cache::slot(int32_t page, int64_t layer, int which, int64_t offset) const {
  const size_t kv_dim = static_cast<size_t>(layout_.kv_dim());
  return storage_.get() + static_cast<size_t>(page) * page_floats_ +
         ((static_cast<size_t>(layer) * 2 + static_cast<size_t>(which)) * static_cast<size_t>(page_tokens_) +
          static_cast<size_t>(offset)) * kv_dim;
}

float* kv_cache::k_row(seq_id seq, int64_t layer, int64_t pos) {
  const sequence* s = find(seq);
  return slot(s->pages[static_cast<size_t>(pos / page_tokens_)], layer, 0, pos % page_tokens_);
}

float* kv_cache::v_row(seq_id seq, int64_t layer, int64_t pos) {
  const sequence* s = find(seq);
  return slot(s->pages[static_cast<size_t>(pos / page_tokens_)], layer, 1, pos % page_tokens_);
}

void kv_cache::gather_rows(seq_id seq, int64_t layer, int64_t head, int64_t n, const float** k,
                           const float** v) const {
  const sequence* s = find(seq);
  const int64_t head_off = head * layout_.head_dim;
  const int64_t kv_dim = layout_.kv_dim();
  for (int64_t first = 0, p = 0; first < n; first += page_tokens_, ++p) {
    const int32_t page = s->pages[static_cast<size_t>(p)];
    const float* kb = slot(page, layer, 0, 0) + head_off;
    const float* vb = slot(page, layer, 1, 0) + head_off;
    const int64_t count = std::min(page_tokens_, n - first);
    for (int64_t i = 0; i < count; ++i) {
      k[first + i] = kb + i * kv_dim;
      v[first + i] = vb + i * kv_dim;
    }
  }
}

}  // namespace gw::local_engine
