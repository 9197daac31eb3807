#include "policies/privacy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

using namespace gw::policies;

namespace {
// The types found in `text`, with the matched text, e.g. {"CREDIT_CARD:4111 1111 1111 1111"}.
std::vector<std::string> found(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& m : detect_pii(text))
    out.push_back(std::string(to_string(m.type)) + ":" + std::string(text.substr(m.start, m.end - m.start)));
  return out;
}
using v = std::vector<std::string>;
}  // namespace

TEST(privacy, checksums) {
  EXPECT_TRUE(luhn_valid("4111111111111111"));
  EXPECT_FALSE(luhn_valid("4111111111111112"));
  EXPECT_TRUE(luhn_valid("378282246310005"));
  EXPECT_TRUE(iban_valid("GB82WEST12345698765432"));
  EXPECT_FALSE(iban_valid("GB82WEST12345698765433"));  // mod-97 fails
  EXPECT_FALSE(iban_valid("GB82WEST1234569876543"));   // wrong length for GB
  EXPECT_TRUE(iban_valid("DE89370400440532013000"));
  EXPECT_TRUE(ssn_valid(123, 45, 6789));
  EXPECT_FALSE(ssn_valid(0, 45, 6789));
  EXPECT_FALSE(ssn_valid(666, 45, 6789));
  EXPECT_FALSE(ssn_valid(901, 45, 6789));
  EXPECT_FALSE(ssn_valid(123, 0, 6789));
  EXPECT_FALSE(ssn_valid(123, 45, 0));
}

TEST(privacy, cards_ibans_ssns_emails_ips) {
  EXPECT_EQ(found("card 4111 1111 1111 1111 exp 12/29"), v{"CREDIT_CARD:4111 1111 1111 1111"});
  EXPECT_EQ(found("card 4111-1111-1111-1111."), v{"CREDIT_CARD:4111-1111-1111-1111"});
  EXPECT_EQ(found("card 4111111111111112"), v{});  // Luhn fails, too long for a phone
  EXPECT_EQ(found("IBAN GB82 WEST 1234 5698 7654 32 please"), v{"IBAN_CODE:GB82 WEST 1234 5698 7654 32"});
  EXPECT_EQ(found("iban de89370400440532013000"), v{"IBAN_CODE:de89370400440532013000"});
  EXPECT_EQ(found("IBAN GB82WEST12345698765433"), v{});
  EXPECT_EQ(found("SSN 123-45-6789"), v{"US_SSN:123-45-6789"});
  EXPECT_EQ(found("SSN 666-45-6789"), v{});
  EXPECT_EQ(found("mail a.b+c@mail.example.co.uk, now"), v{"EMAIL_ADDRESS:a.b+c@mail.example.co.uk"});
  EXPECT_EQ(found("not an email: a@b, @handle, x@y.1"), v{});
  EXPECT_EQ(found("from 192.168.1.20 to 10.0.0.1"), (v{"IP_ADDRESS:192.168.1.20", "IP_ADDRESS:10.0.0.1"}));
  EXPECT_EQ(found("version 1.2.3 and 300.1.1.1"), v{});
  EXPECT_EQ(found("v6 2001:db8::8a2e:370:7334 ok"), v{"IP_ADDRESS:2001:db8::8a2e:370:7334"});
  EXPECT_EQ(found("at 11:34:35 today"), v{});
}

TEST(privacy, phones_in_many_formats_but_not_dates_zips_or_addresses) {
  for (std::string p : {"+1-984-182-0190", "(555) 123-4567", "+44 20 7946 0958", "0490 75 40 81", "03.93.92.16.85",
                        "+46 (0)8 928 571 38", "9498777106", "345-899-3560x4587", "0393 1144137"}) {
    auto f = found("call " + p + " now");
    ASSERT_EQ(f.size(), 1u) << p;
    EXPECT_EQ(f[0], "PHONE_NUMBER:" + p);
  }
  for (std::string n : {"2023-04-16", "2/8/1935", "on 2000-04-16 11:34:35", "zip 75534-030", "3610-114 Lisbon",
                        "3747 3911 Fourth Avenue", "12345", "1,234,567", "year 2019 1234"})
    EXPECT_EQ(found(n), v{}) << n;
}

TEST(privacy, secrets_corpus_precision_and_recall) {
  // True positives: realistic-looking (fabricated) credentials.
  const std::vector<std::string> positives = {
      "AKIAIOSFODNN7EXAMPLQ",
      "ghp_8yT2kQz9LmN4pR7sV1wX3bC5dF6gH0jK2lM4",
      "github_pat_11ABCDEFG0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789aBcDeFgHiJkLmN",
      "glpat-Xy7kQ2mN9pR4sT6vW8zA",
      "xoxb-2384729384-2938472938472-a8Fk2Lm9Qp3Rs7Tv",
      "sk_live_51H8xKzLm2Np4Qr7St9Uv1Wx3Yz",
      "sk-proj-Ab3dEf9hIj2LmN5pQr8StUv1WxYz4AbCdEfGh7IjKl0MnOp",
      "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa9Z",
      "sk-Ab3dEf9hIj2LmN5pQr8StUv1WxYz4AbCdEfGh7Ij",
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----",
      "db_password=Zq8#kLm2!xR7vP4w",
      "\"client_secret\": \"9f8Kq2LmZx7Rv4Tp1Wn6\"",
      "API_KEY: Tk3mQ9xZ2vL7pR4sW8nY",
  };
  // Look-alikes that are not secrets: placeholders, low entropy, prose.
  const std::vector<std::string> negatives = {
      "AKIAXXXXXXXXXXXXXXXX is the documented format",
      "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
      "sk-your-api-key-here",
      "sk-...",
      "password=changeme",
      "password = ********",
      "token: <YOUR_TOKEN>",
      "api_key=1234567890123456",
      "the secret to good bread is time",
      "eyJ is how base64 JSON starts",
      "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
      "Use the auth header with a bearer token.",
  };
  int tp = 0, fn = 0, fp = 0;
  for (const auto& p : positives) {
    bool hit = false;
    for (const auto& m : detect_pii("config: " + p + " end")) hit = hit || m.type == pii_type::secret;
    (hit ? tp : fn)++;
    EXPECT_TRUE(hit) << p;
  }
  for (const auto& n : negatives) {
    bool hit = false;
    for (const auto& m : detect_pii(n)) hit = hit || m.type == pii_type::secret;
    if (hit) ++fp;
    EXPECT_FALSE(hit) << n;
  }
  double precision = tp + fp ? double(tp) / (tp + fp) : 0, recall = double(tp) / (tp + fn);
  std::printf("secrets corpus: %d true positives, %d false positives, %d missed: precision %.3f recall %.3f\n", tp, fp, fn,
              precision, recall);
  RecordProperty("secret_precision", std::to_string(precision));
  RecordProperty("secret_recall", std::to_string(recall));
}

TEST(privacy, offsets_are_utf8_bytes_and_matches_are_ordered) {
  std::string text = "Ünïcödé 🎉 mail x@y.com then 123-45-6789";
  auto m = detect_pii(text);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(text.substr(m[0].start, m[0].end - m[0].start), "x@y.com");
  EXPECT_EQ(text.substr(m[1].start, m[1].end - m[1].start), "123-45-6789");
  EXPECT_LT(m[0].start, m[1].start);
}
