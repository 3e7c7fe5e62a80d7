#include "passes/pass.h"

namespace kiln {

void PassStatistics::add(std::string_view name, int64_t amount) {
  for (auto& [counter, value] : counters_) {
    if (counter == name) {
      value += amount;
      return;
    }
  }
  counters_.emplace_back(std::string(name), amount);
}

}  // namespace kiln
