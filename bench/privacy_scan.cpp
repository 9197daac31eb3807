// Runs the privacy detectors over chat requests (JSONL on stdin: {"id","messages"}) and prints
// {"id","pii":[{"type","text","message","start","end"}]} per line: the input of
// ../shared/tools/pii_eval.py. Until `tollgate score` exists this is how detector quality is measured.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "policies/privacy.h"

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    auto req = nlohmann::json::parse(line);
    nlohmann::json out;
    out["id"] = req["id"];
    out["pii"] = nlohmann::json::array();
    int mi = 0;
    for (const auto& m : req["messages"]) {
      if (m.contains("content") && m["content"].is_string()) {
        const std::string& text = m["content"].get_ref<const std::string&>();
        for (const auto& hit : gw::policies::detect_pii(text))
          out["pii"].push_back({{"type", gw::policies::to_string(hit.type)},
                                {"text", text.substr(hit.start, hit.end - hit.start)},
                                {"message", mi},
                                {"start", hit.start},
                                {"end", hit.end},
                                {"rule", hit.detail}});
      }
      ++mi;
    }
    std::cout << out.dump() << "\n";
  }
}
