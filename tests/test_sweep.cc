// Sweep expansion: grid points in order, every spec defaulted and validated, and
// every mistake in a sweep file reported with its place; sweep files read by the
// strict reader of job files.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/errors.h"
#include "spec/sweep.h"

using namespace prelude;
namespace v1 = prelude::v1;

namespace {

v1::SweepSpec sweep_json(const std::string& json) {
  v1::SweepSpec s;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &s);
  EXPECT_TRUE(status.ok()) << status.message();
  return s;
}

// The message of the UserError expand_sweep throws ("" if none).
std::string error_of(const std::string& json, int max_points = 1000) {
  try {
    expand_sweep(sweep_json(json), max_points);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// Where the tests below write their sweep file.
std::string sweep_path() { return ::testing::TempDir() + "/sweep.json"; }

// The sweep file, holding `text`.
std::string write_sweep(const std::string& text) {
  const std::string path = sweep_path();
  std::ofstream(path) << text;
  return path;
}

// The message of the UserError load_sweep_file throws for a file holding `text`.
std::string load_error(const std::string& text) {
  const std::string path = write_sweep(text);
  try {
    load_sweep_file(path);
  } catch (const UserError& e) {
    std::remove(path.c_str());
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  }
  std::remove(path.c_str());
  ADD_FAILURE() << "no UserError for " << text;
  return "";
}

}  // namespace

TEST(Sweep, RectifiersTimesSeedsInOrderWithDefaults) {
  const auto points = expand_sweep(sweep_json(R"({
    "name": "rectifiers", "base": {"training": {"epochs": 2}},
    "grid": [{"field": "model.activation.kind",
              "values": ["RELU", "LEAKY_RELU", "PRELU_SHARED", "PRELU_CHANNELWISE"]}],
    "seeds": [1, 2, 3]})"));
  ASSERT_EQ(points.size(), 12u);
  const v1::ActivationSpec::Kind kinds[] = {v1::ActivationSpec::RELU, v1::ActivationSpec::LEAKY_RELU,
                                            v1::ActivationSpec::PRELU_SHARED, v1::ActivationSpec::PRELU_CHANNELWISE};
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& s = points[i].spec;
    EXPECT_EQ(s.model().activation().kind(), kinds[i / 3]) << i;  // first axis slowest
    EXPECT_EQ(s.training().seed(), static_cast<int64_t>(i % 3 + 1)) << i;  // seeds fastest
    EXPECT_EQ(s.training().epochs(), 2) << "the base is kept";
    EXPECT_EQ(s.training().learning_rate(), 0.01) << "defaults are applied";
  }
  // Each kind gets its own default slope: 0 for ReLU, 0.01 leaky, 0.25 PReLU.
  EXPECT_EQ(points[0].spec.model().activation().alpha_init(), 0.0);
  EXPECT_EQ(points[3].spec.model().activation().alpha_init(), 0.01);
  EXPECT_EQ(points[6].spec.model().activation().alpha_init(), 0.25);
  EXPECT_EQ(points[4].label, "model.activation.kind=LEAKY_RELU training.seed=2");
  EXPECT_EQ(points[4].spec.name(), "rectifiers model.activation.kind=LEAKY_RELU training.seed=2");
}

TEST(Sweep, DepthTimesInitWithSnakeCaseAndNumbers) {
  const auto points = expand_sweep(sweep_json(R"({
    "base": {"name": "depth", "model": {"width": 16}},
    "grid": [{"field": "model.preset", "values": ["plain-22", "plain-30"]},
             {"field": "model.init.scheme", "values": ["XAVIER_NORMAL", "KAIMING_NORMAL"]},
             {"field": "training.learning_rate", "values": [0.01]}]})"));
  ASSERT_EQ(points.size(), 4u);
  EXPECT_EQ(points[0].spec.model().preset(), "plain-22");
  EXPECT_EQ(points[0].spec.model().init().scheme(), v1::InitSpec::XAVIER_NORMAL);
  EXPECT_EQ(points[3].spec.model().preset(), "plain-30");
  EXPECT_EQ(points[3].spec.model().init().scheme(), v1::InitSpec::KAIMING_NORMAL);
  EXPECT_EQ(points[3].label, "model.preset=plain-30 model.init.scheme=KAIMING_NORMAL training.learningRate=0.01");
  EXPECT_EQ(points[3].spec.name(), "depth " + points[3].label) << "the base's name when the sweep has none";
}

TEST(Sweep, NoGridIsTheBaseAlone) {
  const auto points = expand_sweep(sweep_json(R"({"base": {"training": {"batchSize": 32}}})"));
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].spec.training().batch_size(), 32);
}

TEST(Sweep, MistakesNameTheirPlace) {
  EXPECT_EQ(error_of(R"({"grid": [{"field": "training.lerningRate", "values": [1]}]})"),
            "grid[0].field: 'training.lerningRate': training has no field 'lerningRate'");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "model.activation.kind", "values": ["RELU", "RELUX"]}]})"),
            "grid[0].values[1]: model.activation.kind: unknown value 'RELUX' (one of RELU, LEAKY_RELU, "
            "PRELU_SHARED, PRELU_CHANNELWISE)");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "training.learningRate", "values": ["fast"]}]})"),
            "grid[0].values[0]: training.learningRate: needs a number, got 'fast'");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "training.batchSize", "values": [32.5]}]})"),
            "grid[0].values[0]: training.batchSize: needs a whole number in range, got 32.5");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "model.layers", "values": [1]}]})"),
            "grid[0].field: 'model.layers': layers is a list; sweep over single values");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "model.init", "values": [1]}]})"),
            "grid[0].field: 'model.init' is a message; name one of its fields");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "training.seed", "values": [1]}], "seeds": [1, 2]})"),
            "seeds: also given as grid[0]");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "model.width", "values": []}]})"),
            "grid[0].values: must list at least one value");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "model.width", "values": [8]},
                                  {"field": "model.width", "values": [16]}]})"),
            "grid[1].field: model.width is already an axis");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "training.seed", "values": [1, 2, 3]}], "seeds": []})", 2),
            "grid: has 3 points; at most 2 are allowed");
}

// Found by fuzzing (tests/fuzz, fuzz_spec_proto): a field name, a value or a grid
// point holding a line break came back in the message as written, so one error
// took several lines of a log or a terminal (and could forge the next), and a long
// one was echoed whole. They are escaped and cut as everywhere else (spec_text.h).
TEST(Sweep, MessagesEchoWhatTheUserWroteOnOneLine) {
  EXPECT_EQ(error_of(R"({"grid": [{"field": "mode\n.init.kaimingFactor", "values": [1]}]})"),
            "grid[0].field: 'mode\\n.init.kaimingFactor': the job spec has no field 'mode\\n'");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "model.activation.kind", "values": ["RELU\r\nX"]}]})"),
            "grid[0].values[0]: model.activation.kind: unknown value 'RELU\\r\\nX' (one of RELU, LEAKY_RELU, "
            "PRELU_SHARED, PRELU_CHANNELWISE)");
  EXPECT_EQ(error_of(R"({"grid": [{"field": "training.learningRate", "values": ["fa\nst"]}]})"),
            "grid[0].values[0]: training.learningRate: needs a number, got 'fa\\nst'");
  // A grid point is named by its values; a data path may hold a line break until validated.
  const std::string point = error_of(R"({"grid": [{"field": "dataset.trainImages", "values": ["a\nb"]}]})");
  EXPECT_EQ(point.rfind("grid point dataset.trainImages=a\\nb: ", 0), 0u) << point;
  EXPECT_EQ(point.find('\n'), std::string::npos) << point;
  const std::string long_field(5000, 'x');
  const std::string e = error_of(R"({"grid": [{"field": ")" + long_field + R"(", "values": [1]}]})");
  EXPECT_LT(e.size(), 300u) << e;
}

TEST(Sweep, InvalidPointNamesThePointAndTheField) {
  const std::string e = error_of(R"({"grid": [{"field": "training.learningRate", "values": [0.1, -1]}]})");
  EXPECT_EQ(e.rfind("grid point training.learningRate=-1: training.learningRate:", 0), 0u) << e;
}

TEST(Sweep, ShippedExperimentsExpand) {
  const char* src = std::getenv("PRELUDE_SOURCE_DIR");
  if (!src) GTEST_SKIP() << "PRELUDE_SOURCE_DIR not set";
  const std::pair<const char*, size_t> files[] = {
      {"rectifiers.json", 12}, {"depth-init.json", 10}, {"slopes.json", 4}, {"kaiming-factor.json", 4}};
  for (const auto& [name, count] : files) {
    std::ifstream in(std::string(src) + "/examples/experiments/" + name);
    ASSERT_TRUE(in) << name;
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_EQ(expand_sweep(sweep_json(text.str())).size(), count) << name;
  }
}

// ---------------------------------------------------------------------------
// Sweep files: read as strictly as job files (tests/test_job_spec.cc), every
// message starting with the path.

TEST(SweepFile, ValuesMayBeNumbersStringsAndBooleans) {
  const std::string path = write_sweep(R"({"name": "mixed", "base": {"training": {"batch_size": 32}},
    "grid": [{"field": "training.learningRate", "values": [0.1, 1e-2]},
             {"field": "model.activation.kind", "values": ["RELU", "LEAKY_RELU"]},
             {"field": "training.skipTest", "values": [true, false]}],
    "seeds": [1, 2]})");
  const v1::SweepSpec sweep = load_sweep_file(path);
  std::remove(path.c_str());
  ASSERT_EQ(sweep.grid_size(), 3);
  EXPECT_EQ(sweep.grid(0).values(1).number_value(), 0.01);
  EXPECT_EQ(sweep.grid(1).values(0).string_value(), "RELU");
  EXPECT_TRUE(sweep.grid(2).values(0).bool_value());
  EXPECT_EQ(sweep.base().training().batch_size(), 32);
  EXPECT_EQ(expand_sweep(sweep).size(), 16u);
}

TEST(SweepFile, ValuesMayBeAnyJsonWithKeysAsWritten) {
  // The reader takes any JSON value (expand_sweep says which ones a field takes), and
  // keys inside a value are data, not field names: "a_b" and "aB" are two keys.
  const std::string path =
      write_sweep(R"({"grid": [{"field": "model.width", "values": [null, [1, "x"], {"a_b": 1, "aB": {"c": []}}]}]})");
  const v1::SweepSpec sweep = load_sweep_file(path);
  ASSERT_EQ(sweep.grid(0).values_size(), 3);
  EXPECT_EQ(sweep.grid(0).values(1).list_value().values_size(), 2);
  EXPECT_EQ(sweep.grid(0).values(2).struct_value().fields().count("a_b"), 1u);
  EXPECT_EQ(sweep.grid(0).values(2).struct_value().fields().count("aB"), 1u);
  EXPECT_EQ(load_error(R"({"grid": [{"field": "model.width", "values": [{"a": 1, "a": 2}]}]})"),
            path + ":1:56: grid[0].values[0].a: given twice (first at line 1)");
}

TEST(SweepFile, MalformedJsonNamesLineAndColumn) {
  const std::string path = sweep_path();
  EXPECT_EQ(load_error("{\"name\": \"x\"\n \"grid\": []}"),
            path + ":2:2: malformed JSON: expected ',' or '}' after the value of \"name\", got '\"'");
  EXPECT_EQ(load_error("{\"grid\": [{\"field\": \"training.seed\"\n  \"values\": [1]}]}"),
            path + ":2:3: malformed JSON: expected ',' or '}' after the value of \"field\", got '\"'");
  EXPECT_EQ(load_error("{\"seeds\": [1, 2,]}"), path + ":1:16: malformed JSON: trailing comma before ']'");
  EXPECT_EQ(load_error("{\"grid\": [{\"field\": \"model.width\", \"values\": [8],},]}"),
            path + ":1:49: malformed JSON: trailing comma before '}'");
  EXPECT_EQ(load_error("{\"base\": {\"training\": {\"epochs\": 3}}"),
            path + ":1:37: malformed JSON: unexpected end of input; the '{' at 1:1 is not closed");
  // The grid's values are checked like any other JSON.
  EXPECT_EQ(load_error("{\"grid\": [{\"field\": \"model.width\", \"values\": [08]}]}"),
            path + ":1:47: malformed JSON: invalid number: leading zeros are not allowed");
  EXPECT_EQ(load_error(""), path + ":1:1: malformed JSON: the input is empty; expected a JSON object");
}

TEST(SweepFile, KeyGivenTwiceIsAnError) {
  const std::string path = sweep_path();
  EXPECT_EQ(load_error("{\"seeds\": [1],\n \"seeds\": [2]}"), path + ":2:2: seeds: given twice (first at line 1)");
  EXPECT_EQ(load_error(R"({"base": {"training": {"batch_size": 3, "batchSize": 4}}})"),
            path + ":1:41: base.training.batchSize: given twice (first as \"batch_size\" at line 1)");
  EXPECT_EQ(load_error(R"({"grid": [{"field": "model.width", "values": [8], "field": "model.preset"}]})"),
            path + ":1:51: grid[0].field: given twice (first at line 1)");
}

TEST(SweepFile, UnknownFieldsAndWrongValuesAreNamed) {
  const std::string path = sweep_path();
  EXPECT_EQ(load_error(R"({"grid": [{"feild": "model.width", "values": [8]}]})"),
            path + ": grid[0].feild: unknown field (did you mean field?)");
  EXPECT_EQ(load_error(R"({"seed": [1, 2]})"), path + ": seed: unknown field (did you mean seeds?)");
  EXPECT_EQ(load_error(R"({"base": {"training": {"batchSizee": 3}}})"),
            path + ": base.training.batchSizee: unknown field (did you mean batchSize?)");
  EXPECT_EQ(load_error(R"({"base": {"model": {"init": {"scheme": 7}}}})"),
            path + ": base.model.init.scheme: unknown value 7; valid: XAVIER_UNIFORM, XAVIER_NORMAL, KAIMING_NORMAL, "
                   "KAIMING_UNIFORM");
  EXPECT_EQ(load_error(R"({"seeds": ["one"]})"), path + ": seeds[0]: expected a 64-bit whole number, got \"one\"");
}

TEST(SweepFile, ShippedExperimentsReadAsProtobufReadsThem) {
  const char* src = std::getenv("PRELUDE_SOURCE_DIR");
  if (!src) GTEST_SKIP() << "PRELUDE_SOURCE_DIR not set";
  for (const char* name : {"rectifiers.json", "depth-init.json", "slopes.json", "kaiming-factor.json"}) {
    const std::string path = std::string(src) + "/examples/experiments/" + name;
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_EQ(load_sweep_file(path).SerializeAsString(), sweep_json(text.str()).SerializeAsString()) << name;
  }
}
