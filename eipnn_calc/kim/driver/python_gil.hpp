// Releasing Python's GIL while the model runs, when the driver is called from Python.
//
// In a Python process that imported torch, libtorch's autograd engine refuses to run while
// the calling thread holds the GIL ("The autograd engine was called while holding the
// GIL"). kimpy (and so ASE's KIM calculator) calls the driver with the GIL held unless asked
// otherwise, so the driver releases it itself. Python's C API is looked up at run time: the
// driver does not link Python, and outside Python (LAMMPS) this does nothing.
#ifndef EIPNN_PYTHON_GIL_HPP_
#define EIPNN_PYTHON_GIL_HPP_

namespace eipnn {

class ScopedGilRelease {
 public:
  ScopedGilRelease();
  ~ScopedGilRelease();
  ScopedGilRelease(ScopedGilRelease const &) = delete;
  ScopedGilRelease & operator=(ScopedGilRelease const &) = delete;

 private:
  void * thread_state_ = nullptr;  // PyThreadState* saved by PyEval_SaveThread
};

}  // namespace eipnn

#endif  // EIPNN_PYTHON_GIL_HPP_
