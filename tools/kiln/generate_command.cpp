// kiln generate ARTIFACT --prompt-ids 1,2,3 --max-new-tokens N [--kv-capacity C]:
// greedy decoding of a decoder with past/present KV pairs, through a session
// that keeps the KV cache (docs/kv-cache.md): one step with the prompt
// (prefill), then one step per generated token (decode).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "runtime/artifact.h"
#include "runtime/executor.h"
#include "tools/common/arguments.h"
#include "tools/kiln/commands.h"

namespace kiln::tools {

namespace {

// "1,2,3" -> {1, 2, 3}.
Expected<std::vector<int64_t>> parseIds(const std::string& text) {
  std::vector<int64_t> ids;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    Expected<int64_t> id = parseCount("--prompt-ids: token id", item, 0);
    if (!id) return id.status();
    ids.push_back(*id);
    if (comma == std::string::npos) return ids;
    start = comma + 1;
  }
}

// What generation needs to know of the model's step: its token input and
// its logits output.
struct DecoderInterface {
  size_t logits = 0;  // among the step outputs
  DType tokenType = DType::I64;
};

Expected<DecoderInterface> decoderInterface(const rt::Executor& executor) {
  const Graph& graph = executor.graph();
  KILN_RETURN_IF_ERROR(executor.checkKvLayersRecorded());
  if (executor.kvLayers().empty())
    return Status::error("the model has no KV pairs (an attention op whose past keys and values are graph ",
                         "inputs and whose present ones are graph outputs); kiln generate needs a decoder ",
                         "exported with past_key_values inputs and present outputs");
  DecoderInterface decoder;
  const std::vector<size_t>& inputs = executor.stepInputs();
  const Value* tokens = inputs.size() == 1 ? &graph.value(graph.inputs()[inputs[0]]) : nullptr;
  if (!tokens || !isInteger(tokens->type.dtype) || tokens->type.rank() != 2) {
    std::string names;
    for (size_t position : inputs)
      names += cat(names.empty() ? "" : ", ", graph.value(graph.inputs()[position]).type.str(), " '",
                   graph.value(graph.inputs()[position]).name, "'");
    return Status::error("kiln generate feeds one input besides the KV cache, the token ids [batch, sequence] ",
                         "(integer); the model's are: ", names.empty() ? "none" : names);
  }
  decoder.tokenType = tokens->type.dtype;
  const std::vector<size_t>& outputs = executor.stepOutputs();
  std::optional<size_t> logits;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Value& output = graph.value(graph.outputs()[outputs[i]]);
    const bool logitsLike = isFloat(output.type.dtype) && output.type.rank() == 3;
    if (output.name == "logits" || (!logits && logitsLike)) logits = i;
  }
  if (!logits)
    return Status::error("the model has no logits output (float [batch, sequence, vocab]) besides the KV ",
                         "cache");
  decoder.logits = *logits;
  return decoder;
}

// The id of the largest logit in the last row of batch 0 (the first on ties).
Expected<int64_t> greedyNext(const Tensor& logits) {
  if (logits.rank() != 3 || logits.shape()[0] < 1 || logits.shape()[1] < 1 || logits.shape()[2] < 1)
    return Status::error("logits are ", logits.type().str(), ", not [batch, sequence, vocab]");
  const int64_t vocab = logits.shape()[2];
  const int64_t row = (logits.shape()[1] - 1) * vocab;
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits.elementAsDouble(row + i) > logits.elementAsDouble(row + best)) best = i;
  return best;
}

Tensor tokenTensor(DType dtype, const std::vector<int64_t>& ids) {
  Tensor tensor = Tensor::allocate(dtype, {1, static_cast<int64_t>(ids.size())});
  visitDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    for (size_t i = 0; i < ids.size(); ++i) tensor.data<T>()[i] = static_cast<T>(ids[i]);
  });
  return tensor;
}

std::string rate(int64_t tokens, double seconds) {
  char text[96];
  std::snprintf(text, sizeof text, "%lld tokens in %.3f ms (%.1f tokens/s)", static_cast<long long>(tokens),
                seconds * 1e3, seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0);
  return text;
}

}  // namespace

int generateCommand(const std::vector<std::string>& args) {
  std::string artifactPath, promptText, maxNewText, capacityText = "0";
  ArgumentParser parser(
      "kiln generate ARTIFACT.kiln --prompt-ids IDS --max-new-tokens N [--kv-capacity C]",
      "Greedy decoding with a decoder's KV cache: one step with the prompt (prefill),\n"
      "then one step per new token (decode), each feeding the argmax of the last logits\n"
      "row. The session keeps the KV cache and appends each step's keys and values in\n"
      "place. Prints the generated ids, then prefill and decode throughput.");
  parser.positional("ARTIFACT.kiln", "a decoder compiled by 'kiln compile' (past/present KV pairs)",
                    &artifactPath);
  parser.option("--prompt-ids", "IDS", "the prompt's token ids, comma-separated (e.g. 1,2,3)", &promptText);
  parser.option("--max-new-tokens", "N", "how many tokens to generate (N >= 1)", &maxNewText);
  parser.option("--kv-capacity", "C",
                "tokens the KV cache holds (prompt + generated - 1 must fit);\n"
                "default: the plan's bound of the past + sequence length",
                &capacityText);
  if (std::optional<int> exitCode = parser.parseOrExitCode(args, "kiln generate")) return *exitCode;
  auto fail = [](const Status& status) {
    std::cerr << "kiln generate: " << status.message() << "\n";
    return 1;
  };
  if (promptText.empty()) return fail(Status::error("--prompt-ids is required"));
  if (maxNewText.empty()) return fail(Status::error("--max-new-tokens is required"));
  Expected<std::vector<int64_t>> prompt = parseIds(promptText);
  if (!prompt) return fail(prompt.status());
  Expected<int64_t> maxNew = parseCount("--max-new-tokens", maxNewText, 1);
  if (!maxNew) return fail(maxNew.status());
  Expected<int64_t> capacity = parseCount("--kv-capacity", capacityText, 0);
  if (!capacity) return fail(capacity.status());

  Expected<rt::Artifact> artifact = rt::loadArtifact(artifactPath);
  if (!artifact) return fail(artifact.status());
  Expected<std::unique_ptr<rt::Executor>> executor = rt::createExecutor(*artifact);
  if (!executor) return fail(executor.status());
  Expected<DecoderInterface> decoder = decoderInterface(**executor);
  if (!decoder) return fail(decoder.status().withContext(cat(artifactPath, ": ")));

  rt::Session session(**executor, rt::SessionOptions{*capacity});
  // The last generated token is never fed back: the cache ends with
  // prompt + new - 1 tokens.
  const int64_t needed = static_cast<int64_t>(prompt->size()) + *maxNew - 1;
  if (needed > session.kvCapacity())
    return fail(Status::error("the KV cache holds ", session.kvCapacity(), " tokens; ", prompt->size(),
                              " prompt and ", *maxNew, " new tokens need ", needed, " (raise --kv-capacity)"));
  using Clock = std::chrono::steady_clock;
  std::vector<int64_t> generated;
  double prefillSeconds = 0.0, decodeSeconds = 0.0;
  std::vector<int64_t> feed = *prompt;
  for (int64_t i = 0; i < *maxNew; ++i) {
    const Tensor tokens = tokenTensor(decoder->tokenType, feed);
    const Clock::time_point start = Clock::now();
    Expected<std::vector<Tensor>> outputs = session.step({tokens});
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!outputs)
      return fail(outputs.status().withContext(cat(i == 0 ? "prefill" : cat("decode step ", i), ": ")));
    (i == 0 ? prefillSeconds : decodeSeconds) += seconds;
    Expected<int64_t> next = greedyNext((*outputs)[decoder->logits]);
    if (!next) return fail(next.status());
    generated.push_back(*next);
    feed = {*next};
  }

  std::string ids;
  for (int64_t id : generated) ids += cat(ids.empty() ? "" : ",", id);
  std::cout << "generated ids: " << ids << "\n"
            << "prefill: " << rate(static_cast<int64_t>(prompt->size()), prefillSeconds) << "\n"
            << "decode: " << rate(*maxNew - 1, decodeSeconds) << "\n"
            << "kv cache: " << session.kvLength() << " of " << session.kvCapacity() << " tokens\n";
  return 0;
}

}  // namespace kiln::tools
