#include "ir/graph.h"

#include "ir/op_registry.h"

namespace kiln {

OpKind Op::kind() const { return def->kind; }

ValueId Graph::addValue(std::string name, TensorType type, ValueKind kind) {
  if (name.empty()) {
    // Numbered names skip numbers already taken (a parsed graph's %0, say).
    do name = std::to_string(nextNumber_++);
    while (byName_.count(name));
  }
  // Callers pass unique names; a clash is made unique rather than aliased.
  if (byName_.count(name)) name = uniqueName(name);
  ValueId id = static_cast<ValueId>(values_.size());
  Value v;
  v.name = name;
  v.type = std::move(type);
  v.kind = kind;
  values_.push_back(std::move(v));
  byName_[name] = id;
  return id;
}

ValueId Graph::addInput(std::string name, TensorType type) {
  ValueId id = addValue(std::move(name), std::move(type), ValueKind::Input);
  inputs_.push_back(id);
  return id;
}

ValueId Graph::addWeight(std::string name, Tensor data) {
  ValueId id = addValue(std::move(name), data.type(), ValueKind::Weight);
  values_[static_cast<size_t>(id)].data = std::move(data);
  return id;
}

ValueId Graph::addWeightDecl(std::string name, TensorType type) {
  return addValue(std::move(name), std::move(type), ValueKind::Weight);
}

int32_t Graph::addOp(const OpDef* def, std::vector<ValueId> operands,
                     std::vector<TensorType> resultTypes, Attributes attrs,
                     std::string location, std::vector<std::string> resultNames) {
  int32_t index = static_cast<int32_t>(ops_.size());
  Op op;
  op.def = def;
  op.operands = std::move(operands);
  op.attrs = std::move(attrs);
  if (std::optional<Attributes> typed = def ? typedAttributes(*def, op.operands.size(), op.attrs) : std::nullopt)
    op.attrs = std::move(*typed);
  op.location = std::move(location);
  for (size_t i = 0; i < resultTypes.size(); ++i) {
    std::string name = i < resultNames.size() ? resultNames[i] : std::string();
    ValueId id = addValue(std::move(name), std::move(resultTypes[i]), ValueKind::OpResult);
    values_[static_cast<size_t>(id)].producer = index;
    op.results.push_back(id);
  }
  ops_.push_back(std::move(op));
  return index;
}

std::vector<ValueId> Graph::weights() const {
  std::vector<ValueId> out;
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i].kind == ValueKind::Weight) out.push_back(static_cast<ValueId>(i));
  return out;
}

std::string_view Graph::deviceOf(ValueId id) const {
  const Value& v = value(id);
  return v.kind == ValueKind::OpResult ? ops_.at(static_cast<size_t>(v.producer)).placement() : kHostDevice;
}

std::optional<ValueId> Graph::find(const std::string& name) const {
  auto it = byName_.find(name);
  if (it == byName_.end()) return std::nullopt;
  return it->second;
}

Status Graph::rename(ValueId id, const std::string& newName) {
  Value& v = value(id);
  if (v.name == newName) return Status::ok();
  if (newName.empty()) return Status::error("cannot rename %", v.name, " to an empty name");
  if (byName_.count(newName))
    return Status::error("cannot rename %", v.name, " to '", newName, "': the name is taken");
  byName_.erase(v.name);
  v.name = newName;
  byName_[newName] = id;
  return Status::ok();
}

void Graph::replaceSymbol(std::string_view symbol, const Dim& with) {
  for (Value& value : values_)
    for (Dim& d : value.type.shape) d = d.replaced(symbol, with);
  for (Op& op : ops_) {
    std::vector<std::pair<std::string, std::vector<Dim>>> changed;
    for (const auto& [name, attr] : op.attrs.all()) {
      const auto* dims = std::get_if<std::vector<Dim>>(&attr);
      if (!dims) continue;
      std::vector<Dim> replaced;
      for (const Dim& d : *dims) replaced.push_back(d.replaced(symbol, with));
      if (replaced != *dims) changed.emplace_back(name, std::move(replaced));
    }
    for (auto& [name, dims] : changed) op.attrs.set(name, std::move(dims));
  }
}

std::string Graph::uniqueName(const std::string& base) const {
  if (!byName_.count(base)) return base;
  for (int64_t i = 1;; ++i) {
    std::string candidate = base + "_" + std::to_string(i);
    if (!byName_.count(candidate)) return candidate;
  }
}

void Graph::setOps(std::vector<Op> ops) {
  ops_ = std::move(ops);
  for (Value& v : values_)
    if (v.kind == ValueKind::OpResult) v.producer = -1;
  for (size_t i = 0; i < ops_.size(); ++i)
    for (ValueId r : ops_[i].results) values_[static_cast<size_t>(r)].producer = static_cast<int32_t>(i);
}

}  // namespace kiln

namespace kiln {

void Graph::compact() {
  std::vector<bool> used(values_.size(), false);
  for (ValueId id : inputs_) used[static_cast<size_t>(id)] = true;
  for (ValueId id : outputs_) used[static_cast<size_t>(id)] = true;
  for (const Op& op : ops_) {
    for (ValueId id : op.operands)
      if (id != kNoValue) used[static_cast<size_t>(id)] = true;
    for (ValueId id : op.results) used[static_cast<size_t>(id)] = true;
  }
  std::vector<ValueId> remap(values_.size(), kNoValue);
  std::vector<Value> kept;
  for (size_t i = 0; i < values_.size(); ++i) {
    if (!used[i]) continue;
    remap[i] = static_cast<ValueId>(kept.size());
    kept.push_back(std::move(values_[i]));
  }
  auto apply = [&](std::vector<ValueId>& ids) {
    for (ValueId& id : ids)
      if (id != kNoValue) id = remap[static_cast<size_t>(id)];
  };
  values_ = std::move(kept);
  apply(inputs_);
  apply(outputs_);
  for (Op& op : ops_) {
    apply(op.operands);
    apply(op.results);
  }
  byName_.clear();
  for (size_t i = 0; i < values_.size(); ++i) byName_[values_[i].name] = static_cast<ValueId>(i);
}

}  // namespace kiln
