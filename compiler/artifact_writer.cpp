#include "compiler/artifact_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>

#include "compiler/kv_layers.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "runtime/byte_stream.h"
#include "runtime/device.h"

namespace kiln {
namespace {

using rt::kArtifactHeaderSize;
using rt::kArtifactSectionEntrySize;
using rt::kEmbeddedWeight;
using rt::kWeightAlignment;
using rt::MemoryPlan;
using rt::RegisterPlan;
using rt::SectionInfo;
using rt::SectionKind;
using rt::WeightFileInfo;

template <class T>
void writeAt(std::vector<uint8_t>& buffer, size_t offset, T value) {
  std::memcpy(buffer.data() + offset, &value, sizeof(T));
}

using rt::append;

// Strings are a length (u8 or u32) and bytes.
template <class Length>
void appendString(std::vector<uint8_t>& buffer, const std::string& text) {
  rt::appendBytes<Length>(buffer, text.data(), text.size());
}

uint8_t kindCode(RegisterPlan::Kind kind) {
  const auto* at = std::find(std::begin(rt::kRegisterKindOfCode), std::end(rt::kRegisterKindOfCode), kind);
  return static_cast<uint8_t>(at - std::begin(rt::kRegisterKindOfCode));
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

std::vector<uint8_t> encodeKvLayers(const std::vector<rt::KvLayerSite>& layers) {
  std::vector<uint8_t> out;
  append<uint32_t>(out, static_cast<uint32_t>(layers.size()));
  for (const rt::KvLayerSite& layer : layers) {
    for (size_t field : {layer.op, layer.pastKeyInput, layer.pastValueInput, layer.presentKeyOutput,
                         layer.presentValueOutput})
      append<uint32_t>(out, field == rt::kNoKvPart ? rt::kKvNoPartField : static_cast<uint32_t>(field));
  }
  return out;
}

// Each device other than the host that the graph places ops on, with the
// code it compiles for them (Device::compileAhead) when it has any.
Expected<std::vector<std::pair<std::string, std::vector<uint8_t>>>> compileDeviceCode(
    const Graph& graph, const SymbolBindings& bounds,
    const std::map<std::string, std::vector<std::string>, std::less<>>& architectures) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> code;
  std::vector<std::string_view> seen;
  for (const Op& op : graph.ops()) {
    const std::string_view name = op.placement();
    if (name == kHostDevice || std::find(seen.begin(), seen.end(), name) != seen.end()) continue;
    seen.push_back(name);
    rt::Device* device = rt::findDevice(name);
    if (!device) return Status::error("no device '", name, "' in this build to compile the code of its ops for");
    const auto named = architectures.find(name);
    Expected<std::vector<uint8_t>> blob =
        device->compileAhead(graph, bounds, named != architectures.end() ? named->second : std::vector<std::string>{});
    if (!blob) return Status::error("compiling the code of device '", name, "': ", blob.status().message());
    if (!blob->empty()) code.emplace_back(std::string(name), std::move(*blob));
  }
  return code;
}

std::vector<uint8_t> encodeDeviceCode(const std::vector<std::pair<std::string, std::vector<uint8_t>>>& code) {
  std::vector<uint8_t> out;
  append<uint32_t>(out, static_cast<uint32_t>(code.size()));
  for (const auto& [device, blob] : code) {
    appendString<uint8_t>(out, device);
    append<uint64_t>(out, blob.size());
    out.insert(out.end(), blob.begin(), blob.end());
  }
  return out;
}

// Where the writer puts one weight.
struct WeightPlacement {
  const Tensor* data = nullptr;
  uint32_t file = kEmbeddedWeight;  // or the weight-file section's index
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
  rt::ChecksumStream checksum_;
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
    placement.fingerprint = rt::referencedWeightFingerprint(data.data(), data.byteSize());
    ++written.referencedWeights;
    written.referencedBytes += data.byteSize();
    if (placement.offset % dtypeSize(data.dtype()) != 0) {
      ++written.unalignedWeights;
      written.unalignedBytes += data.byteSize();
    }
  }

  Expected<std::vector<std::pair<std::string, std::vector<uint8_t>>>> deviceCode =
      compileDeviceCode(graph, plan ? plan->bounds : SymbolBindings{}, options.architectures);
  if (!deviceCode) return Status::error("cannot write artifact '", path, "': ", deviceCode.status().message());

  PrintOptions printOptions;
  printOptions.maxInlineWeightElements = 0;  // weights live in their own section
  std::string program = printGraph(graph, printOptions);

  // Everything before the weight data is built in memory: program, memory
  // plan (when there is one), weight files (when any weight is referenced),
  // weight table. The embedded weights then go straight from their tensors
  // to the file.
  const uint32_t sectionCount = 5 + (plan ? 1 : 0) + (files.empty() ? 0 : 1);
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

  beginSection(SectionKind::KvLayers);
  std::vector<uint8_t> kvLayers = encodeKvLayers(findKvLayers(graph));
  file.insert(file.end(), kvLayers.begin(), kvLayers.end());
  endSection();

  beginSection(SectionKind::DeviceCode);
  std::vector<uint8_t> encodedCode = encodeDeviceCode(*deviceCode);
  file.insert(file.end(), encodedCode.begin(), encodedCode.end());
  endSection();

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
  const uint64_t dataOffset = rt::alignUp(file.size() + tableSize, kWeightAlignment);
  uint64_t cursor = dataOffset;
  for (WeightPlacement& placement : placements) {
    if (placement.file != kEmbeddedWeight) continue;
    cursor = rt::alignUp(cursor, kWeightAlignment);
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
    if (placement.file != kEmbeddedWeight) continue;
    KILN_RETURN_IF_ERROR(out.appendZeros(placement.offset - at));
    KILN_RETURN_IF_ERROR(out.append(placement.data->data(), placement.data->byteSize()));
    at = placement.offset + placement.data->byteSize();
  }

  std::memcpy(file.data(), rt::kArtifactMagic, sizeof(rt::kArtifactMagic));
  writeAt<uint32_t>(file, rt::kHeaderVersionAt, rt::kArtifactFormatVersion);
  writeAt<uint32_t>(file, rt::kHeaderFlagsAt, 0);
  writeAt<uint64_t>(file, rt::kHeaderTotalSizeAt, cursor);
  writeAt<uint64_t>(file, rt::kHeaderChecksumAt, out.checksum());
  writeAt<uint64_t>(file, rt::kHeaderSectionTableAt, kArtifactHeaderSize);
  writeAt<uint32_t>(file, rt::kHeaderSectionCountAt, sectionCount);
  KILN_RETURN_IF_ERROR(out.finish(file.data()));
  if (stats) *stats = std::move(written);
  return Status::ok();
}

Status writeArtifact(const CompileResult& compiled, const std::string& path,
                     const std::vector<WeightSource>& sources, ArtifactWriteStats* stats) {
  const ArtifactWriteOptions options{compiled.weights, sources, compiled.architectures};
  return writeArtifact(compiled.graph, compiled.plan ? &*compiled.plan : nullptr, path, options, stats);
}

}  // namespace kiln
