// A client that starts a run and stops reading used to hold the worker's
// slot for as long as it kept the call open. With --reader_timeout the run
// is cancelled once its output has waited that long without the reader
// taking any, and the next client gets the slot.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "driftscope/v1/worker.grpc.pb.h"
#include "gtest/gtest.h"
#include "proto/lib/job_convert.h"
#include "server/worker/worker_server.h"

namespace driftscope {
namespace {

// About 160 MB of eval outputs (4000 × 10 × 1024 float32) from little
// compute: far more than the transport and the worker's queue hold for a
// reader that does not read.
v1::RunRequest LargeOutputRequest(const std::string& run_id) {
  JobSpec s = DefaultJobSpec();
  s.model.timesteps = 10;
  s.model.layers.resize(2);
  s.model.layers[0].units = 4;
  s.model.layers[0].return_sequences = true;
  s.model.layers[1] = LayerSpec{};
  s.model.layers[1].kind = LayerKind::kDense;
  s.model.layers[1].units = 1024;
  s.model.layers[1].activation = Activation::kLinear;
  s.data.samples = 32;
  s.data.eval_samples = 4000;
  s.training.epochs = 1;
  s.training.batch_size = 32;
  s.training.capture_epoch_outputs = false;
  v1::RunRequest r;
  *r.mutable_spec() = JobSpecToProto(s);
  r.set_run_id(run_id);
  r.mutable_capture()->set_outputs(true);
  return r;
}

TEST(WorkerStalledReaderTest, ReaderThatStopsReadingLosesItsSlot) {
  WorkerServerOptions o;
  o.listen = "127.0.0.1:0";
  o.tls.insecure = true;
  o.service.max_concurrent_runs = 1;
  o.reader_timeout = absl::Seconds(1);
  auto server = WorkerServer::BuildAndStart(o);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Worker::NewStub(grpc::CreateChannel(
      (*server)->address(), grpc::InsecureChannelCredentials()));

  // The first client reads `accepted` and then nothing, keeping the call
  // open for minutes.
  grpc::ClientContext stalled;
  stalled.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::minutes(5));
  auto reader = stub->Run(&stalled, LargeOutputRequest("stalled"));
  v1::RunEvent first;
  ASSERT_TRUE(reader->Read(&first));
  ASSERT_TRUE(first.has_accepted());

  // Another client is busy-refused while the slot is held, then accepted.
  const absl::Time start = absl::Now();
  bool accepted = false;
  grpc::Status last;
  while (!accepted && absl::Now() - start < absl::Seconds(60)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(60));
    v1::RunRequest next = LargeOutputRequest("next");
    next.mutable_capture()->set_outputs(false);
    auto r = stub->Run(&ctx, next);
    v1::RunEvent e;
    while (r->Read(&e)) {
      if (e.has_accepted()) accepted = true;
    }
    last = r->Finish();
    if (!accepted) {
      // Only "busy" is expected while the stalled run holds the slot.
      ASSERT_EQ(last.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << last.error_message();
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
  EXPECT_TRUE(accepted) << "still refused after 60 s: " << last.error_message();
  EXPECT_TRUE(last.ok()) << last.error_message();
  // Freed by the timeout (1 s), not by the stalled call's deadline (5 min).
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));

  // The stalled call was cancelled by the worker.
  stalled.TryCancel();
  v1::RunEvent ignored;
  while (reader->Read(&ignored)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
  EXPECT_EQ((*server)->service().active_runs(), 0);
}

}  // namespace
}  // namespace driftscope
