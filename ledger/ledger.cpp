#include "ledger/ledger.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <future>
#include <limits>
#include <unistd.h>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "ledger/encoding.h"

namespace gw::ledger {

namespace enc = encoding;
using clock_type = std::chrono::system_clock;

// ---- days ---------------------------------------------------------------------------------------

day_index to_day(clock_type::time_point t, int utc_offset_minutes) {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count() +
              static_cast<std::int64_t>(utc_offset_minutes) * 60;
  return static_cast<day_index>(secs >= 0 ? secs / 86400 : (secs - 86399) / 86400);
}

std::string day_string(day_index d) {
  std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{d}}};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}

std::optional<day_index> parse_day(std::string_view s) {
  int y = 0;
  unsigned m = 0, d = 0;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  if (std::sscanf(std::string(s).c_str(), "%4d-%2u-%2u", &y, &m, &d) != 3) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{m}, std::chrono::day{d}};
  if (!ymd.ok()) return std::nullopt;
  return static_cast<day_index>(std::chrono::sys_days{ymd}.time_since_epoch().count());
}

std::optional<dimension> parse_dimension(std::string_view s) {
  if (s == "total") return dimension::total;
  if (s == "target") return dimension::target;
  if (s == "model") return dimension::model;
  if (s == "key") return dimension::key;
  if (s == "team") return dimension::team;
  if (s == "route") return dimension::route;
  return std::nullopt;
}

std::string_view to_string(dimension d) {
  switch (d) {
    case dimension::total: return "total";
    case dimension::target: return "target";
    case dimension::model: return "model";
    case dimension::key: return "key";
    case dimension::team: return "team";
    case dimension::route: return "route";
  }
  return "?";
}

// ---- histograms and counters ---------------------------------------------------------------------

namespace {
constexpr double hist_base_us = 100.0;
const double hist_log_ratio = std::log(2.0) / 8.0;
}  // namespace

int latency_histogram::bucket_of(std::chrono::microseconds v) {
  double us = static_cast<double>(v.count());
  if (us < hist_base_us) return 0;
  int i = static_cast<int>(std::log(us / hist_base_us) / hist_log_ratio);
  return std::clamp(i, 0, buckets - 1);
}
void latency_histogram::add(std::chrono::microseconds v, std::uint64_t n) { counts[static_cast<std::size_t>(bucket_of(v))] += n; }
void latency_histogram::merge(const latency_histogram& o) {
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] += o.counts[i];
}
std::uint64_t latency_histogram::total() const {
  std::uint64_t n = 0;
  for (auto c : counts) n += c;
  return n;
}
std::optional<double> latency_histogram::quantile_ms(double p) const {
  std::uint64_t n = total();
  if (!n) return std::nullopt;
  auto rank = static_cast<std::uint64_t>(std::ceil(std::clamp(p, 0.0, 1.0) * static_cast<double>(n)));
  rank = std::max<std::uint64_t>(rank, 1);
  std::uint64_t seen = 0;
  for (int i = 0; i < buckets; ++i) {
    seen += counts[static_cast<std::size_t>(i)];
    if (seen >= rank) {
      if (i == 0) return hist_base_us / 2000.0;
      // Geometric midpoint of [base·r^i, base·r^(i+1)).
      return hist_base_us * std::exp(hist_log_ratio * (i + 0.5)) / 1000.0;
    }
  }
  return std::nullopt;
}

void counters::add(const request_record& r) {
  ++requests;
  if (r.status < 200 || r.status >= 400) ++failed;
  prompt_tokens += static_cast<std::uint64_t>(std::max<std::int64_t>(0, r.prompt_tokens));
  completion_tokens += static_cast<std::uint64_t>(std::max<std::int64_t>(0, r.completion_tokens));
  cached_prompt_tokens += static_cast<std::uint64_t>(std::max<std::int64_t>(0, r.cached_prompt_tokens));
  if (!r.priced) ++unpriced_requests;
  if (r.usage_estimated) ++estimated_requests;
  engine_busy_us += static_cast<std::uint64_t>(std::max<std::int64_t>(0, r.engine_busy.count()));
  cost += r.cost_pusd;
  latency.add(r.latency);
  if (r.ttft.count() >= 0) ttft.add(r.ttft);
}

void counters::merge(const counters& o) {
  requests += o.requests;
  failed += o.failed;
  prompt_tokens += o.prompt_tokens;
  completion_tokens += o.completion_tokens;
  cached_prompt_tokens += o.cached_prompt_tokens;
  unpriced_requests += o.unpriced_requests;
  estimated_requests += o.estimated_requests;
  engine_busy_us += o.engine_busy_us;
  cost += o.cost;
  latency.merge(o.latency);
  ttft.merge(o.ttft);
}

namespace {

// ---- RocksDB pieces ------------------------------------------------------------------------------

// Adds counters. A value or operand that fails its CRC makes the merge fail, so RocksDB reports
// Corruption to the reader instead of a silently wrong (or zero) sum.
class counters_merge final : public rocksdb::MergeOperator {
 public:
  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    counters sum;
    if (in.existing_value && !enc::decode_counters(std::string_view(in.existing_value->data(), in.existing_value->size()), &sum))
      return false;
    for (const auto& op : in.operand_list) {
      counters c;
      if (!enc::decode_counters(std::string_view(op.data(), op.size()), &c)) return false;
      sum.merge(c);
    }
    out->new_value = enc::encode_counters(sum);
    return true;
  }
  bool PartialMergeMulti(const rocksdb::Slice&, const std::deque<rocksdb::Slice>& ops, std::string* out,
                         rocksdb::Logger*) const override {
    counters sum;
    for (const auto& op : ops) {
      counters c;
      if (!enc::decode_counters(std::string_view(op.data(), op.size()), &c)) return false;
      sum.merge(c);
    }
    *out = enc::encode_counters(sum);
    return true;
  }
  const char* Name() const override { return "tollgate.counters.v1"; }
};

status from_rocks(const rocksdb::Status& s) {
  if (s.ok()) return {};
  status::code c = status::code::io_error;
  if (s.IsNotFound()) c = status::code::not_found;
  else if (s.IsCorruption()) c = status::code::corruption;
  else if (s.IsInvalidArgument()) c = status::code::invalid_argument;
  else if (s.IsBusy() || s.IsTryAgain()) c = status::code::busy;
  return status::make(c, s.ToString());
}

std::int64_t micros(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::string entry_key(std::int64_t start_us, std::string_view id) {
  std::string k;
  k.reserve(8 + id.size());
  enc::put_fixed64_be(k, static_cast<std::uint64_t>(start_us) ^ (1ULL << 63));  // order signed times
  k.append(id);
  return k;
}

std::string agg_key(dimension d, day_index day, std::string_view group) {
  std::string k;
  k.push_back(static_cast<char>(d));
  enc::put_fixed32_be(k, static_cast<std::uint32_t>(day) ^ (1U << 31));
  k.append(group);
  return k;
}

struct pending {
  request_record r;
  ledger::done_fn done;
};

struct spend_cell {
  day_index day = 0;
  wide_pico_usd day_total = 0;
  int month = 0;  // year*12 + month
  wide_pico_usd month_total = 0;
};

int month_of(day_index d) {
  std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{d}}};
  return static_cast<int>(ymd.year()) * 12 + static_cast<int>(static_cast<unsigned>(ymd.month())) - 1;
}

class rocks_ledger final : public ledger {
 public:
  rocks_ledger(options opts) : opts_(opts) {}

  ~rocks_ledger() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (db_) {
      if (!opts_.read_only) db_->SyncWAL();
      for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
      delete db_;
    }
    if (!secondary_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(secondary_dir_, ec);  // the secondary's own info log / manifest copy
    }
  }

  status open(const std::string& path) {
    rocksdb::Options base;
    base.create_if_missing = true;
    base.create_missing_column_families = true;
    base.IncreaseParallelism(2);
    base.manual_wal_flush = false;
    rocksdb::ColumnFamilyOptions entries_opts;
    entries_opts.compression = rocksdb::kLZ4Compression;
    rocksdb::ColumnFamilyOptions agg_opts;
    agg_opts.merge_operator = std::make_shared<counters_merge>();
    // The exactly-once check looks up every new id, and new ids are (almost) never there: bloom
    // filters on the id index (tables and memtable) answer those lookups without reading blocks.
    rocksdb::ColumnFamilyOptions ids_opts;
    rocksdb::BlockBasedTableOptions ids_table;
    ids_table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    ids_opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(ids_table));
    ids_opts.memtable_whole_key_filtering = true;
    ids_opts.memtable_prefix_bloom_size_ratio = 0.05;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
        {"entries", entries_opts},
        {"ids", ids_opts},
        {"aggregates", agg_opts},
    };
    rocksdb::Status s;
    if (opts_.read_only) {
      base.max_open_files = -1;
      secondary_dir_ = (std::filesystem::temp_directory_path() /
                        ("tollgate-ledger-secondary-" + std::to_string(::getpid()) + "-" +
                         std::to_string(reinterpret_cast<std::uintptr_t>(this))))
                           .string();
      s = rocksdb::DB::OpenAsSecondary(base, path, secondary_dir_, cfs, &handles_, &db_);
      if (s.ok()) s = db_->TryCatchUpWithPrimary();
    } else {
      s = rocksdb::DB::Open(rocksdb::DBOptions(base), path, cfs, &handles_, &db_);
    }
    if (!s.ok()) return from_rocks(s);
    if (auto st = rebuild_spend(); !st.ok()) return st;
    if (!opts_.read_only) writer_ = std::thread([this] { writer_loop(); });
    return {};
  }

  // ---- writes ----

  void record(request_record r, done_fn done) override {
    if (opts_.read_only) {
      if (done) done(status::make(status::code::invalid_argument, "ledger opened read-only"));
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        if (done) done(status::make(status::code::closed, "ledger is closing"));
        return;
      }
      queue_.push_back({std::move(r), std::move(done)});
    }
    cv_.notify_one();
  }

  status record_sync(request_record r) override {
    std::promise<status> p;
    auto f = p.get_future();
    record(std::move(r), [&p](const status& s) { p.set_value(s); });
    return f.get();
  }

  status flush() override {
    std::promise<status> p;
    auto f = p.get_future();
    {
      std::lock_guard lock(mu_);
      flush_waiters_.push_back([&p](const status& s) { p.set_value(s); });
    }
    cv_.notify_one();
    return f.get();
  }

  // ---- reads ----

  status scan(clock_type::time_point from, clock_type::time_point to,
              const std::function<bool(const request_record&)>& visit) const override {
    rocksdb::ReadOptions ro;
    std::string lo = entry_key(micros(from), ""), hi = entry_key(micros(to), "");
    rocksdb::Slice upper(hi);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[1]));
    for (it->Seek(lo); it->Valid(); it->Next()) {
      request_record r;
      if (!enc::decode_entry(std::string_view(it->value().data(), it->value().size()), &r))
        return status::make(status::code::corruption, "ledger entry fails its checksum: " + it->key().ToString(true));
      if (!visit(r)) break;
    }
    return from_rocks(it->status());
  }

  status get(const std::string& request_id, request_record* out) const override {
    std::string ts;
    auto s = db_->Get(rocksdb::ReadOptions(), handles_[2], request_id, &ts);
    if (!s.ok()) return from_rocks(s);
    if (ts.size() != 8) return status::make(status::code::corruption, "bad id index value for " + request_id);
    std::string value;
    std::string key;
    key.append(ts);
    key.append(request_id);
    s = db_->Get(rocksdb::ReadOptions(), handles_[1], key, &value);
    if (!s.ok()) return from_rocks(s);
    if (!enc::decode_entry(value, out))
      return status::make(status::code::corruption, "ledger entry fails its checksum: " + request_id);
    return {};
  }

  status daily(day_index from, day_index to, dimension by, std::vector<daily_row>* out) const override {
    out->clear();
    rocksdb::ReadOptions ro;
    std::string lo = agg_key(by, from, ""), hi = agg_key(by, to + 1, "");
    rocksdb::Slice upper(hi);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[3]));
    for (it->Seek(lo); it->Valid(); it->Next()) {
      auto k = it->key();
      if (k.size() < 5) return status::make(status::code::corruption, "bad aggregate key");
      daily_row row;
      auto be32 = static_cast<std::uint32_t>(enc::get_fixed64_be(std::string_view(k.data() + 1, 4)));
      row.day = static_cast<day_index>(be32 ^ (1U << 31));
      row.group.assign(k.data() + 5, k.size() - 5);
      if (!enc::decode_counters(std::string_view(it->value().data(), it->value().size()), &row.c))
        return status::make(status::code::corruption, "aggregate fails its checksum: " + std::string(to_string(by)) +
                                                          " " + day_string(row.day) + " " + row.group);
      out->push_back(std::move(row));
    }
    return from_rocks(it->status());
  }

  spend key_spend(const std::string& key, clock_type::time_point now) const override { return lookup(keys_, key, now); }
  spend team_spend(const std::string& team, clock_type::time_point now) const override { return lookup(teams_, team, now); }

  status prune(clock_type::time_point before, std::uint64_t* removed) override {
    if (opts_.read_only) return status::make(status::code::invalid_argument, "ledger opened read-only");
    std::uint64_t n = 0;
    rocksdb::ReadOptions ro;
    std::string hi = entry_key(micros(before), "");
    rocksdb::Slice upper(hi);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[1]));
    rocksdb::WriteBatch batch;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto k = it->key();
      batch.Delete(handles_[2], rocksdb::Slice(k.data() + 8, k.size() - 8));
      ++n;
      if (batch.Count() >= 10000) {
        if (auto s = db_->Write(rocksdb::WriteOptions(), &batch); !s.ok()) return from_rocks(s);
        batch.Clear();
      }
    }
    if (!it->status().ok()) return from_rocks(it->status());
    batch.DeleteRange(handles_[1], entry_key(std::numeric_limits<std::int64_t>::min(), ""), hi);
    if (auto s = db_->Write(rocksdb::WriteOptions(), &batch); !s.ok()) return from_rocks(s);
    if (removed) *removed = n;
    return {};
  }

  status checkpoint(const std::string& dir) override {
    rocksdb::Checkpoint* cp = nullptr;
    auto s = rocksdb::Checkpoint::Create(db_, &cp);
    if (!s.ok()) return from_rocks(s);
    std::unique_ptr<rocksdb::Checkpoint> owned(cp);
    return from_rocks(owned->CreateCheckpoint(dir));
  }

  status catch_up() override {
    if (!opts_.read_only) return {};
    return from_rocks(db_->TryCatchUpWithPrimary());
  }

  std::uint64_t entries_written() const override { return written_.load(); }

 private:
  spend lookup(const std::unordered_map<std::string, spend_cell>& m, const std::string& name,
               clock_type::time_point now) const {
    std::lock_guard lock(spend_mu_);
    auto it = m.find(name);
    if (it == m.end()) return {};
    day_index today = to_day(now, opts_.utc_offset_minutes);
    spend s;
    if (it->second.day == today) s.day = it->second.day_total;
    if (it->second.month == month_of(today)) s.month = it->second.month_total;
    return s;
  }

  static void add_spend(std::unordered_map<std::string, spend_cell>& m, const std::string& name, day_index day,
                        wide_pico_usd cost) {
    auto& c = m[name];
    if (day > c.day) {
      c.day = day;
      c.day_total = 0;
    }
    if (day == c.day) c.day_total += cost;
    int month = month_of(day);
    if (month > c.month) {
      c.month = month;
      c.month_total = 0;
    }
    if (month == c.month) c.month_total += cost;
  }

  status rebuild_spend() {
    day_index today = to_day(opts_.now ? opts_.now() : clock_type::now(), opts_.utc_offset_minutes);
    std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{today}}};
    day_index month_start = static_cast<day_index>(
        std::chrono::sys_days{ymd.year() / ymd.month() / std::chrono::day{1}}.time_since_epoch().count());
    std::lock_guard lock(spend_mu_);
    for (auto [dim, map] : {std::pair{dimension::key, &keys_}, std::pair{dimension::team, &teams_}}) {
      std::vector<daily_row> rows;
      if (auto s = daily(month_start, today, dim, &rows); !s.ok()) return s;
      for (const auto& row : rows) add_spend(*map, row.group, row.day, row.c.cost);
    }
    return {};
  }

  void writer_loop() {
    auto last_sync = std::chrono::steady_clock::now();
    bool unsynced = false;
    std::vector<pending> batch;
    std::vector<done_fn> flushes;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        auto wait_for = opts_.sync == sync_mode::interval && unsynced ? opts_.sync_interval
                                                                      : std::chrono::milliseconds(1000);
        cv_.wait_for(lock, wait_for, [&] { return stopping_ || !queue_.empty() || !flush_waiters_.empty(); });
        std::size_t n = std::min(queue_.size(), opts_.max_batch);
        batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(n)));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
        if (queue_.empty()) flushes.swap(flush_waiters_);
        if (stopping_ && batch.empty() && queue_.empty()) {
          for (auto& f : flushes) f({});
          return;
        }
      }
      if (!batch.empty()) {
        write_batch(batch);
        unsynced = true;
        batch.clear();
      }
      if (opts_.sync == sync_mode::interval && unsynced &&
          std::chrono::steady_clock::now() - last_sync >= opts_.sync_interval) {
        db_->SyncWAL();
        last_sync = std::chrono::steady_clock::now();
        unsynced = false;
      }
      for (auto& f : flushes) f({});
      flushes.clear();
    }
  }

  void write_batch(std::vector<pending>& batch) {
    rocksdb::WriteBatch wb;
    std::vector<status> results(batch.size());
    std::unordered_set<std::string_view> seen;
    // Aggregates of the whole batch, combined before they reach RocksDB: one merge operand per
    // (dimension, day, group) instead of one per request.
    std::unordered_map<std::string, counters> aggs;
    // Exactly once: ids already in the ledger (or twice in this batch) are refused.
    std::vector<rocksdb::Slice> ids;
    ids.reserve(batch.size());
    for (auto& p : batch) ids.emplace_back(p.r.request_id);
    std::vector<std::string> found(batch.size());
    std::vector<rocksdb::ColumnFamilyHandle*> cfs(batch.size(), handles_[2]);
    std::vector<rocksdb::Status> gets = db_->MultiGet(rocksdb::ReadOptions(), cfs, ids, &found);
    std::size_t accepted = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto& r = batch[i].r;
      if (r.request_id.empty()) {
        results[i] = status::make(status::code::invalid_argument, "entry without a request id");
        continue;
      }
      if (gets[i].ok() || !seen.insert(r.request_id).second) {
        results[i] = status::make(status::code::duplicate, "request id already recorded: " + r.request_id);
        continue;
      }
      if (!gets[i].IsNotFound()) {
        results[i] = from_rocks(gets[i]);
        continue;
      }
      std::int64_t ts = micros(r.started);
      std::string key = entry_key(ts, r.request_id);
      wb.Put(handles_[1], key, enc::encode_entry(r));
      wb.Put(handles_[2], r.request_id, rocksdb::Slice(key.data(), 8));
      day_index day = to_day(r.started, opts_.utc_offset_minutes);
      aggs[agg_key(dimension::total, day, "")].add(r);
      aggs[agg_key(dimension::target, day, r.target)].add(r);
      aggs[agg_key(dimension::model, day, r.model)].add(r);
      aggs[agg_key(dimension::key, day, r.key_name)].add(r);
      aggs[agg_key(dimension::team, day, r.team)].add(r);
      aggs[agg_key(dimension::route, day, r.route)].add(r);
      ++accepted;
    }
    for (const auto& [k, c] : aggs) wb.Merge(handles_[3], k, enc::encode_counters(c));
    rocksdb::WriteOptions wo;
    wo.sync = opts_.sync == sync_mode::always;
    status written;
    if (accepted) written = from_rocks(db_->Write(wo, &wb));
    if (written.ok() && accepted) {
      written_ += accepted;
      std::lock_guard lock(spend_mu_);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!results[i].ok()) continue;
        const auto& r = batch[i].r;
        day_index day = to_day(r.started, opts_.utc_offset_minutes);
        if (!r.key_name.empty()) add_spend(keys_, r.key_name, day, r.cost_pusd);
        if (!r.team.empty()) add_spend(teams_, r.team, day, r.cost_pusd);
      }
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      status s = results[i].ok() ? written : results[i];
      if (batch[i].done) batch[i].done(s);
    }
  }

  options opts_;
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::string secondary_dir_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<pending> queue_;
  std::vector<done_fn> flush_waiters_;
  bool stopping_ = false;
  std::thread writer_;
  std::atomic<std::uint64_t> written_{0};

  mutable std::mutex spend_mu_;
  std::unordered_map<std::string, spend_cell> keys_, teams_;
};

}  // namespace

std::unique_ptr<ledger> ledger::open(const std::string& path, const options& opts, status* error) {
  auto l = std::make_unique<rocks_ledger>(opts);
  status s = l->open(path);
  if (!s.ok()) {
    if (error) *error = s;
    return nullptr;
  }
  return l;
}

}  // namespace gw::ledger
