#include "frontend/onnx/onnx_wire.h"

namespace kiln {

namespace {

// Protobuf wire types.
enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

constexpr uint64_t kModelGraphField = 7;
constexpr uint64_t kGraphInitializerField = 5;
constexpr uint64_t kTensorNameField = 8;
constexpr uint64_t kTensorRawDataField = 9;
constexpr int kMaxVarintBytes = 10;
constexpr int kMaxGroupDepth = 64;  // protobuf's own recursion limit is 100

// One field of a message: [start, tagEnd) is its tag; for a length-delimited
// field [payload, end) is its payload, for the others [tagEnd, end) its value.
// A length-delimited field whose declared length runs past its message is
// `cut`: its end is the message's, so a caller can look inside for what the
// cut lands in (which initializer) before refusing it.
struct Field {
  uint64_t start = 0, tagEnd = 0, payload = 0, end = 0;
  uint64_t number = 0;
  uint32_t type = 0;
  uint64_t length = 0;  // declared, for a length-delimited field
  bool cut = false;
};

void appendVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

// "number 3" for the third (index 2): how errors name an initializer.
std::string numbered(size_t index) { return cat("number ", index + 1); }

class WireScanner {
 public:
  explicit WireScanner(std::string_view bytes) : bytes_(bytes) {}

  Expected<ScannedModel> scan() {
    ScannedModel model;
    model.withoutPayloads.reserve(4096);
    Status rewritten = rewriteModel(model);
    if (!rewritten) return rewritten;
    return model;
  }

 private:
  // The varint at `at`, before `limit`; `at` moves past it.
  Expected<uint64_t> varint(uint64_t& at, uint64_t limit, std::string_view what) const {
    const uint64_t start = at;
    uint64_t value = 0;
    for (int i = 0; i < kMaxVarintBytes; ++i) {
      if (at >= limit) {
        return Status::error("byte ", start, ": the ", what, " (a varint) runs past the end of its message at byte ",
                             limit, " (truncated file?)");
      }
      const auto byte = static_cast<uint8_t>(bytes_[at++]);
      value |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
      if (byte < 0x80) return value;
    }
    return Status::error("byte ", start, ": the ", what, " is a varint longer than ", kMaxVarintBytes, " bytes");
  }

  // The field starting at `at`, which must end by `limit`.
  Expected<Field> field(uint64_t at, uint64_t limit, int depth = 0) const {
    Field f;
    f.start = at;
    Expected<uint64_t> tag = varint(at, limit, "field tag");
    if (!tag) return tag.status();
    f.tagEnd = at;
    f.number = *tag >> 3;
    f.type = static_cast<uint32_t>(*tag & 7);
    if (f.number == 0) return Status::error("byte ", f.start, ": a field numbered 0, which protobuf does not allow");
    switch (f.type) {
      case kVarint: {
        Expected<uint64_t> value = varint(at, limit, cat("value of field ", f.number));
        if (!value) return value.status();
        break;
      }
      case kFixed64:
      case kFixed32: {
        const uint64_t width = f.type == kFixed64 ? 8 : 4;
        if (limit - at < width) {
          return Status::error("byte ", f.start, ": field ", f.number, "'s ", width,
                               "-byte value runs past the end of its message at byte ", limit, " (truncated file?)");
        }
        at += width;
        break;
      }
      case kLengthDelimited: {
        Expected<uint64_t> length = varint(at, limit, cat("length of field ", f.number));
        if (!length) return length.status();
        f.payload = at;
        f.length = *length;
        f.cut = *length > limit - at;
        at = f.cut ? limit : at + *length;
        break;
      }
      case kStartGroup: {
        // Deprecated, but valid protobuf: fields up to the matching end tag.
        if (depth >= kMaxGroupDepth) return Status::error("byte ", f.start, ": groups nested too deeply");
        while (true) {
          Expected<Field> inner = field(at, limit, depth + 1);
          if (!inner) return inner.status();
          if (inner->cut) return cutError(*inner, limit);
          at = inner->end;
          if (inner->type == kEndGroup) {
            if (inner->number != f.number) {
              return Status::error("byte ", inner->start, ": the group of field ", f.number,
                                   " ends with the end tag of field ", inner->number);
            }
            break;
          }
        }
        break;
      }
      case kEndGroup:
        if (depth == 0) {
          return Status::error("byte ", f.start, ": an end-group tag (field ", f.number, ") outside any group");
        }
        break;
      default:
        return Status::error("byte ", f.start, ": field ", f.number, " has wire type ", f.type,
                             ", which protobuf does not define");
    }
    f.end = at;
    return f;
  }

  static Status cutError(const Field& f, uint64_t limit, std::string_view what = "") {
    return Status::error("byte ", f.start, ": field ", f.number, what, " has ", f.length, " bytes from byte ",
                         f.payload, ", past the end of its message at byte ", limit, " (truncated file?)");
  }

  void copy(std::string& out, uint64_t begin, uint64_t end) const { out.append(bytes_.substr(begin, end - begin)); }

  // A length-delimited field whose payload was rewritten to `payload`.
  void appendRewritten(std::string& out, const Field& f, const std::string& payload) const {
    copy(out, f.start, f.tagEnd);
    appendVarint(out, payload.size());
    out += payload;
  }

  Status rewriteModel(ScannedModel& model) const {
    std::string& out = model.withoutPayloads;
    for (uint64_t at = 0; at < bytes_.size();) {
      Expected<Field> f = field(at, bytes_.size());
      if (!f) return f.status();
      if (f->number == kModelGraphField && f->type == kLengthDelimited) {
        std::string graph;
        KILN_RETURN_IF_ERROR(rewriteGraph(*f, graph, model.initializers));
        if (f->cut) return cutError(*f, bytes_.size(), " (the graph)");
        appendRewritten(out, *f, graph);
      } else {
        if (f->cut) return cutError(*f, bytes_.size());
        copy(out, f->start, f->end);
      }
      at = f->end;
    }
    return Status::ok();
  }

  Status rewriteGraph(const Field& graphField, std::string& out,
                      std::vector<ScannedInitializer>& initializers) const {
    for (uint64_t at = graphField.payload; at < graphField.end;) {
      Expected<Field> f = field(at, graphField.end);
      if (!f) return f.status().withContext("the graph: ");
      if (f->number == kGraphInitializerField && f->type == kLengthDelimited) {
        initializers.emplace_back();
        std::string tensor;
        Status rewritten = rewriteTensor(*f, tensor, initializers.back());
        if (rewritten && f->cut) rewritten = cutError(*f, graphField.end, " (the initializer)");
        if (!rewritten) {
          const ScannedInitializer& init = initializers.back();
          const size_t index = initializers.size() - 1;
          return rewritten.withContext(init.name.empty() ? cat("the graph's initializer ", numbered(index), ": ")
                                                         : cat("initializer '", init.name, "' (", numbered(index),
                                                               " of the graph): "));
        }
        appendRewritten(out, *f, tensor);
      } else {
        if (f->cut) return cutError(*f, graphField.end).withContext("the graph: ");
        copy(out, f->start, f->end);
      }
      at = f->end;
    }
    return Status::ok();
  }

  Status rewriteTensor(const Field& tensorField, std::string& out, ScannedInitializer& init) const {
    for (uint64_t at = tensorField.payload; at < tensorField.end;) {
      Expected<Field> f = field(at, tensorField.end);
      if (!f) return f.status();
      if (f->cut) {
        return cutError(*f, tensorField.end, f->number == kTensorRawDataField ? " (raw_data)" : "");
      }
      if (f->number == kTensorRawDataField && f->type == kLengthDelimited) {
        init.rawData = ByteSpan{f->payload, f->end - f->payload};
        copy(out, f->start, f->tagEnd);
        appendVarint(out, 0);
      } else {
        if (f->number == kTensorNameField && f->type == kLengthDelimited) {
          init.name.assign(bytes_.substr(f->payload, f->end - f->payload));
        }
        copy(out, f->start, f->end);
      }
      at = f->end;
    }
    return Status::ok();
  }

  std::string_view bytes_;
};

}  // namespace

Expected<ScannedModel> scanOnnxModel(std::string_view bytes) { return WireScanner(bytes).scan(); }

}  // namespace kiln
