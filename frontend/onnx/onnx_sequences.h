// ONNX sequences and Loop, as exporters emit them around tensors: torch 1.13
// exports `repeat_interleave` with a tensor of repeats (GPT-J's rotary
// tables) as a Loop that inserts one tensor per iteration into a sequence,
// then concatenates it. kiln's IR has no sequences and no control flow: a
// sequence is a list of registers that exists only while importing, and a
// Loop with a trip count known at import time and a condition that stays
// true is unrolled, its body's ops converted once per iteration.
#pragma once

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include <onnx/onnx_pb.h>

#include "frontend/onnx/onnx_op_converters.h"

namespace kiln {

// The ONNX op types handled here rather than by a converter.
bool isSequenceOrLoopOp(const std::string& opType);

// A sequence-typed ONNX value: its tensors, in order.
using OnnxSequence = std::vector<ValueId>;

// What the importer lends the handlers: its name scopes and the conversion
// of a (body) node.
struct OnnxScopes {
  std::unordered_map<std::string, ValueId>& tensors;
  std::unordered_map<std::string, OnnxSequence>& sequences;
  // Converts one node of a Loop body at `location`; `consumed` holds the
  // names its graph reads.
  std::function<Status(const onnx::NodeProto& node, const std::string& location,
                       const std::unordered_set<std::string>& consumed)>
      convertNode;
};

// Converts a sequence op (SequenceEmpty, SplitToSequence, SequenceAt,
// SequenceInsert, ConcatFromSequence) or a Loop. `ctx` holds the node's
// tensor inputs (kNoValue where an input is a sequence).
Status convertSequenceOrLoop(OnnxNodeContext& ctx, OnnxScopes& scopes);

}  // namespace kiln
