#include "passes/device_profile.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ir/op_registry.h"
#include "passes/builtin_profiles.h"

namespace kiln {
namespace {

using Json = nlohmann::json;

// "all", or a list of names each `parse` knows.
template <class T, class Parse>
Status readNameSet(const Json& field, std::string_view what, std::set<T>& out, const std::vector<T>& all,
                   Parse parse) {
  if (field.is_string() && field.get<std::string>() == "all") {
    out.insert(all.begin(), all.end());
    return Status::ok();
  }
  if (!field.is_array()) return Status::error("'", what, "' must be \"all\" or a list of names");
  for (const Json& item : field) {
    if (!item.is_string()) return Status::error("'", what, "' must list names, got ", item.dump());
    std::optional<T> value = parse(item.get<std::string>());
    if (!value) return Status::error("'", what, "' names unknown ", item.dump());
    out.insert(*value);
  }
  return Status::ok();
}

std::vector<OpKind> allOpKinds() {
  std::vector<OpKind> kinds;
  for (size_t i = 0; i < kNumOpKinds; ++i) kinds.push_back(static_cast<OpKind>(i));
  return kinds;
}

// A number field, scaled into the struct's unit; it must be there and >= 0.
Status readNumber(const Json& object, const char* key, double scale, double& out) {
  if (!object.contains(key) || !object[key].is_number())
    return Status::error("'", key, "' must be a number");
  const double value = object[key].get<double>();
  if (value < 0) return Status::error("'", key, "' must not be negative, got ", value);
  out = value * scale;
  return Status::ok();
}

Status readProfile(const Json& json, DeviceProfile& profile) {
  if (!json.is_object()) return Status::error("a profile is a JSON object");
  for (const char* key : {"name", "device"})
    if (!json.contains(key) || !json[key].is_string() || json[key].get<std::string>().empty())
      return Status::error("'", key, "' must be a non-empty string");
  profile.name = json["name"].get<std::string>();
  profile.device = json["device"].get<std::string>();
  profile.summary = json.value("summary", "");
  profile.defaultForDevice = json.value("default_for_device", false);
  KILN_RETURN_IF_ERROR(readNameSet(json.value("ops", Json()), "ops", profile.ops, allOpKinds(), opKindNamed));
  KILN_RETURN_IF_ERROR(readNameSet(json.value("dtypes", Json()), "dtypes", profile.dtypes,
                                   std::vector<DType>(std::begin(kAllDTypes), std::end(kAllDTypes)),
                                   parseDType));
  KILN_RETURN_IF_ERROR(readNameSet(json.value("float_only", Json::array()), "float_only", profile.floatOnly,
                                   allOpKinds(), opKindNamed));
  profile.staticShapesOnly = json.value("static_shapes", false);
  double memoryMb = 0;
  KILN_RETURN_IF_ERROR(readNumber(json, "matmul_gflops", 1e9, profile.matmulFlopsPerSecond));
  KILN_RETURN_IF_ERROR(readNumber(json, "vector_gflops", 1e9, profile.vectorFlopsPerSecond));
  KILN_RETURN_IF_ERROR(readNumber(json, "bandwidth_gbs", 1e9, profile.bytesPerSecond));
  KILN_RETURN_IF_ERROR(readNumber(json, "launch_us", 1e-6, profile.launchSeconds));
  KILN_RETURN_IF_ERROR(readNumber(json, "memory_mb", 1, memoryMb));
  profile.memoryBytes = static_cast<uint64_t>(memoryMb * 1024 * 1024);
  const Json link = json.value("host_link", Json::object());
  KILN_RETURN_IF_ERROR(readNumber(link, "bandwidth_gbs", 1e9, profile.hostLink.bytesPerSecond).withContext("host_link: "));
  KILN_RETURN_IF_ERROR(readNumber(link, "latency_us", 1e-6, profile.hostLink.latencySeconds).withContext("host_link: "));
  for (double rate : {profile.matmulFlopsPerSecond, profile.vectorFlopsPerSecond, profile.bytesPerSecond})
    if (rate <= 0) return Status::error("matmul_gflops, vector_gflops and bandwidth_gbs must be positive");
  return Status::ok();
}

}  // namespace

std::optional<std::string> DeviceProfile::refusal(const Graph& graph, const Op& op) const {
  if (!ops.count(op.kind())) return cat("'", name, "' has no ", op.def->name);
  if (floatOnly.count(op.kind()))
    for (ValueId id : op.operands)
      if (id != kNoValue && !isFloat(graph.value(id).type.dtype))
        return cat("'", name, "' runs ", op.def->name, " on floats only, not ", dtypeName(graph.value(id).type.dtype));
  auto check = [&](ValueId id) -> std::optional<std::string> {
    const TensorType& type = graph.value(id).type;
    if (!dtypes.count(type.dtype)) return cat("'", name, "' has no ", dtypeName(type.dtype));
    if (staticShapesOnly && !type.staticDims()) return cat("'", name, "' takes static shapes only, not ", type.str());
    return std::nullopt;
  };
  for (ValueId id : op.operands)
    if (id != kNoValue)
      if (std::optional<std::string> why = check(id)) return why;
  for (ValueId id : op.results)
    if (std::optional<std::string> why = check(id)) return why;
  return std::nullopt;
}

Expected<DeviceProfile> parseDeviceProfile(std::string_view text, std::string_view source) {
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Status::error("device profile ", source, ": not valid JSON");
  DeviceProfile profile;
  KILN_RETURN_IF_ERROR(readProfile(json, profile).withContext(cat("device profile ", source, ": ")));
  return profile;
}

std::string printDeviceProfile(const DeviceProfile& profile) {
  Json ops = Json::array(), dtypes = Json::array(), floatOnly = Json::array();
  for (OpKind kind : profile.ops) ops.push_back(std::string(opName(kind)));
  for (OpKind kind : profile.floatOnly) floatOnly.push_back(std::string(opName(kind)));
  for (DType dtype : profile.dtypes) dtypes.push_back(std::string(dtypeName(dtype)));
  Json json = {{"name", profile.name},
               {"device", profile.device},
               {"summary", profile.summary},
               {"default_for_device", profile.defaultForDevice},
               {"ops", profile.ops.size() == kNumOpKinds ? Json("all") : ops},
               {"dtypes", profile.dtypes.size() == std::size(kAllDTypes) ? Json("all") : dtypes},
               {"float_only", floatOnly},
               {"static_shapes", profile.staticShapesOnly},
               {"matmul_gflops", profile.matmulFlopsPerSecond / 1e9},
               {"vector_gflops", profile.vectorFlopsPerSecond / 1e9},
               {"bandwidth_gbs", profile.bytesPerSecond / 1e9},
               {"launch_us", profile.launchSeconds / 1e-6},
               {"memory_mb", static_cast<double>(profile.memoryBytes) / (1024 * 1024)},
               {"host_link",
                {{"bandwidth_gbs", profile.hostLink.bytesPerSecond / 1e9},
                 {"latency_us", profile.hostLink.latencySeconds / 1e-6}}}};
  return json.dump(2) + "\n";
}

Expected<DeviceProfile> loadDeviceProfile(const std::string& nameOrPath) {
  for (const BuiltinProfile& builtin : builtinProfiles())
    if (builtin.name == nameOrPath) return parseDeviceProfile(builtin.json, cat("'", builtin.name, "' (built in)"));
  std::ifstream file(nameOrPath);
  if (!file) {
    std::string names;
    for (const std::string& name : builtinProfileNames()) names += cat(names.empty() ? "" : ", ", name);
    return Status::error("no device profile '", nameOrPath, "': not a shipped profile (", names,
                         ") nor a readable file");
  }
  std::stringstream text;
  text << file.rdbuf();
  return parseDeviceProfile(text.str(), nameOrPath);
}

Expected<DeviceProfile> defaultDeviceProfile(std::string_view device) {
  for (const BuiltinProfile& builtin : builtinProfiles()) {
    Expected<DeviceProfile> profile = parseDeviceProfile(builtin.json, cat("'", builtin.name, "' (built in)"));
    if (profile && profile->device == device && profile->defaultForDevice) return profile;
  }
  return Status::error("no shipped profile is the default for device '", device, "' (give --device-profile)");
}

std::vector<std::string> builtinProfileNames() {
  std::vector<std::string> names;
  for (const BuiltinProfile& builtin : builtinProfiles()) names.emplace_back(builtin.name);
  return names;
}

}  // namespace kiln
