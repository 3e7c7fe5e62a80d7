#include "runtime/artifact.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string_view>

#include "ir/text.h"
#include "ir/verifier.h"

namespace kiln::rt {

// Every integer in the file is little-endian; this runtime reads them in place.
static_assert(std::endian::native == std::endian::little, "kiln artifacts need a little-endian host");

namespace {

// Header field offsets (docs/artifact.md).
constexpr size_t kVersionAt = 8;
constexpr size_t kFlagsAt = 12;
constexpr size_t kTotalSizeAt = 16;
constexpr size_t kChecksumAt = 24;
constexpr size_t kSectionTableAt = 32;
constexpr size_t kSectionCountAt = 40;
constexpr uint32_t kMaxSections = 64;

template <class T>
T readAt(const uint8_t* base, size_t offset) {
  T value;
  std::memcpy(&value, base + offset, sizeof(T));
  return value;
}

template <class T>
void writeAt(std::vector<uint8_t>& buffer, size_t offset, T value) {
  std::memcpy(buffer.data() + offset, &value, sizeof(T));
}

template <class T>
void append(std::vector<uint8_t>& buffer, T value) {
  size_t at = buffer.size();
  buffer.resize(at + sizeof(T));
  writeAt(buffer, at, value);
}

uint64_t alignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// ---- The memory plan section: strings are a length (u8 or u32) and bytes.
template <class Length>
void appendString(std::vector<uint8_t>& buffer, const std::string& text) {
  append<Length>(buffer, static_cast<Length>(text.size()));
  buffer.insert(buffer.end(), text.begin(), text.end());
}

// Register kinds as the file numbers them.
uint8_t kindCode(RegisterPlan::Kind kind) {
  switch (kind) {
    case RegisterPlan::Arena: return 0;
    case RegisterPlan::Input: return 1;
    case RegisterPlan::Weight: return 2;
    case RegisterPlan::View: return 3;
  }
  return 0xff;
}

constexpr const char* kKindNames[] = {"arena", "input", "weight", "view"};

std::optional<RegisterPlan::Kind> kindOfCode(uint8_t code) {
  constexpr RegisterPlan::Kind kKinds[] = {RegisterPlan::Arena, RegisterPlan::Input, RegisterPlan::Weight,
                                           RegisterPlan::View};
  if (code >= std::size(kKinds)) return std::nullopt;
  return kKinds[code];
}

std::vector<uint8_t> encodePlan(const Graph& graph, const MemoryPlan& plan) {
  std::vector<uint8_t> out;
  append<uint32_t>(out, static_cast<uint32_t>(plan.bounds.size()));
  for (const auto& [symbol, value] : plan.bounds) {
    appendString<uint32_t>(out, symbol);
    append<int64_t>(out, value);
  }
  append<uint64_t>(out, plan.peakBytes);
  append<uint64_t>(out, plan.naiveBytes);
  append<uint64_t>(out, plan.lowerBoundBytes);
  append<int32_t>(out, plan.buffers);
  append<uint32_t>(out, static_cast<uint32_t>(plan.registers.size()));
  for (const RegisterPlan& r : plan.registers) {
    appendString<uint32_t>(out, graph.value(r.value).name);
    append<uint8_t>(out, kindCode(r.kind));
    appendString<uint8_t>(out, r.device);
    appendString<uint8_t>(out, r.memory);
    append<int32_t>(out, r.buffer);
    append<uint64_t>(out, r.offset);
    append<uint64_t>(out, r.bytes);
    append<int64_t>(out, r.liveStart);
    append<int64_t>(out, r.liveEnd);
    appendString<uint32_t>(out, r.viewOf == kNoValue ? std::string() : graph.value(r.viewOf).name);
  }
  return out;
}

// Bounds-checked reads over a section's bytes.
class Cursor {
 public:
  Cursor(const uint8_t* begin, const uint8_t* end) : p_(begin), end_(end) {}
  template <class T>
  bool read(T& value) {
    if (static_cast<size_t>(end_ - p_) < sizeof(T)) return false;
    value = readAt<T>(p_, 0);
    p_ += sizeof(T);
    return true;
  }
  template <class Length>
  bool readString(std::string& text) {
    Length length = 0;
    if (!read(length) || static_cast<uint64_t>(end_ - p_) < uint64_t{length}) return false;
    text.assign(reinterpret_cast<const char*>(p_), length);
    p_ += length;
    return true;
  }
  size_t left() const { return static_cast<size_t>(end_ - p_); }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

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
  }
  return "unknown";
}

// ---- Checksum: four 64-bit lanes over 32-byte blocks, then whole words,
// ---- then the tail bytes, then an avalanche. Defined in docs/artifact.md.
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ull;

uint64_t mixWord(uint64_t acc, uint64_t word) { return std::rotl(acc + word * kP2, 31) * kP1; }

// The checksum over bytes given piece by piece: the same value as over their
// concatenation, so the writer hashes the weights as it writes them.
class ChecksumStream {
 public:
  void update(const void* data, size_t size) {
    if (size == 0) return;
    const auto* p = static_cast<const uint8_t*>(data);
    total_ += size;
    if (pendingSize_ > 0) {
      const size_t take = std::min(size, kBlock - pendingSize_);
      std::memcpy(pending_ + pendingSize_, p, take);
      pendingSize_ += take;
      p += take;
      size -= take;
      if (pendingSize_ < kBlock) return;
      mixBlock(pending_);
      pendingSize_ = 0;
    }
    for (; size >= kBlock; p += kBlock, size -= kBlock) mixBlock(p);
    std::memcpy(pending_, p, size);
    pendingSize_ = size;
  }

  uint64_t finish() const {
    uint64_t h = std::rotl(lanes_[0], 1) + std::rotl(lanes_[1], 7) + std::rotl(lanes_[2], 12) +
                 std::rotl(lanes_[3], 18);
    for (uint64_t lane : lanes_) h = (h ^ mixWord(0, lane)) * kP1 + kP4;
    h += total_;
    const uint8_t* p = pending_;
    const uint8_t* end = pending_ + pendingSize_;
    for (; end - p >= 8; p += 8) h = std::rotl(h ^ mixWord(0, readAt<uint64_t>(p, 0)), 27) * kP1 + kP4;
    if (p < end) {
      uint64_t tail = 0;
      std::memcpy(&tail, p, static_cast<size_t>(end - p));
      h = std::rotl(h ^ (tail * kP1), 23) * kP2 + kP3;
    }
    h ^= h >> 33;
    h *= kP2;
    h ^= h >> 29;
    h *= kP3;
    h ^= h >> 32;
    return h;
  }

 private:
  static constexpr size_t kBlock = 32;
  void mixBlock(const uint8_t* p) {
    for (size_t i = 0; i < 4; ++i) lanes_[i] = mixWord(lanes_[i], readAt<uint64_t>(p, 8 * i));
  }

  uint64_t lanes_[4] = {kP1 + kP2, kP2, 0, 0 - kP1};
  uint8_t pending_[kBlock] = {};
  size_t pendingSize_ = 0;
  uint64_t total_ = 0;
};

// The weight table's file index of an embedded weight.
constexpr uint32_t kEmbedded = 0xffffffffu;
constexpr uint64_t kFingerprintSample = 64;

// ---- Loading.

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

  const std::string& path_;
  std::optional<SectionInfo> planSection_;
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
  uint32_t version = readAt<uint32_t>(h, kVersionAt);
  if (version == 0) return fail("bad format version 0");
  if (version > kArtifactFormatVersion)
    return fail("format version ", version, " is newer than this runtime's ", kArtifactFormatVersion);
  // Version 1 held no memory plan; the compiler makes one, the runtime does not.
  if (version < kOldestReadableFormatVersion)
    return fail("format version ", version, " is older than this runtime's ", kArtifactFormatVersion,
                " (it reads versions ", kOldestReadableFormatVersion, " to ", kArtifactFormatVersion,
                "), recompile");
  uint32_t flags = readAt<uint32_t>(h, kFlagsAt);
  if (flags != 0) return fail("unsupported header flags 0x", std::hex, flags);
  uint64_t declared = readAt<uint64_t>(h, kTotalSizeAt);
  if (declared > map_.size)
    return fail("truncated: the header declares ", declared, " bytes but the file has ", map_.size);
  if (declared < map_.size)
    return fail("corrupt: the file has ", map_.size, " bytes but the header declares ", declared);
  uint64_t stored = readAt<uint64_t>(h, kChecksumAt);
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
  uint64_t tableAt = readAt<uint64_t>(h, kSectionTableAt);
  uint32_t count = readAt<uint32_t>(h, kSectionCountAt);
  if (count == 0 || count > kMaxSections)
    return fail("bad section table: ", count, " sections (1 to ", kMaxSections, " allowed)");
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
  for (SectionKind kind : {SectionKind::Program, SectionKind::WeightTable, SectionKind::WeightData}) {
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
  Cursor in(map_.base + section.offset, map_.base + section.offset + section.size);
  auto bad = [&](const auto&... parts) { return fail("bad weight files section: ", parts...); };
  uint32_t count = 0;
  if (!in.read(count)) return bad("shorter than its entry count");
  for (uint32_t i = 0; i < count; ++i) {
    WeightFileInfo info;
    if (!in.readString<uint32_t>(info.path) || !in.read(info.size) || !in.read(info.mtimeNs))
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
  Cursor in(map_.base + table.offset, map_.base + table.offset + table.size);
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
    uint32_t file = kEmbedded;
    uint64_t fingerprint = 0;
    const bool read = artifact_.formatVersion == 2
                          ? in.readString<uint32_t>(name) && in.read(location.offset) && in.read(location.bytes)
                          : in.readString<uint32_t>(name) && in.read(file) && in.read(location.offset) &&
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
    if (file == kEmbedded) {
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
// so aligned); otherwise it is read into aligned memory of its own.
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
  if (location.offset % dtypeSize(weight.type.dtype) == 0) {
    weight.data = Tensor::view(weight.type.dtype, dims, const_cast<uint8_t*>(bytes), (*mapping)->keepAlive);
    return Status::ok();
  }
  // Read, not copied from the mapping, so the mapping's pages for these
  // bytes are never touched and never count in the process's memory.
  Tensor copy = Tensor::allocateUninitialized(weight.type.dtype, dims);
  auto* to = static_cast<uint8_t*>(copy.data());
  const int fd = weightFileFds_[static_cast<size_t>(location.file)];
  for (uint64_t done = 0; done < location.bytes;) {
    const ssize_t n = ::pread(fd, to + done, location.bytes - done, static_cast<off_t>(location.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure_ = LoadFailure::Io;
      return fail("cannot read weight @", weight.name, " from '", info.path, "': ",
                  n < 0 ? std::strerror(errno) : "unexpected end of file");
    }
    done += static_cast<uint64_t>(n);
  }
  weight.data = std::move(copy);
  location.copiedAtLoad = true;
  return Status::ok();
}

Status Loader::readPlan(const SectionInfo& section) {
  const Graph& graph = artifact_.graph;
  auto bad = [&](const auto&... parts) { return fail("corrupt: memory plan: ", parts...); };
  Cursor in(map_.base + section.offset, map_.base + section.offset + section.size);
  const auto cut = [&] { return bad("the section ends in the middle of an entry"); };

  MemoryPlan plan;
  uint32_t symbols = 0;
  if (!in.read(symbols)) return cut();
  for (uint32_t i = 0; i < symbols; ++i) {
    std::string symbol;
    int64_t value = 0;
    if (!in.readString<uint32_t>(symbol) || !in.read(value)) return cut();
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
    if (!in.readString<uint32_t>(name) || !in.read(code) || !in.readString<uint8_t>(r.device) ||
        !in.readString<uint8_t>(r.memory) || !in.read(r.buffer) || !in.read(offset) || !in.read(bytes) ||
        !in.read(r.liveStart) || !in.read(r.liveEnd))
      return cut();
    std::string viewOf;
    if (!in.readString<uint32_t>(viewOf)) return cut();
    std::optional<ValueId> id = graph.find(name);
    if (!id) return bad("a register for '", name, "', which is not a value of the program");
    const auto v = static_cast<size_t>(*id);
    const Value& value = graph.value(*id);
    const std::string ref = cat(value.kind == ValueKind::Weight ? "@" : "%", name);
    if (seen[v]) return bad("two registers for ", ref);
    seen[v] = true;
    std::optional<RegisterPlan::Kind> kind = kindOfCode(code);
    if (!kind) return bad(ref, " has kind ", int{code}, " (0 to 3 allowed)");
    const bool kindFits = value.kind == ValueKind::Input    ? *kind == RegisterPlan::Input
                          : value.kind == ValueKind::Weight ? *kind == RegisterPlan::Weight
                                                            : *kind == RegisterPlan::Arena || *kind == RegisterPlan::View;
    if (!kindFits) {
      const char* what = value.kind == ValueKind::Input    ? "an input"
                         : value.kind == ValueKind::Weight ? "a weight"
                                                           : "an op result";
      return bad(ref, " is ", what, " but has kind ", kKindNames[code]);
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

Expected<Artifact> Loader::load() {
  KILN_RETURN_IF_ERROR(mapFile());
  KILN_RETURN_IF_ERROR(checkHeader());
  KILN_RETURN_IF_ERROR(readSections());
  Status verified = verifyGraph(artifact_.graph);
  if (!verified) return fail("the program does not verify: ", verified.message());
  if (planSection_) KILN_RETURN_IF_ERROR(readPlan(*planSection_));
  return std::move(artifact_);
}

}  // namespace

uint64_t artifactChecksum(const void* data, size_t size) {
  ChecksumStream checksum;
  checksum.update(data, size);
  return checksum.finish();
}

uint64_t referencedWeightFingerprint(const void* data, uint64_t size) {
  if (size <= 3 * kFingerprintSample) return artifactChecksum(data, size);
  const auto* bytes = static_cast<const uint8_t*>(data);
  ChecksumStream checksum;
  for (uint64_t at : {uint64_t{0}, (size - kFingerprintSample) / 2, size - kFingerprintSample})
    checksum.update(bytes + at, kFingerprintSample);
  return checksum.finish();
}

Status writeArtifact(const Graph& graph, const std::string& path) {
  Expected<MemoryPlan> plan = planMemory(graph, planningBounds(graph, {}));
  return writeArtifact(graph, plan ? &*plan : nullptr, path);
}

namespace {

// Where the writer puts one weight.
struct WeightPlacement {
  const Tensor* data = nullptr;
  uint32_t file = kEmbedded;  // or the weight-file section's index
  uint64_t offset = 0;        // in the artifact, or in the file
  uint64_t fingerprint = 0;
};

// The weight file whose bytes `data` are, if any: a weight is referenced only
// when it lies wholly inside one source's memory, so a weight that a pass
// made or changed (allocated elsewhere) is embedded.
std::optional<size_t> sourceHolding(const std::vector<WeightSource>& sources, const Tensor& data) {
  const auto* begin = static_cast<const uint8_t*>(data.data());
  for (size_t i = 0; i < sources.size(); ++i) {
    const auto* base = static_cast<const uint8_t*>(sources[i].data);
    if (!base || !begin) continue;
    // Compared as integers: the weight may lie in another allocation.
    const auto at = reinterpret_cast<uintptr_t>(begin), from = reinterpret_cast<uintptr_t>(base);
    if (at >= from && at - from <= sources[i].file.size && data.byteSize() <= sources[i].file.size - (at - from))
      return i;
  }
  return std::nullopt;
}

// The file after its header, written in order and hashed on the way; the
// header, holding the checksum, is written last. The file is a temporary
// beside the target, renamed over it at the end, so a reader never sees
// half a file; it is removed if anything fails.
class ArtifactFile {
 public:
  explicit ArtifactFile(const std::string& path) : path_(path), temp_(cat(path, ".tmp.", ::getpid())) {}
  ~ArtifactFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!renamed_) ::unlink(temp_.c_str());
  }

  // `size`: the whole file's, reserved up front (measured: a third less
  // time writing a 250 MB artifact on ext4); a file system that cannot
  // reserve just grows the file as it is written.
  Status open(uint64_t size) {
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return failure(errno);
    if (size > 0) (void)::fallocate(fd_, 0, 0, static_cast<off_t>(size));
    return Status::ok();
  }

  // Bytes after the header: hashed, then written, a slice at a time so the
  // slice is still in cache for the write.
  Status append(const void* data, size_t size) {
    constexpr size_t kSlice = size_t{1} << 20;
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t done = 0; done < size;) {
      const size_t n = std::min(kSlice, size - done);
      checksum_.update(p + done, n);
      KILN_RETURN_IF_ERROR(writeAll(p + done, n));
      done += n;
    }
    return Status::ok();
  }
  Status appendZeros(size_t size) {
    static constexpr uint8_t kZeros[kWeightAlignment] = {};
    for (size_t done = 0; done < size;) {
      const size_t n = std::min(sizeof kZeros, size - done);
      KILN_RETURN_IF_ERROR(append(kZeros, n));
      done += n;
    }
    return Status::ok();
  }
  uint64_t checksum() const { return checksum_.finish(); }

  Status finish(const uint8_t* header) {
    if (::pwrite(fd_, header, kArtifactHeaderSize, 0) != static_cast<ssize_t>(kArtifactHeaderSize))
      return failure(errno);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return failure(errno);
    if (::rename(temp_.c_str(), path_.c_str()) != 0) return failure(errno);
    renamed_ = true;
    return Status::ok();
  }

  // The header's place, written by finish().
  Status skipHeader() {
    static constexpr uint8_t kBlank[kArtifactHeaderSize] = {};
    return writeAll(kBlank, sizeof kBlank);
  }

 private:
  Status writeAll(const uint8_t* p, size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd_, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        return failure(errno);
      }
      p += n;
      size -= static_cast<size_t>(n);
    }
    return Status::ok();
  }
  Status failure(int error) const {
    return Status::error("cannot write artifact '", path_, "': ", std::strerror(error));
  }

  std::string path_, temp_;
  int fd_ = -1;
  bool renamed_ = false;
  ChecksumStream checksum_;
};

}  // namespace

Status writeArtifact(const Graph& graph, const MemoryPlan* plan, const std::string& path,
                     const ArtifactWriteOptions& options, ArtifactWriteStats* stats) {
  Status verified = verifyGraph(graph);
  if (!verified) return Status::error("cannot write artifact '", path, "': ", verified.message());
  for (ValueId w : graph.weights()) {
    if (!graph.value(w).data)
      return Status::error("cannot write artifact '", path, "': weight @", graph.value(w).name,
                           " has no data");
  }
  if (plan && plan->registers.size() != graph.values().size())
    return Status::error("cannot write artifact '", path, "': the memory plan has ", plan->registers.size(),
                         " register(s) for a graph of ", graph.values().size(), " value(s)");

  // Which weights stay in their files. Bools are embedded: the loader would
  // have to normalise their bytes.
  ArtifactWriteStats written;
  const std::vector<ValueId> weights = graph.weights();
  std::vector<WeightPlacement> placements(weights.size());
  std::vector<size_t> fileOfSource(options.sources.size(), SIZE_MAX);
  std::vector<const WeightFileInfo*> files;
  for (size_t i = 0; i < weights.size(); ++i) {
    const Tensor& data = *graph.value(weights[i]).data;
    placements[i].data = &data;
    if (options.weights != WeightStorage::Reference || data.byteSize() == 0 || data.dtype() == DType::Bool)
      continue;
    std::optional<size_t> source = sourceHolding(options.sources, data);
    if (!source) continue;
    if (fileOfSource[*source] == SIZE_MAX) {
      fileOfSource[*source] = files.size();
      files.push_back(&options.sources[*source].file);
      written.referencedFiles.push_back(options.sources[*source].file.path);
    }
    WeightPlacement& placement = placements[i];
    placement.file = static_cast<uint32_t>(fileOfSource[*source]);
    placement.offset = static_cast<uint64_t>(static_cast<const uint8_t*>(data.data()) -
                                              static_cast<const uint8_t*>(options.sources[*source].data));
    placement.fingerprint = referencedWeightFingerprint(data.data(), data.byteSize());
    ++written.referencedWeights;
    written.referencedBytes += data.byteSize();
    if (placement.offset % dtypeSize(data.dtype()) != 0) {
      ++written.unalignedWeights;
      written.unalignedBytes += data.byteSize();
    }
  }

  PrintOptions printOptions;
  printOptions.maxInlineWeightElements = 0;  // weights live in their own section
  std::string program = printGraph(graph, printOptions);

  // Everything before the weight data is built in memory: program, memory
  // plan (when there is one), weight files (when any weight is referenced),
  // weight table. The embedded weights then go straight from their tensors
  // to the file.
  const uint32_t sectionCount = 3 + (plan ? 1 : 0) + (files.empty() ? 0 : 1);
  std::vector<uint8_t> file(kArtifactHeaderSize + sectionCount * kArtifactSectionEntrySize, 0);
  std::vector<SectionInfo> sections;
  auto beginSection = [&](SectionKind kind) {
    sections.push_back({static_cast<uint32_t>(kind), file.size(), 0});
  };
  auto endSection = [&] { sections.back().size = file.size() - sections.back().offset; };

  beginSection(SectionKind::Program);
  file.insert(file.end(), program.begin(), program.end());
  endSection();

  if (plan) {
    beginSection(SectionKind::Plan);
    std::vector<uint8_t> encoded = encodePlan(graph, *plan);
    file.insert(file.end(), encoded.begin(), encoded.end());
    endSection();
  }

  if (!files.empty()) {
    beginSection(SectionKind::WeightFiles);
    append<uint32_t>(file, static_cast<uint32_t>(files.size()));
    for (const WeightFileInfo* info : files) {
      appendString<uint32_t>(file, info->path);
      append<uint64_t>(file, info->size);
      append<int64_t>(file, info->mtimeNs);
    }
    endSection();
  }

  // The table's offsets are absolute, so lay the embedded weights out first.
  uint64_t tableSize = 4;
  for (ValueId w : weights) tableSize += 4 + graph.value(w).name.size() + 4 + 3 * 8;
  const uint64_t dataOffset = alignUp(file.size() + tableSize, kWeightAlignment);
  uint64_t cursor = dataOffset;
  for (WeightPlacement& placement : placements) {
    if (placement.file != kEmbedded) continue;
    cursor = alignUp(cursor, kWeightAlignment);
    placement.offset = cursor;
    cursor += placement.data->byteSize();
    ++written.embeddedWeights;
    written.embeddedBytes += placement.data->byteSize();
  }

  beginSection(SectionKind::WeightTable);
  append<uint32_t>(file, static_cast<uint32_t>(weights.size()));
  for (size_t i = 0; i < weights.size(); ++i) {
    appendString<uint32_t>(file, graph.value(weights[i]).name);
    append<uint32_t>(file, placements[i].file);
    append<uint64_t>(file, placements[i].offset);
    append<uint64_t>(file, placements[i].data->byteSize());
    append<uint64_t>(file, placements[i].fingerprint);
  }
  endSection();
  sections.push_back({static_cast<uint32_t>(SectionKind::WeightData), dataOffset, cursor - dataOffset});
  file.resize(dataOffset, 0);

  for (uint32_t i = 0; i < sectionCount; ++i) {
    size_t at = kArtifactHeaderSize + i * kArtifactSectionEntrySize;
    writeAt<uint32_t>(file, at, sections[i].kind);
    writeAt<uint64_t>(file, at + 8, sections[i].offset);
    writeAt<uint64_t>(file, at + 16, sections[i].size);
  }

  ArtifactFile out(path);
  KILN_RETURN_IF_ERROR(out.open(cursor));
  KILN_RETURN_IF_ERROR(out.skipHeader());
  KILN_RETURN_IF_ERROR(out.append(file.data() + kArtifactHeaderSize, file.size() - kArtifactHeaderSize));
  uint64_t at = dataOffset;
  for (const WeightPlacement& placement : placements) {
    if (placement.file != kEmbedded) continue;
    KILN_RETURN_IF_ERROR(out.appendZeros(placement.offset - at));
    KILN_RETURN_IF_ERROR(out.append(placement.data->data(), placement.data->byteSize()));
    at = placement.offset + placement.data->byteSize();
  }

  std::memcpy(file.data(), kArtifactMagic, sizeof(kArtifactMagic));
  writeAt<uint32_t>(file, kVersionAt, kArtifactFormatVersion);
  writeAt<uint32_t>(file, kFlagsAt, 0);
  writeAt<uint64_t>(file, kTotalSizeAt, cursor);
  writeAt<uint64_t>(file, kChecksumAt, out.checksum());
  writeAt<uint64_t>(file, kSectionTableAt, kArtifactHeaderSize);
  writeAt<uint32_t>(file, kSectionCountAt, sectionCount);
  KILN_RETURN_IF_ERROR(out.finish(file.data()));
  if (stats) *stats = std::move(written);
  return Status::ok();
}

Expected<Artifact> loadArtifact(const std::string& path, LoadFailure* failure) {
  Loader loader(path);
  Expected<Artifact> loaded = loader.load();
  if (failure) *failure = loader.failure();
  return loaded;
}

}  // namespace kiln::rt

namespace kiln::rt {

Expected<std::unique_ptr<Executor>> createExecutor(const Artifact& artifact) {
  if (artifact.plan) return Executor::create(artifact.graph, *artifact.plan);
  return Executor::create(artifact.graph);
}

}  // namespace kiln::rt
