#include "gateway/ledger_setup.h"

#include <filesystem>

namespace gw::gateway {

std::string ledger_path(const config& cfg) {
  return (std::filesystem::path(cfg.server.data_dir) / "ledger").string();
}

ledger::options ledger_options(const config& cfg, bool read_only) {
  ledger::options o;
  o.read_only = read_only;
  o.sync = cfg.ledger.sync == "always" ? ledger::sync_mode::always
           : cfg.ledger.sync == "none" ? ledger::sync_mode::none
                                       : ledger::sync_mode::interval;
  o.sync_interval = cfg.ledger.sync_interval;
  o.utc_offset_minutes = cfg.reports.utc_offset_minutes;
  return o;
}

std::unique_ptr<ledger::ledger> open_ledger(const config& cfg, bool read_only, std::string* error) {
  auto path = ledger_path(cfg);
  std::error_code ec;
  if (read_only) {
    if (!std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec)) {
      if (error) *error = "no ledger at " + path + " (has `tollgate serve` run with this data_dir?)";
      return nullptr;
    }
  } else {
    std::filesystem::create_directories(path, ec);
    if (ec) {
      if (error) *error = "cannot create " + path + ": " + ec.message();
      return nullptr;
    }
  }
  ledger::status st;
  auto l = ledger::ledger::open(path, ledger_options(cfg, read_only), &st);
  if (!l && error) *error = "cannot open the ledger at " + path + ": " + st.message;
  return l;
}

}  // namespace gw::gateway
