// Paged KV cache: page accounting, budget exhaustion, row addressing, prefix sharing with
// reference counts, the LRU of cached pages and its eviction order.
#include "local_engine/kv_cache.h"

#include <gtest/gtest.h>

#include <numeric>
#include <set>
#include <vector>

namespace gw::local_engine {
namespace {

constexpr kv_cache::layout k_layout{2, 2, 4};  // 2 layers, 2 kv heads of 4 floats
constexpr int64_t k_page = 4;                   // tokens per page

size_t page_bytes() { return 2 * 2 * 2 * 4 * k_page * sizeof(float); }

std::unique_ptr<kv_cache> make_cache(int64_t pages) {
  std::string error;
  auto c = kv_cache::create(k_layout, page_bytes() * static_cast<size_t>(pages), &error, k_page);
  EXPECT_NE(c, nullptr) << error;
  return c;
}

std::vector<int32_t> iota_tokens(int n, int32_t first) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), first);
  return t;
}

// Writes a recognisable value into every K/V float of positions [length, length + n), then appends.
void fill_and_append(kv_cache& c, kv_cache::seq_id s, const std::vector<int32_t>& tokens) {
  const int64_t start = c.length(s);
  ASSERT_TRUE(c.reserve(s, start + static_cast<int64_t>(tokens.size())));
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t pos = start + static_cast<int64_t>(i);
    for (int64_t l = 0; l < k_layout.n_layer; ++l) {
      for (int64_t d = 0; d < k_layout.kv_dim(); ++d) {
        c.k_row(s, l, pos)[d] = static_cast<float>(tokens[i] * 1000 + l * 100 + d);
        c.v_row(s, l, pos)[d] = -static_cast<float>(tokens[i] * 1000 + l * 100 + d);
      }
    }
  }
  c.append(s, tokens);
}

TEST(KvCache, BudgetBecomesWholePages) {
  std::string error;
  auto c = kv_cache::create(k_layout, page_bytes() * 5 + page_bytes() / 2, &error, k_page);
  ASSERT_NE(c, nullptr) << error;
  EXPECT_EQ(c->page_bytes(), page_bytes());
  EXPECT_EQ(c->total_pages(), 5);
  EXPECT_EQ(c->free_pages(), 5);
  EXPECT_EQ(c->used_pages(), 0);

  EXPECT_EQ(kv_cache::create(k_layout, page_bytes() - 1, &error, k_page), nullptr);
  EXPECT_NE(error.find("smaller than one page"), std::string::npos) << error;
  EXPECT_EQ(kv_cache::create({0, 2, 4}, 1 << 20, &error), nullptr);
  EXPECT_NE(error.find("invalid layout"), std::string::npos) << error;
}

TEST(KvCache, ReserveAndFreeAccounting) {
  auto c = make_cache(8);
  auto a = c->create_sequence();
  auto b = c->create_sequence();
  EXPECT_NE(a, b);
  EXPECT_EQ(c->length(a), 0);
  EXPECT_EQ(c->capacity(a), 0);

  ASSERT_TRUE(c->reserve(a, 10));  // 3 pages
  EXPECT_EQ(c->capacity(a), 12);
  EXPECT_EQ(c->used_pages(), 3);
  ASSERT_TRUE(c->reserve(a, 12));  // already covered
  EXPECT_EQ(c->used_pages(), 3);
  ASSERT_TRUE(c->reserve(b, 1));
  EXPECT_EQ(c->used_pages(), 4);
  EXPECT_EQ(c->free_pages(), 4);

  // Distinct sequences never share an unpublished page.
  std::set<int32_t> pages;
  for (auto p : c->page_table(a)) pages.insert(p);
  for (auto p : c->page_table(b)) pages.insert(p);
  EXPECT_EQ(pages.size(), 4u);

  c->free_sequence(a);
  EXPECT_FALSE(c->has_sequence(a));
  EXPECT_EQ(c->free_pages(), 7);
  EXPECT_EQ(c->cached_pages(), 0);  // nothing was written: nothing to keep
  c->free_sequence(b);
  c->free_sequence(b);  // unknown now: ignored
  EXPECT_EQ(c->free_pages(), 8);
  EXPECT_FALSE(c->reserve(b, 4));
  EXPECT_EQ(c->length(b), 0);
}

TEST(KvCache, ExhaustedBudgetRefusesWithoutPartialAllocation) {
  auto c = make_cache(4);
  auto a = c->create_sequence();
  auto b = c->create_sequence();
  ASSERT_TRUE(c->reserve(a, 12));   // 3 of 4 pages
  EXPECT_FALSE(c->reserve(b, 8));   // needs 2, 1 left
  EXPECT_EQ(c->capacity(b), 0);
  EXPECT_EQ(c->available_pages(), 1);
  EXPECT_TRUE(c->reserve(b, 4));
  EXPECT_EQ(c->available_pages(), 0);
  EXPECT_FALSE(c->reserve(a, 13));
  EXPECT_EQ(c->capacity(a), 12);
  c->free_sequence(a);
  EXPECT_TRUE(c->reserve(b, 16));
}

TEST(KvCache, RowsAreDistinctAndGatherMatchesRowPointers) {
  auto c = make_cache(4);
  auto s = c->create_sequence();
  const auto tokens = iota_tokens(10, 7);
  fill_and_append(*c, s, tokens);
  EXPECT_EQ(c->length(s), 10);

  std::vector<const float*> k(10), v(10);
  for (int64_t l = 0; l < k_layout.n_layer; ++l) {
    for (int64_t h = 0; h < k_layout.n_head_kv; ++h) {
      c->gather_rows(s, l, h, 10, k.data(), v.data());
      for (int64_t pos = 0; pos < 10; ++pos) {
        EXPECT_EQ(k[pos], c->k_row(s, l, pos) + h * k_layout.head_dim);
        EXPECT_EQ(v[pos], c->v_row(s, l, pos) + h * k_layout.head_dim);
        for (int64_t d = 0; d < k_layout.head_dim; ++d) {
          const float want = static_cast<float>(tokens[pos] * 1000 + l * 100 + h * k_layout.head_dim + d);
          ASSERT_EQ(k[pos][d], want) << "layer " << l << " head " << h << " pos " << pos;
          ASSERT_EQ(v[pos][d], -want);
        }
      }
    }
  }
}

TEST(KvCache, FullPagesArePublishedAndSharedByRefcount) {
  auto c = make_cache(8);
  auto a = c->create_sequence();
  const auto prompt = iota_tokens(10, 100);  // pages [100..103], [104..107], partial [108, 109]
  fill_and_append(*c, a, prompt);
  const auto table = c->page_table(a);
  const std::vector<int32_t> ta(table.begin(), table.end());
  ASSERT_EQ(ta.size(), 3u);
  EXPECT_TRUE(c->page_published(ta[0]));
  EXPECT_TRUE(c->page_published(ta[1]));
  EXPECT_FALSE(c->page_published(ta[2]));

  // Same prompt: the two full pages are adopted, the rest is left to compute.
  auto b = c->create_sequence();
  EXPECT_EQ(c->adopt_prefix(b, prompt), 8);
  EXPECT_EQ(c->length(b), 8);
  auto tb = c->page_table(b);
  ASSERT_EQ(tb.size(), 2u);
  EXPECT_EQ(tb[0], ta[0]);
  EXPECT_EQ(tb[1], ta[1]);
  EXPECT_EQ(c->page_refs(ta[0]), 2);
  EXPECT_EQ(c->page_refs(ta[2]), 1);
  EXPECT_EQ(c->used_pages(), 3);
  // The shared rows hold what `a` wrote.
  std::vector<const float*> k(8), v(8);
  c->gather_rows(b, 1, 1, 8, k.data(), v.data());
  EXPECT_EQ(k[5][0], static_cast<float>(105 * 1000 + 100 + 4));
  // b continues privately after the shared pages.
  fill_and_append(*c, b, {108, 200});
  EXPECT_EQ(c->page_table(b).size(), 3u);
  EXPECT_NE(c->page_table(b)[2], ta[2]);

  // At least one token is always left to compute: an 8-token prompt adopts only one page.
  auto d = c->create_sequence();
  EXPECT_EQ(c->adopt_prefix(d, iota_tokens(8, 100)), 4);
  EXPECT_EQ(c->page_refs(ta[0]), 3);
  EXPECT_EQ(c->page_refs(ta[1]), 2);
  // A prompt that differs in its second page adopts only the first.
  auto e = c->create_sequence();
  auto other = prompt;
  other[6] = 999;
  EXPECT_EQ(c->adopt_prefix(e, other), 4);
  // One that differs in its first token adopts nothing; so does a sequence that holds tokens.
  auto f = c->create_sequence();
  other = prompt;
  other[0] = 999;
  EXPECT_EQ(c->adopt_prefix(f, other), 0);
  EXPECT_EQ(c->adopt_prefix(a, prompt), 0);
  EXPECT_EQ(c->length(a), 10);

  // Refcounts fall as sequences end; a page no one uses is kept cached, not freed.
  c->free_sequence(b);
  c->free_sequence(d);
  c->free_sequence(e);
  EXPECT_EQ(c->page_refs(ta[0]), 1);
  c->free_sequence(a);
  EXPECT_EQ(c->cached_pages(), 2);  // a's two full pages
  EXPECT_EQ(c->used_pages(), 0);
  // ... and adopted again from the cache.
  auto g = c->create_sequence();
  EXPECT_EQ(c->adopt_prefix(g, prompt), 8);
  EXPECT_EQ(c->cached_pages(), 0);
  EXPECT_EQ(c->page_refs(ta[0]), 1);
}

TEST(KvCache, AdoptReplacesReservedPages) {
  auto c = make_cache(6);
  auto a = c->create_sequence();
  const auto prompt = iota_tokens(9, 1);
  fill_and_append(*c, a, prompt);
  auto b = c->create_sequence();
  ASSERT_TRUE(c->reserve(b, 9));
  EXPECT_EQ(c->used_pages(), 6);
  EXPECT_EQ(c->adopt_prefix(b, prompt), 8);
  EXPECT_EQ(c->used_pages(), 3);  // b's three reserved pages went back; it shares a's two
  ASSERT_TRUE(c->reserve(b, 9));
  EXPECT_EQ(c->used_pages(), 4);
}

TEST(KvCache, IdenticalPagesComputedTwiceAreMerged) {
  auto c = make_cache(6);
  auto a = c->create_sequence();
  auto b = c->create_sequence();
  const auto prompt = iota_tokens(5, 40);
  ASSERT_TRUE(c->reserve(a, 5));
  ASSERT_TRUE(c->reserve(b, 5));
  const int32_t b_first = c->page_table(b)[0];
  fill_and_append(*c, a, prompt);
  fill_and_append(*c, b, prompt);
  // b's first page was swapped for a's published one and its own went back to the free list.
  EXPECT_EQ(c->page_table(b)[0], c->page_table(a)[0]);
  EXPECT_EQ(c->page_refs(c->page_table(a)[0]), 2);
  EXPECT_EQ(c->page_refs(b_first), 0);
  EXPECT_EQ(c->used_pages(), 3);
  EXPECT_EQ(c->length(b), 5);
}

TEST(KvCache, LruEvictsOldestAndPrefixTailsFirst) {
  auto c = make_cache(4);
  const auto p1 = iota_tokens(9, 10);  // 2 full pages
  auto a = c->create_sequence();
  fill_and_append(*c, a, p1);
  c->free_sequence(a);
  EXPECT_EQ(c->cached_pages(), 2);
  EXPECT_EQ(c->free_pages(), 2);

  // Free pages are used before cached ones.
  auto b = c->create_sequence();
  ASSERT_TRUE(c->reserve(b, 8));
  EXPECT_EQ(c->cached_pages(), 2);
  // One more page: evicts the tail of p1's prefix, its head stays reusable.
  ASSERT_TRUE(c->reserve(b, 12));
  EXPECT_EQ(c->cached_pages(), 1);
  auto d = c->create_sequence();
  EXPECT_EQ(c->adopt_prefix(d, p1), 4);
  c->free_sequence(d);
  // Using every page evicts the rest.
  ASSERT_TRUE(c->reserve(b, 16));
  EXPECT_EQ(c->cached_pages(), 0);
  auto e = c->create_sequence();
  EXPECT_EQ(c->adopt_prefix(e, p1), 0);
  EXPECT_FALSE(c->reserve(e, 1));

  // Least recently released goes first: cache q1, then q2; one eviction removes q1's tail.
  c->free_sequence(b);
  const auto q1 = iota_tokens(5, 300), q2 = iota_tokens(5, 400);
  auto s1 = c->create_sequence();
  auto s2 = c->create_sequence();
  fill_and_append(*c, s1, q1);
  fill_and_append(*c, s2, q2);
  c->free_sequence(s1);
  c->free_sequence(s2);
  EXPECT_EQ(c->cached_pages(), 2);
  auto f = c->create_sequence();
  ASSERT_TRUE(c->reserve(f, 12));  // 2 free + 1 evicted
  auto g1 = c->create_sequence();
  auto g2 = c->create_sequence();
  EXPECT_EQ(c->adopt_prefix(g1, q1), 0);
  EXPECT_EQ(c->adopt_prefix(g2, q2), 4);
}

}  // namespace
}  // namespace gw::local_engine
