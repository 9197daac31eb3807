// The batched forward pass of llama / qwen2 models (see forward.h). Per layer: RMSNorm, Q/K/V
// projections of all step tokens in one matmul each (+ biases), RoPE (cos/sin per position computed
// once per step), K/V written into the paged cache, causal attention per sequence and query head
// over its cache rows, output projection and residual, then the SiLU-gated FFN and residual.
// Logits only for the rows asked for.
#include "local_engine/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "kernels/ops.h"
#include "local_engine/model.h"

namespace gw::local_engine {
namespace {

// Below this many rows, per-row work runs on the calling thread (waking workers costs more).
constexpr int64_t k_parallel_rows = 8;
// Query tokens per attention work item (one item: one sequence, one query head, a token block).
constexpr int64_t k_attention_block = 16;

// Per-thread attention scratch (row pointers and scores); grows to the longest context seen.
struct attention_scratch {
  std::vector<const float*> k, v;
  std::vector<float> scores;
  void fit(int64_t n) {
    if (static_cast<int64_t>(k.size()) < n) {
      k.resize(static_cast<size_t>(n));
      v.resize(static_cast<size_t>(n));
      scores.resize(static_cast<size_t>(n));
    }
  }
};
thread_local attention_scratch t_attention;

void grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

}  // namespace

kv_cache::layout kv_layout(const model& m) {
  return {m.hp().n_layer, m.hp().n_head_kv, m.hp().head_dim};
}

struct forward_pass::buffers {
  // Activations, one row per step token.
  std::vector<float> x, xn, q, k, v, attn, gate, up;
  std::vector<float> rope_cs;  // per row: (cos, sin) of each rotary pair at the row's position
  // Per step row: which entry of `seqs` and which position.
  std::vector<int32_t> row_seq;
  std::vector<int64_t> row_pos;
  std::vector<int64_t> first_row;  // per entry of `seqs`: its first row
  std::vector<int64_t> out_rows;   // rows whose logits are returned, in order
  struct attention_item {
    int32_t entry;
    int32_t head;
    int64_t j0, j1;  // token range within the entry's new tokens
  };
  std::vector<attention_item> items;
  std::vector<double> inv_freq;  // per rotary pair: base^(-2i/head_dim) / freq_factor[i]
};

forward_pass::forward_pass(const model& m, kv_cache& kv, kernels::thread_pool& pool)
    : model_(m), kv_(kv), pool_(pool), buf_(std::make_unique<buffers>()) {
  const hparams& hp = m.hp();
  const float* factors = m.rope_freq_factors();
  for (int64_t i = 0; i < hp.head_dim / 2; ++i) {
    double f = std::pow(static_cast<double>(hp.rope_base), -2.0 * static_cast<double>(i) / static_cast<double>(hp.head_dim));
    if (factors) f /= static_cast<double>(factors[i]);
    buf_->inv_freq.push_back(f);
  }
}

forward_pass::~forward_pass() = default;

bool forward_pass::run(std::span<const seq_batch> seqs, std::vector<float>& logits, std::string* error) {
  auto fail = [&](const std::string& msg) {
    if (error) *error = "forward: " + msg;
    return false;
  };
  const hparams& hp = model_.hp();
  if (!(kv_.shape() == kv_layout(model_))) return fail("the KV cache layout does not match the model");
  if (seqs.empty()) return fail("no sequences in the step");

  // Validate everything before touching the cache.
  int64_t n_rows = 0, n_out = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const seq_batch& s = seqs[i];
    const std::string who = "sequence " + std::to_string(s.seq);
    if (!kv_.has_sequence(s.seq)) return fail(who + ": unknown");
    for (size_t j = 0; j < i; ++j) {
      if (seqs[j].seq == s.seq) return fail(who + ": appears twice in one step");
    }
    if (s.tokens.empty()) return fail(who + ": no tokens");
    if (s.pos0 != kv_.length(s.seq)) {
      return fail(who + ": pos0 " + std::to_string(s.pos0) + " but the cache holds " +
                  std::to_string(kv_.length(s.seq)) + " tokens");
    }
    for (int32_t t : s.tokens) {
      if (t < 0 || t >= hp.n_vocab) {
        return fail(who + ": token id " + std::to_string(t) + " out of range [0, " + std::to_string(hp.n_vocab) + ")");
      }
    }
    n_rows += static_cast<int64_t>(s.tokens.size());
    n_out += s.all_logits ? static_cast<int64_t>(s.tokens.size()) : 1;
  }
  for (const seq_batch& s : seqs) {
    const int64_t total = s.pos0 + static_cast<int64_t>(s.tokens.size());
    if (!kv_.reserve(s.seq, total)) {
      return fail("KV cache full: sequence " + std::to_string(s.seq) + " needs " +
                  std::to_string(kv_.pages_for(total) - kv_.pages_for(kv_.capacity(s.seq))) + " more pages of " +
                  std::to_string(kv_.page_tokens()) + " tokens, " + std::to_string(kv_.available_pages()) +
                  " available");
    }
  }

  buffers& b = *buf_;
  const int64_t E = hp.n_embd, QD = hp.q_dim(), KD = hp.kv_dim(), F = hp.n_ff, HD = hp.head_dim;
  grow(b.x, n_rows * E);
  grow(b.xn, n_rows * E);
  grow(b.q, n_rows * QD);
  grow(b.k, n_rows * KD);
  grow(b.v, n_rows * KD);
  grow(b.attn, n_rows * QD);
  grow(b.gate, n_rows * F);
  grow(b.up, n_rows * F);
  grow(b.rope_cs, n_rows * HD);

  b.row_seq.clear();
  b.row_pos.clear();
  b.first_row.clear();
  b.out_rows.clear();
  b.items.clear();
  for (size_t i = 0; i < seqs.size(); ++i) {
    const seq_batch& s = seqs[i];
    const auto n = static_cast<int64_t>(s.tokens.size());
    b.first_row.push_back(static_cast<int64_t>(b.row_seq.size()));
    for (int64_t j = 0; j < n; ++j) {
      if (s.all_logits || j == n - 1) b.out_rows.push_back(static_cast<int64_t>(b.row_seq.size()));
      b.row_seq.push_back(static_cast<int32_t>(i));
      b.row_pos.push_back(s.pos0 + j);
    }
    for (int64_t h = 0; h < hp.n_head; ++h) {
      for (int64_t j0 = 0; j0 < n; j0 += k_attention_block) {
        b.items.push_back({static_cast<int32_t>(i), static_cast<int32_t>(h), j0, std::min(n, j0 + k_attention_block)});
      }
    }
  }

  auto for_rows = [&](int64_t m, const std::function<void(int64_t, int64_t)>& fn) {
    if (m < k_parallel_rows) {
      fn(0, m);
    } else {
      pool_.parallel_for(m, fn);
    }
  };

  float* x = b.x.data();
  float* xn = b.xn.data();
  float* q = b.q.data();
  float* k = b.k.data();
  float* v = b.v.data();
  float* attn = b.attn.data();
  float* gate = b.gate.data();
  float* up = b.up.data();
  const float eps = hp.rms_eps;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  const int64_t group = hp.n_head / hp.n_head_kv;

  for (int64_t r = 0; r < n_rows; ++r) {
    const seq_batch& s = seqs[static_cast<size_t>(b.row_seq[static_cast<size_t>(r)])];
    const int64_t pos = b.row_pos[static_cast<size_t>(r)];
    kernels::get_row(model_.token_embd(), s.tokens[static_cast<size_t>(pos - s.pos0)], x + r * E);
    float* cs = b.rope_cs.data() + r * HD;
    for (size_t i = 0; i < b.inv_freq.size(); ++i) {
      const double angle = static_cast<double>(pos) * b.inv_freq[i];
      cs[2 * i] = static_cast<float>(std::cos(angle));
      cs[2 * i + 1] = static_cast<float>(std::sin(angle));
    }
  }

  for (int64_t l = 0; l < hp.n_layer; ++l) {
    const layer_weights& w = model_.layer(l);

    for_rows(n_rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) kernels::rms_norm(x + r * E, w.attn_norm, xn + r * E, E, eps);
    });
    // q, k and v share one activation quantization and one pass over the thread pool.
    const kernels::matmul_job qkv[3] = {{w.wq, q}, {w.wk, k}, {w.wv, v}};
    kernels::matmul_many(qkv, 3, xn, n_rows, &pool_);

    // Biases, RoPE, and K/V into the cache.
    for_rows(n_rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* qr = q + r * QD;
        float* kr = k + r * KD;
        float* vr = v + r * KD;
        if (w.bq) kernels::add(qr, w.bq, QD);
        if (w.bk) kernels::add(kr, w.bk, KD);
        if (w.bv) kernels::add(vr, w.bv, KD);
        const int64_t pos = b.row_pos[static_cast<size_t>(r)];
        kernels::rope_rotate(qr, hp.n_head, HD, b.rope_cs.data() + r * HD, hp.rope_pairing);
        kernels::rope_rotate(kr, hp.n_head_kv, HD, b.rope_cs.data() + r * HD, hp.rope_pairing);
        const kv_cache::seq_id seq = seqs[static_cast<size_t>(b.row_seq[static_cast<size_t>(r)])].seq;
        std::memcpy(kv_.k_row(seq, l, pos), kr, static_cast<size_t>(KD) * sizeof(float));
        std::memcpy(kv_.v_row(seq, l, pos), vr, static_cast<size_t>(KD) * sizeof(float));
      }
    });

    // Causal attention: new token j of an entry sees cache positions [0, pos0 + j].
    pool_.parallel_for(static_cast<int64_t>(b.items.size()), [&](int64_t i0, int64_t i1) {
      attention_scratch& ts = t_attention;
      for (int64_t i = i0; i < i1; ++i) {
        const buffers::attention_item& it = b.items[static_cast<size_t>(i)];
        const seq_batch& s = seqs[static_cast<size_t>(it.entry)];
        const int64_t n_kv = s.pos0 + it.j1;
        ts.fit(n_kv);
        kv_.gather_rows(s.seq, l, it.head / group, n_kv, ts.k.data(), ts.v.data());
        for (int64_t j = it.j0; j < it.j1; ++j) {
          const int64_t r = b.first_row[static_cast<size_t>(it.entry)] + j;
          kernels::attention_head(q + r * QD + it.head * HD, ts.k.data(), ts.v.data(), s.pos0 + j + 1, HD, scale,
                                  ts.scores.data(), attn + r * QD + it.head * HD);
        }
      }
    });

    kernels::matmul(w.wo, attn, xn, n_rows, &pool_);
    for_rows(n_rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        kernels::add(x + r * E, xn + r * E, E);
        kernels::rms_norm(x + r * E, w.ffn_norm, xn + r * E, E, eps);
      }
    });

    const kernels::matmul_job gate_up[2] = {{w.w_gate, gate}, {w.w_up, up}};
    kernels::matmul_many(gate_up, 2, xn, n_rows, &pool_);
    for_rows(n_rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) kernels::silu_mul(gate + r * F, up + r * F, gate + r * F, F);
    });
    kernels::matmul(w.w_down, gate, xn, n_rows, &pool_);
    for_rows(n_rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) kernels::add(x + r * E, xn + r * E, E);
    });
  }

  // Final norm of the rows asked for, packed, then the output projection.
  for (int64_t o = 0; o < n_out; ++o) {
    kernels::rms_norm(x + b.out_rows[static_cast<size_t>(o)] * E, model_.output_norm(), xn + o * E, E, eps);
  }
  logits.resize(static_cast<size_t>(n_out * hp.n_vocab));
  kernels::matmul(model_.output(), xn, logits.data(), n_out, &pool_);

  for (const seq_batch& s : seqs) kv_.append(s.seq, s.tokens);
  return true;
}

}  // namespace gw::local_engine
