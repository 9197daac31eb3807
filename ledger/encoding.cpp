#include "ledger/encoding.h"

#include <zlib.h>

#include <cstring>

namespace gw::ledger::encoding {

namespace {

constexpr std::uint8_t entry_version = 1;
constexpr std::uint8_t counters_version = 1;

void put_string(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}
bool get_string(std::string_view& in, std::string* s) {
  std::uint64_t n = 0;
  if (!get_varint(in, &n) || n > in.size()) return false;
  s->assign(in.data(), n);
  in.remove_prefix(n);
  return true;
}
// Zig-zag for signed values.
std::uint64_t zz(std::int64_t v) { return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63); }
std::int64_t unzz(std::uint64_t v) { return static_cast<std::int64_t>((v >> 1) ^ (~(v & 1) + 1)); }

std::uint32_t crc(std::string_view s) {
  return static_cast<std::uint32_t>(::crc32(0L, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

// Appends the CRC of everything after the version byte; checks and strips it on read.
void seal(std::string& out) {
  std::uint32_t c = crc(std::string_view(out).substr(1));
  put_fixed32_be(out, c);
}
bool unseal(std::string_view& in, std::uint8_t version) {
  if (in.size() < 5 || static_cast<std::uint8_t>(in[0]) != version) return false;
  std::string_view body = in.substr(1, in.size() - 5);
  const auto* t = reinterpret_cast<const unsigned char*>(in.data() + in.size() - 4);
  std::uint32_t stored = (std::uint32_t{t[0]} << 24) | (std::uint32_t{t[1]} << 16) | (std::uint32_t{t[2]} << 8) | t[3];
  if (crc(body) != stored) return false;
  in = body;
  return true;
}

}  // namespace

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool get_varint(std::string_view& in, std::uint64_t* v) {
  std::uint64_t r = 0;
  for (int shift = 0; shift <= 63 && !in.empty(); shift += 7) {
    auto b = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    r |= std::uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

void put_fixed64_be(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}
std::uint64_t get_fixed64_be(std::string_view in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8 && i < static_cast<int>(in.size()); ++i) v = (v << 8) | static_cast<std::uint8_t>(in[i]);
  return v;
}
void put_fixed32_be(std::string& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

std::string encode_entry(const request_record& r) {
  std::string out;
  out.reserve(160 + r.request_id.size() + r.reason.size());
  out.push_back(static_cast<char>(entry_version));
  for (const std::string* s : {&r.request_id, &r.client_request_id, &r.key_name, &r.team, &r.endpoint, &r.model,
                               &r.route, &r.reason, &r.target, &r.upstream_model, &r.error_code, &r.provider})
    put_string(out, *s);
  std::uint64_t flags = (r.stream ? 1 : 0) | (r.usage_estimated ? 2 : 0) | (r.client_disconnected ? 4 : 0) |
                        (r.priced ? 8 : 0);
  put_varint(out, flags);
  put_varint(out, zz(r.status));
  put_varint(out, zz(r.prompt_tokens));
  put_varint(out, zz(r.completion_tokens));
  put_varint(out, zz(r.cached_prompt_tokens));
  put_varint(out, zz(r.attempts));
  put_varint(out, zz(r.retries));
  put_varint(out, zz(r.fallbacks));
  put_varint(out, zz(std::chrono::duration_cast<std::chrono::microseconds>(r.started.time_since_epoch()).count()));
  put_varint(out, zz(r.latency.count()));
  put_varint(out, zz(r.ttft.count()));
  put_varint(out, zz(r.upstream_time.count()));
  put_varint(out, zz(r.cost_pusd));
  put_varint(out, zz(r.engine_busy.count()));
  seal(out);
  return out;
}

bool decode_entry(std::string_view in, request_record* r) {
  if (!unseal(in, entry_version)) return false;
  for (std::string* s : {&r->request_id, &r->client_request_id, &r->key_name, &r->team, &r->endpoint, &r->model,
                         &r->route, &r->reason, &r->target, &r->upstream_model, &r->error_code, &r->provider})
    if (!get_string(in, s)) return false;
  std::uint64_t v[14];
  for (auto& x : v)
    if (!get_varint(in, &x)) return false;
  r->stream = v[0] & 1;
  r->usage_estimated = v[0] & 2;
  r->client_disconnected = v[0] & 4;
  r->priced = v[0] & 8;
  r->status = static_cast<int>(unzz(v[1]));
  r->prompt_tokens = unzz(v[2]);
  r->completion_tokens = unzz(v[3]);
  r->cached_prompt_tokens = unzz(v[4]);
  r->attempts = static_cast<int>(unzz(v[5]));
  r->retries = static_cast<int>(unzz(v[6]));
  r->fallbacks = static_cast<int>(unzz(v[7]));
  r->started = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::microseconds(unzz(v[8]))));
  r->latency = std::chrono::microseconds(unzz(v[9]));
  r->ttft = std::chrono::microseconds(unzz(v[10]));
  r->upstream_time = std::chrono::microseconds(unzz(v[11]));
  r->cost_pusd = unzz(v[12]);
  r->engine_busy = std::chrono::microseconds(unzz(v[13]));
  return in.empty();
}

// Field ids of the sparse counter encoding.
enum : std::uint64_t {
  f_requests = 1, f_failed, f_prompt, f_completion, f_cached, f_unpriced, f_estimated, f_busy, f_cost_lo, f_cost_hi,
  f_latency_base = 100, f_ttft_base = 400,
};

std::string encode_counters(const counters& c) {
  std::string out;
  out.push_back(static_cast<char>(counters_version));
  auto field = [&](std::uint64_t id, std::uint64_t v) {
    if (!v) return;
    put_varint(out, id);
    put_varint(out, v);
  };
  field(f_requests, c.requests);
  field(f_failed, c.failed);
  field(f_prompt, c.prompt_tokens);
  field(f_completion, c.completion_tokens);
  field(f_cached, c.cached_prompt_tokens);
  field(f_unpriced, c.unpriced_requests);
  field(f_estimated, c.estimated_requests);
  field(f_busy, c.engine_busy_us);
  auto cost = static_cast<unsigned __int128>(c.cost);
  field(f_cost_lo, static_cast<std::uint64_t>(cost));
  field(f_cost_hi, static_cast<std::uint64_t>(cost >> 64));
  for (int i = 0; i < latency_histogram::buckets; ++i) field(f_latency_base + static_cast<std::uint64_t>(i), c.latency.counts[static_cast<std::size_t>(i)]);
  for (int i = 0; i < latency_histogram::buckets; ++i) field(f_ttft_base + static_cast<std::uint64_t>(i), c.ttft.counts[static_cast<std::size_t>(i)]);
  seal(out);
  return out;
}

bool decode_counters(std::string_view in, counters* c) {
  if (!unseal(in, counters_version)) return false;
  *c = counters{};
  std::uint64_t lo = 0, hi = 0;
  while (!in.empty()) {
    std::uint64_t id = 0, v = 0;
    if (!get_varint(in, &id) || !get_varint(in, &v)) return false;
    switch (id) {
      case f_requests: c->requests = v; break;
      case f_failed: c->failed = v; break;
      case f_prompt: c->prompt_tokens = v; break;
      case f_completion: c->completion_tokens = v; break;
      case f_cached: c->cached_prompt_tokens = v; break;
      case f_unpriced: c->unpriced_requests = v; break;
      case f_estimated: c->estimated_requests = v; break;
      case f_busy: c->engine_busy_us = v; break;
      case f_cost_lo: lo = v; break;
      case f_cost_hi: hi = v; break;
      default:
        if (id >= f_latency_base && id < f_latency_base + latency_histogram::buckets)
          c->latency.counts[id - f_latency_base] = v;
        else if (id >= f_ttft_base && id < f_ttft_base + latency_histogram::buckets)
          c->ttft.counts[id - f_ttft_base] = v;
        else
          return false;  // unknown field: not ours, or damaged
    }
  }
  c->cost = static_cast<wide_pico_usd>((static_cast<unsigned __int128>(hi) << 64) | lo);
  return true;
}

}  // namespace gw::ledger::encoding
