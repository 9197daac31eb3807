// Custom detectors (RE2 patterns, keywords) and redaction with restoration.
#include "policies/custom_detect.h"
#include "policies/redact.h"

#include <gtest/gtest.h>

using namespace gw::policies;

TEST(custom_detect, patterns_and_keywords_report_type_and_offsets) {
  std::string err;
  auto d = custom_detectors::build({{"EMPLOYEE_ID", R"(EMP-\d{6})"}},
                                   {{"CODENAME", {"Project Falcon", "bluebird"}, false}}, &err);
  ASSERT_TRUE(d) << err;
  std::string text = "EMP-123456 works on project falcon; EMP-12 is short; Bluebirds no; bluebird yes";
  auto m = d->scan(text);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].type, "EMPLOYEE_ID");
  EXPECT_EQ(text.substr(m[0].start, m[0].end - m[0].start), "EMP-123456");
  EXPECT_EQ(m[1].type, "CODENAME");
  EXPECT_EQ(text.substr(m[1].start, m[1].end - m[1].start), "project falcon");
  EXPECT_EQ(text.substr(m[2].start, m[2].end - m[2].start), "bluebird");  // not "Bluebirds"
}

TEST(custom_detect, bad_or_empty_matching_patterns_are_rejected) {
  std::string err;
  EXPECT_FALSE(custom_detectors::build({{"X", "(unclosed"}}, {}, &err));
  EXPECT_NE(err.find("pattern X"), std::string::npos) << err;
  EXPECT_FALSE(custom_detectors::build({{"Y", "a*"}}, {}, &err));
  EXPECT_NE(err.find("empty string"), std::string::npos) << err;
}

TEST(custom_detect, linear_time_on_hostile_input) {
  std::string err;
  auto d = custom_detectors::build({{"EVIL", "(a+)+b"}}, {}, &err);
  ASSERT_TRUE(d) << err;
  std::string text(200000, 'a');
  EXPECT_TRUE(d->scan(text).empty());  // backtracking engines take forever here
}

TEST(redact, same_value_same_placeholder_and_restore_round_trips) {
  redaction_map m;
  std::string a = "mail bob@x.org or call 555-0100";
  auto ra = m.redact(a, {{"EMAIL_ADDRESS", 5, 14}, {"PHONE_NUMBER", 23, 31}});
  EXPECT_EQ(ra, "mail [EMAIL_ADDRESS_1] or call [PHONE_NUMBER_1]");
  std::string b = "again: bob@x.org, and eve@y.org";
  auto rb = m.redact(b, {{"EMAIL_ADDRESS", 7, 16}, {"EMAIL_ADDRESS", 22, 31}});
  EXPECT_EQ(rb, "again: [EMAIL_ADDRESS_1], and [EMAIL_ADDRESS_2]");
  EXPECT_EQ(m.restore("Sure, I wrote to [EMAIL_ADDRESS_2] and [EMAIL_ADDRESS_1].", false),
            "Sure, I wrote to eve@y.org and bob@x.org.");
  EXPECT_EQ(m.restore("[unrelated] [EMAIL_ADDRESS_9]", false), "[unrelated] [EMAIL_ADDRESS_9]");
}

TEST(redact, json_escaping_and_stream_hold_back) {
  redaction_map m;
  m.redact("say \"hi\"\n", {{"SECRET", 4, 8}});
  EXPECT_EQ(m.restore(R"({"content":"[SECRET_1]"})", true), R"({"content":"\"hi\""})");
  EXPECT_EQ(m.partial_suffix("data: [SECR"), 5u);
  EXPECT_EQ(m.partial_suffix("data: [SECRET_1]"), 0u);
  EXPECT_EQ(m.partial_suffix("choices\":[{"), 0u);
}

TEST(redact, overlapping_spans_keep_the_first) {
  redaction_map m;
  EXPECT_EQ(m.redact("abcdef", {{"A", 0, 4}, {"B", 2, 6}}), "[A_1]ef");
}
