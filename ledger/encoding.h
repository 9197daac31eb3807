#pragma once
// Binary encodings of ledger values (internal to ledger/*.cpp). Entries and counters carry a
// version byte and a CRC-32 so that a damaged value is reported as corruption, never read as zero.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ledger/ledger.h"

namespace gw::ledger::encoding {

void put_varint(std::string& out, std::uint64_t v);
bool get_varint(std::string_view& in, std::uint64_t* v);
void put_fixed64_be(std::string& out, std::uint64_t v);
// Big-endian value of the first min(8, in.size()) bytes.
std::uint64_t get_fixed64_be(std::string_view in);
void put_fixed32_be(std::string& out, std::uint32_t v);

std::string encode_entry(const request_record& r);
bool decode_entry(std::string_view in, request_record* out);

// Sparse counters: only non-zero fields are stored, so one request's contribution is ~30 bytes.
std::string encode_counters(const counters& c);
bool decode_counters(std::string_view in, counters* out);

}  // namespace gw::ledger::encoding
