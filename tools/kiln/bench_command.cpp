// kiln bench ARTIFACT [--input-dir DIR] [--iters N] [--warmup W] [--threads T] [--decode]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <numeric>
#include <thread>

#include "runtime/artifact.h"
#include "runtime/executor.h"
#include "tools/common/arguments.h"
#include "tools/common/format.h"
#include "tools/kiln/bench_profile.h"
#include "tools/kiln/commands.h"
#include "tools/kiln/input_shapes.h"
#include "tools/kiln/model_inputs.h"

namespace kiln::tools {

namespace {

using Clock = std::chrono::steady_clock;

double millisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The thread count when --threads is not given: KILN_NUM_THREADS if set,
// else the hardware's.
std::string defaultThreads() {
  if (const char* env = std::getenv("KILN_NUM_THREADS"); env && *env) return env;
  return std::to_string(std::max(1u, std::thread::hardware_concurrency()));
}

std::string jsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int benchCommand(const std::vector<std::string>& args) {
  std::string artifactPath, inputDir, itersText = "20", warmupText = "3", threadsText,
                                      seedText = "0", rooflinePath;
  std::vector<std::string> shapeSpecs;
  bool decode = false, profile = false;
  ArgumentParser parser(
      "kiln bench ARTIFACT.kiln [--input-dir DIR] [--iters N] [--warmup W] [--threads T] [--decode]",
      "Times an artifact's runs on its devices: loads it, makes one session, runs it W\n"
      "times untimed, then N times timed, and prints one JSON line: latency_ms_median,\n"
      "latency_ms_min, latency_ms_mean, iters, warmup, threads, mode, model, input,\n"
      "load_ms (artifact load + session creation), transfers and transfer_bytes (what\n"
      "a run moved between devices). Inputs as 'kiln run' takes them:\n"
      "input_K.pb from --input-dir, or random (--input-shape, --seed).\n"
      "--decode times a decoder's step on its KV cache instead: the past inputs fill\n"
      "the session's cache, and each timed run is one step (the other inputs) at that\n"
      "past length, the cache rewound after it, so every step sees the same past.");
  parser.positional("ARTIFACT.kiln", "the artifact from 'kiln compile'", &artifactPath);
  parser.option("--input-dir", "DIR", "read inputs from DIR/input_K.pb", &inputDir);
  parser.option("--iters", "N", "timed runs (default 20)", &itersText);
  parser.option("--warmup", "W", "untimed runs before them (default 3)", &warmupText);
  parser.option("--threads", "T",
                "threads of the runtime (sets KILN_NUM_THREADS); default:\n"
                "KILN_NUM_THREADS if set, else the hardware's",
                &threadsText);
  parser.repeated("--input-shape", "NAME=DIMS",
                  "shape of random input NAME, integer dims (as in 'kiln run')", &shapeSpecs);
  parser.option("--seed", "N", "seed of the random inputs (default 0)", &seedText);
  parser.flag("--decode", "time kiln_session_step on the KV cache (see above)", &decode);
  parser.flag("--profile",
              "also print each op kind's share of the kernel time and its\n"
              "achieved GFLOP/s and GB/s (timed runs, to stderr)",
              &profile);
  parser.option("--roofline", "FILE",
                "with --profile: each kind's share of this machine's limit\n"
                "(FILE: what build/bench/roofline prints)",
                &rooflinePath);
  if (std::optional<int> exitCode = parser.parseOrExitCode(args, "kiln bench")) return *exitCode;

  auto fail = [&](const Status& status) {
    std::cerr << "kiln bench: " << status.message() << "\n";
    return 1;
  };
  if (!inputDir.empty() && !shapeSpecs.empty())
    return fail(Status::error("--input-shape applies to random inputs; not with --input-dir"));
  Expected<int64_t> iters = parseCount("--iters", itersText, 1);
  if (!iters) return fail(iters.status());
  Expected<int64_t> warmup = parseCount("--warmup", warmupText, 0);
  if (!warmup) return fail(warmup.status());
  if (threadsText.empty()) threadsText = defaultThreads();
  Expected<int64_t> threads = parseCount("--threads", threadsText, 1);
  if (!threads) return fail(threads.status());
  Expected<int64_t> seed = parseCount("--seed", seedText, 0);
  if (!seed) return fail(seed.status());
  Expected<std::map<std::string, std::vector<Dim>>> shapes = parseInputShapes(shapeSpecs);
  if (!shapes) return fail(shapes.status());
  if (!rooflinePath.empty() && !profile) return fail(Status::error("--roofline goes with --profile"));
  std::optional<Roofline> roofline;
  if (!rooflinePath.empty()) {
    Expected<Roofline> loaded = loadRoofline(rooflinePath);
    if (!loaded) return fail(loaded.status());
    roofline = *loaded;
  }

  // The runtime and the kernels it calls read their thread count from the
  // environment when they start, so it is set before the artifact loads.
  setenv("KILN_NUM_THREADS", std::to_string(*threads).c_str(), 1);

  const Clock::time_point loadStart = Clock::now();
  Expected<rt::Artifact> artifact = rt::loadArtifact(artifactPath);
  if (!artifact) return fail(artifact.status());
  Expected<std::unique_ptr<rt::Executor>> executor = rt::createExecutor(*artifact);
  if (!executor) return fail(executor.status());
  const Graph& graph = artifact->graph;
  Expected<std::vector<Tensor>> inputs =
      inputDir.empty() ? randomInputs(graph, *shapes, static_cast<uint64_t>(*seed))
                       : readInputs(graph, inputDir);
  if (!inputs) return fail(inputs.status());

  // A decode step takes the non-past inputs; the past ones go to the cache,
  // which must hold them and the step's tokens.
  std::vector<Tensor> stepInputs, past;
  rt::SessionOptions options;
  if (decode) {
    const std::vector<rt::KvLayer>& layers = (*executor)->kvLayers();
    if (Status recorded = (*executor)->checkKvLayersRecorded(); !recorded)
      return fail(recorded.withContext("--decode: "));
    if (layers.empty())
      return fail(Status::error("--decode: graph @", graph.name, " has no KV cache (no past/present pairs)"));
    for (size_t position : (*executor)->stepInputs()) stepInputs.push_back((*inputs)[position]);
    for (const rt::KvLayer& layer : layers)
      for (size_t part = 0; part < layer.parts(); ++part) past.push_back((*inputs)[layer.pastInput(part)]);
    int64_t newTokens = 1;
    for (const Tensor& input : stepInputs)
      if (input.rank() == 2) newTokens = std::max(newTokens, input.shape()[1]);
    options.kvCapacity = std::max((*executor)->defaultKvCapacity(), past[0].shape()[2] + newTokens);
  }
  rt::Session session(**executor, options);
  if (decode)
    if (Status loaded = session.loadKv(past); !loaded) return fail(loaded);
  const double loadMs = millisecondsSince(loadStart);
  const int64_t pastLength = decode ? session.kvLength() : 0;

  auto runOnce = [&]() -> Status {
    Expected<std::vector<Tensor>> outputs = decode ? session.step(stepInputs) : session.run(*inputs);
    if (!outputs) return outputs.status();
    if (!decode) return Status::ok();
    return session.truncateKv(pastLength);
  };
  for (int64_t i = 0; i < *warmup; ++i)
    if (Status ran = runOnce(); !ran) return fail(ran);
  session.setProfiling(profile);
  std::vector<double> latencies;
  for (int64_t i = 0; i < *iters; ++i) {
    const Clock::time_point start = Clock::now();
    const Status ran = runOnce();  // a rewind is an integer store: noise next to a step
    latencies.push_back(millisecondsSince(start));
    if (!ran) return fail(ran);
  }

  if (profile)
    printProfile(graph, session.opNanoseconds(), *iters, std::accumulate(latencies.begin(), latencies.end(), 0.0),
                 bindingsOf(graph, *inputs), roofline ? &*roofline : nullptr);
  std::sort(latencies.begin(), latencies.end());
  const size_t n = latencies.size();
  const double median = n % 2 ? latencies[n / 2] : (latencies[n / 2 - 1] + latencies[n / 2]) / 2;
  const double mean = std::accumulate(latencies.begin(), latencies.end(), 0.0) / static_cast<double>(n);
  std::cout << "{\"model\": " << jsonString(artifactPath)
            << ", \"input\": " << jsonString(inputDir.empty() ? "random" : inputDir)
            << ", \"threads\": " << *threads << ", \"warmup\": " << *warmup
            << ", \"mode\": " << (decode ? "\"decode\", \"past\": " + std::to_string(pastLength) : "\"run\"")
            << ", \"iters\": " << *iters << ", \"load_ms\": " << fixed(loadMs, 3)
            << ", \"latency_ms_median\": " << fixed(median, 3)
            << ", \"latency_ms_min\": " << fixed(latencies.front(), 3)
            << ", \"latency_ms_mean\": " << fixed(mean, 3)
            << ", \"transfers\": " << session.lastRun().transfers
            << ", \"transfer_bytes\": " << session.lastRun().transferBytes << "}\n";
  return 0;
}

}  // namespace kiln::tools
