#include "runtime/artifact.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "ir/text.h"
#include "ir/verifier.h"
#include "runtime/byte_stream.h"
#include "runtime/host_fallback.h"
#include "runtime/weight_copies.h"

namespace kiln::rt {
namespace {

std::optional<RegisterPlan::Kind> kindOfCode(uint8_t code) {
  if (code >= std::size(kRegisterKindOfCode)) return std::nullopt;
  return kRegisterKindOfCode[code];
}

// Bounds-checked reads over a section's bytes.

// A register's bytes at the bounds as the planner sizes it (rounded up to
// kPlanAlignment); nullopt when a dim has no value there.
std::optional<uint64_t> plannedBytes(const TensorType& type, const SymbolBindings& bounds) {
  uint64_t bytes = dtypeSize(type.dtype);
  for (const Dim& dim : type.shape) {
    std::optional<int64_t> n = dim.substitute(bounds).constant();
    if (!n || *n < 0) return std::nullopt;
    if (*n != 0 && bytes > std::numeric_limits<uint64_t>::max() / 2 / static_cast<uint64_t>(*n))
      return std::nullopt;
    bytes *= static_cast<uint64_t>(*n);
  }
  return alignUp(bytes, kPlanAlignment);
}

std::string_view sectionName(uint32_t kind) {
  switch (static_cast<SectionKind>(kind)) {
    case SectionKind::Program:
      return "program";
    case SectionKind::WeightTable:
      return "weight table";
    case SectionKind::WeightData:
      return "weight data";
    case SectionKind::Plan:
      return "memory plan";
    case SectionKind::WeightFiles:
      return "weight files";
    case SectionKind::KvLayers:
      return "KV layers";
    case SectionKind::DeviceCode:
      return "device code";
  }
  return "unknown";
}

// ---- Loading.

// An op's operand that reads a weight: matmul's b, gather's table.
struct Reader {
  OpKind kind;
  size_t operand;
};

// Whether the CPU's `readers` are all that read `weight`; and, with
// `someOp`, at least one does.
bool onlyCpuReaders(const Graph& graph, ValueId weight, std::initializer_list<Reader> readers, bool someOp) {
  for (ValueId output : graph.outputs())
    if (output == weight) return false;
  bool read = false;
  for (const Op& op : graph.ops())
    for (size_t i = 0; i < op.operands.size(); ++i) {
      if (op.operands[i] != weight) continue;
      const bool allowed = std::any_of(readers.begin(), readers.end(),
                                       [&](const Reader& r) { return op.is(r.kind) && i == r.operand; });
      if (!allowed || op.placement() != kHostDevice) return false;
      read = true;
    }
  return read || !someOp;
}

// Only the CPU's gathers read it, as their table: both its gather kernels
// copy rows as bytes (memcpy), which any address allows.
bool onlyCpuGathersRead(const Graph& graph, ValueId weight) {
  return onlyCpuReaders(graph, weight, {{OpKind::Gather, 0}}, true);
}

// Only the CPU's matmuls (as b) and gathers (as the table) read it: they pin
// what they read of a copy, which the matmul releases as it packs it
// (runtime/weight_copies.h). A weight nothing reads qualifies.
bool releasableByCpu(const Graph& graph, ValueId weight) {
  return onlyCpuReaders(graph, weight, {{OpKind::Matmul, 1}, {OpKind::Gather, 0}}, false);
}

struct Mapping {
  const uint8_t* base = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> keepAlive;  // unmaps when the last user goes
};

class Loader {
 public:
  explicit Loader(const std::string& path) : path_(path) {}
  ~Loader() {
    for (int fd : weightFileFds_)
      if (fd >= 0) ::close(fd);
  }
  LoadFailure failure() const { return failure_; }
  Expected<Artifact> load();

 private:
  template <class... Parts>
  Status fail(const Parts&... parts) {
    if (failure_ == LoadFailure::None) failure_ = LoadFailure::Invalid;
    return Status::error("cannot load artifact '", path_, "': ", parts...);
  }
  Status mapFile();
  Status checkHeader();
  Status readSections();
  Status readWeightFiles(const SectionInfo& section);
  Status attachWeights(const SectionInfo& table, const SectionInfo& data);
  Status attachEmbedded(Value& weight, const WeightLocation& location, const SectionInfo& data);
  Status attachReferenced(Value& weight, WeightLocation& location, uint64_t fingerprint);
  Expected<const Mapping*> openWeightFile(size_t index);
  Status readPlan(const SectionInfo& section);
  Status readKvLayers(const SectionInfo& section);
  Status readDeviceCode(const SectionInfo& section);

  const std::string& path_;
  std::optional<SectionInfo> planSection_, kvLayersSection_, deviceCodeSection_;
  Mapping map_;
  Artifact artifact_;
  LoadFailure failure_ = LoadFailure::None;
  // The referenced weight files, each opened and mapped once, on first use;
  // the descriptors stay open for the copies of unaligned weights.
  std::vector<std::optional<Mapping>> weightFileMaps_;
  std::vector<int> weightFileFds_;
};

Status Loader::mapFile() {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    failure_ = LoadFailure::Io;
    return fail("cannot open the file: ", std::strerror(errno));
  }
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    failure_ = LoadFailure::Io;
    return fail("not a regular file");
  }
  size_t size = static_cast<size_t>(info.st_size);
  if (size < kArtifactHeaderSize) {
    // Too small to map usefully; still tell a foreign file from a cut one.
    uint8_t prefix[kArtifactHeaderSize];
    ssize_t got = ::read(fd, prefix, size);
    ::close(fd);
    size_t n = got < 0 ? 0 : std::min(static_cast<size_t>(got), sizeof(kArtifactMagic));
    if (std::memcmp(prefix, kArtifactMagic, n) != 0) return fail("not a kiln artifact (wrong magic)");
    return fail("truncated: ", size, " bytes, smaller than the ", kArtifactHeaderSize, "-byte header");
  }
  // Private and writable: pages stay shared with the page cache unless
  // something writes to a weight, which then gets its own copy.
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int mapErrno = errno;
  ::close(fd);
  if (base == MAP_FAILED) {
    failure_ = LoadFailure::Io;
    return fail("cannot map the file: ", std::strerror(mapErrno));
  }
  map_.base = static_cast<const uint8_t*>(base);
  map_.size = size;
  map_.keepAlive =
      std::shared_ptr<const void>(base, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  return Status::ok();
}

Status Loader::checkHeader() {
  const uint8_t* h = map_.base;
  if (std::memcmp(h, kArtifactMagic, sizeof(kArtifactMagic)) != 0)
    return fail("not a kiln artifact (wrong magic)");
  uint32_t version = readAt<uint32_t>(h, kHeaderVersionAt);
  if (version == 0) return fail("bad format version 0");
  if (version > kArtifactFormatVersion)
    return fail("format version ", version, " is newer than this runtime's ", kArtifactFormatVersion);
  // Version 1 held no memory plan; the compiler makes one, the runtime does not.
  if (version < kOldestReadableFormatVersion)
    return fail("format version ", version, " is older than this runtime's ", kArtifactFormatVersion,
                " (it reads versions ", kOldestReadableFormatVersion, " to ", kArtifactFormatVersion,
                "), recompile");
  uint32_t flags = readAt<uint32_t>(h, kHeaderFlagsAt);
  if (flags != 0) return fail("unsupported header flags 0x", std::hex, flags);
  uint64_t declared = readAt<uint64_t>(h, kHeaderTotalSizeAt);
  if (declared > map_.size)
    return fail("truncated: the header declares ", declared, " bytes but the file has ", map_.size);
  if (declared < map_.size)
    return fail("corrupt: the file has ", map_.size, " bytes but the header declares ", declared);
  uint64_t stored = readAt<uint64_t>(h, kHeaderChecksumAt);
  uint64_t actual = artifactChecksum(h + kArtifactHeaderSize, map_.size - kArtifactHeaderSize);
  if (stored != actual)
    return fail("corrupt: checksum mismatch (header has 0x", std::hex, stored, ", contents hash to 0x",
                actual, ")");
  artifact_.formatVersion = version;
  artifact_.fileSize = declared;
  return Status::ok();
}

Status Loader::readSections() {
  const uint8_t* h = map_.base;
  uint64_t tableAt = readAt<uint64_t>(h, kHeaderSectionTableAt);
  uint32_t count = readAt<uint32_t>(h, kHeaderSectionCountAt);
  if (count == 0 || count > kMaxArtifactSections)
    return fail("bad section table: ", count, " sections (1 to ", kMaxArtifactSections, " allowed)");
  uint64_t tableEnd = tableAt + uint64_t{count} * kArtifactSectionEntrySize;
  if (tableAt < kArtifactHeaderSize || tableAt > map_.size || tableEnd > map_.size)
    return fail("bad section table: ", count, " entries at offset ", tableAt, " do not fit in the file's ",
                map_.size, " bytes");

  std::vector<SectionInfo> sections;
  for (uint32_t i = 0; i < count; ++i) {
    size_t at = static_cast<size_t>(tableAt) + i * kArtifactSectionEntrySize;
    SectionInfo s{readAt<uint32_t>(h, at), readAt<uint64_t>(h, at + 8), readAt<uint64_t>(h, at + 16)};
    if (s.offset < tableEnd || s.offset > map_.size || s.size > map_.size - s.offset)
      return fail("bad section table: section ", i, " (", sectionName(s.kind), ") spans [", s.offset, ", ",
                  s.offset + s.size, ") outside the file's contents [", tableEnd, ", ", map_.size, ")");
    sections.push_back(s);
  }
  std::vector<SectionInfo> byOffset = sections;
  std::sort(byOffset.begin(), byOffset.end(),
            [](const SectionInfo& a, const SectionInfo& b) { return a.offset < b.offset; });
  for (size_t i = 1; i < byOffset.size(); ++i) {
    if (byOffset[i - 1].offset + byOffset[i - 1].size > byOffset[i].offset)
      return fail("bad section table: sections ", sectionName(byOffset[i - 1].kind), " and ",
                  sectionName(byOffset[i].kind), " overlap");
  }
  // Exactly one of each known kind; unknown kinds are skipped.
  std::map<uint32_t, SectionInfo> known;
  for (const SectionInfo& s : sections) {
    if (sectionName(s.kind) == "unknown") continue;
    if (!known.emplace(s.kind, s).second)
      return fail("bad section table: more than one ", sectionName(s.kind), " section");
  }
  std::vector<SectionKind> required = {SectionKind::Program, SectionKind::WeightTable, SectionKind::WeightData};
  if (artifact_.formatVersion >= kKvLayersSinceFormatVersion) required.push_back(SectionKind::KvLayers);
  if (artifact_.formatVersion >= kDeviceCodeSinceFormatVersion) required.push_back(SectionKind::DeviceCode);
  for (SectionKind kind : required) {
    if (!known.count(static_cast<uint32_t>(kind)))
      return fail("bad section table: no ", sectionName(static_cast<uint32_t>(kind)), " section");
  }
  const SectionInfo& data = known[static_cast<uint32_t>(SectionKind::WeightData)];
  if (data.offset % kWeightAlignment != 0)
    return fail("bad section table: weight data at offset ", data.offset, " is not ", kWeightAlignment,
                "-byte aligned");
  artifact_.sections = sections;

  if (auto plan = known.find(static_cast<uint32_t>(SectionKind::Plan)); plan != known.end())
    planSection_ = plan->second;
  // Before version 4 no writer recorded the KV layers.
  if (artifact_.formatVersion >= kKvLayersSinceFormatVersion)
    kvLayersSection_ = known[static_cast<uint32_t>(SectionKind::KvLayers)];
  if (artifact_.formatVersion >= kDeviceCodeSinceFormatVersion)
    deviceCodeSection_ = known[static_cast<uint32_t>(SectionKind::DeviceCode)];

  const SectionInfo& program = known[static_cast<uint32_t>(SectionKind::Program)];
  std::string_view text(reinterpret_cast<const char*>(h + program.offset), program.size);
  Expected<Graph> graph = parseGraph(text);
  if (!graph) return fail("bad program: ", graph.status().message());
  artifact_.graph = std::move(graph.value());
  if (auto files = known.find(static_cast<uint32_t>(SectionKind::WeightFiles)); files != known.end())
    KILN_RETURN_IF_ERROR(readWeightFiles(files->second));
  return attachWeights(known[static_cast<uint32_t>(SectionKind::WeightTable)], data);
}

Status Loader::readWeightFiles(const SectionInfo& section) {
  ByteReader in(map_.base + section.offset, map_.base + section.offset + section.size);
  auto bad = [&](const auto&... parts) { return fail("bad weight files section: ", parts...); };
  uint32_t count = 0;
  if (!in.read(count)) return bad("shorter than its entry count");
  for (uint32_t i = 0; i < count; ++i) {
    WeightFileInfo info;
    if (!in.readBytes<uint32_t>(info.path) || !in.read(info.size) || !in.read(info.mtimeNs))
      return bad("entry ", i, " of ", count, " runs past the section");
    if (info.path.empty() || info.path.front() != '/') return bad("entry ", i, " has the relative path '", info.path, "'");
    artifact_.weightFiles.push_back(std::move(info));
  }
  if (in.left() != 0) return bad(in.left(), " bytes after the last of its ", count, " entries");
  weightFileMaps_.resize(count);
  weightFileFds_.assign(count, -1);
  return Status::ok();
}

// Opens and maps a referenced weight file, after checking that it is the
// file the artifact was compiled against: same size, same modification time.
Expected<const Mapping*> Loader::openWeightFile(size_t index) {
  if (weightFileMaps_[index]) return &*weightFileMaps_[index];
  const WeightFileInfo& info = artifact_.weightFiles[index];
  const std::string named = cat("weight file '", info.path, "' (referenced by kiln compile --weights reference)");
  int fd = ::open(info.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    failure_ = LoadFailure::Io;
    return fail(named, " cannot be opened: ", std::strerror(error),
                "; restore it, or recompile (--weights embed keeps the weights in the artifact)");
  }
  weightFileFds_[index] = fd;
  struct stat fileStat;
  if (::fstat(fd, &fileStat) != 0 || !S_ISREG(fileStat.st_mode)) {
    failure_ = LoadFailure::Io;
    return fail(named, " is not a regular file");
  }
  const auto size = static_cast<uint64_t>(fileStat.st_size);
  const int64_t mtimeNs =
      static_cast<int64_t>(fileStat.st_mtim.tv_sec) * 1'000'000'000 + fileStat.st_mtim.tv_nsec;
  if (size != info.size)
    return fail(named, " has changed since the artifact was compiled: it has ", size, " bytes, ", info.size,
                " then; recompile");
  if (mtimeNs != info.mtimeNs)
    return fail(named, " has changed since the artifact was compiled: it was modified after; recompile");
  Mapping mapping;
  if (size > 0) {
    // Read-only and private: the weights' pages stay the page cache's,
    // shared with every process that maps the file.
    void* base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) {
      const int error = errno;
      failure_ = LoadFailure::Io;
      return fail(named, " cannot be mapped: ", std::strerror(error));
    }
    mapping.base = static_cast<const uint8_t*>(base);
    mapping.size = size;
    mapping.keepAlive =
        std::shared_ptr<const void>(base, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  }
  weightFileMaps_[index] = std::move(mapping);
  return &*weightFileMaps_[index];
}

Status Loader::attachWeights(const SectionInfo& table, const SectionInfo& data) {
  ByteReader in(map_.base + table.offset, map_.base + table.offset + table.size);
  auto bad = [&](const auto&... parts) { return fail("bad weight table: ", parts...); };
  uint32_t count = 0;
  if (!in.read(count)) return bad("shorter than its entry count");

  Graph& graph = artifact_.graph;
  std::vector<bool> attached(graph.values().size(), false);
  for (uint32_t i = 0; i < count; ++i) {
    // Version 2: name, offset, bytes (every weight embedded). Version 3 adds
    // the weight file and the fingerprint of referenced bytes.
    std::string name;
    WeightLocation location;
    uint32_t file = kEmbeddedWeight;
    uint64_t fingerprint = 0;
    const bool read = artifact_.formatVersion == 2
                          ? in.readBytes<uint32_t>(name) && in.read(location.offset) && in.read(location.bytes)
                          : in.readBytes<uint32_t>(name) && in.read(file) && in.read(location.offset) &&
                                in.read(location.bytes) && in.read(fingerprint);
    if (!read) return bad("entry ", i, " of ", count, " runs past the table");

    std::optional<ValueId> id = graph.find(name);
    if (!id || graph.value(*id).kind != ValueKind::Weight)
      return bad("entry for @", name, ", which is not a weight of the program");
    Value& weight = graph.value(*id);
    if (attached[static_cast<size_t>(*id)]) return bad("two entries for @", name);
    std::optional<int64_t> elements = weight.type.numElements();
    if (!weight.type.staticDims() || !elements)
      return bad("weight @", name, " has the non-static type ", weight.type.str());
    uint64_t expected = static_cast<uint64_t>(*elements) * dtypeSize(weight.type.dtype);
    if (location.bytes != expected)
      return bad("weight @", name, " has ", location.bytes, " bytes; its type ", weight.type.str(), " needs ",
                 expected);
    location.weight = *id;
    if (file == kEmbeddedWeight) {
      KILN_RETURN_IF_ERROR(attachEmbedded(weight, location, data));
      artifact_.embeddedWeightBytes += location.bytes;
    } else {
      if (file >= artifact_.weightFiles.size())
        return bad("weight @", name, " is in weight file ", file, " of the ", artifact_.weightFiles.size(),
                   " listed");
      location.file = static_cast<int32_t>(file);
      KILN_RETURN_IF_ERROR(attachReferenced(weight, location, fingerprint));
      artifact_.referencedWeightBytes += location.bytes;
    }
    attached[static_cast<size_t>(*id)] = true;
    artifact_.weightBytes += location.bytes;
    artifact_.weightLocations.push_back(location);
  }
  if (in.left() != 0) return bad(in.left(), " bytes after the last of its ", count, " entries");
  for (ValueId w : graph.weights()) {
    if (!attached[static_cast<size_t>(w)]) return bad("no entry for weight @", graph.value(w).name);
  }
  return Status::ok();
}

Status Loader::attachEmbedded(Value& weight, const WeightLocation& location, const SectionInfo& data) {
  const uint64_t offset = location.offset, bytes = location.bytes;
  if (offset % kWeightAlignment != 0)
    return fail("bad weight table: weight @", weight.name, " at offset ", offset, " is not ", kWeightAlignment,
                "-byte aligned");
  if (offset < data.offset || offset > data.offset + data.size || bytes > data.offset + data.size - offset)
    return fail("bad weight table: weight @", weight.name, " spans [", offset, ", ", offset + bytes,
                ") outside the weight data section");
  void* at = const_cast<uint8_t*>(map_.base) + offset;
  weight.data = Tensor::view(weight.type.dtype, *weight.type.staticDims(), at, map_.keepAlive);
  return Status::ok();
}

// A referenced weight is a view into its file's mapping when its offset is a
// multiple of its element size (kernels take typed pointers, which must be
// so aligned) or only gathers read it; otherwise it is read into aligned
// memory of its own.
Status Loader::attachReferenced(Value& weight, WeightLocation& location, uint64_t fingerprint) {
  const WeightFileInfo& info = artifact_.weightFiles[static_cast<size_t>(location.file)];
  if (weight.type.dtype == DType::Bool)
    return fail("bad weight table: bool weight @", weight.name, " is referenced in '", info.path,
                "' (bools are embedded)");
  if (location.offset > info.size || location.bytes > info.size - location.offset)
    return fail("bad weight table: weight @", weight.name, " spans [", location.offset, ", ",
                location.offset + location.bytes, ") past the end of '", info.path, "' (", info.size, " bytes)");
  Expected<const Mapping*> mapping = openWeightFile(static_cast<size_t>(location.file));
  if (!mapping) return mapping.status();
  const uint8_t* bytes = (*mapping)->base + location.offset;
  if (referencedWeightFingerprint(bytes, location.bytes) != fingerprint)
    return fail("weight file '", info.path, "' has changed since the artifact was compiled: the bytes of @",
                weight.name, " at offset ", location.offset, " differ; recompile");
  const std::vector<int64_t> dims = *weight.type.staticDims();
  const bool aligned = location.offset % dtypeSize(weight.type.dtype) == 0;
  if (aligned || onlyCpuGathersRead(artifact_.graph, location.weight)) {
    weight.data = Tensor::view(weight.type.dtype, dims, const_cast<uint8_t*>(bytes), (*mapping)->keepAlive);
    if (!aligned) location.unaligned = WeightLocation::Unaligned::Viewed;
    return Status::ok();
  }
  // Read, not copied from the mapping, so the mapping's pages for these
  // bytes are never touched and never count in the process's memory.
  const bool releasable = releasableByCpu(artifact_.graph, location.weight);
  const int fd = weightFileFds_[static_cast<size_t>(location.file)];
  const WeightCopySource source{fd, location.offset, location.bytes, info.size, info.mtimeNs,
                                cat("weight @", weight.name, " at offset ", location.offset, " of '", info.path, "'"),
                                releasable};
  void* data = nullptr;
  Expected<std::shared_ptr<void>> copy = readWeightCopy(source, &data);
  if (!copy) {
    failure_ = LoadFailure::Io;
    return fail(copy.status().message());
  }
  weight.data = Tensor::view(weight.type.dtype, dims, data, std::move(*copy));
  location.unaligned = releasable ? WeightLocation::Unaligned::Released : WeightLocation::Unaligned::Copied;
  return Status::ok();
}

Status Loader::readPlan(const SectionInfo& section) {
  const Graph& graph = artifact_.graph;
  auto bad = [&](const auto&... parts) { return fail("corrupt: memory plan: ", parts...); };
  ByteReader in(map_.base + section.offset, map_.base + section.offset + section.size);
  const auto cut = [&] { return bad("the section ends in the middle of an entry"); };

  MemoryPlan plan;
  uint32_t symbols = 0;
  if (!in.read(symbols)) return cut();
  for (uint32_t i = 0; i < symbols; ++i) {
    std::string symbol;
    int64_t value = 0;
    if (!in.readBytes<uint32_t>(symbol) || !in.read(value)) return cut();
    if (!plan.bounds.emplace(symbol, value).second) return bad("two bounds for symbol '", symbol, "'");
  }
  uint64_t peak = 0, naive = 0, lowerBound = 0;
  int32_t buffers = 0;
  uint32_t count = 0;
  if (!in.read(peak) || !in.read(naive) || !in.read(lowerBound) || !in.read(buffers) || !in.read(count))
    return cut();
  plan.peakBytes = peak;
  plan.naiveBytes = naive;
  plan.lowerBoundBytes = lowerBound;
  plan.buffers = buffers;
  if (count != graph.values().size())
    return bad(count, " register(s) for a program of ", graph.values().size(), " value(s)");

  plan.registers.resize(count);
  std::vector<bool> seen(count, false);
  std::vector<std::string> viewOfName(count);
  const auto steps = static_cast<int64_t>(graph.ops().size());
  for (uint32_t i = 0; i < count; ++i) {
    std::string name;
    uint8_t code = 0;
    RegisterPlan r;
    uint64_t offset = 0, bytes = 0;
    if (!in.readBytes<uint32_t>(name) || !in.read(code) || !in.readBytes<uint8_t>(r.device) ||
        !in.readBytes<uint8_t>(r.memory) || !in.read(r.buffer) || !in.read(offset) || !in.read(bytes) ||
        !in.read(r.liveStart) || !in.read(r.liveEnd))
      return cut();
    std::string viewOf;
    if (!in.readBytes<uint32_t>(viewOf)) return cut();
    std::optional<ValueId> id = graph.find(name);
    if (!id) return bad("a register for '", name, "', which is not a value of the program");
    const auto v = static_cast<size_t>(*id);
    const Value& value = graph.value(*id);
    const std::string ref = cat(value.kind == ValueKind::Weight ? "@" : "%", name);
    if (seen[v]) return bad("two registers for ", ref);
    seen[v] = true;
    std::optional<RegisterPlan::Kind> kind = kindOfCode(code);
    if (!kind) return bad(ref, " has kind ", int{code}, " (0 to 3 allowed)");
    // An op result is in the arena, a view, or a weight's upload to a device.
    const bool upload = value.kind == ValueKind::OpResult &&
                        isWeightUpload(graph, graph.ops()[static_cast<size_t>(value.producer)]);
    const bool kindFits = value.kind == ValueKind::Input    ? *kind == RegisterPlan::Input
                          : value.kind == ValueKind::Weight ? *kind == RegisterPlan::Weight
                          : upload                          ? *kind == RegisterPlan::Weight
                                                            : *kind == RegisterPlan::Arena || *kind == RegisterPlan::View;
    if (!kindFits) {
      const char* what = value.kind == ValueKind::Input    ? "an input"
                         : value.kind == ValueKind::Weight ? "a weight"
                                                           : "an op result";
      return bad(ref, " is ", what, " but has kind ", kRegisterKindNames[code]);
    }
    r.kind = *kind;
    r.value = *id;
    r.offset = offset;
    r.bytes = bytes;
    // Every size is the program's type at the bounds: a plan for other
    // types or bounds would place registers on top of each other.
    std::optional<uint64_t> expected = plannedBytes(value.type, plan.bounds);
    if (!expected && r.kind == RegisterPlan::Arena)
      return bad(ref, " : ", value.type.str(), " has no size at the plan's bounds");
    if (bytes != expected.value_or(0))
      return bad(ref, " has ", bytes, " bytes; its type ", value.type.str(), " needs ", expected.value_or(0),
                 " at the plan's bounds");
    if (r.kind == RegisterPlan::Arena && (offset % kPlanAlignment != 0 || offset > peak || bytes > peak - offset))
      return bad(ref, " spans [", offset, ", ", offset + bytes, "), not ", kPlanAlignment,
                 "-byte aligned inside the ", peak, "-byte arena");
    if (r.liveStart < 0 || r.liveStart > r.liveEnd || r.liveEnd > steps)
      return bad(ref, " lives [", r.liveStart, ", ", r.liveEnd, "], outside the program's ", steps, " op(s)");
    if ((r.kind == RegisterPlan::View) == viewOf.empty())
      return bad(ref, r.kind == RegisterPlan::View ? " is a view of nothing" : " is a view but not of kind view");
    viewOfName[v] = viewOf;
    plan.registers[v] = std::move(r);
  }
  if (in.left() != 0) return bad(in.left(), " bytes after the last register");
  // A view shares its source's bytes, so it sits where the source does.
  for (RegisterPlan& r : plan.registers) {
    if (r.kind != RegisterPlan::View) continue;
    const std::string& name = viewOfName[static_cast<size_t>(r.value)];
    std::optional<ValueId> source = graph.find(name);
    if (!source || plan.registers[static_cast<size_t>(*source)].kind == RegisterPlan::View)
      return bad("%", graph.value(r.value).name, " views '", name, "', which is not a register holding bytes");
    const RegisterPlan& s = plan.registers[static_cast<size_t>(*source)];
    if (s.kind == RegisterPlan::Arena && (r.offset != s.offset || r.buffer != s.buffer))
      return bad("%", graph.value(r.value).name, " views %", name, " but is not placed at its offset");
    r.viewOf = *source;
  }
  artifact_.plan = std::move(plan);
  return Status::ok();
}

// The record is checked against the program as the executor will use it.
Status Loader::readKvLayers(const SectionInfo& section) {
  auto bad = [&](const auto&... parts) { return fail("corrupt: KV layers: ", parts...); };
  ByteReader in(map_.base + section.offset, map_.base + section.offset + section.size);
  uint32_t count = 0;
  if (!in.read(count)) return bad("shorter than its entry count");
  if (in.left() != uint64_t{count} * kKvLayerEntrySize)
    return bad(in.left(), " bytes for ", count, " entries of ", kKvLayerEntrySize);
  std::vector<KvLayerSite> sites(count);
  for (KvLayerSite& site : sites) {
    size_t fields[5] = {};
    for (size_t& field : fields) {
      uint32_t stored = 0;
      (void)in.read(stored);
      field = stored == kKvNoPartField ? kNoKvPart : stored;
    }
    site = {fields[0], fields[1], fields[2], fields[3], fields[4]};
  }
  if (Expected<std::vector<KvLayer>> layers = describeKvLayers(artifact_.graph, sites); !layers)
    return bad(layers.status().message());
  artifact_.kvLayers = std::move(sites);
  return Status::ok();
}

// Entries are checked as bytes only; what a blob holds is its device's
// business (createExecutor hands it over).
Status Loader::readDeviceCode(const SectionInfo& section) {
  auto bad = [&](const auto&... parts) { return fail("corrupt: device code: ", parts...); };
  ByteReader in(map_.base + section.offset, map_.base + section.offset + section.size);
  uint32_t count = 0;
  if (!in.read(count)) return bad("shorter than its entry count");
  const uint8_t* sectionEnd = map_.base + section.offset + section.size;
  for (uint32_t i = 0; i < count; ++i) {
    DeviceCode entry;
    uint64_t size = 0;
    if (!in.readBytes<uint8_t>(entry.device) || !in.read(size) || size > in.left())
      return bad("entry ", i, " of ", count, " runs past the section");
    if (entry.device.empty()) return bad("entry ", i, " names no device");
    for (const DeviceCode& other : artifact_.deviceCode)
      if (other.device == entry.device) return bad("two entries for device '", entry.device, "'");
    entry.code = {sectionEnd - in.left(), static_cast<size_t>(size)};
    if (size > 0 && size < kDeviceCodeSummarySize)
      return bad("the code of device '", entry.device, "' has ", size, " bytes, less than its summary");
    if (size > 0) {
      entry.programs = readAt<uint32_t>(entry.code.data(), 0);
      entry.binaryBytes = readAt<uint64_t>(entry.code.data(), 4);
    }
    (void)in.skip(static_cast<size_t>(size));
    artifact_.deviceCode.push_back(std::move(entry));
  }
  if (in.left() != 0) return bad(in.left(), " bytes after the last of its ", count, " entries");
  artifact_.mapping = map_.keepAlive;
  return Status::ok();
}

Expected<Artifact> Loader::load() {
  KILN_RETURN_IF_ERROR(mapFile());
  KILN_RETURN_IF_ERROR(checkHeader());
  KILN_RETURN_IF_ERROR(readSections());
  Status verified = verifyGraph(artifact_.graph);
  if (!verified) return fail("the program does not verify: ", verified.message());
  if (planSection_) KILN_RETURN_IF_ERROR(readPlan(*planSection_));
  if (kvLayersSection_) KILN_RETURN_IF_ERROR(readKvLayers(*kvLayersSection_));
  if (deviceCodeSection_) KILN_RETURN_IF_ERROR(readDeviceCode(*deviceCodeSection_));
  return std::move(artifact_);
}

// The artifact's program on the host alone, when a device it places ops on
// cannot be used here; said once per process.
Expected<std::unique_ptr<Executor>> createOnHost(const Artifact& artifact,
                                                 const std::vector<std::pair<std::string, std::string>>& unusable) {
  static std::once_flag said;
  std::call_once(said, [&] {
    std::fprintf(stderr, "kiln: device '%s' is unavailable here (%s); running the model on the host CPU\n",
                 unusable.front().first.c_str(), unusable.front().second.c_str());
  });
  KvLayerRecord layers = artifact.kvLayers;
  Expected<Graph> graph = onHostOnly(artifact.graph, layers);
  if (!graph) return graph.status();
  return Executor::createOwning(std::make_shared<const Graph>(std::move(*graph)), std::move(layers));
}

}  // namespace
Expected<Artifact> loadArtifact(const std::string& path, LoadFailure* failure) {
  Loader loader(path);
  Expected<Artifact> loaded = loader.load();
  if (failure) *failure = loader.failure();
  return loaded;
}

Expected<std::unique_ptr<Executor>> createExecutor(const Artifact& artifact) {
  if (auto unusable = unusableDevices(artifact.graph); !unusable.empty()) return createOnHost(artifact, unusable);
  for (const DeviceCode& entry : artifact.deviceCode) {
    Device* device = findDevice(entry.device);
    if (!device)
      return Status::error("the artifact carries code for device '", entry.device,
                           "', which this runtime does not have");
    Status loaded = device->loadAhead(entry.code);
    if (!loaded) return Status::error("loading the code of device '", entry.device, "': ", loaded.message());
  }
  if (artifact.plan) return Executor::create(artifact.graph, *artifact.plan, artifact.kvLayers);
  return Executor::create(artifact.graph, artifact.kvLayers);
}

}  // namespace kiln::rt
