// kiln_conformance: runs ONNX backend node tests (a folder of cases, each
// `model.onnx` + `test_data_set_N/{input,output}_K.pb`) through the ONNX
// importer and the CPU executor, and checks the outcomes against a checked-in
// expectations file. Each case runs in a child process, so a crashing or
// hanging kernel is reported as that case's failure.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/proto_io.h"
#include "frontend/onnx/tensor_proto.h"
#include "runtime/executor.h"

namespace fs = std::filesystem;
using namespace kiln;

namespace {

constexpr const char* kDefaultDataDir = "/usr/share/libonnx-testdata/data/node";

// The ops kiln claims (issue 2, item 3, plus Cos, Sin, Abs and Or, and issue 13's): a case
// made only of these must pass or be listed in the expectations file.
const std::set<std::string> kCheckedOps = {
    "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg",
    "Exp", "Log", "Tanh", "Erf", "Sigmoid", "Relu", "Softmax", "LogSoftmax", "ReduceMean",
    "ReduceSum", "ReduceMax", "LayerNormalization", "Transpose", "Reshape", "Flatten",
    "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather", "Expand", "Where",
    "Equal", "Less", "Greater", "Not", "And", "Cast", "Shape", "Size", "ConstantOfShape",
    "Constant", "Range", "Trilu", "CumSum", "Identity", "Dropout", "Min", "Max", "Clip",
    "Cos", "Sin", "Abs", "Or",
    // Issue 13: what the model zoo's exports use (Conv as a patch embedding only).
    "ReduceL2", "LessOrEqual", "GreaterOrEqual", "Tile", "Conv", "GatherElements"};

enum class Outcome { Passed, Failed, Unsupported };

const char* outcomeName(Outcome o) {
  switch (o) {
    case Outcome::Passed: return "passed";
    case Outcome::Failed: return "failed";
    case Outcome::Unsupported: return "unsupported";
  }
  return "?";
}

struct Options {
  std::string dataDir = kDefaultDataDir;
  std::string expectationsPath;
  std::string writeExpectationsPath;
  std::string filter;
  double rtol = 1e-3;
  double atol = 1e-5;
  int timeoutSeconds = 60;
  bool verbose = false;
  bool fork = true;
};

struct CaseResult {
  Outcome outcome = Outcome::Passed;
  std::string reason;
  double maxAbsDiff = 0.0;
};

struct Case {
  std::string name;
  fs::path dir;
  std::set<std::string> opTypes;  // empty when the model does not parse
  CaseResult result;
  bool checked() const {
    if (opTypes.empty()) return false;
    return std::all_of(opTypes.begin(), opTypes.end(),
                       [](const std::string& op) { return kCheckedOps.count(op) != 0; });
  }
};

std::string oneLine(std::string text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      out += "; ";
      while (i + 1 < text.size() && text[i + 1] == ' ') ++i;
    } else if (text[i] != '\r' && text[i] != '\t') {
      out += text[i];
    } else {
      out += ' ';
    }
  }
  return out;
}

// An import or executor-creation error is "unsupported" when kiln refused
// the model for what it lacks (an op, a dtype, an attribute, an opset).
Outcome classifyRefusal(const std::string& message) {
  return message.find("unsupported") != std::string::npos ? Outcome::Unsupported
                                                          : Outcome::Failed;
}

std::set<std::string> modelOpTypes(const fs::path& modelPath) {
  onnx::ModelProto model;
  std::set<std::string> ops;
  if (!parseProtoFile(modelPath.string(), model, "ONNX model")) return ops;
  for (const auto& node : model.graph().node()) {
    const bool onnxDomain = node.domain().empty() || node.domain() == "ai.onnx";
    ops.insert(onnxDomain ? node.op_type() : node.domain() + ":" + node.op_type());
  }
  return ops;
}

std::vector<fs::path> numberedFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (int k = 0;; ++k) {
    fs::path p = dir / cat(prefix, "_", k, ".pb");
    if (!fs::exists(p)) break;
    files.push_back(p);
  }
  return files;
}

// Compares one output; on a mismatch returns why. Floats within
// atol + rtol * |expected| (NaN matches NaN); everything else exactly.
std::string compareTensor(const Tensor& got, const Tensor& want, const Options& options,
                          double& maxAbsDiff) {
  if (got.dtype() != want.dtype()) {
    return cat("dtype ", dtypeName(got.dtype()), ", expected ", dtypeName(want.dtype()));
  }
  if (got.shape() != want.shape()) {
    return cat("shape ", shapeStr(got.shape()), ", expected ", shapeStr(want.shape()));
  }
  const bool exact = !isFloat(got.dtype());
  int64_t worst = -1;
  double worstExcess = 0.0;
  for (int64_t i = 0; i < got.numElements(); ++i) {
    const double a = got.elementAsDouble(i);
    const double b = want.elementAsDouble(i);
    if (std::isnan(a) && std::isnan(b)) continue;
    if (a == b) continue;
    const double diff = std::fabs(a - b);
    if (!std::isnan(diff)) maxAbsDiff = std::max(maxAbsDiff, diff);
    const double allowed = exact ? 0.0 : options.atol + options.rtol * std::fabs(b);
    const double excess = std::isnan(diff) ? INFINITY : diff - allowed;
    if (!(diff <= allowed) && (worst < 0 || excess > worstExcess)) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst < 0) return {};
  return cat("element ", worst, " is ", got.elementAsDouble(worst), ", expected ",
             want.elementAsDouble(worst), " (max abs diff ", maxAbsDiff, ")");
}

// Reads a test tensor. ONNX's test generator stores bfloat16 data as uint16
// (numpy has no bfloat16): such a file is read as bf16 when the graph wants
// bf16 there.
Expected<Tensor> readTestTensor(const fs::path& path, DType graphDType) {
  onnx::TensorProto proto;
  KILN_RETURN_IF_ERROR(parseProtoFile(path.string(), proto, "ONNX TensorProto"));
  if (graphDType == DType::BF16 && proto.data_type() == onnx::TensorProto::UINT16) {
    proto.set_data_type(onnx::TensorProto::BFLOAT16);
  }
  Expected<Tensor> tensor = tensorFromProto(proto, path.parent_path().string());
  if (!tensor) return tensor.status().withContext(cat(path.filename().string(), ": "));
  return tensor;
}

// Reasons without the case's folder, so expectations read the same anywhere.
std::string withoutFolder(std::string text, const fs::path& dir) {
  const std::string prefix = dir.string() + "/";
  for (size_t at; (at = text.find(prefix)) != std::string::npos;) text.erase(at, prefix.size());
  return text;
}

CaseResult runCase(const fs::path& dir, const Options& options) {
  CaseResult result;
  auto fail = [&](Outcome outcome, const std::string& reason) {
    result.outcome = outcome;
    result.reason = oneLine(withoutFolder(reason, dir));
    return result;
  };
  Expected<Graph> graph = importOnnxFile((dir / "model.onnx").string(), OnnxImportOptions{});
  if (!graph) return fail(classifyRefusal(graph.status().message()), graph.status().message());
  Expected<std::unique_ptr<rt::Executor>> executor = rt::Executor::create(*graph);
  if (!executor) {
    return fail(classifyRefusal(executor.status().message()), executor.status().message());
  }

  std::vector<fs::path> dataSets;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory() && entry.path().filename().string().rfind("test_data_set_", 0) == 0) {
      dataSets.push_back(entry.path());
    }
  }
  std::sort(dataSets.begin(), dataSets.end());
  if (dataSets.empty()) return fail(Outcome::Failed, "no test_data_set_* folder");

  for (const fs::path& set : dataSets) {
    const std::string where = set.filename().string() + ": ";
    std::vector<Tensor> inputs;
    const std::vector<fs::path> inputFiles = numberedFiles(set, "input");
    if (inputFiles.size() != graph->inputs().size()) {
      return fail(Outcome::Failed, cat(where, "the test has ", inputFiles.size(),
                                       " inputs, the graph ", graph->inputs().size()));
    }
    for (size_t k = 0; k < inputFiles.size(); ++k) {
      const fs::path& file = inputFiles[k];
      Expected<Tensor> t = readTestTensor(file, graph->value(graph->inputs()[k]).type.dtype);
      if (!t) return fail(classifyRefusal(t.status().message()), where + t.status().message());
      inputs.push_back(*t);
    }
    std::vector<fs::path> outputFiles = numberedFiles(set, "output");
    Expected<std::vector<Tensor>> outputs = (*executor)->run(inputs);
    if (!outputs) return fail(Outcome::Failed, where + "run: " + outputs.status().message());
    if (outputs->size() != outputFiles.size()) {
      return fail(Outcome::Failed, cat(where, "the graph gives ", outputs->size(),
                                       " outputs, the test expects ", outputFiles.size()));
    }
    for (size_t k = 0; k < outputFiles.size(); ++k) {
      const Value& output = graph->value(graph->outputs()[k]);
      Expected<Tensor> want = readTestTensor(outputFiles[k], output.type.dtype);
      if (!want) return fail(classifyRefusal(want.status().message()), where + want.status().message());
      const std::string& name = output.name;
      std::string mismatch = compareTensor((*outputs)[k], *want, options, result.maxAbsDiff);
      if (!mismatch.empty()) {
        return fail(Outcome::Failed, cat(where, "output ", k, " '", name, "': ", mismatch));
      }
    }
  }
  return result;
}

// Runs the case in a child process (pipe back: outcome, max diff, reason),
// so a crash or a hang fails only this case.
CaseResult runCaseIsolated(const fs::path& dir, const Options& options) {
  if (!options.fork) return runCase(dir, options);
  std::cout.flush();
  std::cerr.flush();
  int fds[2];
  if (pipe(fds) != 0) return {Outcome::Failed, cat("pipe: ", std::strerror(errno)), 0.0};
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return {Outcome::Failed, cat("fork: ", std::strerror(errno)), 0.0};
  }
  if (pid == 0) {
    close(fds[0]);
    alarm(static_cast<unsigned>(options.timeoutSeconds));
    CaseResult r = runCase(dir, options);
    const std::string message =
        cat(static_cast<int>(r.outcome), "\n", r.maxAbsDiff, "\n", r.reason);
    size_t written = 0;
    while (written < message.size()) {
      const ssize_t n = write(fds[1], message.data() + written, message.size() - written);
      if (n <= 0) break;
      written += static_cast<size_t>(n);
    }
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  std::string message;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) > 0) message.append(buffer, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    if (sig == SIGALRM) {
      return {Outcome::Failed, cat("timed out after ", options.timeoutSeconds, " s"), 0.0};
    }
    return {Outcome::Failed, cat("crashed (signal ", sig, ", ", strsignal(sig), ")"), 0.0};
  }
  std::istringstream in(message);
  int outcome = -1;
  CaseResult r;
  if (!(in >> outcome >> r.maxAbsDiff) || outcome < 0 || outcome > 2) {
    return {Outcome::Failed, cat("the case's process exited with status ", WEXITSTATUS(status),
                                 " and no result"), 0.0};
  }
  r.outcome = static_cast<Outcome>(outcome);
  in.get();
  std::getline(in, r.reason, '\0');
  return r;
}

struct Expectation {
  Outcome outcome;
  std::string reason;
};

bool loadExpectations(const std::string& path, std::map<std::string, Expectation>& out) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "kiln_conformance: cannot open expectations file '" << path << "'\n";
    return false;
  }
  std::string line;
  for (int lineNo = 1; std::getline(in, line); ++lineNo) {
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream fields(line);
    std::string name, outcome, reason;
    fields >> name >> outcome;
    std::getline(fields >> std::ws, reason);
    Outcome o;
    if (outcome == "failed") {
      o = Outcome::Failed;
    } else if (outcome == "unsupported") {
      o = Outcome::Unsupported;
    } else {
      std::cerr << path << ":" << lineNo << ": expected '<case> <failed|unsupported> <reason>'\n";
      return false;
    }
    if (reason.empty()) {
      std::cerr << path << ":" << lineNo << ": " << name << " has no reason\n";
      return false;
    }
    if (!out.emplace(name, Expectation{o, reason}).second) {
      std::cerr << path << ":" << lineNo << ": " << name << " is listed twice\n";
      return false;
    }
  }
  return true;
}

bool writeExpectations(const std::string& path, const std::vector<Case>& cases) {
  std::ofstream out(path);
  if (!out) {
    std::cerr << "kiln_conformance: cannot write '" << path << "'\n";
    return false;
  }
  out << "# ONNX node-test cases of the ops kiln claims that do not pass, with why.\n"
         "# Format: <case> <failed|unsupported> <reason>. Checked by the ctest\n"
         "# onnx_conformance (kiln_conformance --expectations this-file).\n";
  for (const Case& c : cases) {
    if (c.checked() && c.result.outcome != Outcome::Passed) {
      out << c.name << " " << outcomeName(c.result.outcome) << " " << c.result.reason << "\n";
    }
  }
  return true;
}

void printUsage() {
  std::cout <<
      "usage: kiln_conformance [options]\n"
      "Runs ONNX backend node tests through the ONNX importer and the CPU executor.\n"
      "  --data-dir DIR             folder of cases (default " << kDefaultDataDir << ")\n"
      "  --expectations FILE        cases expected not to pass; exit 1 on any difference\n"
      "                             (without it: exit 1 when any case does not pass)\n"
      "  --write-expectations FILE  write the non-passing checked cases to FILE\n"
      "  --filter TEXT              only cases whose name contains TEXT\n"
      "  --rtol X --atol X          float tolerance (default 1e-3, 1e-5)\n"
      "  --timeout S                per-case limit in seconds (default 60)\n"
      "  --no-fork                  run cases in this process (for debugging)\n"
      "  --verbose                  one line per case\n";
}

bool parseArgs(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&](std::string& value) {
      if (i + 1 >= argc) {
        std::cerr << "kiln_conformance: " << arg << " needs a value\n";
        return false;
      }
      value = argv[++i];
      return true;
    };
    auto number = [&](double& value) {
      std::string text;
      if (!next(text)) return false;
      char* end = nullptr;
      value = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0' || value < 0) {
        std::cerr << "kiln_conformance: " << arg << " '" << text << "' is not a number >= 0\n";
        return false;
      }
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      printUsage();
      std::exit(0);
    } else if (arg == "--data-dir") {
      if (!next(options.dataDir)) return false;
    } else if (arg == "--expectations") {
      if (!next(options.expectationsPath)) return false;
    } else if (arg == "--write-expectations") {
      if (!next(options.writeExpectationsPath)) return false;
    } else if (arg == "--filter") {
      if (!next(options.filter)) return false;
    } else if (arg == "--rtol") {
      if (!number(options.rtol)) return false;
    } else if (arg == "--atol") {
      if (!number(options.atol)) return false;
    } else if (arg == "--timeout") {
      double seconds = 0;
      if (!number(seconds)) return false;
      options.timeoutSeconds = std::max(1, static_cast<int>(seconds));
    } else if (arg == "--no-fork") {
      options.fork = false;
    } else if (arg == "--verbose") {
      options.verbose = true;
    } else {
      std::cerr << "kiln_conformance: unknown argument '" << arg << "' (see --help)\n";
      return false;
    }
  }
  return true;
}

struct Counts {
  int passed = 0, failed = 0, unsupported = 0;
  void add(Outcome o) {
    (o == Outcome::Passed ? passed : o == Outcome::Failed ? failed : unsupported)++;
  }
  int total() const { return passed + failed + unsupported; }
};

void printSummary(const std::vector<Case>& cases) {
  Counts all, checked;
  std::map<std::string, Counts> perOp;
  for (const Case& c : cases) {
    all.add(c.result.outcome);
    if (c.checked()) checked.add(c.result.outcome);
    for (const std::string& op : c.opTypes) perOp[op].add(c.result.outcome);
  }
  std::printf("\nper op (a case counts under every op type in its model; * = checked op)\n");
  std::printf("  %-34s %7s %7s %12s\n", "op", "passed", "failed", "unsupported");
  for (const auto& [op, n] : perOp) {
    std::printf("%s %-34s %7d %7d %12d\n", kCheckedOps.count(op) ? "*" : " ", op.c_str(),
                n.passed, n.failed, n.unsupported);
  }
  std::printf("\nall cases:     %4d passed, %4d failed, %4d unsupported (%d)\n", all.passed,
              all.failed, all.unsupported, all.total());
  std::printf("checked cases: %4d passed, %4d failed, %4d unsupported (%d; only checked ops)\n",
              checked.passed, checked.failed, checked.unsupported, checked.total());
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parseArgs(argc, argv, options)) return 1;
  std::error_code ec;
  if (!fs::is_directory(options.dataDir, ec)) {
    std::cerr << "kiln_conformance: test data folder '" << options.dataDir
              << "' is missing; install the ONNX backend tests (apt-get install "
                 "libonnx-testdata) or pass --data-dir\n";
    return 1;
  }
  std::map<std::string, Expectation> expectations;
  if (!options.expectationsPath.empty() && !loadExpectations(options.expectationsPath, expectations)) {
    return 1;
  }

  std::vector<Case> cases;
  for (const auto& entry : fs::directory_iterator(options.dataDir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!fs::exists(entry.path() / "model.onnx")) continue;
    if (!options.filter.empty() && name.find(options.filter) == std::string::npos) continue;
    cases.push_back({name, entry.path(), modelOpTypes(entry.path() / "model.onnx"), {}});
  }
  std::sort(cases.begin(), cases.end(),
            [](const Case& a, const Case& b) { return a.name < b.name; });
  if (cases.empty()) {
    std::cerr << "kiln_conformance: no cases (folders with model.onnx) in '" << options.dataDir
              << "'\n";
    return 1;
  }

  for (Case& c : cases) {
    c.result = runCaseIsolated(c.dir, options);
    if (options.verbose) {
      std::printf("%-11s %s", outcomeName(c.result.outcome), c.name.c_str());
      if (c.result.outcome == Outcome::Passed) {
        std::printf(" (max abs diff %.3g)\n", c.result.maxAbsDiff);
      } else {
        std::printf(": %s\n", c.result.reason.c_str());
      }
      std::fflush(stdout);
    }
  }
  printSummary(cases);

  if (!options.writeExpectationsPath.empty() &&
      !writeExpectations(options.writeExpectationsPath, cases)) {
    return 1;
  }

  // Without an expectations file every case must pass.
  std::vector<std::string> problems;
  if (options.expectationsPath.empty()) {
    for (const Case& c : cases) {
      if (c.result.outcome != Outcome::Passed) {
        problems.push_back(cat(c.name, " ", outcomeName(c.result.outcome), ": ", c.result.reason));
      }
    }
  } else {
    std::set<std::string> seen;
    for (const Case& c : cases) {
      seen.insert(c.name);
      auto listed = expectations.find(c.name);
      if (!c.checked()) {
        if (listed != expectations.end()) {
          problems.push_back(cat(c.name, ": listed, but its model uses ops outside the checked "
                                         "list; remove the entry"));
        }
        continue;
      }
      const Outcome got = c.result.outcome;
      if (listed == expectations.end()) {
        if (got != Outcome::Passed) {
          problems.push_back(cat(c.name, " ", outcomeName(got), " (not listed): ", c.result.reason));
        }
      } else if (got == Outcome::Passed) {
        problems.push_back(cat(c.name, ": listed as ", outcomeName(listed->second.outcome),
                               " but passes; remove the stale entry"));
      } else if (got != listed->second.outcome) {
        problems.push_back(cat(c.name, ": listed as ", outcomeName(listed->second.outcome),
                               " but is ", outcomeName(got), ": ", c.result.reason));
      }
    }
    for (const auto& [name, expectation] : expectations) {
      const bool inFilter = options.filter.empty() || name.find(options.filter) != std::string::npos;
      if (inFilter && !seen.count(name)) {
        problems.push_back(cat(name, ": listed, but there is no such case in ", options.dataDir));
      }
    }
  }
  if (!problems.empty()) {
    std::printf("\n%zu case(s) differ from %s:\n", problems.size(),
                options.expectationsPath.empty() ? "all passing" : options.expectationsPath.c_str());
    for (const std::string& p : problems) std::printf("  %s\n", p.c_str());
    return 1;
  }
  std::printf("\nOK: every case matches %s\n",
              options.expectationsPath.empty() ? "(all pass)" : options.expectationsPath.c_str());
  return 0;
}
