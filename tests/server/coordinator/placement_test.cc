// PlaceRun: the scheduler's placement policy, decided without threads,
// sockets or a clock.
#include "server/coordinator/placement.h"

#include <vector>

#include "gtest/gtest.h"

namespace driftscope::coordinator {
namespace {

v1::WorkerInfo Info(const std::string& name, int max_runs,
                    std::vector<std::string> presets = {"fp32", "tf32"}) {
  v1::WorkerInfo w;
  w.set_name(name);
  w.set_address(name + ":1");
  w.set_max_concurrent_runs(max_runs);
  for (const std::string& p : presets) w.add_presets(p);
  return w;
}

const absl::Time kStart = absl::FromUnixSeconds(1000);

PlacementClock At(absl::Duration since_start, bool grace_over = true) {
  return {kStart + since_start, grace_over, absl::Seconds(60)};
}

TEST(PlacementTest, RunStartsOnItsNamedWorkerWhenASlotIsFree) {
  const v1::WorkerInfo a = Info("a", 2), b = Info("b", 2);
  const std::vector<WorkerSlots> w = {{&a, true, 2}, {&b, true, 2}};
  const Placement p = PlaceRun({"b", "fp32", kStart}, w, At(absl::Seconds(1)));
  EXPECT_EQ(p.kind, Placement::kStart);
  EXPECT_EQ(p.worker, 1);
}

TEST(PlacementTest, RunWaitsForItsBusyNamedWorkerEvenWhenOthersAreFree) {
  const v1::WorkerInfo a = Info("a", 1), b = Info("b", 4);
  const std::vector<WorkerSlots> w = {{&a, true, 0}, {&b, true, 4}};
  const Placement p = PlaceRun({"a", "fp32", kStart}, w, At(absl::Hours(1)));
  EXPECT_EQ(p.kind, Placement::kWait);  // never given up: its worker is there
}

TEST(PlacementTest, RunOfAnUnavailableWorkerMovesToTheLeastLoadedCapableOne) {
  const v1::WorkerInfo gone = Info("gone", 1), busy = Info("busy", 4),
                       idle = Info("idle", 2),
                       other = Info("other", 8, {"bf16"});
  const std::vector<WorkerSlots> w = {{&gone, false, 1},
                                      {&busy, true, 1},    // load 3/4
                                      {&idle, true, 1},    // load 1/2
                                      {&other, true, 8}};  // cannot run tf32
  const Placement p =
      PlaceRun({"gone", "tf32", kStart}, w, At(absl::Seconds(1)));
  EXPECT_EQ(p.kind, Placement::kStart);
  EXPECT_EQ(p.worker, 2);
}

TEST(PlacementTest, NeverSeenWorkerIsWaitedForDuringTheStartupGraceOnly) {
  const v1::WorkerInfo a = Info("a", 1);
  const std::vector<WorkerSlots> w = {{&a, true, 1}};
  EXPECT_EQ(PlaceRun({"late", "fp32", kStart}, w,
                     At(absl::Seconds(1), /*grace_over=*/false))
                .kind,
            Placement::kWait);
  const Placement p = PlaceRun({"late", "fp32", kStart}, w,
                               At(absl::Seconds(1), /*grace_over=*/true));
  EXPECT_EQ(p.kind, Placement::kStart);
  EXPECT_EQ(p.worker, 0);
}

TEST(PlacementTest, RunNoWorkerCanTakeIsGivenUpAfterThePlacementTimeout) {
  const v1::WorkerInfo a = Info("a", 1, {"fp32"});
  const std::vector<WorkerSlots> w = {{&a, true, 1}};
  const QueuedRun run{"gone", "bf16", kStart};
  EXPECT_EQ(PlaceRun(run, w, At(absl::Seconds(59))).kind, Placement::kWait);
  EXPECT_EQ(PlaceRun(run, w, At(absl::Seconds(61))).kind, Placement::kGiveUp);
}

TEST(PlacementTest, CapableButFullWorkersKeepTheRunWaitingPastTheTimeout) {
  const v1::WorkerInfo a = Info("a", 1);
  const std::vector<WorkerSlots> w = {{&a, true, 0}};
  const Placement p =
      PlaceRun({"gone", "fp32", kStart}, w, At(absl::Minutes(10)));
  EXPECT_EQ(p.kind, Placement::kWait);
}

TEST(PlacementTest, AKnobStringRunsAnywhereAPresetOnlyWhereOffered) {
  const v1::WorkerInfo a = Info("a", 1, {"fp32"});
  const std::vector<WorkerSlots> w = {{&a, true, 1}};
  EXPECT_EQ(
      PlaceRun({"gone", "fp32,threads=2", kStart}, w, At(absl::Seconds(1)))
          .kind,
      Placement::kStart);
  EXPECT_EQ(PlaceRun({"gone", "tf32", kStart}, w, At(absl::Seconds(1))).kind,
            Placement::kWait);
}

}  // namespace
}  // namespace driftscope::coordinator
