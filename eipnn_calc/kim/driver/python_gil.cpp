#include "python_gil.hpp"

#include <dlfcn.h>

namespace eipnn {

namespace {

using IntFunction = int (*)();
using SaveThread = void * (*)();
using RestoreThread = void (*)(void *);

template <class Function>
Function Lookup(char const * name) {
  return reinterpret_cast<Function>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

ScopedGilRelease::ScopedGilRelease() {
  auto const is_initialized = Lookup<IntFunction>("Py_IsInitialized");
  auto const holds_gil = Lookup<IntFunction>("PyGILState_Check");
  auto const save = Lookup<SaveThread>("PyEval_SaveThread");
  if (is_initialized == nullptr || holds_gil == nullptr || save == nullptr) return;
  // PyGILState_Check answers 1 before Python is initialised: ask in this order.
  if (is_initialized() && holds_gil()) thread_state_ = save();
}

ScopedGilRelease::~ScopedGilRelease() {
  if (thread_state_ == nullptr) return;
  Lookup<RestoreThread>("PyEval_RestoreThread")(thread_state_);
}

}  // namespace eipnn
