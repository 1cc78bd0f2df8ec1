// SIGTERM/SIGINT handling for the daemons: the signals are blocked in every
// thread and taken synchronously by one waiting thread, so no code runs in a
// signal handler. Call BlockTerminationSignals() first in main(), before any
// thread exists (threads inherit the mask).
#ifndef DRIFTSCOPE_SERVER_COMMON_SIGNALS_H_
#define DRIFTSCOPE_SERVER_COMMON_SIGNALS_H_

namespace driftscope {

void BlockTerminationSignals();
// Blocks until SIGTERM or SIGINT arrives; returns its number.
int WaitForTerminationSignal();

}  // namespace driftscope

#endif  // DRIFTSCOPE_SERVER_COMMON_SIGNALS_H_
