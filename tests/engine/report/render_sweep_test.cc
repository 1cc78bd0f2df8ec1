#include <string>
#include <vector>

#include "engine/report/profile_runs.h"
#include "engine/report/report_render.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

std::vector<KnobSweepRow> Rows() {
  KnobSweepRow fp32;
  fp32.knob = "fp32";
  fp32.alone_profile = "fp32,threads=1";
  fp32.alone_rel_l2 = 4.379103917708814e-07;
  fp32.chain_rel_l2 = 4.379103917708814e-07;
  KnobSweepRow tf32;
  tf32.knob = "matmul=tf32";
  tf32.alone_profile = "fp64,matmul=tf32,threads=1";
  tf32.chain_rel_l2 = 0.0001988109552212216;
  tf32.note = "not valid alone on A";
  return {fp32, tf32};
}

// The table `driftscope run --sweep` prints: rows in the sweep's rank order,
// "-" where a value is missing, the note last.
TEST(RenderSweepTest, TableRanksKnobsAndMarksMissingValues) {
  EXPECT_EQ(RenderSweepTable("ref64", "tf32", Rows()),
            "\nsweep ref64 -> tf32: knobs ranked by the drift each causes "
            "alone (relative L2 vs ref64)\n"
            "rank  knob         alone     cumulative  note\n"
            "1     fp32         4.38e-07  4.38e-07\n"
            "2     matmul=tf32  -         0.000199    not valid alone on A\n");
}

// The "sweep" object of the JSON report (docs/cli.md): a missing value is
// null, numbers read back to the same double.
TEST(RenderSweepTest, JsonHasNullForAMissingValueAndExactNumbers) {
  EXPECT_EQ(RenderSweepJson("ref64", "tf32", Rows()),
            "{\"from\":\"ref64\",\"to\":\"tf32\",\"knobs\":["
            "{\"knob\":\"fp32\",\"alone_profile\":\"fp32,threads=1\","
            "\"alone_rel_l2\":4.379103917708814e-07,"
            "\"cumulative_rel_l2\":4.379103917708814e-07,\"note\":\"\"},"
            "{\"knob\":\"matmul=tf32\",\"alone_profile\":"
            "\"fp64,matmul=tf32,threads=1\",\"alone_rel_l2\":null,"
            "\"cumulative_rel_l2\":0.0001988109552212216,"
            "\"note\":\"not valid alone on A\"}]}");
}

TEST(RenderSweepTest, NoKnobsGiveAnEmptyRankingAndList) {
  EXPECT_EQ(RenderSweepJson("fp32", "fp32", {}),
            "{\"from\":\"fp32\",\"to\":\"fp32\",\"knobs\":[]}");
  EXPECT_EQ(RenderSweepTable("fp32", "fp32", {}),
            "\nsweep fp32 -> fp32: knobs ranked by the drift each causes "
            "alone (relative L2 vs fp32)\n"
            "rank  knob  alone  cumulative  note\n");
}

}  // namespace
}  // namespace driftscope
