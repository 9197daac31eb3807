// tollgate: one binary, subcommands wired in gateway/cli.cpp.
#include "gateway/cli.h"

int main(int argc, char** argv) { return gw::gateway::run_cli(argc, argv); }
