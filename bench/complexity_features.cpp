// Prints the complexity scorer's features for chat requests (JSONL on stdin: {"id","messages",
// optional "tools","response_format","max_tokens"}), one line each:
//   {"id", "x": [dense_vector() values], "h": [term hashes]}
// preceded by one header line {"names": [complexity_feature_names()]}. scripts/train_complexity.py
// fits the model on this output, so training and serving share one feature implementation.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "policies/complexity.h"

int main() {
  std::ios::sync_with_stdio(false);
  nlohmann::json header;
  header["names"] = nlohmann::json::array();
  for (auto n : gw::policies::complexity_feature_names()) header["names"].push_back(std::string(n));
  std::cout << header.dump() << "\n";
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    auto req = nlohmann::json::parse(line);
    auto view = gw::policies::read_chat_request(req);
    auto f = gw::policies::extract_features(view.messages, view.has_tools, view.wants_json, view.max_tokens);
    nlohmann::json out;
    out["id"] = req["id"];
    out["x"] = gw::policies::dense_vector(f);
    out["h"] = f.term_hashes;
    std::cout << out.dump() << "\n";
  }
}
