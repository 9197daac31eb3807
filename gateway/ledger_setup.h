#pragma once
// Opening the ledger a config describes: <server.data_dir>/ledger, with the config's sync and
// timezone settings. Used by `serve` (read-write) and by reports/exports (read-only view).
#include <memory>
#include <string>

#include "gateway/config.h"
#include "ledger/ledger.h"

namespace gw::gateway {

std::string ledger_path(const config& cfg);
ledger::options ledger_options(const config& cfg, bool read_only);
// nullptr with `error` set on failure (the message names the directory).
std::unique_ptr<ledger::ledger> open_ledger(const config& cfg, bool read_only, std::string* error);

}  // namespace gw::gateway
