// Runs a verified graph on concrete inputs, op by op in graph order: type
// inference on the concrete shapes (the registry's runtime shape function),
// allocation of the results, then the device kernel. Intermediates are freed
// after their last use.
#pragma once

#include <memory>
#include <vector>

#include "ir/dim.h"
#include "ir/graph.h"
#include "ir/status.h"
#include "ir/tensor.h"
#include "runtime/device.h"

namespace kiln::rt {

class Executor {
 public:
  // Verifies the graph and checks that every weight has data and every op a
  // kernel. The graph must outlive the executor and stay unchanged.
  static Expected<std::unique_ptr<Executor>> create(const Graph& graph);

  // Inputs in graph input order; outputs in graph output order. Each input's
  // dtype, rank and static dims must match the graph input type; symbolic
  // dims are bound from the inputs and must agree across them. run() keeps no
  // state between calls, so several threads may call it at once.
  Expected<std::vector<Tensor>> run(const std::vector<Tensor>& inputs) const;

  // The input checks of run() alone: the symbol bindings the inputs imply,
  // or the error run() would give for them.
  Expected<SymbolBindings> bindInputs(const std::vector<Tensor>& inputs) const;

  const Graph& graph() const { return graph_; }

 private:
  Executor(const Graph& graph, std::unique_ptr<Device> device);

  const Graph& graph_;
  std::unique_ptr<Device> device_;
  // For each op, the values whose last use it is (freed after it runs).
  std::vector<std::vector<ValueId>> releaseAfter_;
};

}  // namespace kiln::rt
