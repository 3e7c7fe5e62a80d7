#include "runtime/artifact.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
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

std::string_view sectionName(uint32_t kind) {
  switch (static_cast<SectionKind>(kind)) {
    case SectionKind::Program:
      return "program";
    case SectionKind::WeightTable:
      return "weight table";
    case SectionKind::WeightData:
      return "weight data";
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

// ---- Loading.

struct Mapping {
  const uint8_t* base = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> keepAlive;  // unmaps when the last user goes
};

class Loader {
 public:
  explicit Loader(const std::string& path) : path_(path) {}
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
  Status attachWeights(const SectionInfo& table, const SectionInfo& data);

  const std::string& path_;
  Mapping map_;
  Artifact artifact_;
  LoadFailure failure_ = LoadFailure::None;
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

  const SectionInfo& program = known[static_cast<uint32_t>(SectionKind::Program)];
  std::string_view text(reinterpret_cast<const char*>(h + program.offset), program.size);
  Expected<Graph> graph = parseGraph(text);
  if (!graph) return fail("bad program: ", graph.status().message());
  artifact_.graph = std::move(graph.value());
  return attachWeights(known[static_cast<uint32_t>(SectionKind::WeightTable)], data);
}

Status Loader::attachWeights(const SectionInfo& table, const SectionInfo& data) {
  const uint8_t* p = map_.base + table.offset;
  const uint8_t* end = p + table.size;
  auto bad = [&](const auto&... parts) { return fail("bad weight table: ", parts...); };
  if (end - p < 4) return bad("shorter than its entry count");
  uint32_t count = readAt<uint32_t>(p, 0);
  p += 4;

  Graph& graph = artifact_.graph;
  std::vector<bool> attached(graph.values().size(), false);
  for (uint32_t i = 0; i < count; ++i) {
    if (end - p < 4) return bad("entry ", i, " of ", count, " runs past the table");
    uint32_t nameLength = readAt<uint32_t>(p, 0);
    if (static_cast<uint64_t>(end - p) < 4 + uint64_t{nameLength} + 16)
      return bad("entry ", i, " of ", count, " runs past the table");
    std::string name(reinterpret_cast<const char*>(p + 4), nameLength);
    uint64_t offset = readAt<uint64_t>(p, 4 + nameLength);
    uint64_t bytes = readAt<uint64_t>(p, 4 + nameLength + 8);
    p += 4 + nameLength + 16;

    std::optional<ValueId> id = graph.find(name);
    if (!id || graph.value(*id).kind != ValueKind::Weight)
      return bad("entry for @", name, ", which is not a weight of the program");
    Value& weight = graph.value(*id);
    if (attached[static_cast<size_t>(*id)]) return bad("two entries for @", name);
    std::optional<std::vector<int64_t>> dims = weight.type.staticDims();
    std::optional<int64_t> elements = weight.type.numElements();
    if (!dims || !elements) return bad("weight @", name, " has the non-static type ", weight.type.str());
    uint64_t expected = static_cast<uint64_t>(*elements) * dtypeSize(weight.type.dtype);
    if (bytes != expected)
      return bad("weight @", name, " has ", bytes, " bytes; its type ", weight.type.str(), " needs ",
                 expected);
    if (offset % kWeightAlignment != 0)
      return bad("weight @", name, " at offset ", offset, " is not ", kWeightAlignment, "-byte aligned");
    if (offset < data.offset || offset > data.offset + data.size || bytes > data.offset + data.size - offset)
      return bad("weight @", name, " spans [", offset, ", ", offset + bytes,
                 ") outside the weight data section");
    void* at = const_cast<uint8_t*>(map_.base) + offset;
    weight.data = Tensor::view(weight.type.dtype, *dims, at, map_.keepAlive);
    attached[static_cast<size_t>(*id)] = true;
    artifact_.weightBytes += bytes;
  }
  if (p != end) return bad(end - p, " bytes after the last of its ", count, " entries");
  for (ValueId w : graph.weights()) {
    if (!attached[static_cast<size_t>(w)]) return bad("no entry for weight @", graph.value(w).name);
  }
  return Status::ok();
}

Expected<Artifact> Loader::load() {
  KILN_RETURN_IF_ERROR(mapFile());
  KILN_RETURN_IF_ERROR(checkHeader());
  KILN_RETURN_IF_ERROR(readSections());
  Status verified = verifyGraph(artifact_.graph);
  if (!verified) return fail("the program does not verify: ", verified.message());
  return std::move(artifact_);
}

}  // namespace

uint64_t artifactChecksum(const void* data, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint8_t* end = p + size;
  uint64_t lanes[4] = {kP1 + kP2, kP2, 0, 0 - kP1};
  while (end - p >= 32) {
    for (int i = 0; i < 4; ++i) lanes[i] = mixWord(lanes[i], readAt<uint64_t>(p, 8 * static_cast<size_t>(i)));
    p += 32;
  }
  uint64_t h =
      std::rotl(lanes[0], 1) + std::rotl(lanes[1], 7) + std::rotl(lanes[2], 12) + std::rotl(lanes[3], 18);
  for (uint64_t lane : lanes) h = (h ^ mixWord(0, lane)) * kP1 + kP4;
  h += static_cast<uint64_t>(size);
  while (end - p >= 8) {
    h = std::rotl(h ^ mixWord(0, readAt<uint64_t>(p, 0)), 27) * kP1 + kP4;
    p += 8;
  }
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

Status writeArtifact(const Graph& graph, const std::string& path) {
  Status verified = verifyGraph(graph);
  if (!verified) return Status::error("cannot write artifact '", path, "': ", verified.message());
  for (ValueId w : graph.weights()) {
    if (!graph.value(w).data)
      return Status::error("cannot write artifact '", path, "': weight @", graph.value(w).name,
                           " has no data");
  }

  PrintOptions printOptions;
  printOptions.maxInlineWeightElements = 0;  // weights live in their own section
  std::string program = printGraph(graph, printOptions);

  constexpr uint32_t kSectionCount = 3;
  std::vector<uint8_t> file(kArtifactHeaderSize + kSectionCount * kArtifactSectionEntrySize, 0);
  SectionInfo sections[kSectionCount] = {{static_cast<uint32_t>(SectionKind::Program), 0, 0},
                                         {static_cast<uint32_t>(SectionKind::WeightTable), 0, 0},
                                         {static_cast<uint32_t>(SectionKind::WeightData), 0, 0}};

  sections[0].offset = file.size();
  file.insert(file.end(), program.begin(), program.end());
  sections[0].size = program.size();

  // The table's offsets are absolute, so lay the weights out first.
  std::vector<ValueId> weights = graph.weights();
  uint64_t tableSize = 4;
  for (ValueId w : weights) tableSize += 4 + graph.value(w).name.size() + 16;
  sections[1].offset = file.size();
  sections[1].size = tableSize;
  sections[2].offset = alignUp(sections[1].offset + tableSize, kWeightAlignment);
  std::vector<uint64_t> weightOffsets;
  uint64_t cursor = sections[2].offset;
  for (ValueId w : weights) {
    cursor = alignUp(cursor, kWeightAlignment);
    weightOffsets.push_back(cursor);
    cursor += graph.value(w).data->byteSize();
  }
  sections[2].size = cursor - sections[2].offset;

  append<uint32_t>(file, static_cast<uint32_t>(weights.size()));
  for (size_t i = 0; i < weights.size(); ++i) {
    const Value& v = graph.value(weights[i]);
    append<uint32_t>(file, static_cast<uint32_t>(v.name.size()));
    file.insert(file.end(), v.name.begin(), v.name.end());
    append<uint64_t>(file, weightOffsets[i]);
    append<uint64_t>(file, v.data->byteSize());
  }
  file.resize(cursor, 0);
  for (size_t i = 0; i < weights.size(); ++i) {
    const Tensor& t = *graph.value(weights[i]).data;
    if (t.byteSize() != 0) std::memcpy(file.data() + weightOffsets[i], t.data(), t.byteSize());
  }

  for (uint32_t i = 0; i < kSectionCount; ++i) {
    size_t at = kArtifactHeaderSize + i * kArtifactSectionEntrySize;
    writeAt<uint32_t>(file, at, sections[i].kind);
    writeAt<uint64_t>(file, at + 8, sections[i].offset);
    writeAt<uint64_t>(file, at + 16, sections[i].size);
  }
  std::memcpy(file.data(), kArtifactMagic, sizeof(kArtifactMagic));
  writeAt<uint32_t>(file, kVersionAt, kArtifactFormatVersion);
  writeAt<uint32_t>(file, kFlagsAt, 0);
  writeAt<uint64_t>(file, kTotalSizeAt, file.size());
  writeAt<uint64_t>(file, kSectionTableAt, kArtifactHeaderSize);
  writeAt<uint32_t>(file, kSectionCountAt, kSectionCount);
  writeAt<uint64_t>(file, kChecksumAt,
                    artifactChecksum(file.data() + kArtifactHeaderSize, file.size() - kArtifactHeaderSize));

  // Write beside the target and rename, so a reader never sees half a file.
  std::string temp = cat(path, ".tmp.", ::getpid());
  auto failWrite = [&](int error) {
    ::unlink(temp.c_str());
    return Status::error("cannot write artifact '", path, "': ", std::strerror(error));
  };
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error("cannot write artifact '", path, "': ", std::strerror(errno));
  size_t written = 0;
  while (written < file.size()) {
    ssize_t n = ::write(fd, file.data() + written, file.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      ::close(fd);
      return failWrite(error);
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return failWrite(errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) return failWrite(errno);
  return Status::ok();
}

Expected<Artifact> loadArtifact(const std::string& path, LoadFailure* failure) {
  Loader loader(path);
  Expected<Artifact> loaded = loader.load();
  if (failure) *failure = loader.failure();
  return loaded;
}

}  // namespace kiln::rt
