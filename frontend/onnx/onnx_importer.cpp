#include "frontend/onnx/onnx_importer.h"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>

#include "frontend/onnx/onnx_op_converters.h"
#include "frontend/onnx/onnx_sequences.h"
#include "frontend/onnx/onnx_wire.h"
#include "frontend/onnx/proto_io.h"
#include "frontend/onnx/tensor_proto.h"
#include "ir/op_registry.h"
#include "ir/verifier.h"

namespace kiln {

namespace {

bool isOnnxDomain(const std::string& domain) { return domain.empty() || domain == "ai.onnx"; }

// Symbol names are [A-Za-z_][A-Za-z0-9_]*; ONNX dim_params are free text.
std::string sanitizeSymbol(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '_';
    out += word ? c : '_';
  }
  if (!out.empty() && out[0] >= '0' && out[0] <= '9') out = "dim_" + out;
  return out;
}

// Dims as --input-shape writes them: 1x128.
std::string optionDims(const Shape& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out += 'x';
    out += dims[i].str();
  }
  return out;
}

std::string typeList(const Graph& graph, const std::vector<ValueId>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ", ";
    out += values[i] == kNoValue ? std::string("_") : graph.value(values[i]).type.str();
  }
  return out;
}

class OnnxImporter {
 public:
  OnnxImporter(const std::string& path, const OnnxImportOptions& options)
      : path_(path), modelDir_(parentDir(path)), options_(options) {}

  Expected<Graph> run(OnnxModelStats* stats, std::vector<MappedFile>* weightFiles) {
    KILN_RETURN_IF_ERROR(loadModel());
    if (stats) {
      stats->nodes = model_.graph().node_size();
      stats->nonConstantNodes = 0;
      for (const onnx::NodeProto& node : model_.graph().node())
        if (!(node.op_type() == "Constant" && isOnnxDomain(node.domain()))) ++stats->nonConstantNodes;
    }
    KILN_RETURN_IF_ERROR(checkSupportedOps());
    KILN_RETURN_IF_ERROR(checkOpset());
    KILN_RETURN_IF_ERROR(addInitializers());
    KILN_RETURN_IF_ERROR(addInputs());
    KILN_RETURN_IF_ERROR(convertNodes());
    KILN_RETURN_IF_ERROR(setOutputs());
    Status verified = verifyGraph(graph_);
    if (!verified) return verified.withContext(cat(path_, ": imported graph does not verify: "));
    if (weightFiles) {
      weightFiles->push_back(modelFile_);
      for (const auto& [name, file] : externalFiles_) weightFiles->push_back(file);
    }
    return std::move(graph_);
  }

 private:
  template <class... Parts>
  Status error(const Parts&... parts) const {
    return Status::error(path_, ": ", parts...);
  }

  // Maps the file and parses it without its initializers' payloads, which
  // the scan locates in the mapping instead.
  Status loadModel() {
    Expected<MappedFile> file = MappedFile::open(path_);
    if (!file) return file.status();
    modelFile_ = std::move(*file);
    if (modelFile_.size() == 0) return Status::error("'", path_, "' is empty, not an ONNX model");
    Expected<ScannedModel> scanned = scanOnnxModel(modelFile_.bytes());
    if (!scanned) {
      return scanned.status().withContext(cat("'", path_, "' is not a valid ONNX model: "));
    }
    scan_ = std::move(*scanned);
    // Protobuf cannot parse messages of 2 GiB or more; the payloads are not
    // part of what it parses.
    if (scan_.withoutPayloads.size() >= static_cast<size_t>(INT_MAX)) {
      return Status::error("'", path_, "' holds ", scan_.withoutPayloads.size(),
                           " bytes besides its initializers' raw data, over protobuf's 2 GiB limit");
    }
    if (!model_.ParseFromString(scan_.withoutPayloads)) {
      return Status::error("'", path_, "' is not a valid ONNX model",
                           " (protobuf parse failed: truncated or not this kind of file)");
    }
    std::string().swap(scan_.withoutPayloads);  // parsed: only the spans are needed
    // Bytes that happen to parse as protobuf, or a file cut at a field
    // boundary, leave these empty.
    if (!model_.has_graph() || model_.ir_version() <= 0) {
      return error("not an ONNX model (no ir_version or graph; not ONNX, or truncated)");
    }
    if (model_.graph().output_size() == 0) {
      return error("the model's graph has no outputs (truncated file?)");
    }
    return Status::ok();
  }

  // The ai.onnx opset must be in range when any node uses it (after
  // checkSupportedOps, every node does).
  Status checkOpset() {
    if (model_.graph().node_size() == 0) return Status::ok();
    std::optional<int64_t> onnxOpset;
    for (const auto& entry : model_.opset_import()) {
      if (isOnnxDomain(entry.domain())) onnxOpset = entry.version();
    }
    if (!onnxOpset) return error("the model imports no ai.onnx opset (truncated file?)");
    if (*onnxOpset < 1 || *onnxOpset > kMaxOnnxOpset) {
      return error("unsupported opset: the model uses ai.onnx opset ", *onnxOpset,
                   "; kiln imports opsets ", kMinOnnxOpset, " to ", kMaxOnnxOpset,
                   " (convert it with onnx.version_converter)");
    }
    if (*onnxOpset < kMinOnnxOpset) return checkOpsUnchangedSince(*onnxOpset);
    return Status::ok();
  }

  // An older model imports when each of its ops means at its opset what it
  // means at opset 13: the schema in force is the same one.
  Status checkOpsUnchangedSince(int64_t opset) {
    std::set<std::string> changed;
    for (const onnx::NodeProto& node : model_.graph().node()) {
      if (!isOnnxDomain(node.domain())) continue;
      const onnx::OpSchema* old = onnx::OpSchemaRegistry::Schema(node.op_type(), static_cast<int>(opset));
      const onnx::OpSchema* current =
          onnx::OpSchemaRegistry::Schema(node.op_type(), static_cast<int>(kMinOnnxOpset));
      if (!old || !current || old->since_version() != current->since_version())
        changed.insert(cat(node.op_type(), " (", old ? cat("version ", old->since_version()) : "unknown",
                           ", kiln implements version ",
                           current ? cat(current->since_version()) : "none", ")"));
    }
    if (changed.empty()) return Status::ok();
    std::string list;
    for (const std::string& op : changed) list += (list.empty() ? "" : ", ") + op;
    return error("unsupported opset: the model uses ai.onnx opset ", opset, ", where these ops differ from opset ",
                 kMinOnnxOpset, ": ", list, " (convert it with onnx.version_converter)");
  }

  std::string nodeLocation(int index) const {
    const onnx::NodeProto& node = model_.graph().node(index);
    return node.name().empty() ? cat(node.op_type(), "_", index) : node.name();
  }

  // One error listing every node whose op kiln cannot import (in Loop
  // bodies too), before anything is built.
  Status checkSupportedOps() {
    std::vector<std::string> problems;
    const auto& nodes = model_.graph().node();
    for (int i = 0; i < nodes.size(); ++i) checkSupported(nodes.Get(i), nodeLocation(i), problems);
    if (problems.empty()) return Status::ok();
    std::string message = cat(path_, ": unsupported ONNX ops in ", problems.size(),
                              problems.size() == 1 ? " node:" : " nodes:");
    for (const std::string& p : problems) message += "\n" + p;
    return Status::error(message);
  }

  void checkSupported(const onnx::NodeProto& node, const std::string& location, std::vector<std::string>& problems) {
    std::string why;
    if (!isOnnxDomain(node.domain())) {
      why = cat(" (domain '", node.domain(), "')");
    } else if (isSequenceOrLoopOp(node.op_type())) {
      for (const auto& attr : node.attribute())
        if (attr.has_g())
          for (int n = 0; n < attr.g().node_size(); ++n)
            checkSupported(attr.g().node(n), cat(location, "/", attr.g().node(n).name()), problems);
      return;
    } else if (const OnnxOpConverter* converter = findOnnxOpConverter(node.op_type())) {
      for (std::string_view op : converter->kilnOps) {
        if (!OpRegistry::global().find(op)) why = cat(" (kiln has no '", op, "' op)");
      }
      if (why.empty()) return;
    }
    problems.push_back(cat("  node '", location, "': ", node.op_type(), why));
  }

  Status addInitializers() {
    const onnx::GraphProto& g = model_.graph();
    if (g.sparse_initializer_size() > 0) {
      return error("unsupported sparse initializer '", g.sparse_initializer(0).values().name(),
                   "'");
    }
    if (static_cast<size_t>(g.initializer_size()) != scan_.initializers.size()) {
      return error("protobuf parsed ", g.initializer_size(), " initializers where the wire scan found ",
                   scan_.initializers.size());
    }
    for (int i = 0; i < g.initializer_size(); ++i) {
      const onnx::TensorProto& init = g.initializer(i);
      if (init.name().empty()) return error("an initializer has no name");
      if (values_.count(init.name())) return error("initializer '", init.name(), "' is repeated");
      Expected<Tensor> data = initializerData(init, scan_.initializers[static_cast<size_t>(i)]);
      if (!data) return data.status().withContext(cat(path_, ": initializer '", init.name(), "': "));
      values_[init.name()] = graph_.addWeight(init.name(), *data);
    }
    return Status::ok();
  }

  // The data of an initializer: a view of (or, below copyBelowBytes, a copy
  // from) its bytes in the mapped model or external-data file; typed fields
  // are decoded.
  Expected<Tensor> initializerData(const onnx::TensorProto& init, const ScannedInitializer& scanned) {
    if (init.data_location() == onnx::TensorProto::EXTERNAL) {
      Expected<ExternalDataRef> ref = externalDataOf(init, modelDir_);
      if (!ref) return ref.status();
      Expected<const MappedFile*> file = externalFile(ref->path);
      if (!file) return file.status().withContext(cat("tensor '", init.name(), "': "));
      KILN_RETURN_IF_ERROR(checkExternalRange(init, *ref, (*file)->size()));
      const auto offset = static_cast<size_t>(ref->offset), length = static_cast<size_t>(ref->length);
      return tensorOverBytes(init, (*file)->bytes().substr(offset, length), (*file)->keepAlive(),
                             length >= options_.copyBelowBytes);
    }
    if (scanned.rawData) {
      const ByteSpan& span = *scanned.rawData;
      return tensorOverBytes(init, modelFile_.bytes().substr(span.offset, span.length), modelFile_.keepAlive(),
                             span.length >= options_.copyBelowBytes);
    }
    return tensorFromProto(init, modelDir_);
  }

  // Each external-data file is mapped once.
  Expected<const MappedFile*> externalFile(const std::string& path) {
    const std::string key = std::filesystem::path(path).lexically_normal().string();
    auto it = externalFiles_.find(key);
    if (it == externalFiles_.end()) {
      Expected<MappedFile> file = MappedFile::open(path, "external data file");
      if (!file) return file.status();
      it = externalFiles_.emplace(key, std::move(*file)).first;
    }
    return &it->second;
  }

  // The dims of a graph input as in the model: dim_value, a symbol for a
  // dim_param, or a fresh symbol for a dim with neither.
  Expected<std::optional<Shape>> declaredShape(const onnx::ValueInfoProto& input) {
    const auto& tensorType = input.type().tensor_type();
    if (!tensorType.has_shape()) return std::optional<Shape>();
    Shape shape;
    for (int k = 0; k < tensorType.shape().dim_size(); ++k) {
      const auto& dim = tensorType.shape().dim(k);
      if (dim.has_dim_value()) {
        if (dim.dim_value() < 0) {
          return error("graph input '", input.name(), "' has a negative dim ", dim.dim_value());
        }
        shape.push_back(Dim(dim.dim_value()));
      } else if (dim.has_dim_param() && !sanitizeSymbol(dim.dim_param()).empty()) {
        shape.push_back(Dim::symbol(symbolFor(dim.dim_param())));
      } else {
        shape.push_back(Dim::symbol(freshSymbol(cat(input.name(), "_d", k))));
      }
    }
    return std::optional<Shape>(shape);
  }

  // Equal dim_params share a symbol; different ones that sanitise alike get
  // different symbols.
  std::string symbolFor(const std::string& param) {
    auto it = paramSymbols_.find(param);
    if (it != paramSymbols_.end()) return it->second;
    const std::string stem = sanitizeSymbol(param);
    std::string symbol = stem;
    for (int n = 1; takenSymbols_.count(symbol); ++n) symbol = cat(stem, "_", n);
    takenSymbols_.insert(symbol);
    paramSymbols_[param] = symbol;
    return symbol;
  }

  // A symbol for a dim with no dim_param, clashing with no dim_param's.
  std::string freshSymbol(const std::string& base) {
    const std::string stem = sanitizeSymbol(base);
    std::string symbol = stem;
    for (int n = 1; takenSymbols_.count(symbol) || paramStems_.count(symbol); ++n) {
      symbol = cat(stem, "_", n);
    }
    takenSymbols_.insert(symbol);
    return symbol;
  }

  // Applies --input-shape: checks each given shape against the model's and
  // records what each model symbol becomes.
  Status specialise(const std::string& name, const std::optional<Shape>& declared,
                    const Shape& given, std::map<std::string, Dim>& symbolBindings) {
    for (const Dim& d : given) {
      if (d.isUnknown() || (d.isConstant() && *d.constant() < 0)) {
        return error("--input-shape ", name, ": dim '", d.str(),
                     "' must be a non-negative integer or a symbol");
      }
    }
    if (!declared) return Status::ok();
    if (declared->size() != given.size()) {
      return error("--input-shape ", name, "=", optionDims(given), " has rank ", given.size(),
                   ", the model's input is ", shapeStr(*declared), " (rank ", declared->size(),
                   ")");
    }
    for (size_t k = 0; k < given.size(); ++k) {
      const Dim& model = (*declared)[k];
      if (model.isConstant()) {
        if (model != given[k]) {
          return error("--input-shape ", name, "=", optionDims(given), ": dim ", k,
                       " is fixed at ", model.str(), " in the model");
        }
        continue;
      }
      const std::string symbol = model.symbols().at(0);
      auto [it, inserted] = symbolBindings.emplace(symbol, given[k]);
      if (!inserted && it->second != given[k]) {
        return error("--input-shape: model dim '", symbol, "' is given as both ",
                     it->second.str(), " and ", given[k].str());
      }
    }
    return Status::ok();
  }

  Status addInputs() {
    const onnx::GraphProto& g = model_.graph();
    struct PendingInput {
      const onnx::ValueInfoProto* info;
      DType dtype;
      std::optional<Shape> shape;
    };
    std::vector<PendingInput> pending;
    std::set<std::string> initializerNames;
    for (const auto& init : g.initializer()) initializerNames.insert(init.name());
    for (const auto& param : collectDimParams()) paramStems_.insert(sanitizeSymbol(param));

    for (const onnx::ValueInfoProto& input : g.input()) {
      // An input with an initializer is a weight (its default is the data).
      if (initializerNames.count(input.name())) continue;
      if (input.name().empty()) return error("a graph input has no name");
      if (values_.count(input.name())) return error("graph input '", input.name(), "' is repeated");
      if (!input.type().has_tensor_type()) {
        return error("graph input '", input.name(),
                     "': unsupported type (sequence, optional or map; kiln takes tensors)");
      }
      const int32_t elemType = input.type().tensor_type().elem_type();
      std::optional<DType> dtype = dtypeFromOnnx(elemType);
      if (!dtype) {
        return error("graph input '", input.name(), "': unsupported dtype ",
                     onnxTypeName(elemType));
      }
      Expected<std::optional<Shape>> shape = declaredShape(input);
      if (!shape) return shape.status();
      pending.push_back({&input, *dtype, *shape});
      values_[input.name()] = kNoValue;  // reserved until added below
    }

    std::map<std::string, Dim> symbolBindings;
    for (const auto& [name, given] : options_.inputShapes) {
      auto it = std::find_if(pending.begin(), pending.end(),
                             [&](const PendingInput& p) { return p.info->name() == name; });
      if (it == pending.end()) {
        std::string names;
        for (const PendingInput& p : pending) names += cat(names.empty() ? "" : ", ", p.info->name());
        return error("--input-shape names '", name, "', which is not a graph input (inputs: ",
                     names, ")");
      }
      KILN_RETURN_IF_ERROR(specialise(name, it->shape, given, symbolBindings));
    }

    for (PendingInput& p : pending) {
      const std::string& name = p.info->name();
      Shape shape;
      if (auto given = options_.inputShapes.find(name); given != options_.inputShapes.end()) {
        shape = given->second;
      } else if (p.shape) {
        shape = *p.shape;
        for (Dim& d : shape) {
          if (d.isConstant()) continue;
          auto bound = symbolBindings.find(d.symbols().at(0));
          if (bound != symbolBindings.end()) d = bound->second;
        }
      } else {
        return error("graph input '", name,
                     "' has no shape in the model; give one with --input-shape ", name, "=DIMS");
      }
      values_[name] = graph_.addInput(name, TensorType{p.dtype, shape});
    }
    return Status::ok();
  }

  std::vector<std::string> collectDimParams() const {
    std::vector<std::string> params;
    for (const auto& input : model_.graph().input()) {
      for (const auto& dim : input.type().tensor_type().shape().dim()) {
        if (dim.has_dim_param()) params.push_back(dim.dim_param());
      }
    }
    return params;
  }

  Status checkAttributes(const onnx::NodeProto& node, const OnnxOpConverter& converter) const {
    for (const auto& attr : node.attribute()) {
      auto decl = std::find_if(converter.attributes.begin(), converter.attributes.end(),
                               [&](const OnnxAttrDecl& d) { return d.name == attr.name(); });
      if (decl == converter.attributes.end()) {
        return Status::error("unsupported attribute '", attr.name(), "'");
      }
      if (attr.type() != decl->type) {
        return Status::error("attribute '", attr.name(), "' is ", onnxAttrTypeName(attr.type()),
                             ", expected ", onnxAttrTypeName(decl->type));
      }
    }
    return Status::ok();
  }

  Status convertNodes() {
    const onnx::GraphProto& g = model_.graph();
    std::unordered_set<std::string> consumed;
    for (const auto& node : g.node()) {
      for (const auto& name : node.input()) consumed.insert(name);
    }
    for (const auto& output : g.output()) {
      consumed.insert(output.name());
      outputNames_.insert(output.name());
    }

    for (int i = 0; i < g.node_size(); ++i) KILN_RETURN_IF_ERROR(convertNode(g.node(i), nodeLocation(i), consumed));
    return Status::ok();
  }

  // One node (of the graph or, once per iteration, of a Loop body). A
  // sequence input is passed as kNoValue; the sequence ops read it by name.
  Status convertNode(const onnx::NodeProto& node, const std::string& location,
                     const std::unordered_set<std::string>& consumed) {
    std::vector<ValueId> inputs;
    for (const std::string& name : node.input()) {
      auto it = values_.find(name);
      if (name.empty() || (it == values_.end() && sequences_.count(name))) {
        inputs.push_back(kNoValue);
        continue;
      }
      if (it == values_.end()) {
        return error("node '", location, "' (", node.op_type(), "): input '", name,
                     "' is not a graph input, an initializer or an earlier node's output "
                     "(truncated or unsorted model?)");
      }
      inputs.push_back(it->second);
    }
    const std::string context =
        cat(path_, ": node '", location, "' (", node.op_type(), ", inputs ", typeList(graph_, inputs), "): ");
    OnnxNodeContext ctx(graph_, node, location, inputs, modelDir_, consumed);
    if (isSequenceOrLoopOp(node.op_type())) {
      OnnxScopes scopes{values_, sequences_,
                        [this](const onnx::NodeProto& n, const std::string& where,
                               const std::unordered_set<std::string>& names) { return convertNode(n, where, names); }};
      Status converted = convertSequenceOrLoop(ctx, scopes);
      if (!converted) return converted.withContext(context);
      return bindOutputs(ctx, context);
    }
    const OnnxOpConverter& converter = *findOnnxOpConverter(node.op_type());
    Status attrsOk = checkAttributes(node, converter);
    if (!attrsOk) return attrsOk.withContext(context);
    Status converted = converter.convert(ctx, converter);
    if (!converted) return converted.withContext(context);
    return bindOutputs(ctx, context);
  }

  Status bindOutputs(const OnnxNodeContext& ctx, const std::string& context) {
    const onnx::NodeProto& node = ctx.node();
    for (int k = 0; k < node.output_size(); ++k) {
      const std::string& name = node.output(k);
      if (name.empty() || sequences_.count(name)) continue;  // a sequence: no register
      const ValueId value = ctx.outputs()[static_cast<size_t>(k)];
      if (value == kNoValue) {
        // Optional outputs nothing reads (Dropout's mask...) need no value.
        if (!ctx.outputUsed(static_cast<size_t>(k))) continue;
        return Status::error(context, "unsupported: output ", k, " ('", name,
                             "') is used but kiln does not compute it");
      }
      if (values_.count(name)) {
        return Status::error(context, "output '", name, "' is already defined (not SSA)");
      }
      values_[name] = value;
      // A fresh result that is a graph output takes the output's name.
      if (outputNames_.count(name) && ctx.created(value)) claimName(value, name);
    }
    return Status::ok();
  }

  // Renames `value` to `name`, moving an auto-numbered intermediate that
  // holds the name out of the way. Returns false when the name belongs to
  // an input or weight.
  bool claimName(ValueId value, const std::string& name) {
    if (std::optional<ValueId> holder = graph_.find(name)) {
      if (*holder == value) return true;
      const Value& other = graph_.value(*holder);
      if (other.kind != ValueKind::OpResult || namedOutputs_.count(*holder)) return false;
      if (!graph_.rename(*holder, graph_.uniqueName(name + "_"))) return false;
    }
    if (!graph_.rename(value, name)) return false;
    namedOutputs_.insert(value);
    return true;
  }

  // Every graph output is its own register named after the ONNX output; an
  // output that is an input, a weight, an alias or a repeat gets an identity.
  Status setOutputs() {
    std::vector<ValueId> outputs;
    for (const onnx::ValueInfoProto& output : model_.graph().output()) {
      const std::string& name = output.name();
      auto it = values_.find(name);
      if (it == values_.end()) {
        return error("graph output '", name,
                     "' is not produced by any node, input or initializer (truncated model?)");
      }
      ValueId value = it->second;
      const bool ownRegister = graph_.value(value).name == name &&
                               graph_.value(value).kind == ValueKind::OpResult &&
                               std::find(outputs.begin(), outputs.end(), value) == outputs.end();
      if (!ownRegister) {
        Builder builder(graph_);
        Expected<ValueId> copy = builder.create1("identity", {value}, {}, cat("output ", name));
        if (!copy) return copy.status().withContext(cat(path_, ": graph output '", name, "': "));
        // A weight may give up the name (its own name is internal); an input
        // may not, so that output gets the next free variant.
        if (std::optional<ValueId> holder = graph_.find(name);
            holder && graph_.value(*holder).kind == ValueKind::Weight) {
          KILN_RETURN_IF_ERROR(graph_.rename(*holder, graph_.uniqueName(name + "_value")));
        }
        if (!claimName(*copy, name)) claimName(*copy, graph_.uniqueName(name));
        value = *copy;
      }
      outputs.push_back(value);
    }
    graph_.setOutputs(outputs);
    return Status::ok();
  }

  std::string path_;
  std::string modelDir_;
  const OnnxImportOptions& options_;
  MappedFile modelFile_;
  ScannedModel scan_;
  std::map<std::string, MappedFile> externalFiles_;  // by normalised path
  onnx::ModelProto model_;
  Graph graph_;
  std::unordered_map<std::string, ValueId> values_;  // ONNX value name -> register
  std::unordered_map<std::string, OnnxSequence> sequences_;  // sequence-typed value name -> its registers
  std::unordered_map<std::string, std::string> paramSymbols_;
  std::unordered_set<std::string> takenSymbols_;  // symbols given out
  std::unordered_set<std::string> paramStems_;    // every dim_param, sanitised
  std::unordered_set<std::string> outputNames_;
  std::unordered_set<ValueId> namedOutputs_;
};

bool isSymbolName(const std::string& text) {
  if (text.empty() || (text[0] >= '0' && text[0] <= '9')) return false;
  return sanitizeSymbol(text) == text;
}

}  // namespace

Expected<Graph> importOnnxFile(const std::string& path, const OnnxImportOptions& options,
                               OnnxModelStats* stats, std::vector<MappedFile>* weightFiles) {
  return OnnxImporter(path, options).run(stats, weightFiles);
}

Expected<std::pair<std::string, std::vector<Dim>>> parseInputShapeOption(const std::string& text) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::error("--input-shape '", text, "': expected NAME=DIMS, e.g. input_ids=1x128");
  }
  std::string name = text.substr(0, eq);
  std::string dimsText = text.substr(eq + 1);
  std::vector<Dim> dims;
  if (!dimsText.empty()) {
    // Commas separate dims when a symbol contains an 'x'.
    const char separator = dimsText.find(',') != std::string::npos ? ',' : 'x';
    size_t start = 0;
    while (true) {
      const size_t end = dimsText.find(separator, start);
      std::string part = dimsText.substr(start, end == std::string::npos ? std::string::npos
                                                                          : end - start);
      part.erase(0, part.find_first_not_of(' '));
      part.erase(part.find_last_not_of(' ') + 1);
      if (!part.empty() && std::all_of(part.begin(), part.end(),
                                       [](char c) { return c >= '0' && c <= '9'; })) {
        if (part.size() > 18) return Status::error("--input-shape '", text, "': dim '", part, "' is too large");
        dims.push_back(Dim(static_cast<int64_t>(std::stoll(part))));
      } else if (isSymbolName(part)) {
        dims.push_back(Dim::symbol(part));
      } else {
        return Status::error("--input-shape '", text, "': dim '", part,
                             "' is neither a non-negative integer nor a symbol name");
      }
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  return std::make_pair(std::move(name), std::move(dims));
}

std::vector<std::string> supportedOnnxOps() {
  std::vector<std::string> ops;
  for (const OnnxOpConverter& converter : onnxOpConverters()) {
    bool available = true;
    for (std::string_view op : converter.kilnOps) {
      available = available && OpRegistry::global().find(op) != nullptr;
    }
    if (available) ops.emplace_back(converter.opType);
  }
  return ops;
}

}  // namespace kiln
