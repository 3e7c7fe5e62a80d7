#include "backends/cuda/cuda_ahead.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

#include "backends/cuda/cuda_device.h"
#include "backends/cuda/nvrtc_api.h"
#include "backends/cuda/op_kernels.h"
#include "runtime/byte_stream.h"

namespace kiln::cuda {
namespace {

// 90 for "sm_90", "sm_90a" and "compute_90"; -1 for anything else.
int capability(const std::string& architecture) {
  const size_t digits = architecture.find('_');
  if (digits == std::string::npos || digits + 1 >= architecture.size() ||
      !std::isdigit(static_cast<unsigned char>(architecture[digits + 1])))
    return -1;
  return std::stoi(architecture.substr(digits + 1));
}

bool isPtx(const CudaImage& image) { return image.architecture.rfind("compute_", 0) == 0; }

}  // namespace

std::vector<uint8_t> encodeCudaCode(const CudaCode& code) {
  using rt::append, rt::appendBytes;
  std::vector<uint8_t> out;
  uint64_t binaryBytes = 0;
  for (const CudaProgram& program : code.programs)
    for (const CudaImage& image : program.images) binaryBytes += image.code.size();
  append<uint32_t>(out, static_cast<uint32_t>(code.programs.size()));
  append<uint64_t>(out, binaryBytes);
  append<uint32_t>(out, kCudaCodeVersion);
  appendBytes<uint32_t>(out, code.compiler.data(), code.compiler.size());
  for (const CudaProgram& program : code.programs) {
    appendBytes<uint32_t>(out, program.name.data(), program.name.size());
    append<uint32_t>(out, static_cast<uint32_t>(program.images.size()));
    for (const CudaImage& image : program.images) {
      appendBytes<uint32_t>(out, image.architecture.data(), image.architecture.size());
      appendBytes<uint64_t>(out, image.code.data(), image.code.size());
    }
  }
  return out;
}

Expected<CudaCode> decodeCudaCode(std::span<const uint8_t> blob) {
  auto bad = [](const auto&... parts) { return Status::error("cuda: bad device code: ", parts...); };
  rt::ByteReader in(blob);
  uint32_t count = 0, version = 0;
  uint64_t binaryBytes = 0;
  if (!in.read(count) || !in.read(binaryBytes) || !in.read(version))
    return bad(blob.size(), " bytes, shorter than its 16-byte header");
  if (version != kCudaCodeVersion)
    return bad("version ", version, " (this runtime reads version ", kCudaCodeVersion, ")");
  CudaCode code;
  if (!in.readBytes<uint32_t>(code.compiler)) return bad("the compiler's name runs past the end");
  uint64_t binaries = 0;
  for (uint32_t i = 0; i < count; ++i) {
    // A program takes at least its two lengths: a huge count fails here, not in an allocation.
    CudaProgram program;
    uint32_t images = 0;
    if (in.left() < 8 || !in.readBytes<uint32_t>(program.name) || !in.read(images))
      return bad("program ", i, " of ", count, " runs past the end");
    for (uint32_t k = 0; k < images; ++k) {
      CudaImage& image = program.images.emplace_back();
      if (in.left() < 12 || !in.readBytes<uint32_t>(image.architecture) || !in.readBytes<uint64_t>(image.code))
        return bad("image ", k, " of program '", program.name, "' runs past the end");
      binaries += image.code.size();
    }
    code.programs.push_back(std::move(program));
  }
  if (in.left() != 0) return bad(in.left(), " bytes after the last of its ", count, " programs");
  if (binaries != binaryBytes) return bad("its header counts ", binaryBytes, " binary bytes, its programs ", binaries);
  return code;
}

std::vector<ProgramText> usedPrograms(const Graph& graph) {
  std::vector<ProgramText> used;
  std::string maps;  // every map kernel, each once
  std::set<std::string, std::less<>> seen, mapKernels;
  for (const Op& op : graph.ops()) {
    const CudaPrograms programs = cudaKernels().get(op.kind()).programs;
    if (op.placement() != CudaDevice::kName || !programs) continue;
    for (ProgramText& program : programs(graph, op)) {
      if (program.name == kMapsProgram) {
        if (mapKernels.insert(program.source).second) maps += program.source;
      } else if (seen.insert(program.name).second) {
        used.push_back(std::move(program));
      }
    }
  }
  if (!maps.empty()) used.push_back(libraryProgram(std::string(kMapsProgram), maps));
  return used;
}

Expected<CudaCode> compileCudaCode(const std::vector<ProgramText>& programs,
                                   const std::vector<std::string>& architectures) {
  Expected<const NvrtcApi*> nvrtc = loadNvrtc();
  if (!nvrtc) return nvrtc.status();
  CudaCode code;
  code.compiler = "NVRTC " + (*nvrtc)->version;
  std::string newest;
  for (const std::string& architecture : architectures)
    if (capability(architecture) > capability(newest)) newest = architecture;
  std::vector<std::string> targets = architectures;
  if (!newest.empty()) targets.push_back("compute_" + std::to_string(capability(newest)));
  for (const ProgramText& text : programs) {
    CudaProgram& program = code.programs.emplace_back();
    program.name = text.name;
    for (const std::string& target : targets) {
      Expected<std::vector<uint8_t>> compiled = compileCuda(**nvrtc, text.source, text.name + ".cu", target);
      if (!compiled) return compiled.status();
      program.images.push_back({target, std::move(*compiled)});
    }
  }
  return code;
}

const CudaImage* pickImage(const CudaProgram& program, const std::string& architecture) {
  const CudaImage* ptx = nullptr;
  for (const CudaImage& image : program.images) {
    if (!isPtx(image) && image.architecture == architecture) return &image;
    if (isPtx(image) && capability(image.architecture) <= capability(architecture) &&
        (!ptx || capability(image.architecture) > capability(ptx->architecture)))
      ptx = &image;
  }
  return ptx;
}

}  // namespace kiln::cuda
