// Builds graphs op by op, inferring result types through the registry so a
// frontend never states a type by hand.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"

namespace kiln {

class Builder {
 public:
  explicit Builder(Graph& graph) : graph_(graph) {}

  // Appends `kind(operands)`; on failure nothing is appended and the error
  // names the op, the location and the operand types.
  Expected<std::vector<ValueId>> create(OpKind kind, std::vector<ValueId> operands,
                                        Attributes attrs = {}, int numResults = 1,
                                        std::string location = {});
  // The single-result form.
  Expected<ValueId> create1(OpKind kind, std::vector<ValueId> operands,
                            Attributes attrs = {}, std::string location = {});
  // By text name (the importers' tables): an unknown name is an error.
  Expected<std::vector<ValueId>> create(std::string_view opName,
                                        std::vector<ValueId> operands,
                                        Attributes attrs = {}, int numResults = 1,
                                        std::string location = {});
  Expected<ValueId> create1(std::string_view opName, std::vector<ValueId> operands,
                            Attributes attrs = {}, std::string location = {});

  Graph& graph() { return graph_; }

 private:
  Expected<std::vector<ValueId>> append(const OpDef& def, std::vector<ValueId> operands, Attributes attrs,
                                        int numResults, std::string location);
  Graph& graph_;
};

// The operand view inference needs for `op`'s operands in `graph` (weights
// carry their data when loaded).
std::vector<OperandInfo> operandInfos(const Graph& graph, const std::vector<ValueId>& operands);

}  // namespace kiln
