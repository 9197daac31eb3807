// Chat templates: the Jinja2-subset interpreter (expressions, statements, whitespace control,
// filters, tests, methods, errors, limits) and real models' templates rendered to exact prompts.
// Expected strings are derived by hand from Python/Jinja2 semantics and each model's documented
// prompt format, or taken from llama.cpp's test vectors (tests/data/chat_templates/).
#include "local_engine/chat_template.h"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "local_engine/jinja_interpreter.h"
#include "tests/support/test_env.h"

namespace {

namespace le = gw::local_engine;
using ojson = nlohmann::ordered_json;

// EXPECT_CONTAINS(text, part): `part` occurs in `text`.
#define EXPECT_CONTAINS(text, part)                                                        \
  do {                                                                                     \
    const std::string text_ = (text);                                                      \
    EXPECT_NE(text_.find(part), std::string::npos) << "'" << text_ << "' lacks '" << (part) << "'"; \
  } while (0)

bool starts_with(const std::string& s, std::string_view prefix) { return s.compare(0, prefix.size(), prefix) == 0; }
bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::filesystem::path templates_dir() { return gw::test::source_dir() / "tests" / "data" / "chat_templates"; }

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Renders `source` with no messages, add_generation_prompt=false and `context` as variables.
// Returns the output, or "PARSE ERROR: ..." / "ERROR: ...".
std::string eval(std::string_view source, const ojson& context = ojson::object()) {
  std::string err;
  auto t = le::chat_template::parse(source, &err);
  if (!t) return "PARSE ERROR: " + err;
  le::chat_template_inputs in;
  in.messages = ojson::array();
  in.add_generation_prompt = false;
  in.extra_context = context;
  auto out = t->render(in, &err);
  return out ? *out : "ERROR: " + err;
}

struct render_request {
  ojson messages;
  ojson tools;
  std::string bos, eos;
  ojson extra = ojson::object();
  bool add_generation_prompt = true;
};

std::string render_source(const std::string& source, const render_request& r) {
  std::string err;
  auto t = le::chat_template::parse(source, &err);
  if (!t) return "PARSE ERROR: " + err;
  le::chat_template_inputs in;
  in.messages = r.messages;
  in.tools = r.tools;
  in.bos_token = r.bos;
  in.eos_token = r.eos;
  in.extra_context = r.extra;
  in.add_generation_prompt = r.add_generation_prompt;
  auto out = t->render(in, &err);
  return out ? *out : "ERROR: " + err;
}

std::string render_file(const std::string& file, const render_request& r) {
  std::string source = read_file(templates_dir() / file);
  if (source.empty()) return "MISSING FILE " + file;
  return render_source(source, r);
}

// system + user + assistant + user.
ojson conversation() {
  return ojson::parse(R"([
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi there! How can I help?"},
    {"role": "user", "content": "What is 2+2?"}])");
}

ojson weather_tools() {
  return ojson::parse(R"([{"type": "function", "function": {"name": "get_weather",
    "description": "Get the current weather in a city", "parameters": {"type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"]}}}])");
}

// A tool round trip in the OpenAI wire format: arguments as a JSON string, content null.
ojson tool_conversation() {
  return ojson::parse(R"([
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call12345", "type": "function",
      "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call12345", "content": "18 degrees C, sunny"}])");
}

const char* const kToolJsonCompact =
    R"({"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city", )"
    R"("parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"]}}})";

const char* const kToolJsonIndent4 = R"({
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string",
                    "description": "City name"
                }
            },
            "required": [
                "city"
            ]
        }
    }
})";

// ---------------------------------------------------------------------------------------------
// Expressions

TEST(JinjaExpressions, Arithmetic) {
  EXPECT_EQ(eval("{{ 1 + 2 * 3 }}"), "7");
  EXPECT_EQ(eval("{{ (1 + 2) * 3 }}"), "9");
  EXPECT_EQ(eval("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }}"), "3 -4 1 2 -2");
  EXPECT_EQ(eval("{{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }}"), "3.5 2.0 1024 0.5");
  EXPECT_EQ(eval("{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-5 }} {{ 100.0 }} {{ -0.0 }}"),
            "0.30000000000000004 1e+20 1.5e-05 100.0 -0.0");
  EXPECT_EQ(eval("{{ 1 + 1.5 }} {{ true + 1 }} {{ -(3) }} {{ +4 }}"), "2.5 2 -3 4");
  EXPECT_EQ(eval("{{ 10 - 2 - 3 }} {{ 2 * 3 ** 2 }}"), "5 18");
  EXPECT_EQ(eval("{{ 1_000 + 1 }}"), "1001");
}

TEST(JinjaExpressions, StringsAndConcatenation) {
  EXPECT_EQ(eval("{{ 'a' ~ 1 ~ none ~ true ~ 2.0 }}"), "a1NoneTrue2.0");
  EXPECT_EQ(eval("{{ 'ab' + \"cd\" }} {{ 'ab' * 3 }} {{ 2 * 'x' }}"), "abcd ababab xx");
  EXPECT_EQ(eval("{{ 'a' 'b' }}"), "ab");  // adjacent literals concatenate
  EXPECT_EQ(eval(R"({{ 'tab\there\nnew' }}|{{ "q\"uote" }}|{{ '\u00e9\x41' }})"), "tab\there\nnew|q\"uote|\xc3\xa9" "A");
  EXPECT_EQ(eval("{{ 'it''s' }}"), "its");
  EXPECT_EQ(eval("{{ [1, 2] + [3] }} {{ [0] * 3 }}"), "[1, 2, 3] [0, 0, 0]");
  EXPECT_EQ(eval("{{ '%s is %d years, %.2f%%' % ('Ann', 30, 1.5) }}"), "Ann is 30 years, 1.50%");
  EXPECT_EQ(eval("{{ 'hi %s' % 'there' }}"), "hi there");
}

TEST(JinjaExpressions, ComparisonsAndLogic) {
  EXPECT_EQ(eval("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' != 'b' }}"),
            "True False True True True");
  EXPECT_EQ(eval("{{ 'at' in 'cat' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' in {'k': 1} }}"),
            "True True True False");
  EXPECT_EQ(eval("{{ none or 'x' }} {{ 0 and 1 }} {{ 2 and 3 }} {{ not [] }} {{ not 'a' }}"), "x 0 3 True False");
  // Conditionals chain left to right: ('a' if 1) if 0 else 1.
  EXPECT_EQ(eval("{{ 'y' if 0 else 'n' }}|{{ 'y' if 0 }}|{{ 'a' if 1 if 0 else 1 }}"), "n||1");
  EXPECT_EQ(eval("{{ [1, 2] == [1, 2] }} {{ {'a': [1]} == {'a': [1]} }} {{ [1] < [1, 0] }} {{ 'B' < 'a' }}"),
            "True True True True");
  EXPECT_EQ(eval("{{ x == y }} {{ x == none }}"), "True False");  // undefined == undefined
}

TEST(JinjaExpressions, ReprOfContainers) {
  EXPECT_EQ(eval("{{ {'a': 1, 'b': [true, none, 'x', 1.5]} }}"), "{'a': 1, 'b': [True, None, 'x', 1.5]}");
  EXPECT_EQ(eval("{{ [\"it's\", 'say \"hi\"', 'both \\' \"'] }}"), R"(["it's", 'say "hi"', 'both \' "'])");
  EXPECT_EQ(eval("{{ (1,) }} {{ (1, 'a') }} {{ () }} {{ [] }} {{ {} }}"), "(1,) (1, 'a') () [] {}");
  EXPECT_EQ(eval("{{ ['a\\nb'] }}"), R"(['a\nb'])");
  EXPECT_EQ(eval("{{ d }}", {{"d", {{"z", 1}, {"a", 2}}}}), "{'z': 1, 'a': 2}");  // insertion order
  // A repeated key keeps its first position and takes the last value (Python); small and large dicts.
  EXPECT_EQ(eval("{{ {'a': 1, 'b': 2, 'a': 3} }}"), "{'a': 3, 'b': 2}");
  EXPECT_EQ(eval("{% set d = {'k0': 0, 'k1': 1, 'k2': 2, 'k3': 3, 'k4': 4, 'k5': 5, 'k6': 6, 'k7': 7, 'k8': 8, 'k1': 'x', 1: 'one'} %}"
                 "{{ d | length }} {{ d.k1 }} {{ d['k8'] }} {{ d[1] }} {{ d.k9 is defined }} {{ (d | list)[1] }}"),
            "10 x 8 one False k1");
}

TEST(JinjaExpressions, SubscriptsAndSlices) {
  ojson ctx = {{"xs", {1, 2, 3, 4, 5}}, {"s", "h\xc3\xa9llo"}, {"d", {{"k", "v"}, {"items", "key"}}}};
  EXPECT_EQ(eval("{{ xs[0] }} {{ xs[-1] }} {{ xs[1:3] }} {{ xs[::2] }} {{ xs[::-1] }} {{ xs[-2:] }} {{ xs[:-3] }}", ctx),
            "1 5 [2, 3] [1, 3, 5] [5, 4, 3, 2, 1] [4, 5] [1, 2]");
  EXPECT_EQ(eval("{{ xs[10] is undefined }} {{ xs[3:1] }} {{ xs.0 }}", ctx), "True [] 1");
  EXPECT_EQ(eval("{{ xs[::9223372036854775807] }} {{ xs[-9223372036854775807:2] }} {{ 'abc'[::-9223372036854775807] }}", ctx),
            "[1] [1, 2] c");
  EXPECT_EQ(eval("[{{ '' * 1000000000000 }}] {{ [] * 1000000000000 }}"), "[] []");
  // Strings index by code point.
  EXPECT_EQ(eval("{{ s[1] }} {{ s[::-1] }} {{ s[1:3] }} {{ s|length }}", ctx), "\xc3\xa9 oll\xc3\xa9h \xc3\xa9l 5");
  // `.` finds dict methods first; `[]` finds keys first.
  EXPECT_EQ(eval("{{ d.k }} {{ d['k'] }} {{ d['items'] }} {{ d.items() | list }}", ctx),
            "v v key [('k', 'v'), ('items', 'key')]");
}

TEST(JinjaExpressions, UndefinedSemantics) {
  EXPECT_EQ(eval("[{{ nothing }}]"), "[]");
  EXPECT_EQ(eval("{{ nothing | default('d') }} {{ nothing | length }} {{ nothing is defined }}"), "d 0 False");
  EXPECT_EQ(eval("{% for x in nothing %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(eval("[{{ d.missing }}] {{ d.missing is defined }}", {{"d", ojson::object()}}), "[] False");
  EXPECT_EQ(eval("[{{ n.attr }}]", {{"n", nullptr}}), "[]");  // None.attr is undefined, not an error
  EXPECT_EQ(eval("{{ nothing.attr }}"), "ERROR: line 1: 'nothing' is undefined");
  EXPECT_EQ(eval("{{ d.missing.x }}", {{"d", ojson::object()}}),
            "ERROR: line 1: 'dict object' has no attribute 'missing'");
  EXPECT_EQ(eval("{{ nothing + 1 }}"), "ERROR: line 1: 'nothing' is undefined");
  EXPECT_EQ(eval("{{ nothing ~ 'x' }}"), "x");
  EXPECT_EQ(eval("{{ none | default('d') }} {{ '' | default('d', true) }}"), "None d");
}

// ---------------------------------------------------------------------------------------------
// Statements and whitespace

TEST(JinjaStatements, IfElifElse) {
  const char* t = "{% if x > 1 %}big{% elif x == 1 %}one{% else %}small{% endif %}";
  EXPECT_EQ(eval(t, {{"x", 5}}), "big");
  EXPECT_EQ(eval(t, {{"x", 1}}), "one");
  EXPECT_EQ(eval(t, {{"x", 0}}), "small");
}

TEST(JinjaStatements, ForLoopVariables) {
  EXPECT_EQ(eval("{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
                 "{{ loop.revindex0 }}{{ loop.length }}{{ x }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %};"
                 "{% endfor %}"),
            "10323aF;21213b;32103cL;");
  EXPECT_EQ(eval("{% for x in [1, 2, 3] %}{{ loop.previtem | default('-') }}{{ loop.nextitem | default('-') }} {% endfor %}"),
            "-2 13 2- ");
  EXPECT_EQ(eval("{% for x in range(4) %}{{ loop.cycle('a', 'b') }}{% endfor %}"), "abab");
  EXPECT_EQ(eval("{% for x in range(10) if x is odd %}{{ x }}{{ ',' if not loop.last }}{% endfor %}"), "1,3,5,7,9");
  EXPECT_EQ(eval("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }} {% endfor %}"), "a=1 b=2 ");
  EXPECT_EQ(eval("{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}"), "ab");
  EXPECT_EQ(eval("{% for c in 'h\xc3\xa9' %}[{{ c }}]{% endfor %}"), "[h][\xc3\xa9]");
  EXPECT_EQ(eval("{% for x in [] %}x{% else %}none{% endfor %}"), "none");
  EXPECT_EQ(eval("{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
            "02");
  EXPECT_EQ(eval("{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}"),
            "1x1 1y2 1|2x1 2y2 2|");
  EXPECT_EQ(eval("{% for x in range(1, 10, 3) %}{{ x }}{% endfor %}{% for x in range(3, 0, -1) %}{{ x }}{% endfor %}"), "147321");
}

TEST(JinjaStatements, SetScopingAndNamespace) {
  // A set inside a loop does not leak out (Jinja2 scoping); namespace() attributes do.
  EXPECT_EQ(eval("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}"), "231");
  EXPECT_EQ(eval("{% set ns = namespace(total=0, seen=false) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}"
                 "{% endfor %}{{ ns.total }} {{ ns.seen }} {{ ns.missing is defined }}"),
            "6 False False");
  EXPECT_EQ(eval("{% set ns = namespace() %}{% set ns.a = 'x' %}{{ ns.a }}"), "x");
  // A set in an if block at the top level is visible afterwards.
  EXPECT_EQ(eval("{% if true %}{% set y = 'in' %}{% endif %}{{ y }}"), "in");
  EXPECT_EQ(eval("{% set a, b = 1, 2 %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(eval("{% set t %}  Block {{ 1 + 1 }} {% endset %}[{{ t }}]"), "[  Block 2 ]");
  EXPECT_EQ(eval("{% set t | trim | upper %}  block  {% endset %}[{{ t }}]"), "[BLOCK]");
  EXPECT_EQ(eval("{% set x = 5 %}{% with x = 1, y = x %}{{ x }}{{ y }}{% endwith %}{{ x }}"), "155");
  EXPECT_EQ(eval("{% set d = {'a': {'b': [10, 20]}} %}{{ d.a.b[1] }} {{ d['a']['b'][0] }}"), "20 10");
  EXPECT_EQ(eval("{% set ns.x = 1 %}"), "ERROR: line 1: cannot assign attribute 'x' on undefined 'ns'");
}

TEST(JinjaStatements, MacrosAndCallBlocks) {
  EXPECT_EQ(eval("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
                 "{{ greet('Ann') }} {{ greet('Bob', '?') }} {{ greet(punct='.', name='Cy') }}"),
            "Hi Ann! Hi Bob? Hi Cy.");
  EXPECT_EQ(eval("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}{% endif %}{% endmacro %}{{ fact(5) }}"),
            "120");
  EXPECT_EQ(eval("{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}"), "(1, 2){'k': 3}");
  EXPECT_EQ(eval("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
                 "{% call wrap('b') %}bold{% endcall %}"),
            "<b>bold</b>");
  EXPECT_EQ(eval("{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}"
                 "{% call(item) each([1, 2]) %}[{{ item }}]{% endcall %}"),
            "[1][2]");
  // Macros see top-level variables, not the caller's loop variables.
  EXPECT_EQ(eval("{% set g = 'G' %}{% macro m() %}{{ g }}{{ i is defined }}{% endmacro %}{% for i in [1] %}{{ m() }}{% endfor %}"),
            "GFalse");
}

TEST(JinjaStatements, FilterBlockRawAndGeneration) {
  EXPECT_EQ(eval("{% filter upper %}abc {{ 'd' }}{% endfilter %}"), "ABC D");
  EXPECT_EQ(eval("{% raw %}{{ not evaluated }} {% if %}{% endraw %}"), "{{ not evaluated }} {% if %}");
  EXPECT_EQ(eval("a{% generation %}b{% endgeneration %}c"), "abc");
}

TEST(JinjaWhitespace, TrimAndLstripBlocksAsHuggingFace) {
  // trim_blocks: the newline after a block tag goes.
  EXPECT_EQ(eval("{% if true %}\nyes\n{% endif %}\nafter"), "yes\nafter");
  // lstrip_blocks: indentation before a block tag goes; before {{ }} it stays.
  EXPECT_EQ(eval("  {% if true %}\n  x\n  {% endif %}\n"), "  x\n");
  EXPECT_EQ(eval("  {{ 'a' }}\n  {% if true %}b{% endif %}"), "  a\nb");
  EXPECT_EQ(eval("<|x|>\n {{ 'a' }}"), "<|x|>\n a");
  // Comments behave like blocks.
  EXPECT_EQ(eval("a\n  {# comment #}\nb"), "a\nb");
  EXPECT_EQ(eval("a {# comment #} b"), "a  b");
}

TEST(JinjaWhitespace, ManualControl) {
  EXPECT_EQ(eval("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(eval("a\n  {%- if true -%}\n  b\n{%- endif %}"), "ab");
  EXPECT_EQ(eval("  {%+ if true %}x{% endif %}"), "  x");    // + keeps the indentation
  EXPECT_EQ(eval("{% if true +%}\nx{% endif %}"), "\nx");     // + keeps the newline
  EXPECT_EQ(eval("a {#- c -#}  b"), "ab");
  EXPECT_EQ(eval("x\n"), "x");          // one trailing newline is dropped
  EXPECT_EQ(eval("x\n\n"), "x\n");
  EXPECT_EQ(eval("a\r\nb\rc"), "a\nb\nc");  // line endings normalised
}

// ---------------------------------------------------------------------------------------------
// Filters, tests, methods, globals

TEST(JinjaFilters, Strings) {
  EXPECT_EQ(eval("[{{ '  a b \n' | trim }}] [{{ 'xxaxx' | trim('x') }}]"), "[a b] [a]");
  EXPECT_EQ(eval("{{ 'aBc' | upper }} {{ 'aBc' | lower }} {{ 'hELLO wORLD' | capitalize }}"), "ABC abc Hello world");
  EXPECT_EQ(eval("{{ \"they're bill's-friends\" | title }}"), "They're Bill's-Friends");
  EXPECT_EQ(eval("{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'ab' | replace('', '-') }}"),
            "bbb bba -a-b-");
  EXPECT_EQ(eval("{{ 42 | string }}{{ none | string }} {{ 'abc' | reverse }} {{ '<a&\"b\">' | e }}"),
            "42None cba &lt;a&amp;&#34;b&#34;&gt;");
  EXPECT_EQ(eval("[{{ 'a\nb\n\nc' | indent(2) }}] [{{ 'a\nb' | indent(2, true) }}] [{{ 'a\n\nb' | indent(2, blank=true) }}]"),
            "[a\n  b\n\n  c] [  a\n  b] [a\n  \n  b]");
  EXPECT_EQ(eval("[{{ 'ab' | center(6) }}] {{ 'one two  three' | wordcount }} {{ '%05.1f|%-3s|' | format(2.25, 'x') }}"),
            "[  ab  ] 3 002.2|x  |");
}

TEST(JinjaFilters, NumbersAndConversions) {
  EXPECT_EQ(eval("{{ '42' | int }} {{ ' 4.7 ' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 'ff' | int(base=16) }} {{ 3.9 | int }}"),
            "42 4 0 7 255 3");
  EXPECT_EQ(eval("{{ '1_000' | int }} {{ '-12' | int }} {{ '1__0' | int }}"), "1000 -12 0");
  EXPECT_EQ(eval("{{ '2.5' | float }} {{ 3 | float }} {{ 'x' | float }}"), "2.5 3.0 0.0");
  EXPECT_EQ(eval("{{ -3 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(1) }} {{ 2.1 | round(0, 'ceil') }}"),
            "3 2.0 4.0 2.7 3.0");
  EXPECT_EQ(eval("{{ [1, 2, 3] | sum }} {{ [1.5, 2] | sum }} {{ [{'n': 2}, {'n': 3}] | sum(attribute='n') }}"),
            "6 3.5 5");
  EXPECT_EQ(eval("{{ [3, 1, 2] | min }} {{ [3, 1, 2] | max }} {{ ['b', 'A', 'c'] | max }}"), "1 3 c");
}

TEST(JinjaFilters, Sequences) {
  EXPECT_EQ(eval("{{ [1, 2, 3] | length }} {{ 'abc' | count }} {{ {'a': 1} | length }}"), "3 3 1");
  EXPECT_EQ(eval("{{ [1, 2, 3] | join(', ') }} {{ ['a', 'b'] | join }} {{ [{'n': 'x'}, {'n': 'y'}] | join('-', attribute='n') }}"),
            "1, 2, 3 ab x-y");
  EXPECT_EQ(eval("{{ [1, 2] | first }} {{ [1, 2] | last }} {{ 'abc' | first }} {{ [] | first is defined }}"), "1 2 a False");
  EXPECT_EQ(eval("{{ 'ab' | list }} {{ {'a': 1, 'b': 2} | list }} {{ (1, 2) | list }}"), "['a', 'b'] ['a', 'b'] [1, 2]");
  EXPECT_EQ(eval("{{ {'a': 1, 'b': 2} | items | list }} {{ nothing | items | list }}"), "[('a', 1), ('b', 2)] []");
  EXPECT_EQ(eval("{{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ ['b', 'A', 'c'] | sort }}"),
            "[1, 2, 3] [3, 2, 1] ['A', 'b', 'c']");
  EXPECT_EQ(eval("{{ [{'n': 2}, {'n': 1}] | sort(attribute='n') | map(attribute='n') | list }}"), "[1, 2]");
  EXPECT_EQ(eval("{{ [1, 2, 1, 3] | unique | list }} {{ ['a', 'A', 'b'] | unique | list }}"), "[1, 2, 3] ['a', 'b']");
  EXPECT_EQ(eval("{{ {'b': 1, 'a': 2} | dictsort }} {{ [1, 2, 3] | reverse | list }}"), "[('a', 2), ('b', 1)] [3, 2, 1]");
  EXPECT_EQ(eval("{{ range(5) | batch(2) | list }}"), "[[0, 1], [2, 3], [4]]");
}

TEST(JinjaFilters, SelectMapAndAttributes) {
  ojson ctx = {{"msgs", ojson::parse(R"([{"role": "system", "content": "s"}, {"role": "user", "content": "u1"},
                                        {"role": "assistant", "content": "a"}, {"role": "user", "content": "u2",
                                         "meta": {"tag": "t"}}])")}};
  EXPECT_EQ(eval("{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}", ctx), "u1,u2");
  EXPECT_EQ(eval("{{ msgs | rejectattr('role', '==', 'user') | map(attribute='role') | list }}", ctx), "['system', 'assistant']");
  EXPECT_EQ(eval("{{ msgs | selectattr('meta') | map(attribute='meta.tag') | list }}", ctx), "['t']");
  EXPECT_EQ(eval("{{ msgs | map(attribute='meta.tag', default='-') | join }}", ctx), "---t");
  EXPECT_EQ(eval("{{ msgs | map(attribute='meta.tag') | join }}", ctx), "ERROR: line 1: 'dict object' has no attribute 'meta'");
  EXPECT_EQ(eval("{{ ['a', 'b'] | map('upper') | list }} {{ [1, 2, 3, 4] | select('even') | list }} {{ [0, 1, '', 'x'] | select | list }}"),
            "['A', 'B'] [2, 4] [1, 'x']");
  EXPECT_EQ(eval("{{ [1, 2, 3] | reject('in', [2]) | list }} {{ msgs | selectattr('role', 'in', ['user', 'system']) | list | length }}", ctx),
            "[1, 3] 3");
  EXPECT_EQ(eval("{{ {'k': 'v'} | attr('k') is defined }} {{ 'x' | safe }}"), "True x");
}

TEST(JinjaFilters, ToJsonLikeHuggingFace) {
  // Key order kept, ", " / ": " separators, no HTML escaping, non-ASCII as is (ensure_ascii=False).
  EXPECT_EQ(eval(R"({{ {'b': 1, 'a': [1, 2.5, 'é<&>', none, true]} | tojson }})"),
            R"({"b": 1, "a": [1, 2.5, "é<&>", null, true]})");
  EXPECT_EQ(eval(R"({{ {'a': [1, {}], 'b': {'c': []}} | tojson(indent=2) }})"),
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": {\n    \"c\": []\n  }\n}");
  EXPECT_EQ(eval(R"({{ {'b': 'é', 'a': 1} | tojson(ensure_ascii=true, sort_keys=true) }})"), R"({"a": 1, "b": "\u00e9"})");
  EXPECT_EQ(eval(R"({{ [1, 2] | tojson(separators=(',', ':')) }} {{ {1: 2} | tojson }})"), R"([1,2] {"1": 2})");
  EXPECT_EQ(eval(R"({{ s | tojson }})", {{"s", "quote\" back\\ nl\n tab\t ctl\x01 /"}}), R"("quote\" back\\ nl\n tab\t ctl\u0001 /")");
  EXPECT_EQ(eval("{{ 1e100 | tojson }} {{ 0.5 | tojson }} {{ 'x' | tojson }}"), "1e+100 0.5 \"x\"");
  EXPECT_CONTAINS(eval("{{ nothing | tojson }}"), "not JSON serializable");
}

TEST(JinjaTests, TypeAndValueTests) {
  ojson ctx = {{"s", "x"}, {"i", 3}, {"f", 1.5}, {"b", true}, {"n", nullptr}, {"l", {1}}, {"d", {{"k", 1}}}};
  EXPECT_EQ(eval("{{ s is string }}{{ i is string }}{{ i is number }}{{ f is number }}{{ b is number }}{{ i is integer }}"
                 "{{ b is integer }}{{ f is float }}",
                 ctx),
            "TrueFalseTrueTrueTrueTrueFalseTrue");
  EXPECT_EQ(eval("{{ d is mapping }}{{ l is mapping }}{{ l is iterable }}{{ s is iterable }}{{ i is iterable }}"
                 "{{ l is sequence }}{{ nothing is iterable }}",
                 ctx),
            "TrueFalseTrueTrueFalseTrueTrue");
  EXPECT_EQ(eval("{{ n is none }}{{ s is not none }}{{ b is true }}{{ i is true }}{{ false is false }}{{ b is boolean }}", ctx),
            "TrueTrueTrueFalseTrueTrue");
  EXPECT_EQ(eval("{{ i is odd }}{{ i is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ s is equalto 'x' }}"
                 "{{ s is eq('y') }}{{ 2 is in [1, 2] }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ range is callable }}",
                 ctx),
            "TrueFalseTrueFalseTrueFalseTrueTrueTrueTrue");
  EXPECT_EQ(eval("{{ i is gt 2 }}{{ i is lt 2 }}{{ i is ge 3 }}{{ i is le 2 }}{{ i is ne 3 }}{{ l is sameas l }}", ctx),
            "TrueFalseTrueFalseFalseTrue");
}

TEST(JinjaMethods, StringMethods) {
  EXPECT_EQ(eval("[{{ '  hi  '.strip() }}][{{ '  hi  '.lstrip() }}][{{ '  hi  '.rstrip() }}][{{ 'xxhixx'.strip('x') }}]"
                 "[{{ '\nhi\n\n'.rstrip('\n') }}][{{ '\xc2\xa0hi\xe3\x80\x80'.strip() }}]"),
            "[hi][hi  ][  hi][hi][\nhi][hi]");
  EXPECT_EQ(eval("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a-b-c'.split('-', 1) }} {{ 'a-b-c'.rsplit('-', 1) }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b-c'] ['a-b', 'c']");
  EXPECT_EQ(eval("{{ ' a b  c  '.split(none, 1) }} {{ '  a b c  '.rsplit(none, 1) }}"), "['a', 'b  c  '] ['  a b', 'c']");
  EXPECT_EQ(eval("{{ 'x</think>y'.split('</think>')[-1] }} {{ 'l1\nl2\r\nl3'.splitlines() }}"), "y ['l1', 'l2', 'l3']");
  EXPECT_EQ(eval("{{ 'Hello'.startswith('He') }}{{ 'Hello'.startswith('he') }}{{ 'Hello'.endswith(('x', 'lo')) }}"),
            "TrueFalseTrue");
  EXPECT_EQ(eval("{{ 'aBc'.upper() }} {{ 'aBc'.lower() }} {{ \"they're bill's\".title() }} {{ 'hELLO'.capitalize() }}"),
            "ABC abc They'Re Bill'S Hello");
  EXPECT_EQ(eval("{{ 'aaa'.replace('a', 'b', 2) }} {{ 'h\xc3\xa9llo'.find('l') }} {{ 'abc'.find('z') }} {{ 'abab'.count('ab') }}"),
            "bba 2 -1 2");
  EXPECT_EQ(eval("{{ ', '.join(['a', 'b']) }} {{ 'prefix-x'.removeprefix('prefix-') }} {{ '12'.isdigit() }}{{ 'a1'.isalpha() }}"),
            "a, b x TrueFalse");
  EXPECT_EQ(eval("{{ '{} and {}'.format('a', 1) }} {{ '{name}!'.format(name='x') }}"), "a and 1 x!");
}

TEST(JinjaMethods, DictAndListMethods) {
  ojson ctx = {{"d", {{"a", 1}, {"b", nullptr}}}};
  EXPECT_EQ(eval("{{ d.items() | list }} {{ d.keys() | list }} {{ d.values() | list }}", ctx),
            "[('a', 1), ('b', None)] ['a', 'b'] [1, None]");
  EXPECT_EQ(eval("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 'dflt') }} {{ d.get('b', 'dflt') }}", ctx), "1 None dflt None");
  EXPECT_EQ(eval("{{ [1, 2, 2].count(2) }} {{ ['a', 'b'].index('b') }}"), "2 1");
}

TEST(JinjaGlobals, Functions) {
  EXPECT_EQ(eval("{{ range(3) | list }} {{ range(2, 5) | list }} {{ range(5, 0, -2) | list }}"), "[0, 1, 2] [2, 3, 4] [5, 3, 1]");
  EXPECT_EQ(eval("{{ dict(a=1, b='x') }} {{ dict({'k': 1}, z=2) }}"), "{'a': 1, 'b': 'x'} {'k': 1, 'z': 2}");
  EXPECT_EQ(eval("{% set j = joiner('|') %}{% for x in 'abc' %}{{ j() }}{{ x }}{% endfor %}"), "a|b|c");
  EXPECT_EQ(eval("{{ raise_exception('Custom failure: ' ~ 42) }}"), "ERROR: line 1: raise_exception: Custom failure: 42");

  char before[32], after[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(before, sizeof before, "%Y-%m-%d", &tm);
  std::string got = eval("{{ strftime_now('%Y-%m-%d') }}");
  now = std::time(nullptr);
  localtime_r(&now, &tm);
  std::strftime(after, sizeof after, "%Y-%m-%d", &tm);
  EXPECT_TRUE(got == before || got == after) << got;
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(JinjaErrors, ParseErrorsNameLineAndColumn) {
  EXPECT_EQ(eval("line 1\n{{ foo | nosuchfilter }}"), "PARSE ERROR: line 2, column 10: unknown filter 'nosuchfilter'");
  EXPECT_EQ(eval("{{ x is nosuchtest }}"), "PARSE ERROR: line 1, column 9: unknown test 'nosuchtest'");
  EXPECT_EQ(eval("{% for x in y %}\n{{ x }}"),
            "PARSE ERROR: line 2, column 8: unclosed 'for' block opened at line 1 (expected 'else' or 'endfor')");
  EXPECT_EQ(eval("{% if x %}a{% else %}b"),
            "PARSE ERROR: line 1, column 23: unclosed 'if' block opened at line 1 (expected 'endif')");
  EXPECT_EQ(eval("a{% endfor %}"), "PARSE ERROR: line 1, column 5: unexpected 'endfor' (no open block it closes)");
  EXPECT_EQ(eval("{% frobnicate %}"), "PARSE ERROR: line 1, column 4: unknown tag 'frobnicate'");
  EXPECT_EQ(eval("{% include 'x.j2' %}"),
            "PARSE ERROR: line 1, column 4: 'include' is not supported (chat templates must be self-contained)");
  EXPECT_EQ(eval("{{ 'abc }}"), "PARSE ERROR: line 1, column 4: unterminated string literal");
  EXPECT_EQ(eval("{{ 1 + }}"), "PARSE ERROR: line 1, column 8: unexpected '}}'");
  EXPECT_EQ(eval("ab {{ x"), "PARSE ERROR: line 1, column 4: unclosed tag (missing '}}')");
  EXPECT_EQ(eval("{# never closed"), "PARSE ERROR: line 1, column 1: unclosed comment (missing '#}')");
  EXPECT_EQ(eval("{% break %}"), "PARSE ERROR: line 1, column 4: 'break' outside of a loop");
  EXPECT_EQ(eval("{{ a ] }}"), "PARSE ERROR: line 1, column 6: unexpected ']'");
  EXPECT_EQ(eval(std::string("{{ a \x01 }}")), "PARSE ERROR: line 1, column 6: unexpected byte 0x01");
  EXPECT_EQ(eval(std::string("{{ a \0 }}", 9)), "PARSE ERROR: line 1, column 6: unexpected byte 0x00");
}

TEST(JinjaErrors, UnknownFilterInsideIfFailsOnlyWhenRun) {
  // As in Jinja2: inside an if block the check is deferred to run time.
  const char* t = "{% if x %}{{ 'a' | nosuchfilter }}{% else %}fine{% endif %}";
  EXPECT_EQ(eval(t, {{"x", false}}), "fine");
  EXPECT_EQ(eval(t, {{"x", true}}), "ERROR: line 1: unknown filter 'nosuchfilter'");
}

TEST(JinjaErrors, RuntimeErrorsNameTheLine) {
  EXPECT_EQ(eval("\n\n{{ 'a' + 1 }}"), "ERROR: line 3: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(eval("{{ 1 / 0 }}"), "ERROR: line 1: division by zero");
  EXPECT_EQ(eval("{{ nope() }}"), "ERROR: line 1: 'nope' is undefined");
  EXPECT_EQ(eval("{{ 5() }}"), "ERROR: line 1: 'int' object is not callable");
  EXPECT_EQ(eval("{% for x in 5 %}{% endfor %}"), "ERROR: line 1: 'int' object is not iterable");
  EXPECT_EQ(eval("{{ [1] < 'a' }}"), "ERROR: line 1: '<' not supported between instances of 'list' and 'str'");
  EXPECT_EQ(eval("{{ none | length }}"), "ERROR: line 1: object of type 'NoneType' has no len()");
  EXPECT_EQ(eval("{{ 9223372036854775807 + 1 }}"), "ERROR: line 1: integer overflow in +");
}

// ---------------------------------------------------------------------------------------------
// Limits: runaway templates stop with an error, never hang or exhaust memory.

std::string eval_limited(std::string_view source, const gw::local_engine::jinja::render_limits& limits) {
  std::string err;
  auto t = le::chat_template::parse(source, &err);
  if (!t) return "PARSE ERROR: " + err;
  le::chat_template_inputs in;
  in.messages = ojson::array();
  auto out = t->render(in, limits, &err);
  return out ? *out : "ERROR: " + err;
}

TEST(JinjaLimits, RunawayLoopHitsTheStepLimit) {
  gw::local_engine::jinja::render_limits small;
  small.max_steps = 100000;
  EXPECT_CONTAINS(eval_limited("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", small),
                  "template exceeded its step limit (100000 steps)");
  // With the default limits the same template also stops (after 20M steps, well under a few seconds).
  auto start = std::chrono::steady_clock::now();
  EXPECT_CONTAINS(eval("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}"), "step limit");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(JinjaLimits, RecursionOutputAndSizeLimits) {
  EXPECT_EQ(eval("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
            "ERROR: line 1: macro calls nested more than 32 deep (runaway recursion?)");
  EXPECT_CONTAINS(
      eval("{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"),
      "exceeds the output limit");
  EXPECT_CONTAINS(eval("{{ 'x' * 1000000000000 }}"), "exceeds the output limit");
  EXPECT_CONTAINS(eval("{{ range(100000000) | length }}"), "range() longer than 1048576 items");
  EXPECT_CONTAINS(eval("{{ [0] * 100000000 }}"), "list repetition longer than");
  // Amplifying filters check sizes before building: deep tojson indentation, indent, format widths.
  EXPECT_CONTAINS(eval("{% set ns = namespace(v=range(100000) | list) %}{% for i in range(200) %}{% set ns.v = [ns.v] %}"
                       "{% endfor %}{{ ns.v | tojson(indent=200) }}"),
                  "tojson output exceeds");
  EXPECT_CONTAINS(eval("{{ ('a\n' * 4000000) | indent(200) }}"), "exceeds the output limit");
  EXPECT_EQ(eval("{{ '%999999999s' % 'x' }}"), "ERROR: line 1: format width or precision above 400");
  EXPECT_CONTAINS(eval("{{ ('{0}' * 1000000).format('x' * 1000) }}"), "exceeds the output limit");
  gw::local_engine::jinja::render_limits tiny;
  tiny.max_output_bytes = 10;
  EXPECT_CONTAINS(eval_limited("{% for i in range(20) %}x{% endfor %}", tiny), "output exceeds the limit of 10 bytes");
  // Values nested without bound are refused before anything recursive can overflow the stack.
  EXPECT_CONTAINS(eval("{% set ns = namespace(v=[]) %}{% for i in range(100000) %}{% set ns.v = [ns.v] %}{% endfor %}"),
                  "nested more than 256 levels deep");
}

TEST(JinjaLimits, DeepNestingIsRejectedAtParseTime) {
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_CONTAINS(eval(deep), "nested too deeply");
  std::string ifs;
  for (int i = 0; i < 500; ++i) ifs += "{% if true %}";
  EXPECT_CONTAINS(eval(ifs), "nested too deeply");
  std::string nots = "{{ " + [] { std::string s; for (int i = 0; i < 5000; ++i) s += "not "; return s; }() + "1 }}";
  EXPECT_CONTAINS(eval(nots), "nested too deeply");
}

TEST(JinjaLimits, DeeplyNestedInputIsAnError) {
  ojson nested = "leaf";
  for (int i = 0; i < 1000; ++i) nested = ojson::array({nested});
  render_request r;
  r.messages = ojson::array({{{"role", "user"}, {"content", nested}}});
  EXPECT_CONTAINS(render_source(std::string(le::chatml_template()), r), "nested more than 256 levels deep");
}

TEST(JinjaLimits, SelfReferencingNamespaceRenders) {
  EXPECT_EQ(eval("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}"), "<Namespace {'a': 1, 'me': <Namespace>}>");
}

// Mutated real templates: parsing and rendering must end with output or an error, never a crash
// or a hang.
TEST(JinjaRobustness, MutatedTemplatesNeverCrash) {
  std::vector<std::string> sources;
  for (const auto& entry : std::filesystem::directory_iterator(templates_dir()))
    if (entry.path().extension() == ".jinja") sources.push_back(read_file(entry.path()));
  ASSERT_GE(sources.size(), 10u);
  gw::local_engine::jinja::render_limits limits;
  limits.max_steps = 200000;
  std::mt19937 rng(1234);
  const std::string alphabet = "{}%#-+()[]'\"|.~=!<>*/ \nabcxyz019_";
  int parsed = 0, rendered = 0, failed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = sources[rng() % sources.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t pos = rng() % s.size();
      switch (rng() % 4) {
        case 0: s.erase(pos, 1 + rng() % 8); break;
        case 1: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 2: s[pos] = alphabet[rng() % alphabet.size()]; break;
        case 3: s.resize(pos); break;
      }
    }
    std::string err;
    auto t = le::chat_template::parse(s, &err);
    if (!t) {
      EXPECT_TRUE(starts_with(err, "line ")) << err << "\n" << s;
      ++failed;
      continue;
    }
    ++parsed;
    le::chat_template_inputs in;
    in.messages = iter % 2 ? conversation() : tool_conversation();
    if (iter % 3 == 0) in.tools = weather_tools();
    auto out = t->render(in, limits, &err);
    if (out) ++rendered;
    else EXPECT_FALSE(err.empty());
  }
  EXPECT_GT(parsed, 100);
  EXPECT_GT(rendered, 50);
  EXPECT_GT(failed, 100);
}

// ---------------------------------------------------------------------------------------------
// Real templates: system + user + assistant + user, add_generation_prompt.

TEST(ChatTemplateFiles, Llama31) {
  render_request r{conversation(), nullptr, "<|begin_of_text|>", "<|eot_id|>"};
  EXPECT_EQ(render_file("meta-llama-Llama-3.1-8B-Instruct.jinja", r),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
            "You are a helpful assistant.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there! How can I help?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  r.add_generation_prompt = false;
  EXPECT_TRUE(ends_with(render_file("meta-llama-Llama-3.1-8B-Instruct.jinja", r), "What is 2+2?<|eot_id|>"));
}

TEST(ChatTemplateFiles, Llama32DateFromStrftimeOrContext) {
  render_request r{conversation(), nullptr, "<|begin_of_text|>", "<|eot_id|>"};
  r.extra = {{"date_string", "01 Jan 2025"}};
  const std::string rest =
      "You are a helpful assistant.<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\nHi there! How can I help?<|eot_id|>"
      "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\n\n";
  const std::string head = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n";
  EXPECT_EQ(render_file("meta-llama-Llama-3.2-3B-Instruct.jinja", r), head + "Today Date: 01 Jan 2025\n\n" + rest);

  r.extra = ojson::object();  // strftime_now("%d %b %Y")
  char today[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::strftime(today, sizeof today, "%d %b %Y", &tm);
  EXPECT_EQ(render_file("meta-llama-Llama-3.2-3B-Instruct.jinja", r), head + "Today Date: " + today + "\n\n" + rest);
}

TEST(ChatTemplateFiles, Qwen25) {
  render_request r{conversation(), nullptr, "", "<|im_end|>"};
  EXPECT_EQ(render_file("Qwen-Qwen2.5-7B-Instruct.jinja", r),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Without a system message the template supplies its default one.
  r.messages = ojson::array({{{"role", "user"}, {"content", "Hi"}}});
  EXPECT_EQ(render_file("Qwen-Qwen2.5-7B-Instruct.jinja", r),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateFiles, Qwen3ThinkingHistoryAndSwitch) {
  ojson msgs = conversation();
  msgs[2]["content"] = "<think>\nThe user greets me.\n</think>\n\nHi there! How can I help?";
  render_request r{msgs, nullptr, "", "<|im_end|>"};
  const std::string chat =
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
      "<|im_start|>user\nHello!<|im_end|>\n"
      "<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n"  // reasoning dropped from history
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
      "<|im_start|>assistant\n";
  EXPECT_EQ(render_file("Qwen-Qwen3-0.6B.jinja", r), chat);
  r.extra = {{"enable_thinking", false}};
  EXPECT_EQ(render_file("Qwen-Qwen3-0.6B.jinja", r), chat + "<think>\n\n</think>\n\n");
  r.extra = {{"enable_thinking", true}};
  EXPECT_EQ(render_file("Qwen-Qwen3-0.6B.jinja", r), chat);
}

TEST(ChatTemplateFiles, QwQ) {
  render_request r{conversation(), nullptr, "", "<|im_end|>"};
  EXPECT_EQ(render_file("Qwen-QwQ-32B.jinja", r),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n");
}

TEST(ChatTemplateFiles, MistralNemoTekken) {
  // v3-tekken: no spaces around [INST]; the system prompt goes before the LAST user message.
  render_request r{conversation(), nullptr, "<s>", "</s>"};
  EXPECT_EQ(render_file("mistralai-Mistral-Nemo-Instruct-2407.jinja", r),
            "<s>[INST]Hello![/INST]Hi there! How can I help?</s>[INST]You are a helpful assistant.\n\nWhat is 2+2?[/INST]");
  r.messages = ojson::array({{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}});
  EXPECT_CONTAINS(render_file("mistralai-Mistral-Nemo-Instruct-2407.jinja", r),
                  "raise_exception: After the optional system message, conversation roles must alternate");
}

TEST(ChatTemplateFiles, MistralSmall32) {
  render_request r{conversation(), nullptr, "<s>", "</s>"};
  const std::string expected =
      "<s>[SYSTEM_PROMPT]You are a helpful assistant.[/SYSTEM_PROMPT][INST]Hello![/INST]Hi there! How can I help?</s>"
      "[INST]What is 2+2?[/INST]";
  EXPECT_EQ(render_file("Mistral-Small-3.2-24B-Instruct-2506.jinja", r), expected);
  // This template iterates content parts itself: an array reaches it unchanged.
  r.messages[1]["content"] = ojson::parse(R"([{"type": "text", "text": "Hello!"}])");
  EXPECT_EQ(render_file("Mistral-Small-3.2-24B-Instruct-2506.jinja", r), expected);
  r.messages[1]["content"] = ojson::parse(R"([{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "Hello!"}])");
  EXPECT_EQ(render_file("Mistral-Small-3.2-24B-Instruct-2506.jinja", r),
            "<s>[SYSTEM_PROMPT]You are a helpful assistant.[/SYSTEM_PROMPT][INST][IMG]Hello![/INST]Hi there! How can I help?</s>"
            "[INST]What is 2+2?[/INST]");
}

TEST(ChatTemplateFiles, Gemma2MergesTheSystemMessage) {
  // Gemma 2's template raises on a system role; the render is retried with the system text merged
  // into the first user turn.
  render_request r{conversation(), nullptr, "<bos>", "<eos>"};
  EXPECT_EQ(render_file("google-gemma-2-2b-it.jinja", r),
            "<bos><start_of_turn>user\nYou are a helpful assistant.\nHello!<end_of_turn>\n"
            "<start_of_turn>model\nHi there! How can I help?<end_of_turn>\n"
            "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
  // Other template errors surface unchanged.
  r.messages = ojson::array({{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}});
  EXPECT_EQ(render_file("google-gemma-2-2b-it.jinja", r),
            "ERROR: line 1: raise_exception: Conversation roles must alternate user/assistant/user/assistant/...");
}

TEST(ChatTemplateFiles, Gemma3ContentParts) {
  render_request r{conversation(), nullptr, "<bos>", "<eos>"};
  const std::string expected =
      "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n"
      "<start_of_turn>model\nHi there! How can I help?<end_of_turn>\n"
      "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
      "<start_of_turn>model\n";
  EXPECT_EQ(render_file("google-gemma-3-it.jinja", r), expected);
  r.messages[1]["content"] = ojson::parse(R"([{"type": "image"}, {"type": "text", "text": " Describe this. "}])");
  EXPECT_EQ(render_file("google-gemma-3-it.jinja", r),
            "<bos><start_of_turn>user\nYou are a helpful assistant.\n\n<start_of_image>Describe this.<end_of_turn>\n"
            "<start_of_turn>model\nHi there! How can I help?<end_of_turn>\n"
            "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
}

TEST(ChatTemplateFiles, Phi35) {
  render_request r{conversation(), nullptr, "<s>", "<|endoftext|>"};
  EXPECT_EQ(render_file("microsoft-Phi-3.5-mini-instruct.jinja", r),
            "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n"
            "<|assistant|>\nHi there! How can I help?<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n");
  r.add_generation_prompt = false;
  EXPECT_TRUE(ends_with(render_file("microsoft-Phi-3.5-mini-instruct.jinja", r), "What is 2+2?<|end|>\n<|endoftext|>"));
}

TEST(ChatTemplateFiles, DeepSeekR1Distill) {
  render_request r{conversation(), nullptr, "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                   "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"};
  EXPECT_EQ(render_file("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", r),
            r.bos + "You are a helpful assistant.<\xef\xbd\x9cUser\xef\xbd\x9c>Hello!<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>"
                    "Hi there! How can I help?" + r.eos + "<\xef\xbd\x9cUser\xef\xbd\x9c>What is 2+2?"
                    "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><think>\n");
}

TEST(ChatTemplateFiles, DeepSeekV31ThinkingSwitch) {
  const std::string bos = "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
  const std::string eos = "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
  const std::string user = "<\xef\xbd\x9cUser\xef\xbd\x9c>", assistant = "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>";
  render_request r{conversation(), nullptr, bos, eos};
  const std::string head = bos + "You are a helpful assistant." + user + "Hello!" + assistant + "</think>Hi there! How can I help?" +
                           eos + user + "What is 2+2?" + assistant;
  EXPECT_EQ(render_file("deepseek-ai-DeepSeek-V3.1.jinja", r), head + "</think>");
  r.extra = {{"thinking", true}};
  EXPECT_EQ(render_file("deepseek-ai-DeepSeek-V3.1.jinja", r), head + "<think>");
}

TEST(ChatTemplateFiles, ChatMLFallback) {
  render_request r{conversation(), nullptr, "", ""};
  EXPECT_EQ(render_source(std::string(le::chatml_template()), r),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHello!<|im_end|>\n"
            "<|im_start|>assistant\nHi there! How can I help?<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatTemplateFiles, TextPartArraysAreJoinedForStringTemplates) {
  ojson msgs = conversation();
  msgs[1]["content"] = ojson::parse(R"([{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}])");
  render_request r{msgs, nullptr, "", ""};
  EXPECT_CONTAINS(render_file("Qwen-Qwen2.5-7B-Instruct.jinja", r), "<|im_start|>user\nHello\nworld<|im_end|>\n");
  std::string err;
  auto gemma3 = le::chat_template::parse(read_file(templates_dir() / "google-gemma-3-it.jinja"), &err);
  auto qwen = le::chat_template::parse(read_file(templates_dir() / "Qwen-Qwen2.5-7B-Instruct.jinja"), &err);
  ASSERT_TRUE(gemma3 && qwen);
  EXPECT_TRUE(gemma3->iterates_content_parts());
  EXPECT_FALSE(qwen->iterates_content_parts());
}

// ---------------------------------------------------------------------------------------------
// Tools

TEST(ChatTemplateTools, Llama31ToolsInFirstUserMessage) {
  render_request r{tool_conversation(), weather_tools(), "<|begin_of_text|>", "<|eot_id|>"};
  EXPECT_EQ(render_file("meta-llama-Llama-3.1-8B-Instruct.jinja", r),
            std::string("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                        "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
                        "You are a helpful assistant.<|eot_id|>"
                        "<|start_header_id|>user<|end_header_id|>\n\n"
                        "Given the following functions, please respond with a JSON for a function call with its proper "
                        "arguments that best answers the given prompt.\n\n"
                        "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its "
                        "value}.Do not use variables.\n\n") +
                kToolJsonIndent4 +
                "\n\nWhat's the weather in Paris?<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n"
                "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>"
                // The template tojson()s any iterable tool content, strings included.
                "<|start_header_id|>ipython<|end_header_id|>\n\n\"18 degrees C, sunny\"<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTools, Llama31ToolsInSystemMessage) {
  render_request r{tool_conversation(), weather_tools(), "<|begin_of_text|>", "<|eot_id|>"};
  r.extra = {{"tools_in_user_message", false}};
  r.messages = ojson::array({r.messages[0], r.messages[1]});  // system + user only
  EXPECT_EQ(render_file("meta-llama-Llama-3.1-8B-Instruct.jinja", r),
            std::string("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                        "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
                        "You have access to the following functions. To call a function, please respond with JSON for a "
                        "function call.Respond in the format {\"name\": function name, \"parameters\": dictionary of "
                        "argument name and its value}.Do not use variables.\n\n") +
                kToolJsonIndent4 +
                "\n\nYou are a helpful assistant.<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nWhat's the weather in Paris?<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTools, Qwen25ToolCallAndResponse) {
  render_request r{tool_conversation(), weather_tools(), "", "<|im_end|>"};
  EXPECT_EQ(render_file("Qwen-Qwen2.5-7B-Instruct.jinja", r),
            std::string("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\n"
                        "You may call one or more functions to assist with the user query.\n\n"
                        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n") +
                kToolJsonCompact +
                "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
                "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
                "<args-json-object>}\n</tool_call><|im_end|>\n"
                "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n"
                "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
                "</tool_call><|im_end|>\n"
                "<|im_start|>user\n<tool_response>\n18 degrees C, sunny\n</tool_response><|im_end|>\n"
                "<|im_start|>assistant\n");
}

TEST(ChatTemplateTools, Qwen3ToolCallWithNullContent) {
  // Qwen3 applies `in` to the content: null content fails, and the retry with "" renders.
  render_request r{tool_conversation(), weather_tools(), "", "<|im_end|>"};
  EXPECT_EQ(render_file("Qwen-Qwen3-0.6B.jinja", r),
            std::string("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\n"
                        "You may call one or more functions to assist with the user query.\n\n"
                        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n") +
                kToolJsonCompact +
                "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
                "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
                "<args-json-object>}\n</tool_call><|im_end|>\n"
                "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n"
                "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
                "</tool_call><|im_end|>\n"
                "<|im_start|>user\n<tool_response>\n18 degrees C, sunny\n</tool_response><|im_end|>\n"
                "<|im_start|>assistant\n");
}

TEST(ChatTemplateTools, DeepSeekR1KeepsArgumentStrings) {
  // This template concatenates the arguments: the object attempt fails, the string one renders.
  const std::string bos = "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
  render_request r{tool_conversation(), weather_tools(), bos, "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"};
  EXPECT_EQ(render_file("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", r),
            bos + "You are a helpful assistant.<\xef\xbd\x9cUser\xef\xbd\x9c>What's the weather in Paris?"
                  "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
                  "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>function<\xef\xbd\x9ctool\xe2\x96\x81sep\xef\xbd\x9c>"
                  "get_weather\n```json\n{\"city\": \"Paris\"}\n```<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
                  "<\xef\xbd\x9ctool\xe2\x96\x81outputs\xe2\x96\x81" "begin\xef\xbd\x9c><\xef\xbd\x9ctool\xe2\x96\x81output\xe2\x96\x81"
                  "begin\xef\xbd\x9c>18 degrees C, sunny<\xef\xbd\x9ctool\xe2\x96\x81output\xe2\x96\x81" "end\xef\xbd\x9c>"
                  "<\xef\xbd\x9ctool\xe2\x96\x81outputs\xe2\x96\x81" "end\xef\xbd\x9c>");
}

TEST(ChatTemplateTools, MistralNemoAvailableToolsAndCalls) {
  render_request r{tool_conversation(), weather_tools(), "<s>", "</s>"};
  EXPECT_EQ(render_file("mistralai-Mistral-Nemo-Instruct-2407.jinja", r),
            "<s>[AVAILABLE_TOOLS][{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": "
            "\"Get the current weather in a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": "
            "{\"type\": \"string\", \"description\": \"City name\"}}, \"required\": [\"city\"]}}}][/AVAILABLE_TOOLS]"
            "[INST]What's the weather in Paris?[/INST]"
            "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"call12345\"}]</s>"
            "[TOOL_RESULTS]{\"content\": 18 degrees C, sunny, \"call_id\": \"call12345\"}[/TOOL_RESULTS]");
}

TEST(ChatTemplateTools, Hermes3MacrosDescribeTools) {
  render_request r{tool_conversation(), weather_tools(), "<|begin_of_text|>", "<|im_end|>"};
  EXPECT_EQ(render_file("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", r),
            "<|begin_of_text|><|im_start|>system\nYou are a function calling AI model. You are provided with function "
            "signatures within <tools></tools> XML tags. You may call one or more functions to assist with the user "
            "query. Don't make assumptions about what values to plug into functions. Here are the available tools: "
            "<tools> {\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": "
            "\"get_weather(city: str) - Get the current weather in a city\n\n    Args:\n        city(str): City name\", "
            "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"description\": "
            "\"City name\"}}, \"required\": [\"city\"]}} </tools>Use the following pydantic model json schema for each "
            "tool call you will make: {\"properties\": {\"name\": {\"title\": \"Name\", \"type\": \"string\"}, "
            "\"arguments\": {\"title\": \"Arguments\", \"type\": \"object\"}}, \"required\": [\"name\", \"arguments\"], "
            "\"title\": \"FunctionCall\", \"type\": \"object\"}}\nFor each function call return a json object with "
            "function name and arguments within <tool_call></tool_call> XML tags as follows:\n<tool_call>\n"
            "{\"name\": <function-name>, \"arguments\": <args-dict>}\n</tool_call><|im_end|>\n"
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n"
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
            "</tool_call><|im_end|>\n"
            "<|im_start|>tool\n<tool_response>\n18 degrees C, sunny\n</tool_response><|im_end|>"
            "<|im_start|>assistant\n");
  // Without tools this template iterates None, which is an error (as in Hugging Face).
  r.tools = nullptr;
  EXPECT_EQ(render_file("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", r),
            "ERROR: line 38: 'NoneType' object is not iterable");
}

// ---------------------------------------------------------------------------------------------
// llama.cpp's test vectors (tests/data/chat_templates/llama_cpp_test_vectors.json).

TEST(ChatTemplateVectors, LlamaCppCases) {
  ojson doc = ojson::parse(read_file(templates_dir() / "llama_cpp_test_vectors.json"), nullptr, false);
  ASSERT_TRUE(doc.is_object());
  ASSERT_GE(doc["cases"].size(), 30u);
  for (const ojson& c : doc["cases"]) {
    render_request r{doc["conversation"], nullptr, c["bos_token"], c["eos_token"]};
    EXPECT_EQ(render_source(c["template"], r), c["expected"].get<std::string>()) << c["name"];
  }
}

// ---------------------------------------------------------------------------------------------
// API behaviour

TEST(ChatTemplateApi, BadInputsAreErrors) {
  std::string err;
  auto t = le::chat_template::parse(le::chatml_template(), &err);
  ASSERT_TRUE(t) << err;
  le::chat_template_inputs in;
  in.messages = ojson::object();
  EXPECT_FALSE(t->render(in, &err));
  EXPECT_EQ(err, "messages must be an array");
  in.messages = ojson::array();
  in.extra_context = 5;
  EXPECT_FALSE(t->render(in, &err));
  EXPECT_EQ(err, "extra_context must be an object");
  EXPECT_FALSE(le::chat_template::parse("{% if %}", &err));
  EXPECT_TRUE(starts_with(err, "line 1, column ")) << err;
}

TEST(ChatTemplateApi, ConcurrentRendersAgree) {
  std::string err;
  auto t = le::chat_template::parse(read_file(templates_dir() / "Qwen-Qwen3-0.6B.jinja"), &err);
  ASSERT_TRUE(t) << err;
  le::chat_template_inputs in;
  in.messages = conversation();
  std::string expected = *t->render(in, &err);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int i = 0; i < 200; ++i) {
        std::string e;
        auto out = t->render(in, &e);
        if (!out || *out != expected) ++mismatches[static_cast<size_t>(k)];
      }
    });
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

// Render time of a typical conversation (prints the figure; the bound only catches pathologies).
TEST(ChatTemplatePerf, RenderTime) {
  for (const char* file : {"meta-llama-Llama-3.1-8B-Instruct.jinja", "Qwen-Qwen3-0.6B.jinja", "Qwen-Qwen2.5-7B-Instruct.jinja"}) {
    std::string err;
    auto t = le::chat_template::parse(read_file(templates_dir() / file), &err);
    ASSERT_TRUE(t) << err;
    le::chat_template_inputs in;
    in.messages = conversation();
    in.bos_token = "<s>";
    ASSERT_TRUE(t->render(in, &err)) << err;
    const int n = 2000;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) t->render(in, &err);
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / n;
    std::printf("[ perf ] %s: %.1f us per render (4 messages)\n", file, us);
    EXPECT_LT(us, 5000.0);
  }
}

}  // namespace
