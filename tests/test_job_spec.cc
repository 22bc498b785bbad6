// Job specs: parsing (both field spellings, clean one-line errors), defaults,
// validation, and the expansion of presets into the exact layer structure of the
// PyTorch reference (shared/anchors/torch_baseline.py).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/errors.h"
#include "spec/job_spec.h"

using namespace prelude;
namespace v1 = prelude::v1;

namespace {

// The example job of the product brief, verbatim; examples/jobs/fmnist-prelu.json holds it too.
constexpr const char* kExample = R"({ "name": "fmnist-prelu",
  "dataset":  { "name": "fashion-mnist" },
  "model":    { "preset": "cnn-small",
                "activation": { "kind": "PRELU_CHANNELWISE", "alphaInit": 0.25 },
                "init": { "scheme": "KAIMING_NORMAL", "mode": "FAN_IN" } },
  "training": { "epochs": 3, "batchSize": 64, "learningRate": 0.01, "momentum": 0.9,
                "weightDecay": 0.0005, "seed": 1, "maxSteps": 0 } }
)";

// The repository root: ctest sets PRELUDE_SOURCE_DIR; run by hand, this file's own path tells.
std::string source_dir() {
  if (const char* dir = std::getenv("PRELUDE_SOURCE_DIR")) return dir;
  return std::filesystem::path(__FILE__).parent_path().parent_path().string();
}

std::string examples_dir() { return source_dir() + "/examples/jobs"; }

v1::JobSpec parse(const std::string& json) { return parse_job_json(json, "job.json"); }

v1::JobSpec parse_defaulted(const std::string& json) {
  v1::JobSpec spec = parse(json);
  apply_defaults(&spec);
  return spec;
}

// The message of the UserError that parsing, defaulting and validating `json` throws.
std::string error_of(const std::string& json) {
  try {
    v1::JobSpec spec = parse(json);
    apply_defaults(&spec);
    validate_job_spec(spec);
  } catch (const UserError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  }
  ADD_FAILURE() << "no UserError for " << json;
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

#define EXPECT_CONTAINS(s, part) EXPECT_PRED2(contains, s, part)

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// ---------------------------------------------------------------------------
// Parsing

TEST(JobSpecParse, ExampleGivesItsValues) {
  const v1::JobSpec spec = parse(kExample);
  EXPECT_EQ(spec.name(), "fmnist-prelu");
  EXPECT_EQ(spec.dataset().name(), "fashion-mnist");
  EXPECT_EQ(spec.model().preset(), "cnn-small");
  EXPECT_EQ(spec.model().activation().kind(), v1::ActivationSpec::PRELU_CHANNELWISE);
  ASSERT_TRUE(spec.model().activation().has_alpha_init());
  EXPECT_DOUBLE_EQ(spec.model().activation().alpha_init(), 0.25);
  EXPECT_EQ(spec.model().init().scheme(), v1::InitSpec::KAIMING_NORMAL);
  EXPECT_EQ(spec.model().init().mode(), v1::InitSpec::FAN_IN);
  const auto& t = spec.training();
  EXPECT_DOUBLE_EQ(t.epochs(), 3);
  EXPECT_EQ(t.batch_size(), 64);
  EXPECT_DOUBLE_EQ(t.learning_rate(), 0.01);
  EXPECT_DOUBLE_EQ(t.momentum(), 0.9);
  EXPECT_DOUBLE_EQ(t.weight_decay(), 0.0005);
  EXPECT_EQ(t.seed(), 1);
  EXPECT_EQ(t.max_steps(), 0);
  EXPECT_NO_THROW(validate_job_spec(parse_defaulted(kExample)));
}

TEST(JobSpecParse, ExampleFileIsTheExample) {
  const v1::JobSpec file = load_job_file(examples_dir() + "/fmnist-prelu.json");
  EXPECT_EQ(file.SerializeAsString(), parse(kExample).SerializeAsString());
}

TEST(JobSpecParse, CamelCaseAndSnakeCaseAgree) {
  const v1::JobSpec camel = parse(R"({"dataset": {"trainLimit": 100, "testLimit": 10},
      "model": {"activation": {"kind": "LEAKY_RELU", "alphaInit": 0.1},
                "init": {"kaimingFactor": "ONE_PLUS_A"},
                "layers": [{"conv": {"outChannels": 8}}, {"fc": {"outFeatures": 10}}]},
      "training": {"batchSize": 32, "learningRate": 0.1, "weightDecay": 0, "maxSteps": 7,
                   "lrSchedule": {"kind": "STEP", "stepEpochs": 2}, "weightDecayOnSlopes": true,
                   "logEverySteps": 5, "skipTest": true}})");
  const v1::JobSpec snake = parse(R"({"dataset": {"train_limit": 100, "test_limit": 10},
      "model": {"activation": {"kind": "LEAKY_RELU", "alpha_init": 0.1},
                "init": {"kaiming_factor": "ONE_PLUS_A"},
                "layers": [{"conv": {"out_channels": 8}}, {"fc": {"out_features": 10}}]},
      "training": {"batch_size": 32, "learning_rate": 0.1, "weight_decay": 0, "max_steps": 7,
                   "lr_schedule": {"kind": "STEP", "step_epochs": 2}, "weight_decay_on_slopes": true,
                   "log_every_steps": 5, "skip_test": true}})");
  EXPECT_EQ(camel.SerializeAsString(), snake.SerializeAsString());
  EXPECT_EQ(camel.training().batch_size(), 32);
  EXPECT_EQ(camel.training().lr_schedule().step_epochs(), 2);
  EXPECT_EQ(camel.model().layers(0).conv().out_channels(), 8);
  EXPECT_TRUE(camel.training().has_weight_decay());  // an explicit 0 is kept as given
  EXPECT_TRUE(camel.training().skip_test());
}

TEST(JobSpecParse, UnknownEnumNameListsTheValidNames) {
  const std::string e = error_of(R"({"model": {"activation": {"kind": "FOO"}}})");
  EXPECT_EQ(e, "job.json: model.activation.kind: unknown value \"FOO\"; valid: RELU, LEAKY_RELU, PRELU_SHARED, "
               "PRELU_CHANNELWISE");
  EXPECT_CONTAINS(error_of(R"({"model": {"activation": {"kind": "relu"}}})"), "(did you mean RELU?)");
  EXPECT_CONTAINS(error_of(R"({"training": {"lr_schedule": {"kind": "EXP"}}})"),
                  "job.json: training.lrSchedule.kind: unknown value \"EXP\"; valid: CONSTANT, STEP, COSINE");
  EXPECT_CONTAINS(error_of(R"({"model": {"layers": [{"pool": {"kind": "MIN"}}]}})"), "model.layers[0].pool.kind");
}

TEST(JobSpecParse, UnknownEnumNumberIsAnError) {
  // protobuf itself accepts any number for an open enum.
  EXPECT_EQ(error_of(R"({"model": {"init": {"scheme": 7}}})"),
            "job.json: model.init.scheme: unknown value 7; valid: XAVIER_UNIFORM, XAVIER_NORMAL, KAIMING_NORMAL, "
            "KAIMING_UNIFORM");
  EXPECT_CONTAINS(error_of(R"({"model": {"activation": {"kind": true}}})"), "model.activation.kind: expected one of");
}

TEST(JobSpecParse, UnknownFieldIsAnError) {
  EXPECT_EQ(error_of(R"({"training": {"batchSizee": 3}})"),
            "job.json: training.batchSizee: unknown field (did you mean batchSize?)");
  EXPECT_EQ(error_of(R"({"training": {"Batch_Size": 3}})"),
            "job.json: training.Batch_Size: unknown field (did you mean batchSize?)");
  EXPECT_EQ(error_of(R"({"model": {"inti": {}}})"), "job.json: model.inti: unknown field (did you mean init?)");
  EXPECT_EQ(error_of(R"({"optimizer": "adam"})"),
            "job.json: optimizer: unknown field (known fields: name, dataset, model, training, resources)");
  EXPECT_EQ(error_of(R"({"model": {"layers": [{"fc": {"outFeatures": 10}}, {"conv": {"kernal": 3}}]}})"),
            "job.json: model.layers[1].conv.kernal: unknown field (did you mean kernel?)");
}

TEST(JobSpecParse, MalformedJsonNamesLineAndColumn) {
  EXPECT_EQ(error_of("{\"name\": \"x\"\n \"training\": {}}"),
            "job.json:2:2: malformed JSON: expected ',' or '}' after the value of \"name\", got '\"'");
  EXPECT_EQ(error_of("{\"training\": {\"epochs\": 3,}}"), "job.json:1:26: malformed JSON: trailing comma before '}'");
  EXPECT_EQ(error_of("{\"training\": {\"epochs\": 3}"),
            "job.json:1:27: malformed JSON: unexpected end of input; the '{' at 1:1 is not closed");
  EXPECT_EQ(error_of("{\"training\" {}}"), "job.json:1:13: malformed JSON: expected ':' after \"training\", got '{'");
  EXPECT_EQ(error_of("{\"training\": {\"epochs\": NaN}}"),
            "job.json:1:25: malformed JSON: expected a value, got 'NaN'");
  EXPECT_EQ(error_of("{\"name\": \"unterminated}"), "job.json:1:10: malformed JSON: unterminated string");
  EXPECT_EQ(error_of("{\"training\": {\"epochs\": 1e999}}"),
            "job.json:1:25: malformed JSON: number out of range: 1e999");
  EXPECT_EQ(error_of(R"({"model": {"layers": [{"fc": {}},]}})"),
            "job.json:1:33: malformed JSON: trailing comma before ']'");
  EXPECT_EQ(error_of("[]"), "job.json:1:1: malformed JSON: expected a JSON object ('{') at the top level, got '['");
  EXPECT_EQ(error_of(""), "job.json:1:1: malformed JSON: the input is empty; expected a JSON object");
  EXPECT_EQ(error_of("{} {}"), "job.json:1:4: malformed JSON: unexpected '{' after the end of the top-level object");
  EXPECT_CONTAINS(error_of("{\"name\": \"\xff\"}"), "invalid UTF-8");
  EXPECT_CONTAINS(error_of(R"({"name": "\ud800"})"), "unpaired surrogate");
  EXPECT_EQ(error_of(R"({"name": "\x41"})"), "job.json:1:11: malformed JSON: invalid escape in a string: '\\' followed by 'x'");
  // What the user wrote is echoed escaped, so a message stays on one line.
  EXPECT_EQ(error_of(R"({"model": {"preset": "plain\n30"}})"),
            "model.preset: unknown preset \"plain\\n30\"; valid: cnn-small, plain-N (N from 3 to 200)");
  EXPECT_EQ(error_of(R"({"model": {"activation": {"kind": "A\tB"}}})"),
            "job.json: model.activation.kind: unknown value \"A\\tB\"; valid: RELU, LEAKY_RELU, PRELU_SHARED, "
            "PRELU_CHANNELWISE");
  // A byte order mark is not an error.
  EXPECT_EQ(parse("\xEF\xBB\xBF{\"name\": \"bom\"}").name(), "bom");
}

TEST(JobSpecParse, FieldGivenTwiceIsAnError) {
  EXPECT_EQ(error_of("{\"training\": {\"epochs\": 1},\n \"training\": {\"seed\": 2}}"),
            "job.json:2:2: training: given twice (first at line 1)");
  EXPECT_EQ(error_of(R"({"training": {"batch_size": 3, "batchSize": 4}})"),
            "job.json:1:32: training.batchSize: given twice (first as \"batch_size\" at line 1)");
}

TEST(JobSpecParse, WrongTypeNamesTheExpectedType) {
  EXPECT_EQ(error_of(R"({"training": {"batchSize": "abc"}})"),
            "job.json: training.batchSize: expected a 32-bit whole number, got \"abc\"");
  EXPECT_EQ(error_of(R"({"training": {"batchSize": 1.5}})"),
            "job.json: training.batchSize: expected a 32-bit whole number, got 1.5");
  EXPECT_EQ(error_of(R"({"training": {"batchSize": 1e20}})"),
            "job.json: training.batchSize: expected a 32-bit whole number, got 1e+20");
  EXPECT_EQ(error_of(R"({"training": {"learningRate": true}})"),
            "job.json: training.learningRate: expected a number, got true");
  EXPECT_EQ(error_of(R"({"name": 3})"), "job.json: name: expected a string, got 3");
  EXPECT_EQ(error_of(R"({"name": ["a"]})"), "job.json: name: expected a string, got a list");
  EXPECT_EQ(error_of(R"({"training": {"epochs": {}}})"), "job.json: training.epochs: expected a number, got an object");
  EXPECT_EQ(error_of(R"({"model": "cnn-small"})"), "job.json: model: expected an object, got \"cnn-small\"");
  EXPECT_EQ(error_of(R"({"model": {"layers": 3}})"), "job.json: model.layers: expected a list of objects, got 3");
  EXPECT_EQ(error_of(R"({"training": {"skipTest": 1}})"), "job.json: training.skipTest: expected true or false, got 1");
  EXPECT_EQ(error_of(R"({"model": {"layers": [{"conv": {"outChannels": 8}, "fc": {"outFeatures": 10}}]}})"),
            "job.json: model.layers[0]: give exactly one of conv, activation, pool or fc, not several");
}

// ---------------------------------------------------------------------------
// Validation

TEST(JobSpecValidate, TrainingValues) {
  EXPECT_EQ(error_of(R"({"training": {"batchSize": -3}})"), "training.batchSize: must be positive, got -3");
  EXPECT_EQ(error_of(R"({"training": {"batchSize": 0}})"), "training.batchSize: must be positive, got 0");
  EXPECT_EQ(error_of(R"({"training": {"batchSize": 100000}})"), "training.batchSize: must be at most 65536, got 100000");
  // An explicit 0 is validated, not replaced by the default.
  EXPECT_EQ(error_of(R"({"training": {"learningRate": 0}})"), "training.learningRate: must be positive, got 0");
  EXPECT_EQ(error_of(R"({"training": {"learningRate": "NaN"}})"),
            "training.learningRate: must be a finite number, got NaN");
  EXPECT_EQ(error_of(R"({"training": {"learningRate": 11}})"), "training.learningRate: must be at most 10, got 11");
  EXPECT_EQ(error_of(R"({"training": {"epochs": 0}})"), "training.epochs: must be positive, got 0");
  EXPECT_EQ(error_of(R"({"training": {"epochs": 1001}})"), "training.epochs: must be at most 1000, got 1001");
  EXPECT_EQ(error_of(R"({"training": {"momentum": 1}})"), "training.momentum: must be in [0, 1), got 1");
  EXPECT_EQ(error_of(R"({"training": {"weightDecay": -0.1}})"), "training.weightDecay: must not be negative, got -0.1");
  EXPECT_EQ(error_of(R"({"training": {"weightDecay": "Infinity"}})"),
            "training.weightDecay: must be a finite number, got Infinity");
  EXPECT_EQ(error_of(R"({"training": {"maxSteps": -1}})"), "training.maxSteps: must not be negative, got -1");
  EXPECT_EQ(error_of(R"({"training": {"logEverySteps": 0}})"), "training.logEverySteps: must be positive, got 0");
  EXPECT_EQ(error_of(R"({"training": {"checkpoint": {"everySteps": -5}}})"),
            "training.checkpoint.everySteps: must be between 0 and 2147483647, got -5");
  EXPECT_EQ(error_of(R"({"training": {"lrSchedule": {"gamma": 0.5}}})"),
            "training.lrSchedule.gamma: only used by the STEP schedule");
  EXPECT_EQ(error_of(R"({"training": {"lrSchedule": {"kind": "COSINE", "minLr": 1}}})"),
            "training.lrSchedule.minLr: must not exceed training.learningRate (0.01), got 1");
}

TEST(JobSpecValidate, Activation) {
  EXPECT_EQ(error_of(R"({"model": {"activation": {"kind": "RELU", "alphaInit": 0.25}}})"),
            "model.activation.alphaInit: not allowed for RELU (its slope is 0)");
  EXPECT_EQ(error_of(R"({"model": {"activation": {"alphaInit": "NaN"}}})"),
            "model.activation.alphaInit: must be a finite number, got NaN");
  // PReLU slopes are not constrained to (0, 1).
  EXPECT_NO_THROW(validate_job_spec(parse_defaulted(R"({"model": {"activation": {"alphaInit": -1.5}}})")));
}

TEST(JobSpecValidate, Presets) {
  EXPECT_EQ(error_of(R"({"model": {"preset": "resnet18"}})"),
            "model.preset: unknown preset \"resnet18\"; valid: cnn-small, plain-N (N from 3 to 200)");
  EXPECT_EQ(error_of(R"({"model": {"preset": "plain-2"}})"), "model.preset: plain-N needs N from 3 to 200, got \"plain-2\"");
  EXPECT_EQ(error_of(R"({"model": {"preset": "plain-201"}})"),
            "model.preset: plain-N needs N from 3 to 200, got \"plain-201\"");
  EXPECT_CONTAINS(error_of(R"({"model": {"preset": "plain-030"}})"), "unknown preset");
  EXPECT_CONTAINS(error_of(R"({"model": {"preset": "plain-3x"}})"), "unknown preset");
  EXPECT_EQ(error_of(R"({"model": {"preset": "plain-30", "width": 100000}})"),
            "model.width: must be between 1 and 1024, got 100000");
  EXPECT_EQ(error_of(R"({"model": {"preset": "plain-30", "width": -1}})"),
            "model.width: must be between 1 and 1024, got -1");
  EXPECT_EQ(error_of(R"({"model": {"preset": "cnn-small", "width": 32}})"),
            "model.width: only used by plain-N presets, got 32");
  EXPECT_EQ(error_of(R"({"model": {"preset": "cnn-small", "layers": [{"fc": {"outFeatures": 10}}]}})"),
            "model: give either preset or layers, not both (preset is \"cnn-small\")");
}

TEST(JobSpecValidate, ExplicitLayers) {
  EXPECT_EQ(error_of(R"({"model": {"layers": [{"conv": {"outChannels": 8}}, {"activation": {}}]}})"),
            "model.layers[1]: the last layer must be fc (its outFeatures are the class count), got activation");
  EXPECT_EQ(error_of(R"({"model": {"layers": [{"conv": {"outChannels": 8}}, {"activation": {}}, {"pool": {}},
                                               {"conv": {"outChannels": 0}}, {"fc": {"outFeatures": 10}}]}})"),
            "model.layers[3].conv.outChannels: must be between 1 and 4096, got 0");
  EXPECT_EQ(error_of(R"({"model": {"layers": [{"conv": {"outChannels": 8, "kernel": 99}}, {"fc": {"outFeatures": 10}}]}})"),
            "model.layers[0].conv.kernel: must be between 1 and 15, got 99");
  EXPECT_EQ(error_of(R"({"model": {"layers": [{"conv": {"outChannels": 8, "padding": 3}}, {"fc": {"outFeatures": 10}}]}})"),
            "model.layers[0].conv.padding: must be between 0 and 2, got 3");
  EXPECT_EQ(error_of(R"({"model": {"layers": [{"conv": {"outChannels": 8, "stride": 9}}, {"fc": {"outFeatures": 10}}]}})"),
            "model.layers[0].conv.stride: must be between 1 and 8, got 9");
  EXPECT_EQ(error_of(R"({"model": {"layers": [{"pool": {"kernel": 16}}, {"fc": {"outFeatures": 10}}]}})"),
            "model.layers[0].pool.kernel: must be between 1 and 15, got 16");
  EXPECT_EQ(error_of(R"({"model": {"layers": [{"fc": {"outFeatures": 1000000}}]}})"),
            "model.layers[0].fc.outFeatures: must be between 1 and 65536, got 1000000");
  EXPECT_EQ(error_of(R"({"model": {"layers": [{}, {"fc": {"outFeatures": 10}}]}})"),
            "model.layers[0]: empty layer; give one of conv, activation, pool or fc");
  EXPECT_EQ(error_of(R"({"model": {"activation": {"kind": "RELU"},
                                   "layers": [{"activation": {"alphaInit": 0.1}}, {"fc": {"outFeatures": 10}}]}})"),
            "model.layers[0].activation.alphaInit: not allowed for RELU (its slope is 0)");
}

TEST(JobSpecValidate, Dataset) {
  EXPECT_EQ(error_of(R"({"dataset": {"trainLimit": -1}})"), "dataset.trainLimit: must not be negative, got -1");
  EXPECT_EQ(error_of(R"({"dataset": {"std": 0}})"), "dataset.std: must be positive, got 0");
  EXPECT_EQ(error_of(R"({"dataset": {"name": "../etc"}})"),
            "dataset.name: must be a data set directory name such as \"fashion-mnist\" (letters, digits, '-', "
            "'_', '.'), got \"../etc\"");
  EXPECT_EQ(error_of(R"({"dataset": {"trainImages": "a/train-images.gz"}})"),
            "dataset.trainLabels: required when dataset.name is not given");
  EXPECT_EQ(error_of(R"({"dataset": {"name": "mnist", "testImages": "../x"}})"),
            "dataset.testImages: must stay inside the data root (no \"..\"), got \"../x\"");
  EXPECT_EQ(error_of(R"({"dataset": {"name": "mnist", "testImages": "/x"}})"),
            "dataset.testImages: must be relative to the data root, got \"/x\"");
  EXPECT_EQ(error_of(R"({"name": ")" + std::string(201, 'x') + R"("})"),
            "name: must be at most 200 characters, got 201");
  // Four paths without a name are fine; with skipTest the test files may be left out.
  EXPECT_NO_THROW(validate_job_spec(parse_defaulted(R"({"dataset": {"trainImages": "d/a", "trainLabels": "d/b",
                                                                    "testImages": "d/c", "testLabels": "d/d"}})")));
  EXPECT_NO_THROW(validate_job_spec(parse_defaulted(R"({"dataset": {"trainImages": "d/a", "trainLabels": "d/b"},
                                                        "training": {"skipTest": true}})")));
}

// ---------------------------------------------------------------------------
// Files

TEST(JobSpecFiles, EveryExampleLoadsAndValidates) {
  const std::vector<std::string> expected = {"fmnist-prelu.json",    "fmnist-relu.json",      "plain30-kaiming.json",
                                             "plain30-xavier.json", "explicit-layers.json", "quick.json"};
  for (const auto& name : expected)
    EXPECT_TRUE(std::filesystem::exists(examples_dir() + "/" + name)) << name << " missing";
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(examples_dir())) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    v1::JobSpec spec;
    ASSERT_NO_THROW(spec = load_and_check_job(entry.path().string()));
    EXPECT_FALSE(expand_model(spec.model(), 10).empty());
    ++checked;
  }
  EXPECT_GE(checked, static_cast<int>(expected.size()));
}

TEST(JobSpecFiles, ExamplesSayWhatTheirNamesSay) {
  const auto relu = load_and_check_job(examples_dir() + "/fmnist-relu.json");
  EXPECT_EQ(relu.model().activation().kind(), v1::ActivationSpec::RELU);
  EXPECT_EQ(relu.model().activation().alpha_init(), 0);

  const auto kaiming = load_and_check_job(examples_dir() + "/plain30-kaiming.json");
  const auto xavier = load_and_check_job(examples_dir() + "/plain30-xavier.json");
  for (const auto* spec : {&kaiming, &xavier}) {
    EXPECT_EQ(spec->model().preset(), "plain-30");
    EXPECT_EQ(spec->model().width(), 16);
    EXPECT_EQ(spec->model().activation().kind(), v1::ActivationSpec::PRELU_CHANNELWISE);
    EXPECT_EQ(spec->training().epochs(), 1);
  }
  EXPECT_EQ(kaiming.model().init().scheme(), v1::InitSpec::KAIMING_NORMAL);
  EXPECT_EQ(xavier.model().init().scheme(), v1::InitSpec::XAVIER_NORMAL);
  // The two differ in the initialisation only.
  auto a = kaiming, b = xavier;
  a.clear_name();
  b.clear_name();
  a.mutable_model()->clear_init();
  b.mutable_model()->clear_init();
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());

  const auto quick = load_and_check_job(examples_dir() + "/quick.json");
  EXPECT_EQ(quick.model().preset(), "cnn-small");
  EXPECT_EQ(quick.model().activation().kind(), v1::ActivationSpec::PRELU_SHARED);
  EXPECT_EQ(quick.training().epochs(), 1);
  EXPECT_EQ(quick.training().max_steps(), 100);
  EXPECT_EQ(quick.dataset().train_limit(), 6400);
  EXPECT_EQ(quick.dataset().test_limit(), 1000);
  EXPECT_EQ(quick.training().log_every_steps(), 20);

  const auto explicit_layers = load_and_check_job(examples_dir() + "/explicit-layers.json");
  const auto layers = expand_model(explicit_layers.model(), 10);
  int shared = 0;
  bool conv = false, pool = false, fc = false;
  for (const auto& l : layers) {
    shared += l.has_activation() && l.activation().kind() == v1::ActivationSpec::PRELU_SHARED;
    conv |= l.has_conv();
    pool |= l.has_pool();
    fc |= l.has_fc();
  }
  EXPECT_EQ(shared, 1);
  EXPECT_TRUE(conv && pool && fc);
}

TEST(JobSpecFiles, MissingFileNamesThePath) {
  const std::string path = ::testing::TempDir() + "/no-such-dir/job.json";
  try {
    load_job_file(path);
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": cannot read: No such file or directory");
  }
  try {
    load_job_file(::testing::TempDir());
    FAIL() << "no error for a directory";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), ::testing::TempDir() + ": cannot read: Is a directory");
  }
}

TEST(JobSpecFiles, ErrorsStartWithThePath) {
  const std::string bad_value = write_temp("bad-value.json", R"({"training": {"batchSize": 0}})");
  try {
    load_and_check_job(bad_value);
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), bad_value + ": training.batchSize: must be positive, got 0");
  }
  const std::string bad_json = write_temp("bad-json.json", "{\n  \"name\": 'x'\n}\n");
  try {
    load_and_check_job(bad_json);
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), bad_json + ":2:11: malformed JSON: expected a value, got '''");
  }
  std::remove(bad_value.c_str());
  std::remove(bad_json.c_str());
}

// ---------------------------------------------------------------------------
// Defaults

TEST(JobSpecDefaults, AbsentFieldsGetTheDocumentedDefaults) {
  const v1::JobSpec spec = parse_defaulted("{}");
  EXPECT_NO_THROW(validate_job_spec(spec));
  EXPECT_EQ(spec.dataset().name(), "fashion-mnist");
  EXPECT_DOUBLE_EQ(spec.dataset().mean(), 0.2860);
  EXPECT_DOUBLE_EQ(spec.dataset().std(), 0.3530);
  const auto& m = spec.model();
  EXPECT_EQ(m.preset(), "cnn-small");
  EXPECT_EQ(m.width(), 0);  // only plain-N has a width
  EXPECT_EQ(m.activation().kind(), v1::ActivationSpec::PRELU_CHANNELWISE);
  EXPECT_DOUBLE_EQ(m.activation().alpha_init(), 0.25);
  EXPECT_EQ(m.init().scheme(), v1::InitSpec::KAIMING_NORMAL);
  EXPECT_EQ(m.init().mode(), v1::InitSpec::FAN_IN);
  EXPECT_EQ(m.init().kaiming_factor(), v1::InitSpec::ONE_PLUS_A_SQUARED);
  const auto& t = spec.training();
  EXPECT_DOUBLE_EQ(t.epochs(), 1);
  EXPECT_EQ(t.batch_size(), 64);
  EXPECT_DOUBLE_EQ(t.learning_rate(), 0.01);
  EXPECT_DOUBLE_EQ(t.momentum(), 0.9);
  EXPECT_DOUBLE_EQ(t.weight_decay(), 5e-4);
  EXPECT_EQ(t.seed(), 1);
  EXPECT_EQ(t.max_steps(), 0);
  EXPECT_EQ(t.log_every_steps(), 50);
  EXPECT_EQ(t.lr_schedule().kind(), v1::LrScheduleSpec::CONSTANT);
  EXPECT_FALSE(t.lr_schedule().has_gamma());  // STEP only

  // Idempotent.
  v1::JobSpec again = spec;
  apply_defaults(&again);
  EXPECT_EQ(again.SerializeAsString(), spec.SerializeAsString());
}

TEST(JobSpecDefaults, ExplicitValuesStay) {
  const v1::JobSpec spec = parse_defaulted(
      R"({"training": {"momentum": 0, "weightDecay": 0, "seed": 0},
          "model": {"activation": {"kind": "PRELU_SHARED", "alphaInit": 0}}})");
  EXPECT_EQ(spec.training().momentum(), 0);
  EXPECT_EQ(spec.training().weight_decay(), 0);
  EXPECT_EQ(spec.training().seed(), 0);
  EXPECT_EQ(spec.model().activation().alpha_init(), 0);
  EXPECT_NO_THROW(validate_job_spec(spec));
}

TEST(JobSpecDefaults, SlopeDependsOnTheKind) {
  auto alpha = [](const char* kind) {
    return parse_defaulted(std::string(R"({"model": {"activation": {"kind": ")") + kind + "\"}}}")
        .model()
        .activation()
        .alpha_init();
  };
  EXPECT_DOUBLE_EQ(alpha("RELU"), 0);
  EXPECT_DOUBLE_EQ(alpha("LEAKY_RELU"), 0.01);
  EXPECT_DOUBLE_EQ(alpha("PRELU_SHARED"), 0.25);
  EXPECT_DOUBLE_EQ(alpha("PRELU_CHANNELWISE"), 0.25);
  // RELU's defaulted (or explicit) 0 passes validation.
  EXPECT_NO_THROW(validate_job_spec(parse_defaulted(R"({"model": {"activation": {"kind": "RELU", "alphaInit": 0}}})")));
}

TEST(JobSpecDefaults, PlainWidthStepScheduleAndData) {
  const auto plain = parse_defaulted(R"({"model": {"preset": "plain-22"}})");
  EXPECT_EQ(plain.model().width(), 16);
  const auto step = parse_defaulted(R"({"training": {"lrSchedule": {"kind": "STEP"}}})");
  EXPECT_EQ(step.training().lr_schedule().step_epochs(), 1);
  EXPECT_DOUBLE_EQ(step.training().lr_schedule().gamma(), 0.1);
  const auto mnist = parse_defaulted(R"({"dataset": {"name": "mnist", "std": 0.5}})");
  EXPECT_DOUBLE_EQ(mnist.dataset().mean(), 0.1307);
  EXPECT_DOUBLE_EQ(mnist.dataset().std(), 0.5);
  const auto files = parse_defaulted(R"({"dataset": {"trainImages": "x/a", "trainLabels": "x/b"}})");
  EXPECT_EQ(files.dataset().name(), "");  // the paths stand alone
  EXPECT_DOUBLE_EQ(files.dataset().mean(), 0);
  EXPECT_DOUBLE_EQ(files.dataset().std(), 1);
}

TEST(JobSpecDefaults, ExplicitLayers) {
  const auto spec = parse_defaulted(R"({"model": {"activation": {"kind": "LEAKY_RELU", "alphaInit": 0.2},
      "layers": [{"conv": {"outChannels": 8, "kernel": 5}},
                 {"activation": {}},
                 {"activation": {"kind": "PRELU_SHARED"}},
                 {"activation": {"alphaInit": 0.3}},
                 {"pool": {"kernel": 3}},
                 {"pool": {"kind": "GLOBAL_AVG"}},
                 {"fc": {"outFeatures": 10}}]}})");
  EXPECT_NO_THROW(validate_job_spec(spec));
  const auto& l = spec.model().layers();
  EXPECT_EQ(l[0].conv().kernel(), 5);
  EXPECT_EQ(l[0].conv().padding(), 2);
  EXPECT_EQ(l[0].conv().stride(), 1);
  EXPECT_EQ(l[1].activation().kind(), v1::ActivationSpec::LEAKY_RELU);  // the model's, slope and all
  EXPECT_DOUBLE_EQ(l[1].activation().alpha_init(), 0.2);
  EXPECT_EQ(l[2].activation().kind(), v1::ActivationSpec::PRELU_SHARED);  // its own kind's default slope
  EXPECT_DOUBLE_EQ(l[2].activation().alpha_init(), 0.25);
  EXPECT_EQ(l[3].activation().kind(), v1::ActivationSpec::LEAKY_RELU);
  EXPECT_DOUBLE_EQ(l[3].activation().alpha_init(), 0.3);
  EXPECT_EQ(l[4].pool().kind(), v1::PoolLayerSpec::MAX);
  EXPECT_EQ(l[4].pool().kernel(), 3);
  EXPECT_EQ(l[4].pool().stride(), 3);
  EXPECT_EQ(l[5].pool().kernel(), 0);  // a global pool takes no kernel

  // Returned as given, with the defaults.
  const auto layers = expand_model(spec.model(), 10);
  ASSERT_EQ(layers.size(), 7u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(layers[i].SerializeAsString(), l[i].SerializeAsString()) << i;
  EXPECT_EQ(describe_layers(layers), "conv5x5(8) leaky(a=0.2) prelu-shared leaky(a=0.3) maxpool3 globalavgpool fc10");
}

// ---------------------------------------------------------------------------
// Expansion

void expect_conv3x3(const v1::LayerSpec& l, int channels) {
  ASSERT_TRUE(l.has_conv());
  EXPECT_EQ(l.conv().out_channels(), channels);
  EXPECT_EQ(l.conv().kernel(), 3);
  EXPECT_TRUE(l.conv().has_padding());
  EXPECT_EQ(l.conv().padding(), 1);
  EXPECT_EQ(l.conv().stride(), 1);
}

void expect_activation(const v1::LayerSpec& l, v1::ActivationSpec::Kind kind, double alpha) {
  ASSERT_TRUE(l.has_activation());
  EXPECT_EQ(l.activation().kind(), kind);
  ASSERT_TRUE(l.activation().has_alpha_init());
  EXPECT_DOUBLE_EQ(l.activation().alpha_init(), alpha);
}

void expect_maxpool2(const v1::LayerSpec& l) {
  ASSERT_TRUE(l.has_pool());
  EXPECT_EQ(l.pool().kind(), v1::PoolLayerSpec::MAX);
  EXPECT_EQ(l.pool().kernel(), 2);
  EXPECT_EQ(l.pool().stride(), 2);
}

TEST(JobSpecExpand, CnnSmallIsTheTorchStructure) {
  // torch: Conv(1,32) A Conv(32,32) A MaxPool2 Conv(32,64) A Conv(64,64) A MaxPool2 Flatten Linear(3136,256) A Linear(256,10)
  const auto spec = parse_defaulted(R"({"model": {"activation": {"kind": "LEAKY_RELU", "alphaInit": 0.1}}})");
  const auto layers = expand_model(spec.model(), 10);
  ASSERT_EQ(layers.size(), 13u);
  const auto leaky = v1::ActivationSpec::LEAKY_RELU;
  expect_conv3x3(layers[0], 32);
  expect_activation(layers[1], leaky, 0.1);
  expect_conv3x3(layers[2], 32);
  expect_activation(layers[3], leaky, 0.1);
  expect_maxpool2(layers[4]);
  expect_conv3x3(layers[5], 64);
  expect_activation(layers[6], leaky, 0.1);
  expect_conv3x3(layers[7], 64);
  expect_activation(layers[8], leaky, 0.1);
  expect_maxpool2(layers[9]);
  ASSERT_TRUE(layers[10].has_fc());
  EXPECT_EQ(layers[10].fc().out_features(), 256);
  expect_activation(layers[11], leaky, 0.1);
  ASSERT_TRUE(layers[12].has_fc());
  EXPECT_EQ(layers[12].fc().out_features(), 10);

  EXPECT_EQ(describe_layers(expand_model(parse_defaulted("{}").model(), 10)),
            "conv3x3(32) prelu-cw conv3x3(32) prelu-cw maxpool2 conv3x3(64) prelu-cw conv3x3(64) prelu-cw maxpool2 "
            "fc256 prelu-cw fc10");
  EXPECT_EQ(expand_model(spec.model(), 7).back().fc().out_features(), 7);
}

// Checks plain-N against torch_baseline.py's plain(): N-1 conv3x3(width) each followed
// by the activation, max-pools right after the activations of the given convs, then a
// global average pool and fc(num_classes).
void expect_plain(int depth, int width, const std::vector<int>& pools_after) {
  SCOPED_TRACE("plain-" + std::to_string(depth));
  const auto spec = parse_defaulted(R"({"model": {"preset": "plain-)" + std::to_string(depth) + R"(", "width": )" +
                                    std::to_string(width) + "}}");
  ASSERT_NO_THROW(validate_job_spec(spec));
  const auto layers = expand_model(spec.model(), 10);
  int convs = 0;
  std::vector<int> pools;
  size_t i = 0;
  while (i < layers.size() && layers[i].has_conv()) {
    expect_conv3x3(layers[i++], width);
    ASSERT_LT(i, layers.size());
    expect_activation(layers[i++], v1::ActivationSpec::PRELU_CHANNELWISE, 0.25);
    if (i < layers.size() && layers[i].has_pool() && layers[i].pool().kind() == v1::PoolLayerSpec::MAX) {
      expect_maxpool2(layers[i++]);
      pools.push_back(convs);
    }
    ++convs;
  }
  EXPECT_EQ(convs, depth - 1);
  EXPECT_EQ(pools, pools_after);
  ASSERT_EQ(layers.size(), i + 2);
  ASSERT_TRUE(layers[i].has_pool());
  EXPECT_EQ(layers[i].pool().kind(), v1::PoolLayerSpec::GLOBAL_AVG);
  ASSERT_TRUE(layers[i + 1].has_fc());
  EXPECT_EQ(layers[i + 1].fc().out_features(), 10);
}

TEST(JobSpecExpand, PlainMatchesTorch) {
  expect_plain(30, 16, {10, 20});
  expect_plain(22, 16, {7, 14});
  expect_plain(3, 8, {1});  // 2N/3 == 2 is past the last conv (index 1)
  expect_plain(4, 4, {1, 2});
  expect_plain(200, 1024, {66, 133});
}

TEST(JobSpecExpand, DescribeShowsNonDefaultSettings) {
  v1::LayerSpec conv;
  conv.mutable_conv()->set_out_channels(64);
  conv.mutable_conv()->set_kernel(5);
  conv.mutable_conv()->set_padding(0);
  conv.mutable_conv()->set_stride(2);
  v1::LayerSpec pool;
  pool.mutable_pool()->set_kind(v1::PoolLayerSpec::AVG);
  pool.mutable_pool()->set_kernel(3);
  pool.mutable_pool()->set_stride(2);
  v1::LayerSpec relu;
  relu.mutable_activation()->set_kind(v1::ActivationSpec::RELU);
  EXPECT_EQ(describe_layers({conv, pool, relu}), "conv5x5(64,s2,p0) avgpool3(s2) relu");
  EXPECT_EQ(describe_layers({}), "");
}

}  // namespace
