#include "ir/dim.h"

#include <gtest/gtest.h>

#include "ir/attributes.h"
#include "ir/type.h"

namespace kiln {
namespace {

Dim parsed(std::string_view text) {
  std::string error;
  auto d = Dim::parse(text, &error);
  EXPECT_TRUE(d.has_value()) << text << ": " << error;
  return d.value_or(Dim::unknown());
}

TEST(DimTest, ConstantsAndSymbols) {
  EXPECT_EQ(Dim(128).constant(), 128);
  EXPECT_FALSE(Dim::symbol("seq").isConstant());
  EXPECT_TRUE(Dim::unknown().isUnknown());
  EXPECT_EQ(Dim(0).str(), "0");
  EXPECT_EQ(Dim::symbol("seq").str(), "seq");
}

TEST(DimTest, ArithmeticIsCanonical) {
  Dim seq = Dim::symbol("seq"), past = Dim::symbol("past");
  EXPECT_EQ((seq + past).str(), "past + seq");
  EXPECT_EQ(seq + past, past + seq);
  EXPECT_EQ((seq + past + Dim(1)).str(), "past + seq + 1");
  EXPECT_EQ((Dim(2) * seq).str(), "2*seq");
  EXPECT_EQ((Dim::symbol("batch") * seq).str(), "batch*seq");
  EXPECT_EQ((seq - Dim(1)).str(), "seq - 1");
  EXPECT_EQ((Dim(0) - seq).str(), "-seq");
  EXPECT_EQ((seq - seq).constant(), 0);
  EXPECT_EQ((seq * seq).str(), "seq*seq");
}

TEST(DimTest, ExactDivision) {
  Dim seq = Dim::symbol("seq"), batch = Dim::symbol("batch");
  EXPECT_EQ((Dim(4) * seq / Dim(2)).str(), "2*seq");
  EXPECT_TRUE((Dim(3) * seq / Dim(2)).isUnknown());
  EXPECT_EQ((batch * seq * Dim(128) / seq).str(), "128*batch");
  EXPECT_EQ((seq / seq).constant(), 1);
  EXPECT_TRUE((seq / batch).isUnknown());
  EXPECT_TRUE((seq / Dim(0)).isUnknown());
}

TEST(DimTest, UnknownPropagatesAndNeverEquals) {
  Dim u = Dim::unknown();
  EXPECT_TRUE((u + Dim(1)).isUnknown());
  EXPECT_NE(u, u);
  EXPECT_EQ(u.str(), "?");
}

TEST(DimTest, Substitute) {
  Dim d = parsed("batch*seq + past + 3");
  SymbolBindings bindings{{"batch", 2}, {"seq", 5}, {"past", 7}};
  EXPECT_EQ(d.substitute(bindings).constant(), 20);
  EXPECT_EQ(d.substitute({{"batch", 2}}).str(), "past + 2*seq + 3");
}

TEST(DimTest, ParseRoundTrips) {
  for (const char* text : {"128", "seq", "past + seq + 1", "2*seq", "batch*seq", "seq - 1", "-seq", "?",
                           "3*batch*seq - 2"})
    EXPECT_EQ(parsed(text).str(), text);
  EXPECT_EQ(parsed("seq*2 + 1 + past").str(), "past + 2*seq + 1");
}

TEST(DimTest, ParseErrors) {
  std::string error;
  EXPECT_FALSE(Dim::parse("seq +", &error));
  EXPECT_NE(error.find("expected a number or a symbol"), std::string::npos) << error;
  EXPECT_FALSE(Dim::parse("seq $", &error));
  EXPECT_FALSE(Dim::parse("? 1", &error));
}

TEST(DimTest, Broadcast) {
  Dim seq = Dim::symbol("seq");
  auto out = broadcastShapes({Dim(1), seq, Dim(4)}, {seq, Dim(1), Dim(4)});
  ASSERT_TRUE(out);
  EXPECT_EQ(shapeStr(*out), "[seq, seq, 4]");
  EXPECT_FALSE(broadcastShapes({Dim(3)}, {Dim(4)}));
  auto scalar = broadcastShapes({}, {Dim(2), Dim(3)});
  ASSERT_TRUE(scalar);
  EXPECT_EQ(shapeStr(*scalar), "[2, 3]");
}

TEST(DimTest, Refines) {
  TensorType inferred{DType::F32, {Dim::unknown(), Dim(4)}};
  EXPECT_TRUE(refines({DType::F32, {Dim::symbol("seq"), Dim(4)}}, inferred));
  EXPECT_FALSE(refines({DType::F32, {Dim::symbol("seq"), Dim(5)}}, inferred));
  EXPECT_FALSE(refines({DType::F16, {Dim::symbol("seq"), Dim(4)}}, inferred));
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

TEST(DimListAttributeTest, PrintsSymbolicAndReadsIntListsAsDims) {
  Attributes attrs;
  attrs.set("shape", std::vector<Dim>{Dim::symbol("batch"), Dim::symbol("seq") + Dim(1), Dim(64)});
  EXPECT_EQ(attrValueStr(attrs.all().at("shape")), "[batch, seq + 1, 64]");
  EXPECT_EQ(attrKind(attrs.all().at("shape")), AttrKind::Dims);
  attrs.set("ints", std::vector<int64_t>{2, 3});
  auto dims = attrs.getDims("ints");
  ASSERT_TRUE(dims);
  EXPECT_EQ(shapeStr(*dims), "[2, 3]");
  EXPECT_FALSE(attrs.getDims("absent"));
}

}  // namespace
}  // namespace kiln
