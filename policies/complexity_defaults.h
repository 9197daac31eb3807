#pragma once
// The complexity model and calibration sample shipped with tollgate (policies/complexity_model.json
// and policies/complexity_calibration.json, compiled in at build time), so a binary routes the
// same way wherever it runs. routing.complexity.model_file / calibration_file replace them.
#include <string_view>

namespace gw::policies {
std::string_view builtin_complexity_model_json();
std::string_view builtin_complexity_calibration_json();
}  // namespace gw::policies
