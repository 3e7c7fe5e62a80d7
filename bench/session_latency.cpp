// Median latency of Session::run on a token-id model until `kiln bench`
// lands: the artifact's first input gets ids [1, seq], one warm-up run, then
// `iters` timed runs.
//
//   session_latency ARTIFACT.kiln [SEQ=128] [ITERS=10]
#include <kiln/kiln.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: session_latency ARTIFACT.kiln [SEQ] [ITERS]\n");
    return 1;
  }
  try {
    kiln::api::Model model(argv[1]);
    const int64_t seq = argc > 2 ? std::atoll(argv[2]) : 128;
    const int iters = std::max(1, argc > 3 ? std::atoi(argv[3]) : 10);
    kiln::api::Session session(model);
    std::vector<int64_t> ids(static_cast<size_t>(seq));
    for (int64_t i = 0; i < seq; ++i) ids[static_cast<size_t>(i)] = (i * 7919) % 1000;
    const std::vector<kiln::api::Input> inputs{
        kiln::api::Input::of(model.inputs().at(0).name, {1, seq}, ids.data())};
    session.run(inputs);
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
      const auto start = std::chrono::steady_clock::now();
      session.run(inputs);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("{\"latency_ms_median\": %.3f, \"latency_ms_min\": %.3f, \"iters\": %d}\n", ms[ms.size() / 2],
                ms.front(), iters);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "session_latency: %s\n", e.what());
    return 1;
  }
  return 0;
}
