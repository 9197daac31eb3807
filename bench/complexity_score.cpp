// Scores chat requests with the complexity model: JSONL on stdin ({"id","messages", optional
// "tools","response_format","max_tokens"}), {"id","complexity"} per line on stdout: the input of
// ../shared/tools/route_eval.py.
//   complexity_score MODEL.json < requests.jsonl
//   complexity_score MODEL.json --bench    time extract+score on a 1 KB prompt, print ns/call
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "policies/complexity.h"

namespace {
int bench(const gw::policies::complexity_model& model) {
  std::string text =
      "A train leaves the station at 3:15 pm travelling at 80 km/h. A second train leaves the same "
      "station 45 minutes later on a parallel track at 110 km/h. Each train carries 240 passengers and "
      "tickets cost $12.50 per passenger. Calculate, step by step, how long after the first train "
      "departs the second one catches up, how far from the station this happens, and how much money "
      "the two trains collect in total. Then explain why the answer would change if the second train "
      "left 30 minutes later instead, and prove that the catch-up distance grows linearly with delay.\n";
  while (text.size() < 1024) text += text;
  text.resize(1024);
  std::vector<std::pair<std::string, std::string>> msgs{{"system", "You are helpful."}, {"user", text}};
  const int iters = 20000;
  double sink = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i)
    sink += gw::policies::complexity_score(gw::policies::extract_features(msgs, false, false, 0), model);
  auto t1 = std::chrono::steady_clock::now();
  double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / iters;
  std::printf("%-28s %10s %10s\n", "case", "us/call", "bound");
  std::printf("%-28s %10.2f %10s\n", "extract+score, 1 KB prompt", ns / 1000, "< 50");
  std::printf("{\"bench\":\"complexity_score\",\"prompt_bytes\":1024,\"us_per_call\":%.3f,\"checksum\":%.6g}\n",
              ns / 1000, sink / iters);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: complexity_score MODEL.json [--bench] < requests.jsonl\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "complexity_score: cannot read " << argv[1] << "\n";
    return 1;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  gw::policies::complexity_model model;
  try {
    model = gw::policies::parse_complexity_model(ss.str());
  } catch (const std::exception& e) {
    std::cerr << "complexity_score: " << argv[1] << ": " << e.what() << "\n";
    return 1;
  }
  if (argc > 2 && std::string(argv[2]) == "--bench") return bench(model);
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    auto req = nlohmann::json::parse(line);
    auto view = gw::policies::read_chat_request(req);
    double s = gw::policies::complexity_score(gw::policies::extract_features(view.messages, view.has_tools, view.wants_json, view.max_tokens), model);
    nlohmann::json out;
    out["id"] = req["id"];
    out["complexity"] = s;
    std::cout << out.dump() << "\n";
  }
}
