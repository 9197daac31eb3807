#pragma once
// The `tollgate` command line: serve, check-config, hash-key, version. Returns the exit code.
namespace gw::gateway {
int run_cli(int argc, char** argv);
}
